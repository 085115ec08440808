"""Checkpoint files: written whole or not at all, and which one test.py and text-to-sign use.

Lightning writes through fsspec into a temp file under /tmp and then moves it over the checkpoint. Where
the experiment folder is on another file system (Google Drive in Colab) that move is a copy into the
checkpoint itself, so a runtime that disconnects mid-copy leaves a truncated last.ckpt that the next run
cannot resume from. `AtomicCheckpointIO` writes through `mGPT.files.AtomicFile` instead. Like Lightning, the
checkpoint is serialised in memory first: torch.save straight into a file reports a failed write as an
opaque RuntimeError, a plain write reports the OSError (no space left, ...).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig

from mGPT.config import checkpoint_path, exp_dir
from mGPT.errors import CheckpointError
from mGPT.files import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path,
                        storage_options: Any = None) -> None:
        path = Path(path)
        content = io.BytesIO()
        torch.save(checkpoint, content)
        try:
            atomic_write_bytes(path, content.getbuffer())
        except OSError as err:
            raise CheckpointError(
                f"cannot write the checkpoint {path.name} into the folder {path.parent}: "
                f"{err.strerror or err}. Free some disk space there or set FOLDER_EXP to a writable "
                "folder; the previous checkpoint is unchanged"
            ) from err


def trained_checkpoint(cfg: DictConfig) -> Path:
    """TEST.CHECKPOINT, else best.ckpt, else last.ckpt of a run whose validation never ran (no best.ckpt)."""
    checkpoints = exp_dir(cfg) / "checkpoints"
    best, last = checkpoints / "best.ckpt", checkpoints / "last.ckpt"
    if not cfg.TEST.CHECKPOINT and not best.is_file() and last.is_file():
        print(f"no best.ckpt in {checkpoints} (validation never ran: see TRAIN.VAL_EVERY_N_EPOCHS); "
              "using last.ckpt")
        return last
    return checkpoint_path(cfg)
