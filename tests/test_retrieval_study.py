"""The retrieval study tools: scripts/holdout_words.py (a dataset copy whose train split lacks some words)
and the code swap of scripts/retrieval_check.py. The check's end-to-end run is in test_pipeline.py."""

from __future__ import annotations

import numpy as np
import pytest

from mGPT.data.arabic import tokenize_words
from mGPT.data.dictionary import SignDictionary
from mGPT.data.isharah import read_split_csv, split_csv_path
from mGPT.errors import DataError, SaSOKEError


def csv_lines(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_holdout_words_leaves_out_exactly_the_train_clips_with_the_words(small_sample, tmp_path,
                                                                          load_script) -> None:
    script = load_script("holdout_words")
    source = csv_lines(split_csv_path(small_sample, "train"))
    sentences = read_split_csv(split_csv_path(small_sample, "train"))["SENTENCE"]
    word = tokenize_words(sentences[0])[1]  # e.g. a verb: in some sentences, not in all
    expected_out = sum(word in tokenize_words(s) for s in sentences)
    assert 0 < expected_out < len(sentences)

    out = tmp_path / "holdout"
    kept, left_out = script.holdout_words(small_sample, [word], out)
    assert (kept, left_out) == (len(sentences) - expected_out, expected_out)

    copy = csv_lines(split_csv_path(out, "train"))
    assert copy[0] == source[0]  # header
    assert set(copy[1:]) <= set(source[1:])  # rows verbatim, not re-formatted
    assert len(copy) - 1 == kept
    assert not any(word in tokenize_words(s) for s in read_split_csv(split_csv_path(out, "train"))["SENTENCE"])
    for split in ("val", "test", "dictionary"):
        assert csv_lines(split_csv_path(out, split)) == csv_lines(split_csv_path(small_sample, split))
    name = read_split_csv(split_csv_path(out, "train"))["SENTENCE_NAME"][0]
    assert (out / "train" / "poses" / name).is_dir()


def test_holdout_words_refuses_an_existing_folder_and_words_no_sentence_holds(small_sample, tmp_path,
                                                                                load_script) -> None:
    script = load_script("holdout_words")
    with pytest.raises(SaSOKEError, match="exists; give a new folder"):
        script.holdout_words(small_sample, ["كتاب"], tmp_path)
    with pytest.raises(DataError, match=r"no train sentence in .*train_preprocessed_fps\.csv holds any of"):
        script.holdout_words(small_sample, ["زرافة"], tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_swapped_codes_gives_every_word_another_words_codes(load_script) -> None:
    script = load_script("retrieval_check")
    words = ["ماء", "خبز", "كتاب", "قلم", "باب"]
    dictionary = SignDictionary({w: np.full((i + 1, 3), i) for i, w in enumerate(words)}, "fp")
    swapped = script.swapped_codes(dictionary, seed=3)
    assert sorted(swapped) == sorted(dictionary) and swapped.tokenizer_fingerprint == "fp"
    donors = {w: int(swapped.get(w)[0, 0]) for w in words}  # code i marks word i's codes
    assert all(donors[w] != i for i, w in enumerate(words))
    assert sorted(donors.values()) == list(range(len(words)))  # each word's codes used exactly once
    with pytest.raises(SaSOKEError, match="at least 2 words"):
        script.swapped_codes(SignDictionary({"ماء": np.zeros((1, 3))}))
