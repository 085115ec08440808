"""Which checkpoint test.py and text-to-sign use when TEST.CHECKPOINT is not given."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from mGPT.config import checkpoint_path, exp_dir


def trained_checkpoint(cfg: DictConfig) -> Path:
    """TEST.CHECKPOINT, else best.ckpt, else last.ckpt of a run whose validation never ran (no best.ckpt)."""
    checkpoints = exp_dir(cfg) / "checkpoints"
    best, last = checkpoints / "best.ckpt", checkpoints / "last.ckpt"
    if not cfg.TEST.CHECKPOINT and not best.is_file() and last.is_file():
        print(f"no best.ckpt in {checkpoints} (validation never ran: see TRAIN.VAL_EVERY_N_EPOCHS); "
              "using last.ckpt")
        return last
    return checkpoint_path(cfg)
