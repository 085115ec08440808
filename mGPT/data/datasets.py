"""Torch datasets over a packed split (mGPT.data.prepare): stage 1 motion, stage 2 text + codes + reference.

They read clips through anything with `clip(i)` -> (T_i, 179), normally the packed split itself, and take
their numbers as arguments; mGPT.models.datamodule turns the run's config into those arguments."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from mGPT.data.codes import SplitCodes
from mGPT.data.dictionary import SignDictionary
from mGPT.data.features import (
    apply_length_rules,
    normalize,
    reference_params,
    resample_length,
    smplx_to_features,
)
from mGPT.data.keyword_dropout import check_keyword_dropout, draw_mask, full_mask, kept_keywords, reachable_masks
from mGPT.data.prepare import PackedSplit
from mGPT.errors import ConfigError, DataError
from mGPT.layout import FEATURE_DIMS


class ClipSource(Protocol):
    """The clips of one split in cache order: a PackedSplit, or anything that reads the same clips."""

    names: list[str]
    texts: list[str]

    def __len__(self) -> int: ...

    def clip(self, i: int) -> np.ndarray: ...  # (T_i, 179) float32


# (packed split, split name) -> the clips to read: how a data module may be told to read other than the cache
ClipSourceFactory = Callable[[PackedSplit, str], ClipSource]


def from_cache(packed: PackedSplit, split: str) -> ClipSource:
    """The default ClipSourceFactory: the packed split itself."""
    return packed


def _feature_stat(values: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.shape != (FEATURE_DIMS,) or not np.isfinite(array).all():
        raise DataError(f"{name} must be {FEATURE_DIMS} finite numbers, got shape {array.shape}; "
                        f"use the 133-dim statistics (load_stats(...)['{name}'] or the tokenizer's own)")
    return array.astype(np.float32)


class MotionDataset(Dataset):
    """Clips of a packed split as normalized 133-dim features.

    window=None gives each whole clip after SOKE's length rules (validation and test), a multiple of the
    tokenizer's frames_per_code. window=W (itself such a multiple) gives W frames: a random crop when
    random_crop, else the centre; shorter clips are resampled up to W.
    Random crops draw from torch's generator, which DataLoader seeds differently in every worker.
    """

    def __init__(self, split: ClipSource, mean133: np.ndarray | torch.Tensor, std133: np.ndarray | torch.Tensor,
                 window: int | None = None, min_frames: int = 40, max_frames: int = 400,
                 random_crop: bool = False, frames_per_code: int = 4) -> None:
        if window is not None and window <= 0:
            raise ValueError(f"window must be positive or None, got {window}")
        if window is not None and window % frames_per_code:
            raise ConfigError(f"the training window (DATASET.WINDOW) of {window} frames is not a multiple of the "
                              f"tokenizer's {frames_per_code} frames per code (2**DOWN_T); choose a multiple of "
                              f"{frames_per_code}")
        self.split = split
        self.mean133 = _feature_stat(mean133, "mean133")
        self.std133 = _feature_stat(std133, "std133")
        self.window = window
        self.min_frames = min_frames
        self.max_frames = max_frames
        self.random_crop = random_crop
        self.frames_per_code = frames_per_code

    def __len__(self) -> int:
        return len(self.split)

    def _crop(self, features: np.ndarray) -> np.ndarray:
        if self.window is None:
            return apply_length_rules(features, self.min_frames, self.max_frames, self.frames_per_code)
        length = len(features)
        if length < self.window:
            return resample_length(features, self.window)
        if self.random_crop:
            start = int(torch.randint(0, length - self.window + 1, ()).item())
        else:
            start = (length - self.window) // 2
        return features[start:start + self.window]

    def __getitem__(self, i: int) -> dict:
        features = smplx_to_features(self.split.clip(i))  # (T, 133)
        motion = normalize(self._crop(features), self.mean133, self.std133)  # (T', 133)
        return {
            "motion": torch.from_numpy(np.ascontiguousarray(motion, dtype=np.float32)),
            "length": len(motion),
            "name": self.split.names[i],
            "text": self.split.texts[i],
        }


def collate_motion(items: list[dict]) -> dict:
    """Pad a list of dataset items into a batch: motion (B, Tmax, 133) with zeros after each clip's end,
    lengths (B,), mask (B, Tmax) True on real frames, names and texts as lists."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    lengths = torch.tensor([item["length"] for item in items], dtype=torch.long)  # (B,)
    longest = int(lengths.max())
    motion = items[0]["motion"].new_zeros(len(items), longest, items[0]["motion"].shape[-1])  # (B, Tmax, 133)
    for row, item in enumerate(items):
        motion[row, :item["length"]] = item["motion"]
    mask = torch.arange(longest)[None, :] < lengths[:, None]  # (B, Tmax)
    return {
        "motion": motion,
        "lengths": lengths,
        "mask": mask,
        "names": [item["name"] for item in items],
        "texts": [item["text"] for item in items],
    }


# Encodes (texts, keywords) into per-sample source rows: the generator's encode_sources, handed in.
SourceEncoder = Callable[[list[str], list], list[torch.Tensor]]
_ENCODE_CHUNK = 256  # texts per tokenizer call while encoding a split's sources


class CodeTextDataset(Dataset):
    """Stage 2 items: text, its motion codes (N, 3), retrieval keywords and, with `clips`, the reference
    motion the generated one is scored against: the clip after the length rules, through the 133-dim
    feature and back to SMPL-X (T, 179), as the tokenizer would see and return it.

    Training needs no references, so the train split may leave `clips` out. `keyword_dropout` p > 0
    (the train split only, LM.KEYWORD_DROPOUT) drops an item's keywords at each read: each with
    probability p (`dropout_mode` "each") or all together ("all"); the source of every possible drop is
    encoded once with the rest, so reads stay as cheap as without it.
    """

    def __init__(self, names: Sequence[str], texts: Sequence[str], codes: SplitCodes,
                 clips: ClipSource | None = None, dictionary: SignDictionary | None = None,
                 max_keywords: int = 3, max_triplets: int = 10, min_frames: int = 40,
                 max_frames: int = 400, source_encoder: SourceEncoder | None = None,
                 frames_per_code: int = 4, keyword_dropout: float = 0.0, dropout_mode: str = "each") -> None:
        check_keyword_dropout(keyword_dropout, dropout_mode)
        sizes = {"names": len(names), "texts": len(texts), "codes": len(codes)}
        if clips is not None:
            sizes["clips"] = len(clips)
        if len(set(sizes.values())) != 1:
            raise ValueError(f"names, texts, codes and clips must have one entry per clip, got {sizes}")
        self.names, self.texts, self.codes, self.clips = list(names), list(texts), codes, clips
        self._dictionary = dictionary
        self.max_keywords, self.max_triplets = max_keywords, max_triplets
        self.min_frames, self.max_frames = min_frames, max_frames
        self.frames_per_code = frames_per_code  # the tokenizer's: references are cut like the coded clips
        self.keyword_dropout, self.dropout_mode = float(keyword_dropout), dropout_mode
        self._keywords: list | None = None
        self._sources: np.ndarray | None = None  # every item's source rows, one after the other
        self._source_offsets: np.ndarray | None = None  # (N + 1,) item i is [offsets[i], offsets[i+1])
        # with keyword dropout: (item, keep-mask) -> (start, stop) in _dropped_sources
        self._dropped_sources: np.ndarray | None = None
        self._dropped_spans: dict[tuple[int, int], tuple[int, int]] = {}
        if source_encoder is not None:
            self._encode_sources(source_encoder)

    @property
    def dictionary(self) -> SignDictionary | None:
        return self._dictionary

    @dictionary.setter
    def dictionary(self, dictionary: SignDictionary | None) -> None:
        if self._sources is not None:
            raise ValueError("this dataset's sources were encoded with its dictionary at construction; build a "
                             "new CodeTextDataset (or one without a source_encoder) to use another dictionary")
        self._dictionary = dictionary

    def _item_keywords(self, i: int) -> list | None:
        if self._dictionary is None:
            return None
        return self._dictionary.keywords_for(self.texts[i], self.max_keywords, self.max_triplets)

    def _encode_sources(self, encoder: SourceEncoder) -> None:
        """Keywords and encoded sources of every item, once: training steps then skip the dictionary and
        the tokenizer."""
        self._keywords = [self._item_keywords(i) for i in range(len(self))]
        texts = [str(t) for t in self.texts]
        sources = []
        for start in tqdm(range(0, len(texts), _ENCODE_CHUNK), desc="encoding sources", leave=False):
            stop = start + _ENCODE_CHUNK
            sources += [s.cpu().numpy() for s in encoder(texts[start:stop], self._keywords[start:stop])]
        self._source_offsets = np.cumsum([0] + [len(s) for s in sources])
        self._sources = np.concatenate(sources) if sources else np.zeros(0, dtype=np.int64)
        if self.keyword_dropout > 0:
            self._encode_dropped_sources(encoder)

    def _encode_dropped_sources(self, encoder: SourceEncoder) -> None:
        """The source of every keep-mask but the full one (that is _sources), for every item with keywords."""
        wanted = [(i, mask) for i, keywords in enumerate(self._keywords) if keywords
                  for mask in reachable_masks(len(keywords), self.dropout_mode) if mask != full_mask(len(keywords))]
        rows, start = [], 0
        for chunk in range(0, len(wanted), _ENCODE_CHUNK):
            part = wanted[chunk:chunk + _ENCODE_CHUNK]
            encoded = encoder([str(self.texts[i]) for i, _ in part],
                              [kept_keywords(self._keywords[i], mask) for i, mask in part])
            for key, source in zip(part, encoded, strict=True):
                rows.append(source.cpu().numpy())
                self._dropped_spans[key] = (start, start + len(rows[-1]))
                start += len(rows[-1])
        self._dropped_sources = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)

    def lengths(self) -> np.ndarray:
        """(N, 2) per item: decoder steps (codes + </s>) and source tokens (0 when not encoded here)."""
        steps = np.array([len(self.codes.clip(i)) + 1 for i in range(len(self))], dtype=np.int64)
        source = np.diff(self._source_offsets) if self._source_offsets is not None else np.zeros_like(steps)
        return np.stack([steps, source], axis=1)

    def __len__(self) -> int:
        return len(self.names)

    def reference(self, i: int) -> np.ndarray:  # (T, 179)
        return reference_params(self.clips.clip(i), self.min_frames, self.max_frames, self.frames_per_code)

    def __getitem__(self, i: int) -> dict:
        item = {"index": i, "name": self.names[i], "text": self.texts[i],
                "codes": torch.from_numpy(self.codes.clip(i))}  # (N, 3)
        keywords = self._item_keywords(i) if self._sources is None else self._keywords[i]
        full = full_mask(len(keywords or []))
        mask = draw_mask(len(keywords), self.keyword_dropout, self.dropout_mode) if keywords else full
        item["keywords"] = keywords if mask == full else kept_keywords(keywords, mask)
        if self._sources is not None:
            if mask == full:
                source = self._sources[self._source_offsets[i]:self._source_offsets[i + 1]]
            else:
                start, stop = self._dropped_spans[(i, mask)]
                source = self._dropped_sources[start:stop]
            item["source"] = torch.from_numpy(source)
        if self.clips is not None:
            item["reference"] = torch.from_numpy(self.reference(i))  # (T, 179)
        return item


def collate_text_codes(items: list[dict]) -> dict:
    """Stage 2 items as a batch of lists (lengths differ): codes (N_i, 3) and, when the items have them,
    references (T_i, 179)."""
    batch = {
        "index": torch.tensor([it["index"] for it in items]),
        "names": [it["name"] for it in items],
        "texts": [it["text"] for it in items],
        "keywords": [it["keywords"] for it in items],
        "codes": [it["codes"] for it in items],
    }
    if all("reference" in it for it in items):
        batch["references"] = [it["reference"] for it in items]
    if all("source" in it for it in items):
        batch["sources"] = [it["source"] for it in items]  # encoded by the dataset: no tokenizer per step
    return batch
