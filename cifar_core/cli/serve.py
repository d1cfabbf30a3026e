"""`cifar-lab serve`: the dashboard, local by default, read-only when shared."""

from __future__ import annotations

import os
import sys

from cifar_core import serving, settings


def cmd_serve(args) -> int:
    """Exec `streamlit run` on the dashboard that ships in the package, with its settings, on the chosen address;
    sharing beyond this machine is said out loud. Runs and data paths stay relative to the folder it starts in."""
    app = serving.DASHBOARD_APP
    env = {**settings.environment(), settings.ALLOW_WRITES: "1" if args.allow_writes else "0"}
    if args.runs_dir:
        env[settings.RUNS] = str(args.runs_dir.resolve())
    if not serving.is_loopback(args.host):
        mode = "it can train, stop, rename and delete runs" if args.allow_writes else \
            "it is read-only (browse, compare, inspect); --allow-writes allows changes"
        print(f"WARNING: serving on {args.host}: anyone who can reach this machine can open the dashboard, and "
              f"{mode}. For a login, use an SSH tunnel or an authenticating reverse proxy (README: Sharing).",
              file=sys.stderr)
    command = [sys.executable, "-m", "streamlit", "run", str(app), *serving.streamlit_flags(),
               "--server.address", args.host]
    if args.port:
        command += ["--server.port", str(args.port)]
    os.execve(sys.executable, command, env)
