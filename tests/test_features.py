import numpy as np
import pytest
import torch

from mGPT.data.features import (
    SOKE_BETAS,
    apply_length_rules,
    clip_features,
    denormalize,
    features_to_smplx,
    merge_parts,
    normalize,
    params_dict_to_array,
    resample_length,
    resample_to_fps,
    ruled_length,
    smplx_params_dict,
    smplx_to_features,
    split_parts,
    stats_179_to_133,
)
from mGPT.errors import DataError
from mGPT.layout import FEATURE_BODY, FEATURE_EXPR, FEATURE_JAW, FEATURE_LHAND, FEATURE_RHAND, SMPLX_KEYS

# Frame layout by hand: root 0:3, body 3:66 (joints 1..21), lhand 66:111, rhand 111:156, jaw 156:159,
# shape 159:169, expr 169:179. The feature keeps body joints 12..21 = numbers 36:66.
EXPECTED_FEATURE_SOURCE = np.concatenate([np.arange(36, 66), np.arange(66, 156), np.arange(156, 159),
                                          np.arange(169, 179)])


def test_feature_slices():
    assert (FEATURE_BODY, FEATURE_LHAND, FEATURE_RHAND, FEATURE_JAW, FEATURE_EXPR) == (
        slice(0, 30), slice(30, 75), slice(75, 120), slice(120, 123), slice(123, 133))


def test_smplx_to_features_picks_the_spec_numbers():
    frame = np.arange(179, dtype=np.float32)
    features = smplx_to_features(frame)
    assert features.shape == (133,)
    np.testing.assert_array_equal(features, EXPECTED_FEATURE_SOURCE)


def test_smplx_to_features_torch_with_leading_dims():
    frames = torch.arange(179.0).repeat(2, 3, 1)  # (2, 3, 179)
    features = smplx_to_features(frames)
    assert isinstance(features, torch.Tensor) and features.shape == (2, 3, 133)
    np.testing.assert_array_equal(features[1, 2].numpy(), EXPECTED_FEATURE_SOURCE)


@pytest.mark.parametrize("as_torch", [False, True])
def test_features_to_smplx_fills_zeros_fixed_shape_and_expression(as_torch):
    features = np.arange(1, 134, dtype=np.float32)[None].repeat(4, 0)  # (4, 133)
    frames = features_to_smplx(torch.from_numpy(features) if as_torch else features)
    frames = frames.numpy() if as_torch else frames
    assert frames.shape == (4, 179)
    np.testing.assert_array_equal(frames[:, :36], 0)  # root and lower body
    np.testing.assert_array_equal(frames[:, 36:66], features[:, 0:30])
    np.testing.assert_array_equal(frames[:, 66:156], features[:, 30:120])
    np.testing.assert_array_equal(frames[:, 156:159], features[:, 120:123])
    np.testing.assert_allclose(frames[:, 159:169], np.broadcast_to(SOKE_BETAS, (4, 10)))
    assert SOKE_BETAS[0] == pytest.approx(-0.07284723)
    np.testing.assert_array_equal(frames[:, 169:179], features[:, 123:133])


def test_feature_round_trips():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(5, 133)).astype(np.float32)
    np.testing.assert_array_equal(smplx_to_features(features_to_smplx(features)), features)
    frames = rng.normal(size=(5, 179)).astype(np.float32)
    back = features_to_smplx(smplx_to_features(frames))
    kept = np.r_[36:159, 169:179]
    np.testing.assert_array_equal(back[:, kept], frames[:, kept])


def test_split_parts_by_hand_and_merge_inverts():
    features = np.arange(133.0)
    body, lhand, rhand = split_parts(features)
    np.testing.assert_array_equal(body, np.r_[0:30, 120:133])
    np.testing.assert_array_equal(lhand, np.arange(30, 75))
    np.testing.assert_array_equal(rhand, np.arange(75, 120))
    assert body.shape == (43,)
    np.testing.assert_array_equal(merge_parts(body, lhand, rhand), features)


def test_split_merge_torch_batch():
    features = torch.randn(2, 7, 133)
    body, lhand, rhand = split_parts(features)
    assert body.shape == (2, 7, 43) and lhand.shape == rhand.shape == (2, 7, 45)
    assert torch.equal(merge_parts(body, lhand, rhand), features)


def test_wrong_last_dim_is_refused():
    with pytest.raises(ValueError, match="133"):
        split_parts(np.zeros((3, 179)))
    with pytest.raises(ValueError, match="179"):
        smplx_to_features(np.zeros((3, 133)))


def test_params_dict_round_trip_and_key_names():
    frames = np.arange(2 * 179, dtype=np.float32).reshape(2, 179)
    params = smplx_params_dict(frames)
    assert [(key, value.shape) for key, value in params.items()] == [(key, (2, size)) for key, size in SMPLX_KEYS]
    np.testing.assert_array_equal(params["smplx_jaw_pose"][0], [156, 157, 158])
    params["extra"] = np.zeros((2, 4))
    np.testing.assert_array_equal(params_dict_to_array(params), frames)


def test_params_dict_missing_key_names_it():
    params = smplx_params_dict(np.zeros((2, 179)))
    del params["smplx_expr"]
    with pytest.raises(DataError, match="smplx_expr"):
        params_dict_to_array(params)


def test_stats_179_to_133_slices_both():
    mean133, std133 = stats_179_to_133(np.arange(179.0), np.arange(179.0) + 1000)
    np.testing.assert_array_equal(mean133, EXPECTED_FEATURE_SOURCE)
    np.testing.assert_array_equal(std133, EXPECTED_FEATURE_SOURCE + 1000)


def test_normalize_by_hand_and_back():
    x = np.array([[1.0, 4.0, 2.0]], np.float32)
    mean = np.array([1.0, 2.0, 0.0], np.float32)
    std = np.array([2.0, 0.5, 0.0], np.float32)
    normalized = normalize(x, mean, std)
    np.testing.assert_allclose(normalized, [[0.0, 4.0, 2.0 / 1e-10]], rtol=1e-6)
    np.testing.assert_allclose(denormalize(normalized, mean, std), x, rtol=1e-6)


def test_normalize_torch_input_numpy_stats():
    x = torch.ones(2, 3, 3)
    normalized = normalize(x, np.array([1.0, 0.0, 0.5]), torch.tensor([1.0, 2.0, 0.5]))
    assert isinstance(normalized, torch.Tensor) and normalized.dtype == torch.float32
    torch.testing.assert_close(normalized[0, 0], torch.tensor([0.0, 0.5, 1.0]))


def test_resample_to_fps_counts_and_picks():
    frames = np.arange(60.0)[:, None]  # (60, 1) at 30 fps
    out = resample_to_fps(frames, 30)
    assert out.shape == (48, 1)
    # The k-th kept frame is the one at time k/24 s: floor(k * 30 / 24).
    np.testing.assert_array_equal(out[:9, 0], [0, 1, 2, 3, 5, 6, 7, 8, 10])
    assert out[-1, 0] == 58
    assert resample_to_fps(np.zeros((50, 2)), 25).shape == (48, 2)
    assert resample_to_fps(np.zeros((100, 2)), 29.97).shape == (int(24 * 100 / 29.97), 2)
    assert resample_to_fps(np.zeros((1, 2)), 60).shape == (1, 2)


@pytest.mark.parametrize("fps", [24, 20, 12.5])
def test_resample_to_fps_at_or_below_target_unchanged(fps):
    frames = np.random.default_rng(1).normal(size=(37, 4))
    assert resample_to_fps(frames, fps) is frames


def test_resample_to_fps_torch_and_other_target():
    frames = torch.arange(90.0).reshape(30, 3)
    out = resample_to_fps(frames, 30, target_fps=10)
    assert isinstance(out, torch.Tensor) and out.shape == (10, 3)
    torch.testing.assert_close(out[:, 0], torch.arange(0.0, 90.0, 9.0))


def test_resample_length_interpolates_linearly():
    frames = np.array([[0.0, 10.0], [1.0, 20.0], [2.0, 40.0], [3.0, 80.0]])
    out = resample_length(frames, 7)
    np.testing.assert_allclose(out[:, 0], [0, 0.5, 1, 1.5, 2, 2.5, 3])
    np.testing.assert_allclose(out[:, 1], [10, 15, 20, 30, 40, 60, 80])
    torch.testing.assert_close(resample_length(torch.from_numpy(frames), 7), torch.from_numpy(out))
    np.testing.assert_allclose(resample_length(frames, 2), frames[[0, 3]])


def test_length_rules():
    short = np.arange(10.0)[:, None]
    up = apply_length_rules(short)
    assert up.shape == (40, 1) and up[0, 0] == 0 and up[-1, 0] == 9
    assert np.all(np.diff(up[:, 0]) > 0)

    long = np.arange(450.0)[:, None]
    down = apply_length_rules(long)
    assert down.shape == (400, 1) and down[0, 0] == 0 and down[-1, 0] == 449

    odd = np.arange(43.0)[:, None]  # 3 frames over a multiple of 4: drop 1 at the start, 2 at the end
    np.testing.assert_array_equal(apply_length_rules(odd)[:, 0], np.arange(1, 41))
    exact = np.arange(44.0)[:, None]
    np.testing.assert_array_equal(apply_length_rules(exact), exact)
    np.testing.assert_array_equal(apply_length_rules(np.arange(400.0)[:, None])[:, 0], np.arange(400))
    just_over = apply_length_rules(np.arange(401.0)[:, None])[:, 0]
    assert just_over.shape == (400,) and just_over[-1] == 400
    assert apply_length_rules(torch.zeros(2, 41, 5)).shape == (2, 40, 5)


def test_length_rules_follow_the_tokenizers_frames_per_code():
    """DOWN_T 3: clips become multiples of 8, and the resampling targets are multiples of 8 too."""
    odd = np.arange(47.0)[:, None]  # 7 frames over 40: drop 3 at the start, 4 at the end
    np.testing.assert_array_equal(apply_length_rules(odd, multiple=8)[:, 0], np.arange(3, 43))
    np.testing.assert_array_equal(apply_length_rules(np.arange(48.0)[:, None], multiple=8)[:, 0], np.arange(48))
    assert apply_length_rules(np.zeros((30, 1)), multiple=8).shape == (40, 1)
    assert apply_length_rules(np.zeros((401, 1)), multiple=8).shape == (400, 1)
    # limits that are no multiple of it are rounded inwards, so every result encodes to whole codes
    assert apply_length_rules(np.zeros((30, 1)), 36, 400, multiple=8).shape == (40, 1)
    assert apply_length_rules(np.zeros((500, 1)), 40, 404, multiple=8).shape == (400, 1)
    for length in range(1, 460, 7):
        assert len(apply_length_rules(np.zeros((length, 1)), 36, 404, multiple=8)) % 8 == 0, length
    assert clip_features(np.zeros((45, 179), np.float32), multiple=8).shape == (40, 133)


def test_ruled_length_is_the_length_apply_length_rules_leaves():
    for rules in ((40, 400, 4), (40, 400, 8), (10, 37, 3)):
        lengths = [ruled_length(n, *rules) for n in range(1, 450)]
        assert lengths == [len(apply_length_rules(np.zeros((n, 2)), *rules)) for n in range(1, 450)]
    assert (ruled_length(20), ruled_length(403), ruled_length(401), ruled_length(999)) == (40, 400, 400, 400)
