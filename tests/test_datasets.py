import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mGPT.data.codes import SplitCodes
from mGPT.data.datasets import CodeTextDataset, MotionDataset, collate_motion, collate_text_codes
from mGPT.data.features import features_to_smplx, smplx_to_features
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


def split_codes(lengths: list[int]) -> SplitCodes:
    """Codes whose body column counts 0, 1, 2, ... through all clips."""
    total = sum(lengths)
    codes = np.stack([np.arange(total), np.zeros(total), np.ones(total)], axis=1).astype(np.int16)
    names = [f"clip{i}" for i in range(len(lengths))]
    return SplitCodes(codes, np.cumsum([0] + lengths[:-1]), np.array(lengths), names)


class RecordingDictionary:
    """Stands in for SignDictionary: records what it is asked and answers with one keyword per text."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def keywords_for(self, text: str, max_keywords: int, max_triplets: int) -> list:
        self.calls.append((text, max_keywords, max_triplets))
        return [(text.split()[-1], np.zeros((1, 3), np.int64))]


def test_text_codes_items_carry_codes_keywords_and_the_reference_motion():
    packed, dictionary = packed_split(), RecordingDictionary()
    codes = split_codes([10, 12, 100, 11])
    dataset = CodeTextDataset(packed.names, packed.texts, codes, clips=packed, dictionary=dictionary,
                              max_keywords=2, max_triplets=7, min_frames=40, max_frames=400)
    assert len(dataset) == 4
    item = dataset[1]
    assert (item["index"], item["name"], item["text"]) == (1, "clip1", "نص 1")
    assert item["codes"].dtype == torch.int64 and item["codes"][:, 0].tolist() == list(range(10, 22))
    assert item["keywords"][0][0] == "1" and dictionary.calls == [("نص 1", 2, 7)]
    # the reference is the clip as the tokenizer sees it (length rules, 133-dim feature) back in SMPL-X
    frames = packed.clip(1)[1:49]  # 50 frames -> the centre 48
    expected = features_to_smplx(smplx_to_features(frames))
    assert item["reference"].shape == (48, 179) and item["reference"].dtype == torch.float32
    np.testing.assert_array_equal(item["reference"].numpy(), expected)
    assert item["reference"][:, 3 + 3 * 11].tolist() == list(range(1, 49))  # neck = body joint 12
    assert dataset[0]["reference"].shape == (40, 179) and dataset[2]["reference"].shape == (400, 179)


def test_text_codes_without_clips_or_dictionary_and_their_batches():
    packed = packed_split()
    codes = split_codes([10, 12, 100, 11])
    bare = CodeTextDataset(packed.names, packed.texts, codes)
    assert "reference" not in bare[0] and bare[0]["keywords"] is None
    assert "references" not in collate_text_codes([bare[0], bare[1]])
    scored = CodeTextDataset(packed.names, packed.texts, codes, clips=packed, min_frames=20, max_frames=100)
    batch = collate_text_codes([scored[3], scored[0]])
    assert batch["index"].tolist() == [3, 0] and batch["names"] == ["clip3", "clip0"]
    assert [len(c) for c in batch["codes"]] == [11, 10]
    assert [r.shape for r in batch["references"]] == [(44, 179), (20, 179)]  # 10 frames -> min_frames 20
    with pytest.raises(ValueError, match="one entry per clip"):
        CodeTextDataset(packed.names, packed.texts[:3], codes)
    with pytest.raises(ValueError, match="clips"):
        CodeTextDataset(packed.names, packed.texts, codes, clips=PackedSplit(
            packed.frames, packed.offsets[:2], packed.lengths[:2], packed.names[:2], packed.texts[:2],
            packed.source_fps[:2], 24.0))


def test_clips_are_cut_to_the_tokenizers_frames_per_code():
    """A tokenizer with DOWN_T 3 codes 8 frames per step: whole clips become multiples of 8."""
    dataset = MotionDataset(packed_split(), *IDENTITY, frames_per_code=8)
    items = [dataset[i] for i in range(4)]
    assert [item["length"] for item in items] == [40, 48, 400, 40]  # 10 up, 50 -> 48, 403 down, 44 -> 40
    torch.testing.assert_close(items[3]["motion"][:, 0], torch.arange(2.0, 42.0))  # centre 40 of 44
    assert MotionDataset(packed_split(), *IDENTITY, window=16, frames_per_code=8)[2]["length"] == 16
    with pytest.raises(ConfigError, match="DATASET.WINDOW.*60 frames is not a multiple of the tokenizer's 8"):
        MotionDataset(packed_split(), *IDENTITY, window=60, frames_per_code=8)
