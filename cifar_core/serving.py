"""Who may change things through the dashboard: the person at this machine, not whoever can reach it.

Served on a loopback address (the default), the dashboard can do everything. Served on any other address,
or with no address set (Streamlit then listens on every interface), it is read-only: browsing, comparing and
inspecting runs, but no training, stopping, renaming, deleting, saving, or choosing a data path on the server.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

from cifar_core.settings import ALLOW_WRITES, READ_ONLY

LOOPBACK = ("localhost", "::1")
DASHBOARD_APP = Path(__file__).parent / "dashboard" / "app.py"  # found by path: nothing imports the dashboard
STREAMLIT_CONFIG = DASHBOARD_APP.parent / "streamlit.toml"  # .streamlit/config.toml of a checkout links to it


def streamlit_flags(config: Path = STREAMLIT_CONFIG) -> list[str]:
    """The dashboard's Streamlit settings as command-line flags (`--server.address localhost` ...): Streamlit
    reads a config file only from the folder it starts in, and an installed lab starts anywhere."""
    flags = []
    for section, options in tomllib.loads(config.read_text()).items():
        for key, value in options.items():
            flags += [f"--{section}.{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return flags


def is_loopback(address: str | None) -> bool:
    return bool(address) and (address in LOOPBACK or address.startswith("127."))


def read_only(address: str | None, env: Mapping[str, str]) -> bool:
    """True unless the server listens on loopback only, or the person sharing it chose writes explicitly."""
    if env.get(READ_ONLY) == "1":
        return True
    return not is_loopback(address) and env.get(ALLOW_WRITES) != "1"


NOTICE = ("Shared, read-only view: browse runs, compare them and inspect their mistakes. Training, stopping, "
          "renaming, deleting and saving are done on the machine that serves this page.")
OTHER_DATA = ("this shared view shows images only from the data set the server was started with "
              "(CIFAR_LAB_DATA), and this run names another; open it on the machine that serves this page.")
