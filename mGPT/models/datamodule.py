"""Lightning data for both stages, read from the packed cache (stage 1) and the code file (stage 2)."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from mGPT.config import cache_dir, codes_path, dictionary_path
from mGPT.data.codes import load_codes
from mGPT.data.datasets import MotionDataset, collate_motion
from mGPT.data.dictionary import SignDictionary
from mGPT.data.features import clip_features
from mGPT.data.pickle_reference import clip_source
from mGPT.data.prepare import PackedSplit, check_cache_settings, load_cache
from mGPT.errors import DataError


def load_split(cfg: DictConfig, split: str) -> PackedSplit:
    """One split of the configured cache; a ConfigError if it was packed at another DATASET.TARGET_FPS or
    MAX_SECONDS than the config says (the cache's frame rate is the one every clip and video runs at)."""
    packed = load_cache(cache_dir(cfg), split)
    check_cache_settings(packed, cache_dir(cfg) / split, cfg.DATASET.TARGET_FPS, cfg.DATASET.MAX_SECONDS)
    return packed


class CodeTextDataset(Dataset):
    """Stage 2 items: text, its motion codes (N, 3), retrieval keywords, and the raw reference motion."""

    def __init__(self, cfg: DictConfig, split: str, fingerprint: str, dictionary: SignDictionary | None,
                 frames_per_code: int = 4):
        self.packed: PackedSplit = load_split(cfg, split)
        self.codes = load_codes(codes_path(cfg), split, fingerprint)
        if self.codes.names != list(self.packed.names):
            raise DataError(
                f"{codes_path(cfg)} does not match the '{split}' cache (clips differ). "
                "Re-run scripts/get_motion_code.py after prepare."
            )
        self.dictionary = dictionary
        self.cfg = cfg
        self.frames_per_code = frames_per_code  # the tokenizer's: references are cut like the coded clips
        self.reference_clips = clip_source(cfg, self.packed, split)

    def __len__(self) -> int:
        return len(self.packed)

    def reference_features(self, i: int) -> np.ndarray:  # (T, 133) raw
        return clip_features(self.reference_clips.clip(i), self.cfg.DATASET.MIN_FRAMES, self.cfg.DATASET.MAX_FRAMES,
                             self.frames_per_code)

    def __getitem__(self, i: int) -> dict:
        text = self.packed.texts[i]
        keywords = None
        if self.dictionary is not None:
            keywords = self.dictionary.keywords_for(text, self.cfg.LM.MAX_KEYWORDS, self.cfg.LM.MAX_TRIPLETS)
        return {"index": i, "name": self.packed.names[i], "text": text, "keywords": keywords,
                "codes": torch.from_numpy(self.codes.clip(i))}


def collate_text_codes(items: list[dict]) -> dict:
    return {
        "index": torch.tensor([it["index"] for it in items]),
        "names": [it["name"] for it in items],
        "texts": [it["text"] for it in items],
        "keywords": [it["keywords"] for it in items],
        "codes": [it["codes"] for it in items],
    }


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

    frames_per_code is the tokenizer's (2**DOWN_T): clip lengths are cut to multiples of it.
    """

    def __init__(self, cfg: DictConfig, mean133: np.ndarray | None = None, std133: np.ndarray | None = None,
                 fingerprint: str | None = None, frames_per_code: int = 4):
        super().__init__()
        self.cfg, self.mean133, self.std133, self.fingerprint = cfg, mean133, std133, fingerprint
        self.frames_per_code = frames_per_code
        self.datasets: dict[str, Dataset] = {}

    def dataset(self, split: str) -> Dataset:
        if split not in self.datasets:
            data = self.cfg.DATASET
            if self.cfg.STAGE == "vae":
                clips = clip_source(self.cfg, load_split(self.cfg, split), split)
                self.datasets[split] = MotionDataset(
                    clips, self.mean133, self.std133,
                    window=data.WINDOW if split == "train" else None,
                    min_frames=data.MIN_FRAMES, max_frames=data.MAX_FRAMES, random_crop=split == "train",
                    frames_per_code=self.frames_per_code,
                )
            else:
                dictionary = load_dictionary(self.cfg, self.fingerprint)
                self.datasets[split] = CodeTextDataset(self.cfg, split, self.fingerprint, dictionary,
                                                       self.frames_per_code)
        return self.datasets[split]

    def _loader(self, split: str, train: bool, batch_size: int) -> DataLoader:
        workers = self.cfg.TRAIN.NUM_WORKERS
        return DataLoader(
            self.dataset(split), batch_size=batch_size, shuffle=train, drop_last=False,
            num_workers=workers, persistent_workers=workers > 0,
            collate_fn=collate_motion if self.cfg.STAGE == "vae" else collate_text_codes,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.cfg.TRAIN.BATCH_SIZE)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.cfg.TRAIN.BATCH_SIZE)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.cfg.TEST.SPLIT, False, self.cfg.TEST.BATCH_SIZE)
