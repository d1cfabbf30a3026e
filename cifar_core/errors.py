"""The one base of every error a user reads: the CLI prints its message in one line (exit 2), a page shows it."""


class LabError(ValueError):
    """Something the user asked for cannot be done; the message says why and what to do instead."""
