"""What every command-line entry point shares: clear errors with exit code 2, writable output folders."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from mGPT.errors import SaSOKEError


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


def writable_dir(path: str | Path, what: str) -> Path:
    """Create `path` and prove it can be written, before hours of training depend on it."""
    path = Path(path)
    probe = path / ".write_test"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"0" * 4096)
        probe.unlink()
    except OSError as err:
        raise SaSOKEError(f"cannot write the {what} folder {path}: {err.strerror or err}. "
                          "Free some disk space or choose another folder.") from err
    return path
