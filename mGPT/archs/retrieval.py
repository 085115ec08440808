"""The sign dictionary: isolated-sign codes per word, and keyword retrieval from free text.

File format (JSON), written by scripts/build_dictionary.py:

    {"_tokenizer": "<fingerprint of the tokenizer that made the codes>",
     "<word>": {"body": [int, ...], "lhand": [int, ...], "rhand": [int, ...]}, ...}

The three lists of a word have equal, non-zero length (one entry per 4 frames).
"_tokenizer" is optional; codes are only meaningful with the tokenizer that made them,
so callers compare it with their tokenizer's fingerprint.

Words are stored and looked up in normalised form (mGPT.data.arabic.normalize_arabic).
SOKE looked keywords up by sample name, so free text never got any; here keywords come
from the words of the text itself.
"""

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from mGPT.data.arabic import ARABIC_STOP_WORDS, normalize_arabic, tokenize_words
from mGPT.errors import DataError

PARTS = ("body", "lhand", "rhand")
TOKENIZER_KEY = "_tokenizer"

# Clitics glued to the front of Arabic words: "and", "with/in", "the", and their combinations.
# Longest first, so "بالمدرسه" tries "مدرسه" before "المدرسه".
_PREFIXES = ("وال", "بال", "ال", "و", "ب")
_MIN_STEM_LETTERS = 2


def subsample_codes(codes: np.ndarray, max_triplets: int) -> np.ndarray:
    """At most `max_triplets` rows of `codes` (K, 3), evenly spaced, first and last kept."""
    if len(codes) <= max_triplets:
        return codes
    rows = np.linspace(0, len(codes) - 1, max_triplets).round().astype(np.int64)
    return codes[rows]


class SignDictionary:
    """Maps normalised words to their isolated-sign codes, (K, 3) int64 = [body, lhand, rhand]."""

    def __init__(self, entries: Mapping[str, np.ndarray] | None = None, tokenizer_fingerprint: str | None = None):
        self.tokenizer_fingerprint = tokenizer_fingerprint
        self._codes: dict[str, np.ndarray] = {}
        for word, codes in (entries or {}).items():
            self.add(word, codes)

    def add(self, word: str, codes: np.ndarray) -> None:
        """Store `codes` (K, 3) under the normalised `word`, replacing what was there."""
        key = normalize_arabic(word)
        if not key:
            raise ValueError(f"word {word!r} is empty after normalisation")
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[1] != 3 or len(codes) == 0:
            raise ValueError(f"codes for {word!r} must have shape (K>0, 3), got {codes.shape}")
        self._codes[key] = codes

    def match(self, word: str) -> str | None:
        """The dictionary word that `word` refers to, trying it without a leading clitic if needed."""
        word = normalize_arabic(word)
        if word in self._codes:
            return word
        for prefix in _PREFIXES:
            stem = word[len(prefix) :]
            if word.startswith(prefix) and len(stem) >= _MIN_STEM_LETTERS and stem in self._codes:
                return stem
        return None

    def get(self, word: str) -> np.ndarray | None:
        """Codes (K, 3) for `word` (see match), or None."""
        key = self.match(word)
        return None if key is None else self._codes[key]

    def keywords_for(
        self, text: str, max_keywords: int = 3, max_triplets: int = 10
    ) -> list[tuple[str, np.ndarray]]:
        """Dictionary words found in `text`, in text order, with their codes (K <= max_triplets, 3).

        Stop words and repeats are skipped. The word returned is the dictionary's spelling
        (e.g. "مدرسه" for "بالمدرسة"), because that is the word the codes sign.
        """
        keywords: list[tuple[str, np.ndarray]] = []
        seen: set[str] = set()
        for word in tokenize_words(text):
            if len(keywords) == max_keywords:
                break
            if word in ARABIC_STOP_WORDS:
                continue
            key = self.match(word)
            if key is None or key in seen or key in ARABIC_STOP_WORDS:
                continue
            seen.add(key)
            keywords.append((key, subsample_codes(self._codes[key], max_triplets)))
        return keywords

    def __len__(self) -> int:
        return len(self._codes)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.match(word) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._codes)

    def save(self, path: str | Path) -> None:
        payload: dict[str, object] = {}
        if self.tokenizer_fingerprint is not None:
            payload[TOKENIZER_KEY] = self.tokenizer_fingerprint
        for word, codes in self._codes.items():
            payload[word] = {part: codes[:, i].tolist() for i, part in enumerate(PARTS)}
        Path(path).write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "SignDictionary":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"sign dictionary {path} not found; build it with scripts/build_dictionary.py")
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"sign dictionary {path} is not valid JSON ({err}); rebuild it") from err
        if not isinstance(payload, dict):
            raise DataError(f"sign dictionary {path} must hold a JSON object {{word: {{body, lhand, rhand}}}}")

        fingerprint = payload.pop(TOKENIZER_KEY, None)
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise DataError(f"sign dictionary {path}: '{TOKENIZER_KEY}' must be a string")
        dictionary = cls(tokenizer_fingerprint=fingerprint)
        spelled_as: dict[str, str] = {}
        for word, entry in payload.items():
            codes = _entry_codes(path, word, entry)
            key = normalize_arabic(word)
            if not key:
                raise DataError(f"sign dictionary {path}: word {word!r} is empty after normalisation; remove it")
            if key in spelled_as:
                raise DataError(
                    f"sign dictionary {path}: words {spelled_as[key]!r} and {word!r} are the same word "
                    f"after normalisation ({key!r}); keep one of them"
                )
            spelled_as[key] = word
            dictionary.add(key, codes)
        return dictionary


def _entry_codes(path: Path, word: str, entry: object) -> np.ndarray:
    """Validate one JSON entry and return its codes (K, 3) int64."""
    where = f"sign dictionary {path}, word {word!r}"
    if not isinstance(entry, dict) or any(part not in entry for part in PARTS):
        raise DataError(f"{where}: entry must be an object with lists 'body', 'lhand' and 'rhand'")
    columns = []
    for part in PARTS:
        values = entry[part]
        if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise DataError(f"{where}: '{part}' must be a list of integer codes")
        if any(v < 0 for v in values):
            raise DataError(f"{where}: '{part}' holds a negative code")
        columns.append(values)
    lengths = {part: len(values) for part, values in zip(PARTS, columns, strict=True)}
    if len(set(lengths.values())) != 1 or lengths["body"] == 0:
        raise DataError(f"{where}: 'body', 'lhand' and 'rhand' must be non-empty and of equal length, got {lengths}")
    return np.array(columns, dtype=np.int64).T  # (K, 3)
