"""The sign dictionary: isolated-sign codes per word, how it is built, and keyword retrieval.

File format (JSON), written by scripts/build_dictionary.py:

    {"_tokenizer": "<fingerprint of the tokenizer that made the codes>",
     "<word>": {"body": [int, ...], "lhand": [int, ...], "rhand": [int, ...]}, ...}

The three lists of a word have equal, non-zero length (one entry per code step: the tokenizer's
frames_per_code frames, 4 in SOKE).
"_tokenizer" is optional; codes are only meaningful with the tokenizer that made them,
so callers compare it with their tokenizer's fingerprint.

Words are stored and looked up in normalised form (mGPT.data.arabic.normalize_arabic).
SOKE looked keywords up by sample name, so free text never got any; here keywords come
from the words of the text itself.
"""

import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from mGPT.data.arabic import ARABIC_STOP_WORDS, normalize_arabic, tokenize_words
from mGPT.data.features import clip_features
from mGPT.errors import DataError
from mGPT.files import atomic_write_text
from mGPT.layout import PARTS

log = logging.getLogger(__name__)

TOKENIZER_KEY = "_tokenizer"

# Clitics glued to the front of Arabic words: "and", "with/in", "the", and their combinations.
# Longest first, so "بالمدرسه" tries "مدرسه" before "المدرسه".
_PREFIXES = ("وال", "بال", "ال", "و", "ب")
_MIN_STEM_LETTERS = 2
_ENCODE_BATCH = 32


def subsample_codes(codes: np.ndarray, max_triplets: int) -> np.ndarray:
    """At most `max_triplets` rows of `codes` (K, 3), evenly spaced, first and last kept."""
    if len(codes) <= max_triplets:
        return codes
    rows = np.linspace(0, len(codes) - 1, max_triplets).round().astype(np.int64)
    return codes[rows]


def _readings(word: str) -> list[str]:
    """The dictionary words a text word may be, in the order they are tried: the normalised word itself, then
    its stem after each leading clitic that leaves at least _MIN_STEM_LETTERS letters."""
    word = normalize_arabic(word)
    return [word] + [word[len(prefix):] for prefix in _PREFIXES
                     if word.startswith(prefix) and len(word) - len(prefix) >= _MIN_STEM_LETTERS]


def refers_to(word: str, key: str) -> bool:
    """True when the text word `word` is the normalised dictionary word `key`, itself or after a leading
    clitic (the readings SignDictionary.match tries)."""
    return key in _readings(word)


class SignDictionary:
    """Maps normalised words to their isolated-sign codes, (K, 3) int64 = [body, lhand, rhand]."""

    def __init__(
        self, entries: Mapping[str, np.ndarray] | None = None, tokenizer_fingerprint: str | None = None
    ):
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
        return next((reading for reading in _readings(word) if reading in self._codes), None)

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
        # One word per line: readable, and diffs of a rebuilt dictionary show which words changed.
        lines = [f"{json.dumps(key, ensure_ascii=False)}: {json.dumps(value)}" for key, value in payload.items()]
        atomic_write_text(path, "{\n" + ",\n".join(lines) + "\n}\n")

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
            raise DataError(
                f"sign dictionary {path} must hold a JSON object {{word: {{body, lhand, rhand}}}}"
            )

        fingerprint = payload.pop(TOKENIZER_KEY, None)
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise DataError(f"sign dictionary {path}: '{TOKENIZER_KEY}' must be a string")
        dictionary = cls(tokenizer_fingerprint=fingerprint)
        spelled_as: dict[str, str] = {}
        for word, entry in payload.items():
            codes = _entry_codes(path, word, entry)
            key = normalize_arabic(word)
            if not key:
                raise DataError(
                    f"sign dictionary {path}: word {word!r} is empty after normalisation; remove it"
                )
            if key in spelled_as:
                raise DataError(
                    f"sign dictionary {path}: words {spelled_as[key]!r} and {word!r} are the same word "
                    f"after normalisation ({key!r}); keep one of them"
                )
            spelled_as[key] = word
            dictionary.add(key, codes)
        return dictionary


def _is_code(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true/false are ints to Python


def _entry_codes(path: Path, word: str, entry: object) -> np.ndarray:
    """Validate one JSON entry and return its codes (K, 3) int64."""
    where = f"sign dictionary {path}, word {word!r}"
    if not isinstance(entry, dict) or any(part not in entry for part in PARTS):
        raise DataError(f"{where}: entry must be an object with lists 'body', 'lhand' and 'rhand'")
    columns = []
    for part in PARTS:
        values = entry[part]
        if not isinstance(values, list) or not all(_is_code(v) for v in values):
            raise DataError(f"{where}: '{part}' must be a list of integer codes")
        if any(v < 0 for v in values):
            raise DataError(f"{where}: '{part}' holds a negative code")
        columns.append(values)
    lengths = {part: len(values) for part, values in zip(PARTS, columns, strict=True)}
    if len(set(lengths.values())) != 1 or lengths["body"] == 0:
        raise DataError(
            f"{where}: 'body', 'lhand' and 'rhand' must be non-empty and of equal length, got {lengths}"
        )
    return np.array(columns, dtype=np.int64).T  # (K, 3)


class SignTokenizer(Protocol):
    """What build_dictionary needs from a tokenizer (mGPT.archs.deto.DETO has it)."""

    frames_per_code: int  # T must be a multiple of it

    def encode(self, features: torch.Tensor) -> torch.Tensor: ...  # (B, T, 133) raw -> (B, T/F, 3) long

    def fingerprint(self) -> str: ...


class ClipSplit(Protocol):
    """What build_dictionary needs from a packed split (mGPT.data.prepare.PackedSplit has it)."""

    texts: list[str]
    lengths: np.ndarray  # (C,) frames per clip

    def clip(self, i: int) -> np.ndarray: ...  # (T, 179) float32


def _representative_clips(split: ClipSplit) -> dict[str, int]:
    """One clip index per normalised word: the clip of median length among that word's clips.

    An isolated-sign set records each word several times (signers, takes); the median length
    avoids clips cut short or padded with rest frames.
    """
    clips_of: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(split.texts):
        word = normalize_arabic(str(text))
        if word:
            clips_of[word].append(i)
    chosen = {}
    for word, indices in clips_of.items():
        by_length = sorted(indices, key=lambda i: int(split.lengths[i]))
        chosen[word] = by_length[(len(by_length) - 1) // 2]
    return chosen


@torch.no_grad()
def build_dictionary(
    tokenizer: SignTokenizer, split: ClipSplit, min_frames: int = 40, max_frames: int = 400
) -> SignDictionary:
    """Encode one isolated-sign clip per word of `split` (SENTENCE = the word) into a SignDictionary."""
    chosen = _representative_clips(split)
    phrases = [word for word in chosen if " " in word]
    if phrases:
        log.warning(
            "%d dictionary entries hold more than one word (e.g. %r); keywords are single words, "
            "so these are never retrieved", len(phrases), phrases[0]
        )

    features = {
        word: clip_features(split.clip(i), min_frames, max_frames, tokenizer.frames_per_code)  # (T, 133)
        for word, i in chosen.items()
    }
    words_of_length: dict[int, list[str]] = defaultdict(list)
    for word, word_features in features.items():
        words_of_length[len(word_features)].append(word)

    codes_of: dict[str, np.ndarray] = {}
    with tqdm(total=len(features), desc="encoding signs", unit="sign") as bar:
        for words in words_of_length.values():  # equal lengths batch together without padding
            for start in range(0, len(words), _ENCODE_BATCH):
                batch_words = words[start : start + _ENCODE_BATCH]
                batch = torch.from_numpy(np.stack([features[w] for w in batch_words])).float()  # (B, T, 133)
                codes = tokenizer.encode(batch).cpu().numpy()  # (B, T/F, 3)
                codes_of.update(zip(batch_words, codes, strict=True))
                bar.update(len(batch_words))
    # In the split's order, not in batch order, so the JSON reads like the dataset.
    return SignDictionary({word: codes_of[word] for word in chosen}, tokenizer.fingerprint())
