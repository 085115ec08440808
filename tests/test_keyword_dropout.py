"""Keyword dropout (LM.KEYWORD_DROPOUT): the draw's rate, and the dataset's sources under it."""

import numpy as np
import pytest
import torch

from mGPT.data.codes import SplitCodes
from mGPT.data.datasets import CodeTextDataset
from mGPT.data.keyword_dropout import draw_mask, full_mask, kept_keywords, reachable_masks
from mGPT.errors import ConfigError


def test_each_mode_drops_every_keyword_at_the_rate():
    generator = torch.Generator().manual_seed(0)
    masks = [draw_mask(3, 0.3, "each", generator) for _ in range(4000)]
    kept = np.array([[mask >> j & 1 for j in range(3)] for mask in masks])  # (4000, 3)
    np.testing.assert_allclose(1 - kept.mean(0), 0.3, atol=0.03)  # every position, not just on average
    assert len(set(masks)) == 8  # every subset occurs


def test_all_mode_drops_all_or_none():
    generator = torch.Generator().manual_seed(1)
    masks = [draw_mask(3, 0.25, "all", generator) for _ in range(4000)]
    assert set(masks) == {0, 7}
    assert abs(masks.count(0) / len(masks) - 0.25) < 0.03


def test_rate_zero_keeps_everything_and_draws_nothing():
    generator = torch.Generator().manual_seed(2)
    before = generator.get_state()
    assert draw_mask(3, 0.0, "each", generator) == full_mask(3) == 7
    assert draw_mask(0, 0.5, "each", generator) == 0
    assert torch.equal(generator.get_state(), before)  # a run without dropout keeps its random stream


def test_masks_and_kept_keywords():
    assert reachable_masks(2, "each") == [0, 1, 2, 3] and reachable_masks(2, "all") == [0, 3]
    assert kept_keywords(["a", "b", "c"], 0b101) == ["a", "c"]


def _split_codes(lengths: list[int]) -> SplitCodes:
    codes = np.zeros((sum(lengths), 3), np.int16)
    return SplitCodes(codes, np.cumsum([0] + lengths[:-1]), np.array(lengths), [f"c{i}" for i in range(len(lengths))])


class WordDictionary:
    """Every word of a text is a keyword, with one code row = its position."""

    def keywords_for(self, text: str, max_keywords: int, max_triplets: int) -> list:
        return [(w, np.full((1, 3), k, np.int64)) for k, w in enumerate(text.split()[:max_keywords])]


def fake_encoder(texts: list[str], keywords: list) -> list[torch.Tensor]:
    """A source that shows which keywords it holds: 100 + each kept keyword's code, after one text token."""
    return [torch.tensor([0] + [100 + int(codes[0, 0]) for _, codes in kws or []] + [1]) for kws in keywords]


def _dataset(rate: float, mode: str = "each") -> CodeTextDataset:
    texts = ["a b c", "d e", "f"]
    return CodeTextDataset([f"c{i}" for i in range(3)], texts, _split_codes([4, 4, 4]), dictionary=WordDictionary(),
                           source_encoder=fake_encoder, keyword_dropout=rate, dropout_mode=mode)


def test_dataset_sources_lose_keywords_at_the_rate_and_match_the_keywords():
    dataset = _dataset(0.4)
    torch.manual_seed(3)
    dropped = total = 0
    for _ in range(1500):
        item = dataset[0]
        expected = fake_encoder([item["text"]], [item["keywords"]])[0]
        assert torch.equal(item["source"], expected)  # the cached source is the kept keywords' own
        dropped += 3 - len(item["keywords"])
        total += 3
    assert abs(dropped / total - 0.4) < 0.03


def test_dataset_without_dropout_gives_the_full_source():
    dataset = _dataset(0.0)
    for i in range(3):
        item = dataset[i]
        assert len(item["keywords"]) == len(item["text"].split())
        assert torch.equal(item["source"], fake_encoder([item["text"]], [item["keywords"]])[0])


def test_all_mode_in_the_dataset():
    dataset = _dataset(0.5, "all")
    torch.manual_seed(4)
    counts = {len(dataset[0]["keywords"]) for _ in range(200)}
    assert counts == {0, 3}


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="KEYWORD_DROPOUT must be in"):
        _dataset(1.0)
    with pytest.raises(ConfigError, match="KEYWORD_DROPOUT_MODE"):
        _dataset(0.2, "some")


def test_retrieval_off_is_untouched_by_dropout():
    """No dictionary (LM.RETRIEVAL false): no keywords to drop, no random draw, the plain text source."""
    texts = ["a b c", "d e"]
    dataset = CodeTextDataset(["c0", "c1"], texts, _split_codes([4, 4]), source_encoder=fake_encoder,
                              keyword_dropout=0.5)
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    items = [dataset[i] for i in range(2)]
    assert torch.equal(torch.random.get_rng_state(), before)
    assert [it["keywords"] for it in items] == [None, None]
    assert all(it["source"].tolist() == [0, 1] for it in items)
