"""Exact DTW: the compiled recursion against a plain Python DP and against enumerating every warping path;
frame costs against per-frame-pair numpy computations; invariances of the two alignments."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from soke_style_dtw import loop_dtw

from mGPT.metrics import dtw as dtw_module
from mGPT.metrics.dtw import dtw, dtw_batch, dtw_mpjpe, dtw_mpjpe_batch, frame_costs


def all_paths(rows: int, cols: int):
    """Every monotone warping path from (0, 0) to (rows-1, cols-1) with unit steps."""
    def extend(path):
        i, j = path[-1]
        if (i, j) == (rows - 1, cols - 1):
            yield path
            return
        for di, dj in ((1, 1), (1, 0), (0, 1)):
            if i + di < rows and j + dj < cols:
                yield from extend(path + [(i + di, j + dj)])
    yield from extend([(0, 0)])


def loop_frame_cost(pred: np.ndarray, ref: np.ndarray, align: str, root: int, joints: list[int]) -> float:
    if align == "root":
        moved = pred - pred[root] + ref[root]
    else:
        p, r = pred[joints], ref[joints]
        a, b = p - p.mean(0), r - r.mean(0)
        u, _, vt = np.linalg.svd(a.T @ b)
        rotation = vt.T @ np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))]) @ u.T
        scale = np.trace(rotation @ a.T @ b) / (a**2).sum()
        moved = np.zeros_like(pred)
        moved[joints] = scale * a @ rotation.T + r.mean(0)
    return float(np.linalg.norm(moved[joints] - ref[joints], axis=1).mean())


def test_hand_computed_example():
    cost = np.array([[1.0, 2.0], [3.0, 4.0]])
    # D = [[1, 3], [4, 4 + min(1, 3, 4)]]; the path (0,0) -> (1,1) has 2 cells
    assert dtw(cost) == (5.0, 2)
    # all-zero costs tie everywhere: ties go to the diagonal, giving the shortest path
    assert dtw(np.zeros((3, 3))) == (0.0, 3)
    assert dtw(np.zeros((2, 5))) == (0.0, 5)
    # a tie between the diagonal and (i-1, j) at the last cell: the diagonal's shorter path wins
    assert dtw(np.array([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])) == (0.0, 3)


def test_costs_and_scores_of_a_float32_or_non_contiguous_input_come_out_float64():
    seq = motion(12, 5)
    ref = torch.as_tensor(motion(9, 6)).float().transpose(0, 1).contiguous().transpose(0, 1)  # strided
    cost = frame_costs(torch.as_tensor(seq).float(), ref, "root")
    assert cost.dtype == torch.float64 and cost.shape == (12, 9)
    expected = frame_costs(torch.as_tensor(seq).float().double(), ref.double().contiguous(), "root")
    torch.testing.assert_close(cost, expected, rtol=0, atol=0)
    totals, _ = dtw_batch([cost.T])  # a transposed (non-contiguous) cost matrix
    assert totals.dtype == torch.float64 and float(totals[0]) == pytest.approx(loop_dtw(cost.T.tolist())[0])


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (3, 4), (9, 5), (23, 31)])
def test_matches_the_python_loop(shape):
    cost = np.random.default_rng(sum(shape)).random(shape)
    total, length = dtw(cost)
    expected_total, expected_length = loop_dtw(cost.tolist())  # the SOKE-style loop, hand-checked
    assert total == pytest.approx(expected_total, abs=1e-12) and length == expected_length


@pytest.mark.parametrize("shape", [(3, 3), (3, 5), (4, 4), (5, 3)])
def test_matches_brute_force_over_all_paths(shape):
    cost = np.random.default_rng(7 * shape[0] + shape[1]).random(shape)
    totals = {tuple(path): sum(cost[i, j] for i, j in path) for path in all_paths(*shape)}
    best_path = min(totals, key=totals.get)
    assert dtw(cost) == (pytest.approx(totals[best_path], abs=1e-12), len(best_path))


def test_batch_of_ragged_pairs_equals_one_by_one():
    rng = np.random.default_rng(3)
    shapes = rng.integers(1, 30, size=(9, 2))
    costs = [torch.as_tensor(rng.random((int(rows), int(cols)))) for rows, cols in shapes]
    totals, lengths = dtw_batch(costs)
    for cost, total, length in zip(costs, totals, lengths, strict=True):
        expected_total, expected_length = loop_dtw(cost.tolist())
        assert float(total) == pytest.approx(expected_total, abs=1e-12) and int(length) == expected_length


@pytest.mark.parametrize("align", ["root", "procrustes"])
def test_frame_costs_match_per_pair_loop(align, monkeypatch):
    rng = np.random.default_rng(4)
    pred, ref = rng.normal(size=(6, 9, 3)), rng.normal(size=(8, 9, 3))
    joints = [1, 3, 4, 5, 8]
    expected = np.array([[loop_frame_cost(p, r, align, 2, joints) for r in ref] for p in pred])
    np.testing.assert_allclose(frame_costs(pred, ref, align, root=2, joints=joints).numpy(), expected,
                               atol=1e-12)
    monkeypatch.setattr(dtw_module, "BLOCK_CELLS", 8)  # one row per Procrustes block
    np.testing.assert_allclose(frame_costs(pred, ref, align, root=2, joints=joints).numpy(), expected,
                               atol=1e-12)


def test_root_alignment_hand_computed():
    pred = np.array([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])  # root at the origin, joint 1 one metre along x
    ref = np.array([[[5.0, 5.0, 5.0], [5.0, 5.0, 7.0]]])  # root elsewhere, joint 1 two metres along z
    # after moving pred's root onto ref's: joint 1 at (6, 5, 5) vs (5, 5, 7) -> sqrt(5); root 0
    assert frame_costs(pred, ref, "root", root=0, joints=[0, 1]).item() == pytest.approx(np.sqrt(5) / 2)
    assert frame_costs(pred, ref, "root", root=0, joints=[1]).item() == pytest.approx(np.sqrt(5))


def motion(frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(scale=0.02, size=(frames, 8, 3)), axis=0) + rng.normal(size=(1, 8, 3))


@pytest.mark.parametrize("align", ["root", "procrustes"])
def test_identical_sequences_score_zero(align):
    seq = motion(30, 0)
    assert dtw_mpjpe(seq, seq, align) == pytest.approx(0.0, abs=1e-9)
    totals, lengths = dtw_mpjpe_batch([seq], [seq], align)
    assert lengths[0] == 30


def test_time_stretched_translated_copy_scores_zero_with_root_alignment():
    ref = motion(20, 1)
    stretched = np.repeat(ref, 3, axis=0)[::2] + np.array([0.3, -1.0, 2.0])  # frames repeated, shifted
    assert dtw_mpjpe(stretched, ref, "root", root=0) == pytest.approx(0.0, abs=1e-9)
    assert dtw_mpjpe(ref * 1.5, ref, "root", root=0) > 0.01


def test_rotated_scaled_translated_copy_scores_zero_with_procrustes():
    ref = motion(25, 2)
    angle = 0.7
    rotation = np.array([[np.cos(angle), 0.0, np.sin(angle)], [0.0, 1.0, 0.0],
                         [-np.sin(angle), 0.0, np.cos(angle)]])
    copy = 1.3 * ref @ rotation.T + np.array([0.5, 0.1, -0.2])
    assert dtw_mpjpe(copy, ref, "procrustes") == pytest.approx(0.0, abs=1e-9)
    assert dtw_mpjpe(copy, ref, "root") > 0.01


@pytest.mark.parametrize("align", ["root", "procrustes"])
def test_batch_equals_one_by_one_and_plain_dp(align):
    preds = [motion(n, 10 + n) for n in (12, 30, 7, 19)]
    refs = [motion(n, 20 + n) for n in (15, 9, 26, 19)]
    joints = [0, 2, 3, 6]
    totals, lengths = dtw_mpjpe_batch(preds, [torch.as_tensor(r) for r in refs], align, root=2, joints=joints)
    assert totals.shape == lengths.shape == (4,)
    for pred, ref, total, length in zip(preds, refs, totals, lengths, strict=True):
        single = dtw_mpjpe(torch.as_tensor(pred), ref, align, root=2, joints=joints)
        assert single == pytest.approx(total, abs=1e-12)
        cost = np.array([[loop_frame_cost(p, r, align, 2, joints) for r in ref] for p in pred])
        expected_total, expected_length = loop_dtw(cost.tolist())  # the SOKE-style loop, hand-checked
        assert total == pytest.approx(expected_total, abs=1e-9) and length == expected_length


def test_bad_inputs():
    seq = motion(5, 3)
    with pytest.raises(ValueError, match="align"):
        frame_costs(seq, seq, "scale")
    with pytest.raises(ValueError, match="at least one frame"):
        dtw_mpjpe(seq[:0], seq)
    with pytest.raises(ValueError, match="2 generated and 1 reference"):
        dtw_mpjpe_batch([seq, seq], [seq])
    totals, lengths = dtw_mpjpe_batch([], [])
    assert totals.shape == lengths.shape == (0,)


def test_all_paths_helper_counts_delannoy_numbers():
    # the brute force is only a reference if it sees every path: D(2, 2) = 13, D(2, 3) = 25
    assert sum(1 for _ in all_paths(3, 3)) == 13 and sum(1 for _ in all_paths(3, 4)) == 25
    assert len(set(map(tuple, itertools.islice(all_paths(4, 4), 1000)))) == 63
