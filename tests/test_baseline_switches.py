"""The SOKE-style parts that the BASELINE config keys switch in for benchmarks must give exactly what ours
give, only slower: the per-cell Python DTW, the per-frame pickle reader, and decoding without the cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from mGPT.data.pickle_reference import PickleSplit, clip_source
from mGPT.data.prepare import build_cache, load_cache
from mGPT.data.synthetic import generate_dataset
from mGPT.kinematics import PartJoints
from mGPT.metrics.dtw import dtw_mpjpe_batch
from mGPT.metrics.dtw_reference import loop_dtw, loop_dtw_mpjpe, procrustes_frame_cost
from mGPT.metrics.sign_metrics import SignDTWMetrics

PARTS = {"body": PartJoints(root=0, joints=[1, 2, 3]), "lhand": PartJoints(root=4, joints=[4, 5, 6])}


def motion(frames: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    steps = torch.randn(frames, 7, 3, generator=generator, dtype=torch.float64) * 0.02
    return steps.cumsum(0) + torch.randn(1, 7, 3, generator=generator, dtype=torch.float64)


def test_loop_dtw_hand_computed() -> None:
    # the diagonal path costs 1 + 1 = 2 over 2 cells; via (0, 1) it is 1 + 2 + 1, via (1, 0) 1 + 1 + 1
    assert loop_dtw([[1.0, 2.0], [1.0, 1.0]]) == (2.0, 2)
    # one row: every column is on the path
    assert loop_dtw([[0.5, 0.25, 1.0]]) == (1.75, 3)


def test_procrustes_frame_cost_ignores_rotation_scale_and_shift() -> None:
    ref = np.random.default_rng(0).normal(size=(5, 3))
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    moved = 2.5 * ref @ rotation.T + [1.0, -2.0, 0.5]
    assert procrustes_frame_cost(moved, ref) == pytest.approx(0, abs=1e-12)
    assert procrustes_frame_cost(np.zeros((5, 3)), ref) > 0  # a collapsed frame gets scale 0, not NaN


@pytest.mark.parametrize("align", ["root", "procrustes"])
def test_loop_dtw_equals_the_batched_dtw(align: str) -> None:
    preds = [motion(n, n) for n in (6, 13, 1)]
    refs = [motion(n, 50 + n) for n in (9, 4, 7)]
    totals, lengths = dtw_mpjpe_batch(preds, refs, align, root=2, joints=[1, 3, 4, 6])
    looped = [loop_dtw_mpjpe(p.numpy(), r.numpy(), align, root=2, joints=[1, 3, 4, 6])
              for p, r in zip(preds, refs, strict=True)]
    np.testing.assert_allclose(totals, [total for total, _ in looped], rtol=1e-12)
    assert lengths.tolist() == [length for _, length in looped]


def test_metric_with_the_python_dtw_scores_the_same() -> None:
    preds = [motion(n, n) for n in (10, 17, 5)]
    refs = [motion(n, 80 + n) for n in (12, 9, 5)]
    ours, reference = SignDTWMetrics(PARTS), SignDTWMetrics(PARTS, reference_dtw=True)
    for metric in (ours, reference):
        metric.update(torch.tensor([3, 1, 2]), preds, refs)
    fast, slow = ours.compute(), reference.compute()
    assert fast.keys() == slow.keys()
    for key, value in fast.items():
        np.testing.assert_allclose(np.asarray(slow[key]), np.asarray(value), rtol=1e-12, err_msg=key)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sample") / "data"
    generate_dataset(root, seed=0, small=True)
    build_cache(root)
    return root


@pytest.mark.parametrize("split", ["train", "test"])
def test_pickle_reader_gives_the_cached_frames(sample, split: str) -> None:
    packed = load_cache(sample / "_cache", split)
    from_pickles = PickleSplit.like(packed, sample, split)
    assert len(from_pickles) == len(packed) and from_pickles.names == packed.names
    for i in range(len(packed)):
        assert np.array_equal(from_pickles.clip(i), packed.clip(i)), packed.names[i]


def test_clip_source_follows_the_config(sample) -> None:
    packed = load_cache(sample / "_cache", "val")
    cfg = OmegaConf.create({"DATASET": {"DATA_ROOT": str(sample)}, "BASELINE": {"PICKLE_LOADER": False}})
    assert clip_source(cfg, packed, "val") is packed
    cfg.BASELINE.PICKLE_LOADER = True
    assert isinstance(clip_source(cfg, packed, "val"), PickleSplit)
    del cfg["BASELINE"]  # the config of a checkpoint written before the BASELINE keys existed
    assert clip_source(cfg, packed, "val") is packed
