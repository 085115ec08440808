"""Lightning data for both stages, read from the packed cache (stage 1) and the code file (stage 2)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from mGPT.config import cache_dir, codes_path, dictionary_path
from mGPT.data.buckets import BucketBatchSampler, EpochRandomSampler
from mGPT.data.codes import load_codes
from mGPT.data.datasets import MotionDataset, collate_motion
from mGPT.data.dictionary import SignDictionary
from mGPT.data.features import clip_features
from mGPT.data.pickle_reference import clip_source
from mGPT.data.prepare import PackedSplit, load_cache
from mGPT.errors import DataError

# Encodes (texts, keywords) into per-sample source rows: SignGenerator.encode_sources.
SourceEncoder = Callable[[list[str], list], list[torch.Tensor]]
_ENCODE_CHUNK = 256  # texts per tokenizer call while encoding a split's sources


class CodeTextDataset(Dataset):
    """Stage 2 items: text, its motion codes (N, 3), retrieval keywords, and the raw reference motion.

    With a source_encoder, every item's keywords and encoded source (the generator's input rows) are
    computed once here, not per batch: training steps then skip the dictionary and the tokenizer. The
    dictionary is then fixed; without an encoder it may be swapped (scripts/retrieval_check.py).
    """

    def __init__(self, cfg: DictConfig, split: str, fingerprint: str, dictionary: SignDictionary | None,
                 source_encoder: SourceEncoder | None = None):
        self.packed: PackedSplit = load_cache(cache_dir(cfg), split)
        self.codes = load_codes(codes_path(cfg), split, fingerprint)
        if self.codes.names != list(self.packed.names):
            raise DataError(
                f"{codes_path(cfg)} does not match the '{split}' cache (clips differ). "
                "Re-run scripts/get_motion_code.py after prepare."
            )
        self._dictionary = dictionary
        self.cfg = cfg
        self.reference_clips = clip_source(cfg, self.packed, split)
        self._keywords: list | None = None
        self._sources: np.ndarray | None = None  # every item's source rows, one after the other
        self._source_offsets: np.ndarray | None = None  # (N + 1,) item i is [offsets[i], offsets[i+1])
        if source_encoder is not None:
            self._encode_sources(source_encoder, split)

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
        return self._dictionary.keywords_for(self.packed.texts[i], self.cfg.LM.MAX_KEYWORDS, self.cfg.LM.MAX_TRIPLETS)

    def _encode_sources(self, encoder: SourceEncoder, split: str) -> None:
        self._keywords = [self._item_keywords(i) for i in range(len(self))]
        texts = [str(t) for t in self.packed.texts]
        sources = []
        for start in tqdm(range(0, len(texts), _ENCODE_CHUNK), desc=f"encoding {split} sources", leave=False):
            stop = start + _ENCODE_CHUNK
            sources += [s.cpu().numpy() for s in encoder(texts[start:stop], self._keywords[start:stop])]
        self._source_offsets = np.cumsum([0] + [len(s) for s in sources])
        self._sources = np.concatenate(sources) if sources else np.zeros(0, dtype=np.int64)

    def lengths(self) -> np.ndarray:
        """(N, 2) per item: decoder steps (codes + </s>) and source tokens (0 when not encoded here)."""
        steps = np.array([len(self.codes.clip(i)) + 1 for i in range(len(self))], dtype=np.int64)
        source = np.diff(self._source_offsets) if self._source_offsets is not None else np.zeros_like(steps)
        return np.stack([steps, source], axis=1)

    def __len__(self) -> int:
        return len(self.packed)

    def reference_features(self, i: int) -> np.ndarray:  # (T, 133) raw
        return clip_features(self.reference_clips.clip(i), self.cfg.DATASET.MIN_FRAMES, self.cfg.DATASET.MAX_FRAMES)

    def __getitem__(self, i: int) -> dict:
        item = {"index": i, "name": self.packed.names[i], "text": self.packed.texts[i],
                "codes": torch.from_numpy(self.codes.clip(i))}
        if self._sources is None:
            item["keywords"] = self._item_keywords(i)
        else:
            item["keywords"] = self._keywords[i]
            item["source"] = torch.from_numpy(self._sources[self._source_offsets[i] : self._source_offsets[i + 1]])
        return item


def collate_text_codes(items: list[dict]) -> dict:
    batch = {
        "index": torch.tensor([it["index"] for it in items]),
        "names": [it["name"] for it in items],
        "texts": [it["text"] for it in items],
        "keywords": [it["keywords"] for it in items],
        "codes": [it["codes"] for it in items],
    }
    if all("source" in it for it in items):
        batch["sources"] = [it["source"] for it in items]  # encoded by the dataset: no tokenizer per step
    return batch


def load_dictionary(cfg: DictConfig, fingerprint: str) -> SignDictionary | None:
    """The retrieval dictionary when LM.RETRIEVAL is on; it must come from the configured tokenizer."""
    if not cfg.LM.RETRIEVAL:
        return None
    path = dictionary_path(cfg)
    if not path.is_file():
        raise DataError(
            f"sign dictionary not found: {path}. Build it with scripts/build_dictionary.py, "
            "or set LM.RETRIEVAL=false."
        )
    dictionary = SignDictionary.load(path)
    if dictionary.tokenizer_fingerprint not in (None, fingerprint):
        raise DataError(f"{path} was built with a different tokenizer; re-run scripts/build_dictionary.py.")
    return dictionary


class SignDataModule(pl.LightningDataModule):
    """Stage 1 (vae): normalised motion windows. Stage 2 (lm): text + codes.

    Stage 2 with a source_encoder (the generator's encode_sources; train.py passes it) encodes every
    split's sources once, and trains on batches of similar length (mGPT.data.buckets).
    """

    def __init__(self, cfg: DictConfig, mean133: np.ndarray | None = None, std133: np.ndarray | None = None,
                 fingerprint: str | None = None, source_encoder: SourceEncoder | None = None):
        super().__init__()
        self.cfg, self.mean133, self.std133, self.fingerprint = cfg, mean133, std133, fingerprint
        self.source_encoder = source_encoder
        self.datasets: dict[str, Dataset] = {}

    def dataset(self, split: str) -> Dataset:
        if split not in self.datasets:
            data = self.cfg.DATASET
            if self.cfg.STAGE == "vae":
                clips = clip_source(self.cfg, load_cache(cache_dir(self.cfg), split), split)
                self.datasets[split] = MotionDataset(
                    clips, self.mean133, self.std133,
                    window=data.WINDOW if split == "train" else None,
                    min_frames=data.MIN_FRAMES, max_frames=data.MAX_FRAMES, random_crop=split == "train",
                )
            else:
                dictionary = load_dictionary(self.cfg, self.fingerprint)
                self.datasets[split] = CodeTextDataset(self.cfg, split, self.fingerprint, dictionary,
                                                       self.source_encoder)
        return self.datasets[split]

    def _loader(self, split: str, train: bool, batch_size: int) -> DataLoader:
        workers = self.cfg.TRAIN.NUM_WORKERS
        dataset = self.dataset(split)
        common = {"num_workers": workers, "persistent_workers": workers > 0,
                  "collate_fn": collate_motion if self.cfg.STAGE == "vae" else collate_text_codes}
        if train and self.cfg.STAGE == "lm":
            # Stage 2 pads sources and targets to the longest in the batch: batch by length. Stage 1 trains
            # on fixed windows, and evaluation keeps the dataset order.
            batches = BucketBatchSampler(EpochRandomSampler(dataset, self.cfg.SEED), dataset.lengths(),
                                         batch_size)
            return DataLoader(dataset, batch_sampler=batches, **common)
        return DataLoader(dataset, batch_size=batch_size, shuffle=train, drop_last=False, **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.cfg.TRAIN.BATCH_SIZE)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.cfg.TRAIN.BATCH_SIZE)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.cfg.TEST.SPLIT, False, self.cfg.TEST.BATCH_SIZE)
