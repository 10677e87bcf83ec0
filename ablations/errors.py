"""Errors whose message already says what to do: the CLI prints them in one line, no traceback."""


class ConfigError(ValueError):
    """A bad preset, row, table, key, value or data folder, found before any work; exit status 2."""


class RunError(RuntimeError):
    """A run cannot go on as it is (e.g. every checkpoint of a phase is damaged)."""


class DataError(RunError):
    """An item of the dataset cannot be read; the message names its file."""
