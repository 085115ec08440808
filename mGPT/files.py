"""Files that are either the old version or the new one, never half written, and folders proven writable.

Every writer in SaSOKE that a killed run could leave half done (the packed cache, checkpoints, motion codes,
the sign dictionary, fitted pose frames) goes through `AtomicFile`: the content goes into a temp file beside
the target, is synced, and replaces the target with one rename. A temp file beside the target matters on
Google Drive, where a move from /tmp is a copy into the target itself.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

from mGPT.errors import SaSOKEError

FILE_MODE = 0o644  # temp files start private; what we write should read like any other file


class AtomicFile:
    """`with AtomicFile(path) as handle:` writes `path` on success and leaves it untouched on any error."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):  # left by a run killed mid-write
            stale.unlink(missing_ok=True)
        self.handle: IO[bytes] = tempfile.NamedTemporaryFile(dir=self.path.parent, prefix=f".{self.path.name}.",
                                                             suffix=".tmp", delete=False)

    def commit(self) -> None:
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            os.chmod(self.handle.name, FILE_MODE)
            os.replace(self.handle.name, self.path)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        self.handle.close()
        Path(self.handle.name).unlink(missing_ok=True)

    def __enter__(self) -> IO[bytes]:
        return self.handle

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call `write(handle)` on a temp file, then put it in place of `path` in one rename."""
    with AtomicFile(path) as handle:
        write(handle)
    return Path(path)


def atomic_write_bytes(path: str | Path, content: bytes | memoryview) -> Path:
    return atomic_write(path, lambda handle: handle.write(content))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


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
