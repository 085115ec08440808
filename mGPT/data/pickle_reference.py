"""Clips read the way SOKE reads them: from the per-frame pickles, every time a sample is asked for.

SOKE's dataset lists a clip's pose folder, sorts it, unpickles each frame file and stacks the frames
on every __getitem__, every epoch. `PickleSplit` does the same (with our restricted unpickler, so a
hostile file still runs nothing) behind the interface of a packed split, so the datasets can read from
either. It exists for `BASELINE.PICKLE_LOADER: true` and bench/run_all.py: it returns exactly the
frames the cache holds, only slower. Train from the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mGPT.data.features import resample_to_fps
from mGPT.data.isharah import pose_dir_path, read_clip
from mGPT.data.prepare import PackedSplit


@dataclass
class PickleSplit:
    """The clips of a packed split, each re-read from its pickles: clip(i) is (T_i, 179) float32."""

    data_root: Path
    split: str
    names: list[str]
    texts: list[str]
    source_fps: np.ndarray  # (C,) the CSV frame rate of each clip
    target_fps: float

    @classmethod
    def like(cls, packed: PackedSplit, data_root: str | Path, split: str) -> PickleSplit:
        """The same clips, names and frame rates as `packed`, read from `data_root` instead."""
        return cls(Path(data_root), split, list(packed.names), list(packed.texts), packed.source_fps,
                   packed.target_fps)

    def __len__(self) -> int:
        return len(self.names)

    def clip(self, i: int) -> np.ndarray:
        frames = read_clip(pose_dir_path(self.data_root, self.split, self.names[i]))  # (T, 179)
        return resample_to_fps(frames, float(self.source_fps[i]), self.target_fps).astype(np.float32)


def clip_source(cfg: DictConfig, packed: PackedSplit, split: str) -> PackedSplit | PickleSplit:
    """`packed`, or the same split read from pickles when the config asks for SOKE's loader."""
    if OmegaConf.select(cfg, "BASELINE.PICKLE_LOADER", default=False):
        return PickleSplit.like(packed, cfg.DATASET.DATA_ROOT, split)
    return packed
