import json
import logging
import resource
from pathlib import Path

import numpy as np
import pytest
import torch

from mGPT.archs.deto import DETO, OUR_PREFIX
from mGPT.data.dictionary import SignDictionary, build_dictionary, subsample_codes
from mGPT.data.prepare import build_cache
from mGPT.data.synthetic import generate_dataset
from mGPT.errors import DataError, run_cli


def codes_of(length: int, offset: int = 0) -> np.ndarray:
    """(length, 3) codes whose rows are easy to recognise: [i, 100 + i, 200 + i] + offset."""
    steps = np.arange(length, dtype=np.int64)[:, None]
    return steps + np.array([0, 100, 200]) + offset


@pytest.fixture
def dictionary() -> SignDictionary:
    return SignDictionary(
        {
            "مدرسة": codes_of(5),  # stored as مدرسه
            "كتاب": codes_of(20, offset=1000),
            "ذهب": codes_of(3, offset=2000),
            "ولد": codes_of(4, offset=3000),
            "قلم": codes_of(2, offset=4000),
            "في": codes_of(2, offset=5000),  # a stop word that happens to have a sign
        },
        tokenizer_fingerprint="abc123",
    )


def test_lookup_by_normalised_word_and_clitics(dictionary: SignDictionary) -> None:
    assert len(dictionary) == 6
    assert "مدرسة" in dictionary and "مَدْرَسَه" in dictionary
    assert dictionary.match("المدرسة") == "مدرسه"
    assert dictionary.match("والمدرسة") == "مدرسه"
    assert dictionary.match("بالمدرسة") == "مدرسه"
    assert dictionary.match("وكتاب") == "كتاب"
    assert dictionary.match("بكتاب") == "كتاب"
    assert dictionary.match("لكتاب") is None  # "ل" is not one of the stripped clitics
    assert "سيارة" not in dictionary
    assert 3 not in dictionary
    np.testing.assert_array_equal(dictionary.get("الكتاب"), codes_of(20, offset=1000))
    assert dictionary.get("سيارة") is None


def test_keywords_from_free_text(dictionary: SignDictionary) -> None:
    keywords = dictionary.keywords_for("ذَهَبَ الولدُ إلى المدرسةِ")
    assert [word for word, _ in keywords] == ["ذهب", "ولد", "مدرسه"]
    np.testing.assert_array_equal(keywords[0][1], codes_of(3, offset=2000))
    np.testing.assert_array_equal(keywords[2][1], codes_of(5))
    assert all(codes.dtype == np.int64 and codes.shape[1] == 3 for _, codes in keywords)


def test_keywords_skip_stop_words_duplicates_and_unknown(dictionary: SignDictionary) -> None:
    keywords = dictionary.keywords_for("في المدرسة سيارة ومدرسة وفي قلم")
    assert [word for word, _ in keywords] == ["مدرسه", "قلم"]


def test_keywords_at_most_three(dictionary: SignDictionary) -> None:
    keywords = dictionary.keywords_for("قلم كتاب ولد ذهب مدرسة")
    assert [word for word, _ in keywords] == ["قلم", "كتاب", "ولد"]
    assert [word for word, _ in dictionary.keywords_for("قلم كتاب ولد", max_keywords=1)] == ["قلم"]
    assert dictionary.keywords_for("where is the car?") == []


def test_keywords_subsample_to_ten_evenly(dictionary: SignDictionary) -> None:
    (word, codes), = dictionary.keywords_for("كتاب")
    # 20 steps -> rows round(linspace(0, 19, 10)) = 0 2 4 6 8 11 13 15 17 19
    expected_rows = [0, 2, 4, 6, 8, 11, 13, 15, 17, 19]
    np.testing.assert_array_equal(codes, codes_of(20, offset=1000)[expected_rows])


def test_subsample_codes_short_and_exact() -> None:
    np.testing.assert_array_equal(subsample_codes(codes_of(4), 10), codes_of(4))
    np.testing.assert_array_equal(subsample_codes(codes_of(10), 10), codes_of(10))
    np.testing.assert_array_equal(subsample_codes(codes_of(7), 3), codes_of(7)[[0, 3, 6]])


def test_json_round_trip(dictionary: SignDictionary, tmp_path: Path) -> None:
    path = tmp_path / "dictionary.json"
    dictionary.save(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["_tokenizer"] == "abc123"
    assert raw["قلم"] == {"body": [4000, 4001], "lhand": [4100, 4101], "rhand": [4200, 4201]}

    loaded = SignDictionary.load(path)
    assert loaded.tokenizer_fingerprint == "abc123"
    assert sorted(loaded) == sorted(dictionary)
    for word in dictionary:
        np.testing.assert_array_equal(loaded.get(word), dictionary.get(word))


def test_load_normalises_hand_written_keys(tmp_path: Path) -> None:
    path = tmp_path / "dictionary.json"
    path.write_text(json.dumps({"مدرسة": {"body": [1], "lhand": [2], "rhand": [3]}}), encoding="utf-8")
    loaded = SignDictionary.load(path)
    assert list(loaded) == ["مدرسه"]
    assert loaded.tokenizer_fingerprint is None
    np.testing.assert_array_equal(loaded.get("المدرسة"), [[1, 2, 3]])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"قلم": {"body": [1, 2], "lhand": [1], "rhand": [1, 2]}}, "equal length"),
        ({"قلم": {"body": [], "lhand": [], "rhand": []}}, "non-empty"),
        ({"قلم": {"body": [1], "lhand": [1]}}, "'rhand'"),
        ({"قلم": {"body": [1.5], "lhand": [1], "rhand": [1]}}, "integer codes"),
        ({"قلم": {"body": [-1], "lhand": [1], "rhand": [1]}}, "negative"),
        ({"قلم": {"body": 7, "lhand": [1], "rhand": [1]}}, "integer codes"),
        ({"قلم": {"body": [True], "lhand": [1], "rhand": [1]}}, "integer codes"),
        ({"قلم": [1, 2, 3]}, "must be an object"),
    ],
)
def test_load_rejects_bad_entries_naming_file_and_word(tmp_path: Path, payload: dict, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        SignDictionary.load(path)
    assert str(path) in str(info.value) and "قلم" in str(info.value)


def test_load_rejects_spellings_of_one_word(tmp_path: Path) -> None:
    path = tmp_path / "twice.json"
    entry = {"body": [1], "lhand": [1], "rhand": [1]}
    path.write_text(json.dumps({"مدرسة": entry, "مدرسه": entry}, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(DataError, match="same word after normalisation"):
        SignDictionary.load(path)


def test_load_rejects_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="build_dictionary"):
        SignDictionary.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        SignDictionary.load(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[]", encoding="utf-8")
    with pytest.raises(DataError, match="JSON object"):
        SignDictionary.load(listed)


# In the 179-number SMPL-X frame, number 36 is the first upper-body number (feature 0) and
# number 66 the first left-hand number (feature 30).
TIME_COLUMN, CLIP_ID_COLUMN = 36, 66


class FakeSplit:
    """A PackedSplit stand-in: clip i has `lengths[i]` frames; feature 0 counts frames, feature 30 = i."""

    def __init__(self, texts: list[str], lengths: list[int]):
        self.texts, self.names = texts, [f"clip{i}" for i in range(len(texts))]
        self.lengths = np.array(lengths)

    def clip(self, i: int) -> np.ndarray:
        frames = np.zeros((self.lengths[i], 179), dtype=np.float32)
        frames[:, TIME_COLUMN] = np.arange(self.lengths[i])
        frames[:, CLIP_ID_COLUMN] = i
        return frames


class FakeTokenizer:
    """Codes per 4 frames: [frame number of the step's first frame, clip id, number of frames]."""

    frames_per_code = 4

    def __init__(self) -> None:
        self.batch_shapes: list[tuple[int, ...]] = []

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        self.batch_shapes.append(tuple(features.shape))
        steps = features[:, ::4]  # (B, T/4, 133)
        length = torch.full_like(steps[..., 0], features.shape[1])
        return torch.stack([steps[..., 0], steps[..., 30], length], dim=-1).round().long()  # (B, T/4, 3)

    def fingerprint(self) -> str:
        return "fake-tokenizer"


def test_build_dictionary_with_fake_tokenizer(caplog: pytest.LogCaptureFixture) -> None:
    split = FakeSplit(
        texts=["قلم", "قَلَم", "قلم", "مدرسة", "كتاب", " ، ", "صباح الخير"],
        lengths=[60, 20, 48, 30, 50, 44, 44],
    )
    tokenizer = FakeTokenizer()
    with caplog.at_level(logging.WARNING):
        dictionary = build_dictionary(tokenizer, split, min_frames=40, max_frames=56)

    assert list(dictionary) == ["قلم", "مدرسه", "كتاب", "صباح الخير"]  # split order, blank text skipped
    assert dictionary.tokenizer_fingerprint == "fake-tokenizer"
    assert "صباح الخير" in caplog.text  # a phrase can never be a single-word keyword

    # "قلم" has clips of 60, 20 and 48 frames: the median one (clip 2, 48 frames, kept as is) is used.
    np.testing.assert_array_equal(dictionary.get("قلم"), [[4 * k, 2, 48] for k in range(12)])
    # 30 frames are resampled up to 40 (first and last frame kept): steps start at frames 0, 4*29/39, ...
    madrasa = dictionary.get("مدرسة")
    assert madrasa.shape == (10, 3) and (madrasa[:, 1:] == [3, 40]).all()
    np.testing.assert_array_equal(madrasa[:, 0], np.round(np.arange(0, 40, 4) * 29 / 39))
    # 50 frames are centre-cropped to 48 (frames 1..48).
    np.testing.assert_array_equal(dictionary.get("كتاب"), [[1 + 4 * k, 4, 48] for k in range(12)])

    # Clips of equal length are encoded together: one batch per length (48, 40, 44).
    assert sorted(tokenizer.batch_shapes) == [(1, 40, 133), (1, 44, 133), (2, 48, 133)]


def test_built_dictionary_round_trips_with_fingerprint(tmp_path: Path) -> None:
    dictionary = build_dictionary(FakeTokenizer(), FakeSplit(["قلم"], [40]))
    dictionary.save(tmp_path / "dictionary.json")
    loaded = SignDictionary.load(tmp_path / "dictionary.json")
    assert loaded.tokenizer_fingerprint == "fake-tokenizer"
    np.testing.assert_array_equal(loaded.get("قلم"), dictionary.get("قلم"))


def save_tiny_tokenizer(path: Path) -> DETO:
    """A random, very narrow DETO saved as our stage-1 checkpoint."""
    torch.manual_seed(0)
    sizes = dict(code_dim=8, width=8, down_t=2, depth=1, dilation_growth=3)
    deto = DETO({"nfeats": 43, "code_num": 16, **sizes}, {"nfeats": 45, "code_num": 24, **sizes},
                {"nfeats": 45, "code_num": 24, **sizes}, np.zeros(133), np.ones(133))
    state = {OUR_PREFIX + key: value for key, value in deto.state_dict().items()}
    torch.save({"state_dict": state, "sasoke": {"stage": "vae", **deto.checkpoint_metadata()}}, path)
    return deto



def test_build_dictionary_command(tmp_path: Path, capsys: pytest.CaptureFixture, load_script) -> None:
    data_root = tmp_path / "Isharah"
    generate_dataset(data_root, small=True)
    build_cache(data_root, splits=["train"], workers=1)
    deto = save_tiny_tokenizer(tmp_path / "tokenizer.ckpt")
    script = load_script("build_dictionary")
    argv = ["--tokenizer", str(tmp_path / "tokenizer.ckpt"), "--data-root", str(data_root)]
    capsys.readouterr()  # drop the progress bars of the setup

    assert run_cli(lambda: script.main(argv)) == 2  # the dictionary split is not packed yet
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "'dictionary'" in error and "mGPT.data.prepare" in error

    build_cache(data_root, splits=["dictionary"], workers=1)
    assert run_cli(lambda: script.main(argv)) == 0
    out = data_root / "_cache" / "sign_dictionary.json"
    dictionary = SignDictionary.load(out)
    assert dictionary.tokenizer_fingerprint == deto.fingerprint()
    assert len(dictionary) == 12  # the small synthetic vocabulary, one clip per word
    for word in dictionary:
        codes = dictionary.get(word)
        assert codes.shape[1] == 3 and 10 <= len(codes) <= 100  # 40..400 frames, 4 per code
        assert codes[:, 0].max() < 16 and codes[:, 1:].max() < 24


def test_a_save_that_fails_midway_keeps_the_old_dictionary(tmp_path: Path) -> None:
    """The disk takes only 4 kB: the new file breaks off while written, and the old one must survive whole."""
    path = tmp_path / "dictionary.json"
    old = SignDictionary({"قلم": np.arange(6).reshape(2, 3)}, "old-tokenizer")
    old.save(path)
    saved = path.read_bytes()
    words = ["كتاب", "بيت", "مدرسه", "سياره", "شمس", "قمر", "باب", "ولد"]
    new = SignDictionary({word: np.full((100, 3), 100 + i) for i, word in enumerate(words)}, "new-tokenizer")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # Python ignores SIGXFSZ: writes fail with EFBIG
    try:
        with pytest.raises(OSError, match="File too large"):
            new.save(path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert path.read_bytes() == saved
    loaded = SignDictionary.load(path)
    assert loaded.tokenizer_fingerprint == "old-tokenizer" and list(loaded) == ["قلم"]
    assert [p.name for p in tmp_path.iterdir()] == ["dictionary.json"]  # no temp file left behind
    new.save(path)  # with room again the new one replaces it
    assert SignDictionary.load(path).tokenizer_fingerprint == "new-tokenizer"
