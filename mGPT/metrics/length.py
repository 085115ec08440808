"""Does generation end when the signing ends? Generated against reference length, per sample and summed up.

`length_summary` is the entry `length` of test_summary.json; `LengthMetrics` gathers the same numbers during
stage 2 generation validation, safe under DDP (per-sample states reduced with "cat", duplicates dropped by
sample id as in SignDTWMetrics).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

SUMMARY_KEYS = ("ratio_mean", "ratio_p95", "at_cap_share", "cap_steps")


def length_summary(generated_frames: Sequence[int], reference_frames: Sequence[int], at_cap: Sequence[bool],
                   cap_steps: int) -> dict[str, float | int]:
    """{"ratio_mean", "ratio_p95", "at_cap_share", "cap_steps"} of one set of generated clips.

    ratio = generated frames / reference frames, per sample; ratio_p95 is numpy's 95th percentile (linear
    interpolation). at_cap[i]: sample i used every step it was allowed (cap_steps = LM.MAX_MOTION_TOKENS, or
    its length bound) without emitting </s>; at_cap_share is their fraction. NaN ratios when there are none.
    """
    if not len(generated_frames) == len(reference_frames) == len(at_cap):
        raise ValueError(f"got {len(generated_frames)} generated lengths, {len(reference_frames)} reference "
                         f"lengths and {len(at_cap)} at-cap flags")
    reference = np.asarray(reference_frames, dtype=np.float64)
    if (reference <= 0).any():
        raise ValueError("reference clips must have at least one frame")
    ratios = np.asarray(generated_frames, dtype=np.float64) / reference  # (N,)
    if len(ratios) == 0:
        return {"ratio_mean": float("nan"), "ratio_p95": float("nan"), "at_cap_share": float("nan"),
                "cap_steps": int(cap_steps)}
    return {"ratio_mean": float(ratios.mean()), "ratio_p95": float(np.percentile(ratios, 95)),
            "at_cap_share": float(np.mean(np.asarray(at_cap, dtype=bool))), "cap_steps": int(cap_steps)}


class LengthMetrics(Metric):
    """length_summary over every sample seen: `compute()` -> {"ratio_mean", "ratio_p95", "at_cap_share"} as
    0-d tensors (to log) and "cap_steps"."""

    full_state_update = False

    def __init__(self, cap_steps: int, **kwargs):
        super().__init__(**kwargs)
        self.cap_steps = int(cap_steps)
        for name in ("sample_ids", "generated_frames", "reference_frames", "at_cap"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, sample_ids: Tensor, generated_frames: Sequence[int], reference_frames: Sequence[int],
               at_cap: Sequence[bool]) -> None:
        """sample_ids (B,) integers; per sample its generated and reference frame counts and its at-cap flag."""
        if not len(sample_ids) == len(generated_frames) == len(reference_frames) == len(at_cap):
            raise ValueError(f"got {len(sample_ids)} sample ids, {len(generated_frames)} generated lengths, "
                             f"{len(reference_frames)} reference lengths and {len(at_cap)} at-cap flags")
        for name, values in (("sample_ids", sample_ids), ("generated_frames", generated_frames),
                             ("reference_frames", reference_frames), ("at_cap", at_cap)):
            getattr(self, name).append(torch.as_tensor(values, dtype=torch.long, device=self.device).reshape(-1))

    def compute(self) -> dict[str, Tensor | int]:
        if len(self.sample_ids) == 0:
            return {}
        ids = dim_zero_cat(self.sample_ids)  # (M,) with DDP padding duplicates
        unique_ids, inverse = torch.unique(ids, return_inverse=True)
        positions = torch.arange(len(ids), device=ids.device)
        first = torch.full_like(unique_ids, len(ids)).scatter_reduce(0, inverse, positions, reduce="amin")  # (N,)
        summary = length_summary(*(dim_zero_cat(getattr(self, name))[first].tolist()
                                   for name in ("generated_frames", "reference_frames", "at_cap")),
                                 cap_steps=self.cap_steps)
        # on the metric's device: Lightning syncs logged tensors where they are (NCCL refuses CPU ones)
        return {k: v if k == "cap_steps" else torch.tensor(v, dtype=torch.float32, device=self.device)
                for k, v in summary.items()}
