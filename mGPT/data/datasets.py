"""Torch datasets over a packed split (mGPT.data.prepare); they never touch the per-frame pickles."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from mGPT.data.features import apply_length_rules, normalize, resample_length, smplx_to_features
from mGPT.data.prepare import PackedSplit
from mGPT.errors import ConfigError, DataError
from mGPT.layout import FEATURE_DIMS


def _feature_stat(values: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.shape != (FEATURE_DIMS,) or not np.isfinite(array).all():
        raise DataError(f"{name} must be {FEATURE_DIMS} finite numbers, got shape {array.shape}; "
                        f"use the 133-dim statistics (load_stats(...)['{name}'] or the tokenizer's own)")
    return array.astype(np.float32)


class MotionDataset(Dataset):
    """Clips of a packed split as normalized 133-dim features.

    window=None gives each whole clip after SOKE's length rules (validation and test), a multiple of the
    tokenizer's frames_per_code. window=W (itself such a multiple) gives W frames: a random crop when
    random_crop, else the centre; shorter clips are resampled up to W.
    Random crops draw from torch's generator, which DataLoader seeds differently in every worker.
    """

    def __init__(self, split: PackedSplit, mean133: np.ndarray | torch.Tensor, std133: np.ndarray | torch.Tensor,
                 window: int | None = None, min_frames: int = 40, max_frames: int = 400,
                 random_crop: bool = False, frames_per_code: int = 4) -> None:
        if window is not None and window <= 0:
            raise ValueError(f"window must be positive or None, got {window}")
        if window is not None and window % frames_per_code:
            raise ConfigError(f"the training window (DATASET.WINDOW) of {window} frames is not a multiple of the "
                              f"tokenizer's {frames_per_code} frames per code (2**DOWN_T); choose a multiple of "
                              f"{frames_per_code}")
        self.split = split
        self.mean133 = _feature_stat(mean133, "mean133")
        self.std133 = _feature_stat(std133, "std133")
        self.window = window
        self.min_frames = min_frames
        self.max_frames = max_frames
        self.random_crop = random_crop
        self.frames_per_code = frames_per_code

    def __len__(self) -> int:
        return len(self.split)

    def _crop(self, features: np.ndarray) -> np.ndarray:
        if self.window is None:
            return apply_length_rules(features, self.min_frames, self.max_frames, self.frames_per_code)
        length = len(features)
        if length < self.window:
            return resample_length(features, self.window)
        if self.random_crop:
            start = int(torch.randint(0, length - self.window + 1, ()).item())
        else:
            start = (length - self.window) // 2
        return features[start:start + self.window]

    def __getitem__(self, i: int) -> dict:
        features = smplx_to_features(self.split.clip(i))  # (T, 133)
        motion = normalize(self._crop(features), self.mean133, self.std133)  # (T', 133)
        return {
            "motion": torch.from_numpy(np.ascontiguousarray(motion, dtype=np.float32)),
            "length": len(motion),
            "name": self.split.names[i],
            "text": self.split.texts[i],
        }


def collate_motion(items: list[dict]) -> dict:
    """Pad a list of dataset items into a batch: motion (B, Tmax, 133) with zeros after each clip's end,
    lengths (B,), mask (B, Tmax) True on real frames, names and texts as lists."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    lengths = torch.tensor([item["length"] for item in items], dtype=torch.long)  # (B,)
    longest = int(lengths.max())
    motion = items[0]["motion"].new_zeros(len(items), longest, items[0]["motion"].shape[-1])  # (B, Tmax, 133)
    for row, item in enumerate(items):
        motion[row, :item["length"]] = item["motion"]
    mask = torch.arange(longest)[None, :] < lengths[:, None]  # (B, Tmax)
    return {
        "motion": motion,
        "lengths": lengths,
        "mask": mask,
        "names": [item["name"] for item in items],
        "texts": [item["text"] for item in items],
    }
