"""Exact dynamic time warping of joint sequences (DTW-MPJPE), vectorised over frames and over pairs.

Definitions (SPEC section 6):
- frame cost = mean over the part's joints of the Euclidean distance between a generated frame and a
  reference frame after aligning the generated one: "root" translates it so its root joint lands on
  the reference's root, "procrustes" fits rotation, scale and translation on the part's joints.
- D[i, j] = cost[i, j] + min(D[i-1, j-1], D[i-1, j], D[i, j-1]); the score is D at the last cell (not
  divided by anything) and the path length is the number of cells on that optimal path. Ties go to
  the diagonal, then (i-1, j), then (i, j-1), the order of SOKE's traceback.

All pairwise frame costs come from a few large tensor operations, and the recursion runs as a
wavefront over anti-diagonals (every cell of an anti-diagonal depends only on the two before it) for
a whole group of padded pairs at once, so there is no Python loop over frames or cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from mGPT.metrics.procrustes import best_rotation

Align = Literal["root", "procrustes"]
ArrayLike = np.ndarray | Tensor
# Frame pairs (or wavefront cells) per block. Keeping each float64 temporary under glibc's 128 KiB mmap
# threshold lets malloc recycle it from the heap; larger ones are mapped and page-faulted in afresh on
# every one of the hundreds of elementwise ops, which made the metric ~40% slower.
BLOCK_CELLS = 16000


def _as_float64(x: ArrayLike) -> Tensor:
    return torch.as_tensor(x).to(torch.float64)


def frame_costs(pred: ArrayLike, ref: ArrayLike, align: Align = "root", root: int = 0,
                joints: Sequence[int] | None = None) -> Tensor:
    """(T1, J, 3) pred, (T2, J, 3) ref in metres -> (T1, T2) float64 cost of every frame pair."""
    pred, ref = _as_float64(pred), _as_float64(ref)
    ref = ref.to(pred.device)
    if pred.shape[0] == 0 or ref.shape[0] == 0:
        raise ValueError(f"DTW needs at least one frame on each side, got {pred.shape[0]} and {ref.shape[0]}")
    joints = list(range(pred.shape[1])) if joints is None else list(joints)
    if align == "root":
        pred_part = (pred - pred[:, root : root + 1])[:, joints]  # (T1, K, 3) relative to the root
        ref_part = (ref - ref[:, root : root + 1])[:, joints]  # (T2, K, 3)
        block_costs = _root_costs
    elif align == "procrustes":
        pred_part = pred[:, joints] - pred[:, joints].mean(1, keepdim=True)  # (T1, K, 3) centred
        ref_part = ref[:, joints] - ref[:, joints].mean(1, keepdim=True)  # (T2, K, 3)
        block_costs = _procrustes_costs
    else:
        raise ValueError(f"align must be 'root' or 'procrustes', got {align!r}")
    rows = max(1, BLOCK_CELLS // ref.shape[0])
    return torch.cat([block_costs(pred_part[start : start + rows], ref_part)
                      for start in range(0, pred.shape[0], rows)])


def _root_costs(pred: Tensor, ref: Tensor) -> Tensor:
    """(r, K, 3) root-relative pred, (T2, K, 3) root-relative ref -> (r, T2) mean joint distance."""
    return _mean_residual(pred, ref, None)


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


def _mean_residual(pred: Tensor, ref: Tensor, transform: Tensor | None) -> Tensor:
    """(r, K, 3) pred, (T2, K, 3) ref, (3, 3, r, T2) scaled rotations or None (identity)
    -> (r, T2) mean over k of |transform_ij pred_ik - ref_jk|.

    Coordinates and joints lead, so every step is an elementwise op on contiguous (r, T2) blocks.
    """
    pred_t = pred.permute(2, 1, 0)[..., None]  # (3, K, r, 1)
    ref_t = ref.permute(2, 1, 0)[:, :, None, :]  # (3, K, 1, T2)
    squared = None
    for c in range(3):
        if transform is None:
            residual = pred_t[c] - ref_t[c]  # (K, r, T2)
        else:
            m = transform[c]  # (3, r, T2)
            residual = m[0] * pred_t[0]
            residual.addcmul_(m[1], pred_t[1]).addcmul_(m[2], pred_t[2]).sub_(ref_t[c])
        squared = residual.square_() if squared is None else squared.add_(residual.square_())
    return squared.sqrt_().mean(0)


def dtw_batch(costs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """(T1_n, T2_n) cost matrices -> (N,) accumulated costs (float64) and (N,) path lengths (int64)."""
    if len(costs) == 0:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    # the wavefront's (pairs, rows + 1) temporaries stay within one block, like the cost blocks
    pairs_per_wave = max(1, BLOCK_CELLS // (max(cost.shape[0] for cost in costs) + 1))
    totals, lengths = [], []
    for start in range(0, len(costs), pairs_per_wave):
        group_totals, group_lengths = _wavefront(list(costs[start : start + pairs_per_wave]))
        totals.append(group_totals)
        lengths.append(group_lengths)
    return torch.cat(totals), torch.cat(lengths)


def _wavefront(costs: list[Tensor]) -> tuple[Tensor, Tensor]:
    device = costs[0].device
    rows = torch.tensor([c.shape[0] for c in costs], device=device)  # (G,)
    cols = torch.tensor([c.shape[1] for c in costs], device=device)  # (G,)
    if bool((rows == 0).any() | (cols == 0).any()):
        raise ValueError("DTW needs at least one frame on each side")
    max_rows, max_cols = int(rows.max()), int(cols.max())
    padded = torch.full((len(costs), max_rows, max_cols), torch.inf, dtype=torch.float64, device=device)
    for n, cost in enumerate(costs):
        padded[n, : cost.shape[0], : cost.shape[1]] = cost

    # Skewed layout: diagonal d = i + j holds cell (i, d - i) at position p = i + 1; position 0 stands
    # for row -1 (always inf) so the three predecessors of p are plain shifted slices.
    diagonals = max_rows + max_cols - 1
    d = torch.arange(diagonals, device=device)[:, None]  # (D, 1)
    i = torch.arange(max_rows, device=device)[None, :]  # (1, R)
    j = d - i  # (D, R)
    outside = max_rows * max_cols  # index of an extra inf entry
    cell_index = torch.where((j >= 0) & (j < max_cols), i * max_cols + j, outside)  # (D, R)
    flat = torch.cat([padded.reshape(len(costs), -1), torch.full_like(padded[:, 0, :1], torch.inf)], dim=1)
    inf_column = torch.full((len(costs), 1), torch.inf, dtype=torch.float64, device=device)
    zero_column = torch.zeros((len(costs), 1), dtype=torch.long, device=device)

    # diagonal -2 holds only the virtual start D[-1, -1] = 0; diagonal -1 is all outside
    before_last = torch.cat([torch.zeros_like(inf_column), inf_column.expand(-1, max_rows)], dim=1)
    last = torch.full_like(before_last, torch.inf)
    before_last_steps = torch.zeros((len(costs), max_rows + 1), dtype=torch.long, device=device)
    last_steps = before_last_steps.clone()
    end_diagonal, end_position = rows + cols - 2, rows[:, None]  # (G,), (G, 1)
    totals = torch.full((len(costs),), torch.inf, dtype=torch.float64, device=device)
    lengths = torch.zeros(len(costs), dtype=torch.long, device=device)
    for diagonal in range(diagonals):
        best, steps = before_last[:, :-1], before_last_steps[:, :-1]  # from (i-1, j-1)
        up, left = last[:, :-1], last[:, 1:]  # from (i-1, j) and (i, j-1)
        better = up < best
        best, steps = torch.where(better, up, best), torch.where(better, last_steps[:, :-1], steps)
        better = left < best
        best, steps = torch.where(better, left, best), torch.where(better, last_steps[:, 1:], steps)
        cell_costs = flat.index_select(1, cell_index[diagonal])  # (G, R)
        current = torch.cat([inf_column, cell_costs + best], dim=1)  # (G, R + 1)
        current_steps = torch.cat([zero_column, steps + 1], dim=1)
        done = end_diagonal == diagonal
        totals = torch.where(done, current.gather(1, end_position)[:, 0], totals)
        lengths = torch.where(done, current_steps.gather(1, end_position)[:, 0], lengths)
        before_last, before_last_steps, last, last_steps = last, last_steps, current, current_steps
    return totals, lengths


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
