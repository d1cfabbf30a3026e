"""Progress bars for the command line (rich), drawn on stderr only when it is a terminal.

Piped or redirected output gets the plain lines alone, so logs and `| head` stay clean.
"""

from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def interactive() -> bool:
    return sys.stderr.isatty()


def bars() -> Progress:
    """A rich Progress on stderr: description, bar, done/total, elapsed, ETA; disabled when piped."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=True, disable=not interactive())


@contextlib.contextmanager
def counting(description: str):
    """A bar for one counted job: yields update(done, total)."""
    with bars() as progress:
        task = progress.add_task(description, total=None, note="")

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def say(bars: Progress, text: str) -> None:
    """A line of output above the live bars on a terminal; a plain flushed line when piped."""
    if interactive():
        bars.console.print(text, highlight=False, markup=False)
    else:
        print(text, flush=True)
