"""The one error type that user-facing commands turn into a clear message and exit code 2, and the wrapper
that does it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


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


def run_cli(main: Callable[[], object]) -> int:
    """Run `main`; a SaSOKEError or an unwritable output becomes one line on stderr and exit code 2."""
    try:
        main()
    except SaSOKEError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a path or disk problem no check foresaw: still the user's to fix, not a crash
        print(f"error: {os_error_message(err)}", file=sys.stderr)
        return 2
    return 0


def os_error_message(err: OSError, folder: str | Path | None = None) -> str:
    """One line for a failed file operation, naming the file (or `folder` when the error has none)."""
    where = err.filename or folder
    return (f"cannot read or write {where if where else 'a file'}: {err.strerror or err}. Check that the "
            "path exists and is a folder you can write to, and that its disk has free space")
