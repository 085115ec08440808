import json
from pathlib import Path

import numpy as np
import pytest

from mGPT.archs.retrieval import SignDictionary, subsample_codes
from mGPT.errors import DataError


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
