"""The SOKE-style parts of bench/ (soke_style_dtw.py, soke_style_data.py), which the benchmarks hand to the
library in place of ours, must give exactly what ours give, only slower: the per-cell Python DTW and the
per-frame pickle reader. (Decoding without the cache is checked in test_amg.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from soke_style_data import PickleSplit, pickle_clips
from soke_style_dtw import loop_dtw, loop_dtw_mpjpe, loop_dtw_mpjpe_batch, procrustes_frame_cost

from mGPT.config import load_config
from mGPT.data.codes import save_codes
from mGPT.data.features import clip_features, features_to_smplx
from mGPT.data.prepare import build_cache, load_cache
from mGPT.data.synthetic import generate_dataset
from mGPT.errors import ConfigError
from mGPT.kinematics import PartJoints
from mGPT.metrics.dtw import dtw_mpjpe_batch
from mGPT.metrics.sign_metrics import SignDTWMetrics
from mGPT.models.datamodule import SignDataModule

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
    # the batch form that SignDTWMetrics takes as its dtw: the same pairs, the same answers
    loop_totals, loop_lengths = loop_dtw_mpjpe_batch(preds, refs, align, root=2, joints=[1, 3, 4, 6])
    np.testing.assert_allclose(loop_totals, totals, rtol=1e-12)
    assert loop_lengths.tolist() == lengths.tolist()


def test_metric_with_the_python_dtw_scores_the_same() -> None:
    preds = [motion(n, n) for n in (10, 17, 5)]
    refs = [motion(n, 80 + n) for n in (12, 9, 5)]
    ours, reference = SignDTWMetrics(PARTS), SignDTWMetrics(PARTS, dtw=loop_dtw_mpjpe_batch)
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


def test_pickle_clips_reads_the_split_it_is_given_from_the_data_root(sample) -> None:
    packed = load_cache(sample / "_cache", "val")
    clips = pickle_clips(sample)(packed, "val")
    assert isinstance(clips, PickleSplit)
    assert (clips.data_root, clips.split, clips.names) == (sample, "val", list(packed.names))
    assert np.array_equal(clips.clip(0), packed.clip(0))


def test_the_data_module_hands_out_the_same_batches_from_either_reader(sample) -> None:
    splits = ("train", "val", "test")
    names = {split: list(load_cache(sample / "_cache", split).names) for split in splits}
    codes = {split: [np.full((5, 3), i, np.int64) for i in range(len(names[split]))] for split in splits}
    save_codes(sample / "_cache" / "codes.npz", codes, names, "fingerprint")
    cfg = load_config("configs/demo/soke.yaml", [f"DATASET.DATA_ROOT={sample}", "LM.RETRIEVAL=false",
                                                 "TRAIN.NUM_WORKERS=0", "TRAIN.BATCH_SIZE=4"])
    ours = SignDataModule(cfg, fingerprint="fingerprint")
    soke_style = SignDataModule(cfg, fingerprint="fingerprint", clip_source=pickle_clips(sample))
    assert isinstance(soke_style.dataset("val").clips, PickleSplit)
    assert soke_style.dataset("train").clips is None  # training batches carry no reference motion
    assert "references" not in next(iter(ours.train_dataloader()))
    packed = load_cache(sample / "_cache", "val")
    for a, b in zip(ours.val_dataloader(), soke_style.val_dataloader(), strict=True):
        assert a["names"] == b["names"] and len(a["references"]) == len(a["names"])
        for i, ref_a, ref_b in zip(a["index"], a["references"], b["references"], strict=True):
            assert torch.equal(ref_a, ref_b)
            expected = features_to_smplx(clip_features(packed.clip(int(i)), cfg.DATASET.MIN_FRAMES,
                                                       cfg.DATASET.MAX_FRAMES))
            np.testing.assert_array_equal(ref_a.numpy(), expected)


def test_no_config_key_switches_the_soke_style_parts_in() -> None:
    with pytest.raises(ConfigError, match="unknown config key BASELINE"):
        load_config("configs/demo/soke.yaml", ["BASELINE.PICKLE_LOADER=true"])
