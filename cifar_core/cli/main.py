"""`cifar-lab`: everything the dashboard shows, headless. The entry point: one line per user error (exit 2),
SIGTERM treated as Ctrl-C, and a runs folder that cannot be written refused before anything loads."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from cifar_core.cli.options import runs_dir
from cifar_core.cli.parser import build_parser
from cifar_core.errors import LabError
from cifar_core.store import runs

WRITING_COMMANDS = ("train", "study", "import", "reproduce", "resume", "study-resume", "embed")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `cifar-lab runs | head` ends quietly
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `timeout`, `kill`: stop a run as Ctrl-C does
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in WRITING_COMMANDS:
            check_writable(runs_dir(args))
        return args.func(args) or 0
    except LabError as exc:
        print(f"cifar-lab: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cifar-lab: interrupted. A run or study asked to stop goes on stopping in the background "
              "(`cifar-lab runs` and `cifar-lab studies` show it).", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)  # now: an interrupt arriving while Python shuts down would end it as killed by SIGINT


def check_writable(folder: Path) -> None:
    """Refuse, before anything is loaded or created, a runs folder that cannot be written: a file, or a folder on a
    read-only mount or without permission (it, or the nearest folder above it that exists)."""
    if folder.exists() and not folder.is_dir():
        raise runs.RunError(f"--runs-dir {folder} is a file; give a folder (it is created if missing).")
    existing = next((p for p in (folder, *folder.absolute().parents) if p.exists()), None)
    if existing is None:
        return
    if _read_only_mount(existing) or not os.access(existing, os.W_OK):
        why = "is on a read-only file system" if _read_only_mount(existing) else "cannot be written by this user"
        raise runs.RunError(f"The runs folder {folder} {why}; give another with --runs-dir or $CIFAR_LAB_RUNS.")


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
