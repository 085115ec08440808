"""The two torchmetrics: values against the DTW / Procrustes functions and hand-computed numbers,
millimetre conversion, DDP-style merging with padded duplicate samples, and frame masking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mGPT.kinematics import PartJoints, build_kinematics
from mGPT.metrics.dtw import dtw, dtw_mpjpe, frame_costs
from mGPT.metrics.procrustes import procrustes_align
from mGPT.metrics.sign_metrics import ReconstructionMetrics, SignDTWMetrics

PARTS = {
    "body": PartJoints(root=0, joints=[1, 2, 3]),
    "lhand": PartJoints(root=4, joints=[4, 5, 6]),
    "rhand": PartJoints(root=7, joints=[7, 8, 9]),
}
J = 10


def motion(frames: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    steps = torch.randn(frames, J, 3, generator=generator, dtype=torch.float64) * 0.02
    return steps.cumsum(0) + torch.randn(1, J, 3, generator=generator, dtype=torch.float64)


def test_dtw_metrics_match_direct_computation():
    preds = [motion(n, n) for n in (11, 20, 8)]
    refs = [motion(n, 100 + n) for n in (14, 9, 8)]
    metric = SignDTWMetrics(PARTS)
    metric.update(torch.tensor([5, 2]), preds[:2], refs[:2])
    metric.update(torch.tensor([9]), preds[2:], refs[2:])
    scores = metric.compute()

    np.testing.assert_array_equal(scores["sample_ids"], [2, 5, 9])
    order = [1, 0, 2]  # sample ids 2, 5, 9 in update order
    for prefix, align in (("DTW_MPJPE", "root"), ("DTW_MPJPE_PA", "procrustes")):
        for part, joints in PARTS.items():
            name = f"{prefix}_{part}"
            expected, expected_mm = [], []
            for k in order:
                total, length = dtw(frame_costs(preds[k], refs[k], align, joints.root, joints.joints))
                assert total == pytest.approx(dtw_mpjpe(preds[k], refs[k], align, joints.root, joints.joints))
                expected.append(total)
                expected_mm.append(total / length * 1000.0)
            np.testing.assert_allclose(scores[f"{name}_per_sample"], expected, atol=1e-12)
            np.testing.assert_allclose(scores[f"{name}_mm_per_sample"], expected_mm, atol=1e-9)
            assert scores[name].ndim == 0 and scores[name].item() == pytest.approx(np.mean(expected))
            assert scores[f"{name}_mm"].item() == pytest.approx(np.mean(expected_mm))
    assert len(scores) == 1 + 6 * 4


def test_dtw_metrics_identical_motion_is_zero_and_mm_is_per_step():
    metric = SignDTWMetrics(PARTS)
    seq = motion(12, 0)
    shifted = seq.clone()
    shifted[:, 5] += torch.tensor([0.01, 0.0, 0.0], dtype=torch.float64)  # 1 cm on one left-hand joint
    metric.update(torch.tensor([0, 1]), [seq, shifted], [seq, seq])
    scores = metric.compute()
    assert np.abs(scores["DTW_MPJPE_body_per_sample"]).max() < 1e-9
    assert np.abs(scores["DTW_MPJPE_PA_rhand_per_sample"]).max() < 1e-9
    # the moved joint is 1 of 3 lhand joints: 10 mm / 3 per frame along the 12-step diagonal
    assert scores["DTW_MPJPE_lhand_mm_per_sample"][1] == pytest.approx(10.0 / 3, abs=1e-9)
    assert scores["DTW_MPJPE_lhand_per_sample"][1] == pytest.approx(12 * 0.01 / 3, abs=1e-12)


def test_dtw_metrics_merge_like_ddp_and_drop_padding_duplicates():
    preds = [motion(n, n) for n in (10, 13, 7)]
    refs = [motion(n, 50 + n) for n in (9, 13, 11)]
    single = SignDTWMetrics(PARTS)
    single.update(torch.tensor([0, 1, 2]), preds, refs)

    rank0, rank1 = SignDTWMetrics(PARTS), SignDTWMetrics(PARTS)
    rank0.update(torch.tensor([0, 2]), [preds[0], preds[2]], [refs[0], refs[2]])
    rank1.update(torch.tensor([1, 0]), [preds[1], preds[0]], [refs[1], refs[0]])  # sampler padded with 0
    rank0.merge_state(rank1)
    merged, expected = rank0.compute(), single.compute()
    assert merged.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(merged[key]), np.asarray(value), rtol=0, atol=1e-12)


def test_dtw_metrics_reset_and_empty():
    metric = SignDTWMetrics(PARTS)
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert metric.compute() == {}
    metric.update(torch.tensor([3]), [motion(5, 1)], [motion(6, 2)])
    assert metric.compute()["sample_ids"].tolist() == [3]
    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert metric.compute() == {}
    with pytest.raises(ValueError, match="2 sample ids, 1 generated"):
        metric.update(torch.tensor([0, 1]), [motion(5, 1)], [motion(5, 1)])


def test_reconstruction_metrics_hand_computed_and_masked():
    ref = torch.stack([motion(6, 0), motion(6, 1)])  # (2, 6, J, 3)
    pred = ref + torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)  # translated: root-aligned error 0
    pred[0, :, 2] += torch.tensor([0.0, 0.012, 0.0], dtype=torch.float64)  # 12 mm on one of 3 body joints
    pred[1, 4:] += 5.0 * torch.randn(2, J, 3, dtype=torch.float64)  # garbage in padded frames
    lengths = torch.tensor([6, 4])
    metric = ReconstructionMetrics(PARTS)
    metric.update(pred.float(), ref.float(), lengths)
    scores = metric.compute()
    assert set(scores) == {f"{kind}_{part}" for kind in ("MPJPE", "PA_MPJPE") for part in PARTS}
    # clip 0: 6 frames of 12 mm / 3; clip 1: 4 valid frames of 0 -> mean over 10 frames
    assert scores["MPJPE_body"].item() == pytest.approx(6 * 4.0 / 10, abs=1e-3)
    assert scores["MPJPE_lhand"].item() == pytest.approx(0.0, abs=1e-3)
    assert scores["PA_MPJPE_rhand"].item() == pytest.approx(0.0, abs=1e-3)
    body = PARTS["body"].joints
    clip0 = procrustes_align(pred[0, :, body], ref[0, :, body])  # clip 1's valid frames align exactly
    expected_pa = torch.linalg.vector_norm(clip0 - ref[0, :, body], dim=-1).mean(-1).sum() / 10 * 1000
    assert scores["PA_MPJPE_body"].item() == pytest.approx(expected_pa.item(), abs=1e-3)
    assert expected_pa.item() > 0.5


def test_reconstruction_pa_ignores_rotation_and_scale():
    ref = motion(8, 3)[None]  # (1, 8, J, 3)
    angle = 0.5
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle), 0.0],
                             [math.sin(angle), math.cos(angle), 0.0],
                             [0.0, 0.0, 1.0]], dtype=torch.float64)
    pred = 0.8 * ref @ rotation.T
    metric = ReconstructionMetrics(PARTS)
    metric.update(pred, ref, torch.tensor([8]))
    scores = metric.compute()
    for part in PARTS:
        assert scores[f"PA_MPJPE_{part}"].item() == pytest.approx(0.0, abs=1e-6)
        assert scores[f"MPJPE_{part}"].item() > 1.0
    with pytest.raises(ValueError, match="differ in shape"):
        metric.update(pred[:, :4], ref, torch.tensor([4]))


def test_with_skeleton_kinematics_parts():
    kinematics = build_kinematics("skeleton")
    params = torch.zeros(2, 9, 179, dtype=torch.float64)
    params[..., 3:156] = 0.3 * torch.randn(2, 9, 153, dtype=torch.float64)
    joints = kinematics(params)  # (2, 9, 52, 3)
    reconstruction = ReconstructionMetrics(kinematics.parts)
    reconstruction.update(joints, joints, torch.tensor([9, 9]))
    assert all(value.item() == pytest.approx(0.0, abs=1e-6) for value in reconstruction.compute().values())
    generation = SignDTWMetrics(kinematics.parts)
    generation.update(torch.tensor([0]), [joints[0]], [joints[1, :7]])
    scores = generation.compute()
    assert scores["DTW_MPJPE_PA_lhand_mm"].item() > 0.0
    # one sample still gives per-sample arrays (torchmetrics would squeeze a (1,) tensor to 0-d)
    assert scores["DTW_MPJPE_PA_body_per_sample"].shape == scores["sample_ids"].shape == (1,)
    assert scores["DTW_MPJPE_PA_body"].ndim == 0
