import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mGPT.data.datasets import MotionDataset, collate_motion
from mGPT.data.features import smplx_to_features
from mGPT.data.prepare import PackedSplit, build_cache, load_cache, load_stats
from mGPT.data.synthetic import generate_dataset
from mGPT.errors import ConfigError, DataError

LENGTHS = [10, 50, 403, 44]
FIRST_FEATURE = 36  # frame number 36 is feature dim 0 (neck, first number)


def packed_split() -> PackedSplit:
    """Clips whose feature dim 0 counts frames and dim 1 holds the clip number."""
    clips = []
    for number, length in enumerate(LENGTHS):
        frames = np.zeros((length, 179), np.float32)
        frames[:, FIRST_FEATURE] = np.arange(length)
        frames[:, FIRST_FEATURE + 1] = number
        clips.append(frames)
    count = len(LENGTHS)
    return PackedSplit(
        frames=np.concatenate(clips), offsets=np.cumsum([0] + LENGTHS[:-1]), lengths=np.array(LENGTHS),
        names=[f"clip{i}" for i in range(count)], texts=[f"نص {i}" for i in range(count)],
        source_fps=np.full(count, 24.0), target_fps=24.0,
    )


IDENTITY = (np.zeros(133, np.float32), np.ones(133, np.float32))


def test_whole_clips_follow_length_rules():
    dataset = MotionDataset(packed_split(), *IDENTITY)
    assert len(dataset) == 4
    items = [dataset[i] for i in range(4)]
    assert [item["length"] for item in items] == [40, 48, 400, 44]
    for i, item in enumerate(items):
        assert item["motion"].dtype == torch.float32 and item["motion"].shape == (item["length"], 133)
        assert item["name"] == f"clip{i}" and item["text"] == f"نص {i}"
        assert torch.all(item["motion"][:, 1] == i)
    torch.testing.assert_close(items[1]["motion"][:, 0], torch.arange(1.0, 49.0))  # 50 -> centre 48
    torch.testing.assert_close(items[3]["motion"][:, 0], torch.arange(44.0))
    assert items[0]["motion"][0, 0] == 0 and items[0]["motion"][-1, 0] == pytest.approx(9)  # 10 -> 40
    assert items[2]["motion"][-1, 0] == pytest.approx(402)  # 403 -> 400


def test_normalization_uses_the_given_statistics():
    mean, std = np.zeros(133, np.float32), np.ones(133, np.float32)
    mean[0], std[0] = 10.0, 4.0
    item = MotionDataset(packed_split(), torch.from_numpy(mean), std)[3]
    torch.testing.assert_close(item["motion"][:, 0], (torch.arange(44.0) - 10) / 4)
    assert torch.all(item["motion"][:, 1] == 3)


def test_random_crops_are_contiguous_windows_that_vary():
    dataset = MotionDataset(packed_split(), *IDENTITY, window=16, random_crop=True)
    torch.manual_seed(0)
    starts = set()
    for _ in range(20):
        item = dataset[2]
        motion = item["motion"][:, 0]
        assert item["length"] == 16 and motion.shape == (16,)
        torch.testing.assert_close(motion, motion[0] + torch.arange(16.0))
        assert 0 <= motion[0] <= 403 - 16
        starts.add(int(motion[0]))
    assert len(starts) > 5


def test_window_without_random_crop_is_the_centre_and_short_clips_stretch():
    dataset = MotionDataset(packed_split(), *IDENTITY, window=16)
    torch.testing.assert_close(dataset[1]["motion"][:, 0], torch.arange(17.0, 33.0))  # (50 - 16) // 2 = 17
    stretched = dataset[0]["motion"][:, 0]  # 10 frames resampled up to 16
    assert stretched.shape == (16,) and stretched[0] == 0 and stretched[-1] == pytest.approx(9)
    assert torch.all(stretched[1:] > stretched[:-1])


def test_collate_pads_with_zeros_and_masks():
    dataset = MotionDataset(packed_split(), *IDENTITY)
    batch = collate_motion([dataset[0], dataset[3], dataset[1]])
    assert batch["motion"].shape == (3, 48, 133)
    assert batch["lengths"].dtype == torch.long and batch["lengths"].tolist() == [40, 44, 48]
    assert batch["mask"].dtype == torch.bool
    assert batch["mask"].sum(dim=1).tolist() == [40, 44, 48]
    assert batch["mask"][0, 39] and not batch["mask"][0, 40]
    assert torch.all(batch["motion"][0, 40:] == 0) and torch.all(batch["motion"][1, 44:] == 0)
    assert torch.equal(batch["motion"][1, :44], dataset[3]["motion"])
    assert batch["names"] == ["clip0", "clip3", "clip1"] and batch["texts"][1] == "نص 3"


def test_data_loader_batches():
    loader = DataLoader(MotionDataset(packed_split(), *IDENTITY, window=8, random_crop=True), batch_size=3,
                        collate_fn=collate_motion)
    shapes = [batch["motion"].shape for batch in loader]
    assert shapes == [(3, 8, 133), (1, 8, 133)]


def test_wrong_statistics_are_refused():
    with pytest.raises(DataError, match="mean133"):
        MotionDataset(packed_split(), np.zeros(179), np.ones(133))
    with pytest.raises(DataError, match="std133"):
        MotionDataset(packed_split(), np.zeros(133), np.full(133, np.nan))


def test_over_a_real_cache(tmp_path):
    generate_dataset(tmp_path / "data", seed=2, small=True)
    build_cache(tmp_path / "data", tmp_path / "cache", splits=["train"])
    split, stats = load_cache(tmp_path / "cache", "train"), load_stats(tmp_path / "cache")
    dataset = MotionDataset(split, stats["mean133"], stats["std133"])
    item = dataset[0]
    features = smplx_to_features(split.clip(0))
    assert item["length"] == len(features) - len(features) % 4
    start = (len(features) % 4) // 2
    expected = (features[start:start + item["length"]] - stats["mean133"]) / (stats["std133"] + 1e-10)
    np.testing.assert_allclose(item["motion"].numpy(), expected, rtol=1e-5, atol=1e-5)
    everything = torch.cat([dataset[i]["motion"] for i in range(len(dataset))])
    assert everything.mean(dim=0).abs()[:120].max() < 0.2  # train statistics centre the train data


def test_clips_are_cut_to_the_tokenizers_frames_per_code():
    """A tokenizer with DOWN_T 3 codes 8 frames per step: whole clips become multiples of 8."""
    dataset = MotionDataset(packed_split(), *IDENTITY, frames_per_code=8)
    items = [dataset[i] for i in range(4)]
    assert [item["length"] for item in items] == [40, 48, 400, 40]  # 10 up, 50 -> 48, 403 down, 44 -> 40
    torch.testing.assert_close(items[3]["motion"][:, 0], torch.arange(2.0, 42.0))  # centre 40 of 44
    assert MotionDataset(packed_split(), *IDENTITY, window=16, frames_per_code=8)[2]["length"] == 16
    with pytest.raises(ConfigError, match="DATASET.WINDOW.*60 frames is not a multiple of the tokenizer's 8"):
        MotionDataset(packed_split(), *IDENTITY, window=60, frames_per_code=8)
