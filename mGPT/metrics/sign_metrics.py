"""torchmetrics for both evaluation stages (SPEC section 6), safe under DDP.

- `SignDTWMetrics` (stage 2, generated vs reference sentences of different lengths): per sample and
  part, DTW-MPJPE with root alignment (what SOKE's code computes) and with per-frame Procrustes (what
  its "PA" name promises), accumulated along the path in metres like SOKE, and per path step in mm.
- `ReconstructionMetrics` (stage 1, tokenizer reconstructions of equal length): MPJPE and PA-MPJPE in
  millimetres over all valid frames.

States are tensors (per-sample lists reduced with "cat", sums with "sum") so processes can gather them;
samples are identified by integer ids, which also drop the duplicates a DistributedSampler pads with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from mGPT.kinematics import PartJoints
from mGPT.metrics.dtw import dtw_mpjpe_batch
from mGPT.metrics.procrustes import procrustes_align

DTW_ALIGNMENTS = {"DTW_MPJPE": "root", "DTW_MPJPE_PA": "procrustes"}
# (preds, refs, align, root, joints) -> (B,) accumulated DTW-MPJPE in metres, (B,) path lengths
PairDTW = Callable[[Sequence[Tensor], Sequence[Tensor], str, int, Sequence[int]], tuple[np.ndarray, np.ndarray]]


class SignDTWMetrics(Metric):
    """Per-sample DTW-MPJPE(-PA) per part. `compute()` returns, for each score name
    `DTW_MPJPE[_PA]_{part}` (metres, accumulated) and `DTW_MPJPE[_PA]_{part}_mm` (mm per path step):
    `name` -> the mean over samples as a 0-d tensor (to log), and `name_per_sample` -> (N,) numpy
    array aligned with `sample_ids` ((N,) int64 numpy, sorted). The per-sample values are numpy so
    torchmetrics cannot squeeze a single sample's (1,) tensor to 0-d, and they are ready for JSON.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, parts: dict[str, PartJoints], dtw: PairDTW = dtw_mpjpe_batch, **kwargs):
        super().__init__(**kwargs)
        self.parts = parts
        self.dtw = dtw  # the batched wavefront; benchmarks hand in SOKE's per-cell loop (same scores)
        self.score_names = [f"{prefix}_{part}" for prefix in DTW_ALIGNMENTS for part in parts]
        self.add_state("sample_ids", default=[], dist_reduce_fx="cat")
        for name in self.score_names:
            self.add_state(name, default=[], dist_reduce_fx="cat")
            self.add_state(f"{name}_path_length", default=[], dist_reduce_fx="cat")

    def update(self, sample_ids: Tensor, pred_joints: list[Tensor], ref_joints: list[Tensor]) -> None:
        """sample_ids (B,) integers; pred_joints[i] (T_i, J, 3), ref_joints[i] (T'_i, J, 3) in metres."""
        if not len(sample_ids) == len(pred_joints) == len(ref_joints):
            raise ValueError(f"got {len(sample_ids)} sample ids, {len(pred_joints)} generated and "
                             f"{len(ref_joints)} reference sequences")
        self.sample_ids.append(sample_ids.to(self.device, torch.long))
        for prefix, align in DTW_ALIGNMENTS.items():
            for part, part_joints in self.parts.items():
                totals, lengths = self.dtw(pred_joints, ref_joints, align, part_joints.root,
                                           part_joints.joints)  # (B,), (B,)
                getattr(self, f"{prefix}_{part}").append(torch.as_tensor(totals, dtype=torch.float64,
                                                                         device=self.device))
                getattr(self, f"{prefix}_{part}_path_length").append(torch.as_tensor(lengths, dtype=torch.long,
                                                                                     device=self.device))

    def compute(self) -> dict[str, Tensor | np.ndarray]:
        if len(self.sample_ids) == 0:
            return {}
        ids = dim_zero_cat(self.sample_ids)  # (M,) with DDP padding duplicates
        unique_ids, inverse = torch.unique(ids, return_inverse=True)  # sorted
        positions = torch.arange(len(ids), device=ids.device)
        first = torch.full_like(unique_ids, len(ids)).scatter_reduce(0, inverse, positions, reduce="amin")
        scores: dict[str, Tensor | np.ndarray] = {"sample_ids": unique_ids.cpu().numpy()}
        for name in self.score_names:
            totals = dim_zero_cat(getattr(self, name))[first]  # (N,) metres
            lengths = dim_zero_cat(getattr(self, f"{name}_path_length"))[first]  # (N,)
            per_step_mm = totals / lengths * 1000.0
            scores[name], scores[f"{name}_per_sample"] = totals.mean(), totals.cpu().numpy()
            scores[f"{name}_mm"] = per_step_mm.mean()
            scores[f"{name}_mm_per_sample"] = per_step_mm.cpu().numpy()
        return scores


class ReconstructionMetrics(Metric):
    """MPJPE_{part} (root-aligned) and PA_MPJPE_{part} (Procrustes per frame) in mm over valid frames."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, parts: dict[str, PartJoints], **kwargs):
        super().__init__(**kwargs)
        self.parts = parts
        for part in parts:  # sums of per-frame errors in metres
            for name in (f"MPJPE_{part}", f"PA_MPJPE_{part}"):
                self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("frames", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred_joints: Tensor, ref_joints: Tensor, lengths: Tensor) -> None:
        """pred_joints, ref_joints (B, T, J, 3) in metres; lengths (B,) valid frames per clip."""
        if pred_joints.shape != ref_joints.shape:
            raise ValueError(f"reconstruction and reference joints differ in shape: "
                             f"{tuple(pred_joints.shape)} vs {tuple(ref_joints.shape)}")
        frames = pred_joints.shape[1]
        valid = torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]  # (B, T)
        valid = valid.to(pred_joints.device)
        pred = pred_joints[valid].double()  # (M, J, 3)
        ref = ref_joints[valid].double()  # (M, J, 3)
        for part, part_joints in self.parts.items():
            joints = part_joints.joints
            errors = torch.linalg.vector_norm(part_joints.local(pred) - part_joints.local(ref), dim=-1).mean(-1)  # (M,)
            aligned = procrustes_align(pred[:, joints], ref[:, joints])  # (M, K, 3)
            pa_errors = torch.linalg.vector_norm(aligned - ref[:, joints], dim=-1).mean(-1)  # (M,)
            setattr(self, f"MPJPE_{part}", getattr(self, f"MPJPE_{part}") + errors.sum())
            setattr(self, f"PA_MPJPE_{part}", getattr(self, f"PA_MPJPE_{part}") + pa_errors.sum())
        self.frames += pred.shape[0]

    def compute(self) -> dict[str, Tensor]:
        if int(self.frames) == 0:
            return {}
        return {name: getattr(self, name) / self.frames * 1000.0
                for part in self.parts for name in (f"MPJPE_{part}", f"PA_MPJPE_{part}")}
