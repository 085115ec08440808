"""DTW-MPJPE the way SOKE scores it: one Python call per frame pair, then a Python double loop.

The oracle that the batched `mGPT.metrics.dtw` must equal (tests/test_dtw.py, tests/test_soke_style.py),
and the SOKE-style side of the benchmarks: bench/bench_metric.py times it against the batched DTW, and
bench/bench_pipeline.py hands `loop_dtw_mpjpe_batch` to test.py's `evaluate` as the DTW of
`SignDTWMetrics`. It is exact and slow on purpose: small numpy operations per frame pair (an SVD per
pair for Procrustes) and a list-of-lists recursion, one sequence pair at a time. The definitions are
those of SPEC section 6 and of `mGPT.metrics.dtw`: same frame costs, same recursion, same tie order
(diagonal, then (i-1, j), then (i, j-1)), so the accumulated cost and the path length come out the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def root_frame_cost(pred: np.ndarray, ref: np.ndarray, root: int, joints: Sequence[int]) -> float:
    """One (J, 3) frame pair: move pred so its root lands on ref's root, mean distance over `joints`."""
    moved = pred[list(joints)] - pred[root] + ref[root]  # (K, 3)
    return float(np.sqrt(((moved - ref[list(joints)]) ** 2).sum(axis=1)).mean())


def procrustes_frame_cost(pred: np.ndarray, ref: np.ndarray) -> float:
    """One (K, 3) frame pair: rotate, scale and translate pred onto ref by SVD, mean joint distance."""
    pred_mean, ref_mean = pred.mean(axis=0), ref.mean(axis=0)
    pred_centred, ref_centred = pred - pred_mean, ref - ref_mean
    cross_cov = pred_centred.T @ ref_centred  # (3, 3)
    u, _, vt = np.linalg.svd(cross_cov)
    flip = np.eye(3)
    flip[2, 2] = np.sign(np.linalg.det(vt.T @ u.T))  # a rotation, never a reflection
    rotation = vt.T @ flip @ u.T
    spread = (pred_centred**2).sum()
    scale = np.trace(rotation @ cross_cov) / spread if spread > 0 else 0.0  # a collapsed frame: scale 0
    aligned = scale * pred_centred @ rotation.T + ref_mean
    return float(np.sqrt(((aligned - ref) ** 2).sum(axis=1)).mean())


def loop_dtw(cost: list[list[float]]) -> tuple[float, int]:
    """Accumulated cost at the last cell and the number of cells on the optimal path."""
    rows, cols = len(cost), len(cost[0])
    inf = float("inf")
    acc = [[inf] * (cols + 1) for _ in range(rows + 1)]
    steps = [[0] * (cols + 1) for _ in range(rows + 1)]
    acc[0][0] = 0.0
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            best, best_steps = acc[i - 1][j - 1], steps[i - 1][j - 1]
            if acc[i - 1][j] < best:
                best, best_steps = acc[i - 1][j], steps[i - 1][j]
            if acc[i][j - 1] < best:
                best, best_steps = acc[i][j - 1], steps[i][j - 1]
            acc[i][j] = cost[i - 1][j - 1] + best
            steps[i][j] = best_steps + 1
    return acc[rows][cols], steps[rows][cols]


def loop_dtw_mpjpe(pred: np.ndarray, ref: np.ndarray, align: str = "root", root: int = 0,
                   joints: Sequence[int] | None = None) -> tuple[float, int]:
    """(T1, J, 3) pred, (T2, J, 3) ref in metres -> (accumulated DTW-MPJPE in metres, path length)."""
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if len(pred) == 0 or len(ref) == 0:
        raise ValueError(f"DTW needs at least one frame on each side, got {len(pred)} and {len(ref)}")
    joints = list(range(pred.shape[1])) if joints is None else list(joints)
    if align == "root":
        cost = [[root_frame_cost(p, r, root, joints) for r in ref] for p in pred]
    elif align == "procrustes":
        cost = [[procrustes_frame_cost(p[joints], r[joints]) for r in ref] for p in pred]
    else:
        raise ValueError(f"align must be 'root' or 'procrustes', got {align!r}")
    return loop_dtw(cost)


def loop_dtw_mpjpe_batch(preds: Sequence[np.ndarray | torch.Tensor], refs: Sequence[np.ndarray | torch.Tensor],
                         align: str = "root", root: int = 0,
                         joints: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`mGPT.metrics.dtw.dtw_mpjpe_batch` pair by pair through the Python loop: (N,) metres, (N,) path lengths."""
    def as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
        return x.double().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)

    results = [loop_dtw_mpjpe(as_numpy(pred), as_numpy(ref), align, root, joints)
               for pred, ref in zip(preds, refs, strict=True)]
    return (np.array([total for total, _ in results], dtype=np.float64),
            np.array([length for _, length in results], dtype=np.int64))
