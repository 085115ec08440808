"""Checkpoint files that are either the old one or the new one, never half written.

Lightning writes through fsspec into a temp file under /tmp and then moves it over the checkpoint.
Where the experiment folder is on another file system (Google Drive in Colab) that move is a copy into
the checkpoint itself, so a runtime that disconnects mid-copy leaves a truncated last.ckpt that the next
run cannot resume from. Here the temp file sits beside the checkpoint, is synced, and replaces it with
one rename. A full disk or a folder that cannot be written becomes a CheckpointError naming the folder.
Like Lightning, the checkpoint is serialised in memory first: torch.save straight into a file reports a
failed write as an opaque RuntimeError, a plain write reports the OSError (no space left, ...).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from mGPT.errors import CheckpointError


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path,
                        storage_options: Any = None) -> None:
        path = Path(path)
        content = io.BytesIO()
        torch.save(checkpoint, content)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a run killed while saving
                stale.unlink(missing_ok=True)
            handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                                 delete=False)
            try:
                with handle:
                    handle.write(content.getbuffer())
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(handle.name, path)
            except BaseException:
                Path(handle.name).unlink(missing_ok=True)
                raise
        except OSError as err:
            raise CheckpointError(
                f"cannot write the checkpoint {path.name} into the folder {path.parent}: "
                f"{err.strerror or err}. Free some disk space there or set FOLDER_EXP to a writable "
                "folder; the previous checkpoint is unchanged"
            ) from err
