"""Clips read the way SOKE reads them: from the per-frame pickles, every time a sample is asked for.

SOKE's dataset lists a clip's pose folder, sorts it, unpickles each frame file and stacks the frames
on every __getitem__, every epoch. `PickleSplit` does the same (with our restricted unpickler, so a
hostile file still runs nothing) behind the interface of a packed split, so the datasets can read from
either. It exists for the benchmarks (bench/bench_data.py, and `pickle_clips` handed to the data module
by bench/bench_pipeline.py) and as the oracle of the cache (tests/test_soke_style.py): it returns
exactly the frames the cache holds, only slower. Train from the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


def pickle_clips(data_root: str | Path) -> Callable[[PackedSplit, str], PickleSplit]:
    """The `clip_source` argument of SignDataModule (and test.py's `evaluate`) that reads every clip of
    a split from the pickles under `data_root` instead of from its packed cache."""
    return lambda packed, split: PickleSplit.like(packed, data_root, split)
