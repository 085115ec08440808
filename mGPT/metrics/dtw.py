"""Exact dynamic time warping of joint sequences (DTW-MPJPE): compiled frame costs and recursion.

Definitions (SPEC section 6):
- frame cost = mean over the part's joints of the Euclidean distance between a generated frame and a
  reference frame after aligning the generated one: "root" translates it so its root joint lands on
  the reference's root, "procrustes" fits rotation, scale and translation on the part's joints.
- D[i, j] = cost[i, j] + min(D[i-1, j-1], D[i-1, j], D[i, j-1]); the score is D at the last cell (not
  divided by anything) and the path length is the number of cells on that optimal path. Ties go to
  the diagonal, then (i-1, j), then (i, j-1), the order of SOKE's traceback.

The root costs and the recursion are numba-compiled loops (a few hundred microseconds for 200 x 210
frames); the Procrustes costs are a few large tensor operations over all frame pairs (mGPT.metrics.procrustes),
on the inputs' device. Scores are float64 and come out on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numba
import numpy as np
import torch
from torch import Tensor

from mGPT.metrics.procrustes import best_rotation

Align = Literal["root", "procrustes"]
ArrayLike = np.ndarray | Tensor
# Frame pairs per block of the Procrustes costs. Keeping each float64 temporary under glibc's 128 KiB mmap
# threshold lets malloc recycle it from the heap; larger ones are mapped and page-faulted in afresh on
# every one of the hundreds of elementwise ops, which made the metric ~40% slower.
BLOCK_CELLS = 16000


def _as_float64(x: ArrayLike) -> Tensor:
    return torch.as_tensor(x).to(torch.float64)


def frame_costs(pred: ArrayLike, ref: ArrayLike, align: Align = "root", root: int = 0,
                joints: Sequence[int] | None = None) -> Tensor:
    """(T1, J, 3) pred, (T2, J, 3) ref in metres -> (T1, T2) float64 cost of every frame pair, on the CPU."""
    pred, ref = _as_float64(pred), _as_float64(ref)
    ref = ref.to(pred.device)
    if pred.shape[0] == 0 or ref.shape[0] == 0:
        raise ValueError(f"DTW needs at least one frame on each side, got {pred.shape[0]} and {ref.shape[0]}")
    joints = list(range(pred.shape[1])) if joints is None else list(joints)
    if align == "root":
        pred_part = (pred - pred[:, root : root + 1])[:, joints]  # (T1, K, 3) relative to the root
        ref_part = (ref - ref[:, root : root + 1])[:, joints]  # (T2, K, 3)
        # coordinates, then frames: the compiled loop runs down contiguous reference frames
        ref_columns = ref_part.permute(1, 2, 0).contiguous()  # (K, 3, T2)
        return torch.from_numpy(_root_costs(pred_part.cpu().contiguous().numpy(), ref_columns.cpu().numpy()))
    if align != "procrustes":
        raise ValueError(f"align must be 'root' or 'procrustes', got {align!r}")
    pred_part = pred[:, joints] - pred[:, joints].mean(1, keepdim=True)  # (T1, K, 3) centred
    ref_part = ref[:, joints] - ref[:, joints].mean(1, keepdim=True)  # (T2, K, 3)
    rows = max(1, BLOCK_CELLS // ref.shape[0])
    return torch.cat([_procrustes_costs(pred_part[start : start + rows], ref_part)
                      for start in range(0, pred.shape[0], rows)]).cpu()


@numba.njit(cache=True)
def _root_costs(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(T1, K, 3) root-relative pred, (K, 3, T2) root-relative ref -> (T1, T2) mean joint distance.

    The innermost loop runs over reference frames, so it compiles to vector square roots.
    """
    frames, joints = pred.shape[0], pred.shape[1]
    costs = np.zeros((frames, ref.shape[2]))
    for i in range(frames):
        row = costs[i]
        for k in range(joints):
            x, y, z = pred[i, k, 0], pred[i, k, 1], pred[i, k, 2]
            ref_x, ref_y, ref_z = ref[k, 0], ref[k, 1], ref[k, 2]
            for j in range(row.shape[0]):
                dx, dy, dz = x - ref_x[j], y - ref_y[j], z - ref_z[j]
                row[j] += np.sqrt(dx * dx + dy * dy + dz * dz)
        row /= joints
    return costs


def _procrustes_costs(pred: Tensor, ref: Tensor) -> Tensor:
    """(r, K, 3) centred pred, (T2, K, 3) centred ref -> (r, T2) mean joint distance after fitting
    rotation and scale to every pair (translation is the centring)."""
    # H_ij[a, b] = sum_k pred[i, k, a] ref[j, k, b], one (r, K) @ (K, T2) product per entry
    cross_cov = torch.matmul(pred.permute(2, 0, 1)[:, None], ref.permute(2, 1, 0)[None])  # (3, 3, r, T2)
    pred_spread = pred.square().sum((1, 2))[:, None]  # (r, 1) |pred_i|^2
    ref_spread = ref.square().sum((1, 2))[None, :]  # (1, T2) |ref_j|^2
    bound = (pred_spread * ref_spread).sqrt_()  # tr(R H) <= |pred_i| |ref_j| (Cauchy-Schwarz)
    rotation, trace = best_rotation(cross_cov, upper_bound=bound)  # (3, 3, r, T2), (r, T2)
    # the optimal scale tr(R H) / |pred|^2; a collapsed pred frame gets scale 0
    scale = trace.div_(torch.where(pred_spread > 0, pred_spread, 1.0))
    return _mean_residual(pred, ref, rotation.mul_(scale))


def _mean_residual(pred: Tensor, ref: Tensor, transform: Tensor) -> Tensor:
    """(r, K, 3) pred, (T2, K, 3) ref, (3, 3, r, T2) scaled rotations
    -> (r, T2) mean over k of |transform_ij pred_ik - ref_jk|.

    Coordinates and joints lead, so every step is an elementwise op on contiguous (r, T2) blocks.
    """
    pred_t = pred.permute(2, 1, 0)[..., None]  # (3, K, r, 1)
    ref_t = ref.permute(2, 1, 0)[:, :, None, :]  # (3, K, 1, T2)
    squared = None
    for c in range(3):
        m = transform[c]  # (3, r, T2)
        residual = m[0] * pred_t[0]
        residual.addcmul_(m[1], pred_t[1]).addcmul_(m[2], pred_t[2]).sub_(ref_t[c])
        squared = residual.square_() if squared is None else squared.add_(residual.square_())
    return squared.sqrt_().mean(0)


def dtw_batch(costs: Sequence[ArrayLike]) -> tuple[Tensor, Tensor]:
    """(T1_n, T2_n) cost matrices -> (N,) accumulated costs (float64) and (N,) path lengths (int64)."""
    totals = torch.zeros(len(costs), dtype=torch.float64)
    lengths = torch.zeros(len(costs), dtype=torch.long)
    for n, cost in enumerate(costs):
        cost = _as_float64(cost).cpu()
        if cost.ndim != 2 or cost.shape[0] == 0 or cost.shape[1] == 0:
            raise ValueError(f"DTW needs at least one frame on each side, got a cost matrix of shape "
                             f"{tuple(cost.shape)}")
        totals[n], lengths[n] = _accumulate(cost.contiguous().numpy())
    return totals, lengths


@numba.njit(cache=True)
def _accumulate(cost: np.ndarray) -> tuple[float, int]:
    """D at the last cell of (T1, T2) costs and the cells on its path, keeping two rows of D at a time.

    Column 0 of a row stands for j = -1 (always inf); the start D[-1, -1] = 0 sits in row -1.
    """
    cols = cost.shape[1]
    above, here = np.full(cols + 1, np.inf), np.empty(cols + 1)
    above_steps, here_steps = np.zeros(cols + 1, np.int64), np.zeros(cols + 1, np.int64)
    above[0] = 0.0
    for i in range(cost.shape[0]):
        here[0] = np.inf
        for j in range(cols):
            best, steps = above[j], above_steps[j]  # from (i-1, j-1): ties stay on the diagonal
            if above[j + 1] < best:  # from (i-1, j)
                best, steps = above[j + 1], above_steps[j + 1]
            if here[j] < best:  # from (i, j-1)
                best, steps = here[j], here_steps[j]
            here[j + 1] = cost[i, j] + best
            here_steps[j + 1] = steps + 1
        above, here = here, above
        above_steps, here_steps = here_steps, above_steps
    return above[cols], above_steps[cols]


def dtw(cost: ArrayLike) -> tuple[float, int]:
    """(T1, T2) frame costs -> (accumulated cost at the last cell, cells on the optimal path)."""
    totals, lengths = dtw_batch([_as_float64(cost)])
    return float(totals[0]), int(lengths[0])


def dtw_mpjpe(pred: ArrayLike, ref: ArrayLike, align: Align = "root", root: int = 0,
              joints: Sequence[int] | None = None) -> float:
    """DTW-MPJPE of one (T1, J, 3) / (T2, J, 3) pair in metres, accumulated along the path."""
    return dtw(frame_costs(pred, ref, align, root, joints))[0]


def dtw_mpjpe_batch(preds: Sequence[ArrayLike], refs: Sequence[ArrayLike], align: Align = "root",
                    root: int = 0, joints: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Many pairs -> (N,) accumulated DTW-MPJPE in metres and (N,) path lengths, as numpy arrays."""
    if len(preds) != len(refs):
        raise ValueError(f"got {len(preds)} generated and {len(refs)} reference sequences")
    costs = [frame_costs(p, r, align, root, joints) for p, r in zip(preds, refs, strict=True)]
    totals, lengths = dtw_batch(costs)
    return totals.cpu().numpy(), lengths.cpu().numpy()
