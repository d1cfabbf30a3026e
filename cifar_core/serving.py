"""Who may change things through the dashboard: the person at this machine, not whoever can reach it.

Served on a loopback address (the default), the dashboard can do everything. Served on any other address,
or with no address set (Streamlit then listens on every interface), it is read-only: browsing, comparing and
inspecting runs, but no training, stopping, renaming, deleting, saving, or choosing a data path on the server.
"""

from __future__ import annotations

from collections.abc import Mapping

ALLOW_WRITES = "CIFAR_LAB_ALLOW_WRITES"
READ_ONLY = "CIFAR_LAB_READ_ONLY"
LOOPBACK = ("localhost", "::1")


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
