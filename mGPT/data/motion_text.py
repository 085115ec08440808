"""Motion-text pairs for the back-translation evaluator: whole clips, with speed, time-warp and noise augmentation.

The evaluator must read generated and reconstructed signing, which is smoother, a little off and signed
at other speeds than the recordings it learns from. Training clips are therefore resampled to a random
speed, read at a speed that also varies along the clip (a random monotone time warp: one sign a little
faster, the next a little slower, as a generator's signs come out) and get a little Gaussian noise (in
normalised units); validation and test clips are left as they are. Every augmented clip is still the
recorded train signing, only re-timed: its first and last frames are kept and every frame lies between
two recorded neighbours.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from mGPT.data.datasets import MotionDataset
from mGPT.data.features import read_at

WARP_SEGMENTS = 4  # pieces of a clip that each get their own reading speed


def warp_positions(frames: int, n: int, warp: float, segments: int = WARP_SEGMENTS) -> np.ndarray:
    """(n,) increasing source positions in [0, frames - 1], first 0 and last frames - 1, for reading a clip of
    `frames` frames as n frames. The output is cut into `segments` equal pieces; piece k reads the source at a
    relative speed exp(warp * u_k), u_k uniform in [-1, 1] (torch's generator), so warp 0 is a uniform resample.
    """
    if frames < 1 or n < 1:
        raise ValueError(f"cannot warp {frames} frames to {n}")
    if warp < 0:
        raise ValueError(f"warp must be >= 0, got {warp}")
    if warp == 0:  # no draw: the random stream, and so every other augmentation, stays as without warping
        speeds = np.ones(segments)
    else:
        speeds = torch.exp(warp * (2 * torch.rand(segments, dtype=torch.float64) - 1)).numpy()  # (segments,)
    knots = np.concatenate([[0.0], np.cumsum(speeds)]) / speeds.sum()  # (segments + 1,) from 0 to 1
    progress = np.interp(np.linspace(0.0, segments, n), np.arange(segments + 1), knots)  # (n,) from 0 to 1
    return progress * (frames - 1)


class AugmentedMotionText(Dataset):
    """MotionDataset items (whole normalised clips and their text), each drawn at a random speed, time-warped,
    with noise.

    A clip of T frames becomes round(T * s) frames, s uniform in [1 - speed_jitter, 1 + speed_jitter], at least
    `min_frames`, read through warp_positions(..., time_warp). Draws come from torch's generator, which
    DataLoader seeds differently in every worker.
    """

    def __init__(self, clips: MotionDataset, speed_jitter: float = 0.2, noise: float = 0.05, min_frames: int = 8,
                 time_warp: float = 0.0):
        if clips.window is not None:
            raise ValueError("AugmentedMotionText needs whole clips: give a MotionDataset with window=None")
        if not 0 <= speed_jitter < 1 or noise < 0 or time_warp < 0:
            raise ValueError(f"speed_jitter must be in [0, 1), noise and time_warp >= 0, got {speed_jitter}, "
                             f"{noise}, {time_warp}")
        self.clips, self.speed_jitter, self.noise, self.min_frames = clips, speed_jitter, noise, min_frames
        self.time_warp = time_warp

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.clips[i])
        motion = item["motion"]  # (T, 133) normalised
        if self.speed_jitter > 0 or self.time_warp > 0:
            speed = 1 + self.speed_jitter * (2 * float(torch.rand(())) - 1) if self.speed_jitter > 0 else 1.0
            n = max(round(len(motion) * speed), self.min_frames)
            motion = read_at(motion, warp_positions(len(motion), n, self.time_warp))
        if self.noise > 0:
            motion = motion + self.noise * torch.randn_like(motion)
        item["motion"], item["length"] = motion.contiguous(), len(motion)
        return item
