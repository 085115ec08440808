"""The one error type that user-facing commands turn into a clear message and exit code 2."""


class SaSOKEError(Exception):
    """A problem the user can fix: bad input, a missing file, a wrong config.

    The message must name the file, row or key at fault and say what to do.
    Command-line entry points catch it, print the message and exit with code 2.
    """


class DataError(SaSOKEError):
    """Bad or unreadable data (a pickle, a CSV, a cache)."""


class ConfigError(SaSOKEError):
    """A config file or override that does not fit the schema."""


class CheckpointError(SaSOKEError):
    """A checkpoint that is missing, of the wrong stage, or made for other data."""
