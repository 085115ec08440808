"""Where a keyword's codes go in the generator's source (LM.KEYWORD_LAYOUT).

"after_text" (SOKE's): the text, then per keyword its word and its codes. "inline": each keyword's codes
right after the text word it was found in, so the source shows where in the sentence that sign belongs;
a keyword no text word refers to (e.g. one a caller made up) goes after the text as in "after_text".
"""

from __future__ import annotations

from collections.abc import Sequence

from mGPT.data.dictionary import refers_to
from mGPT.errors import ConfigError

KEYWORD_LAYOUTS = ("after_text", "inline")


def check_keyword_layout(layout: str) -> str:
    """`layout`, or a ConfigError when it is not one of KEYWORD_LAYOUTS."""
    if layout not in KEYWORD_LAYOUTS:
        raise ConfigError(f"LM.KEYWORD_LAYOUT must be one of {KEYWORD_LAYOUTS}, got {layout!r}")
    return layout


def keyword_positions(text_words: Sequence[str], keyword_words: Sequence[str]) -> list[int | None]:
    """Per keyword, the index of the first text word that refers to it (the word itself or with a leading
    clitic, as SignDictionary.match reads it) and no earlier keyword took; None when there is none."""
    taken: set[int] = set()
    positions: list[int | None] = []
    for key in keyword_words:
        found = next((j for j, word in enumerate(text_words) if j not in taken and refers_to(word, key)), None)
        if found is not None:
            taken.add(found)
        positions.append(found)
    return positions
