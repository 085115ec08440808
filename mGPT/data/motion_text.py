"""Motion-text pairs for the back-translation evaluator: whole clips, with speed and noise augmentation.

The evaluator must read generated and reconstructed signing, which is smoother, a little off and signed
at other speeds than the recordings it learns from. Training clips are therefore resampled to a random
speed and get a little Gaussian noise (in normalised units); validation and test clips are left as they are.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from mGPT.data.datasets import MotionDataset
from mGPT.data.features import resample_length


class AugmentedMotionText(Dataset):
    """MotionDataset items (whole normalised clips and their text), each drawn at a random speed with noise.

    A clip of T frames becomes round(T * s) frames, s uniform in [1 - speed_jitter, 1 + speed_jitter], at least
    `min_frames`. Draws come from torch's generator, which DataLoader seeds differently in every worker.
    """

    def __init__(self, clips: MotionDataset, speed_jitter: float = 0.2, noise: float = 0.05, min_frames: int = 8):
        if clips.window is not None:
            raise ValueError("AugmentedMotionText needs whole clips: give a MotionDataset with window=None")
        if not 0 <= speed_jitter < 1 or noise < 0:
            raise ValueError(f"speed_jitter must be in [0, 1) and noise >= 0, got {speed_jitter}, {noise}")
        self.clips, self.speed_jitter, self.noise, self.min_frames = clips, speed_jitter, noise, min_frames

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.clips[i])
        motion = item["motion"]  # (T, 133) normalised
        if self.speed_jitter > 0:
            speed = 1 + self.speed_jitter * (2 * float(torch.rand(())) - 1)
            motion = resample_length(motion, max(round(len(motion) * speed), self.min_frames))
        if self.noise > 0:
            motion = motion + self.noise * torch.randn_like(motion)
        item["motion"], item["length"] = motion.contiguous(), len(motion)
        return item
