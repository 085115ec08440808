"""Keyword dropout for training the retrieval generator (LM.KEYWORD_DROPOUT).

With every keyword always in the source, a small generator can learn "sign the keywords, then stop" and
end sentences after their last keyword. Dropping keywords from some training sources makes it sign those
words from the text alone, so the keywords become a hint rather than the whole plan.

A dropout draw is a keep-mask over an item's keywords, written as an int: bit j set = keyword j kept.
The dataset encodes the source of every mask an item can draw once (mGPT.data.datasets), so a training
step still tokenises nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mGPT.errors import ConfigError

DROPOUT_MODES = ("each", "all")  # each keyword on its own | all of an item's keywords at once


def check_keyword_dropout(rate: float, mode: str) -> None:
    """A ConfigError for a rate outside [0, 1) or an unknown mode."""
    if not 0.0 <= float(rate) < 1.0:
        raise ConfigError(f"LM.KEYWORD_DROPOUT must be in [0, 1) (0 = off), got {rate}")
    if mode not in DROPOUT_MODES:
        raise ConfigError(f"LM.KEYWORD_DROPOUT_MODE must be one of {DROPOUT_MODES}, got {mode!r}")


def full_mask(count: int) -> int:
    """The keep-mask that keeps all `count` keywords."""
    return (1 << count) - 1


def reachable_masks(count: int, mode: str) -> list[int]:
    """Every keep-mask a draw over `count` keywords can give: all 2**count with "each"; all or none with
    "all" (so "all" encodes two sources per item, not 2**count)."""
    if mode == "all":
        return sorted({full_mask(count), 0})
    return list(range(full_mask(count) + 1))


def draw_mask(count: int, rate: float, mode: str, generator: torch.Generator | None = None) -> int:
    """One keep-mask over `count` keywords: each dropped with probability `rate` ("each"), or all of them
    together ("all"). Draws from `generator` (default: torch's global one, which DataLoader seeds per
    worker); rate 0 or no keywords draws nothing, so a run without dropout keeps its random stream."""
    if rate <= 0 or count == 0:
        return full_mask(count)
    if mode == "all":
        return 0 if float(torch.rand((), generator=generator)) < rate else full_mask(count)
    kept = torch.rand(count, generator=generator) >= rate  # (count,)
    return sum(1 << j for j in range(count) if kept[j])


def kept_keywords(keywords: Sequence, mask: int) -> list:
    """The keywords whose bit is set in `mask`, in their order."""
    return [keyword for j, keyword in enumerate(keywords) if mask >> j & 1]
