"""Stage slt: train the back-translation evaluator (sign-to-text) on ground-truth motion, judged by BLEU on val.

Same run layout as the other stages: train.py writes last.ckpt every epoch and best.ckpt at the highest
val/BLEU4 (TRAIN.MONITOR), TensorBoard gets the losses, the scores and a few val translations as text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter

from mGPT.archs.slt import SignToText, build_vocabulary
from mGPT.config import exp_dir
from mGPT.data.arabic import tokenize_words
from mGPT.data.datasets import MotionDataset, collate_motion
from mGPT.data.features import ruled_length
from mGPT.data.motion_text import AugmentedMotionText
from mGPT.errors import CheckpointError
from mGPT.metrics.text_scores import corpus_scores
from mGPT.models.datamodule import load_split
from mGPT.models.schedule import adamw_cosine

VAL_TEXTS_LOGGED = 4


def fastest_frames_per_word(texts: Sequence[str], frames: Sequence[int], cfg: DictConfig) -> float:
    """The fewest frames per word of any training clip, as the evaluator sees it (the length rules) at the fastest
    speed augmentation gives it (x (1 - SLT.SPEED_JITTER)): SignToText's frames_per_word. 0 if no text has a word."""
    data = cfg.DATASET
    rates = []
    for text, length in zip(texts, frames, strict=True):
        words = len(tokenize_words(text))
        if words:
            rates.append(ruled_length(int(length), data.MIN_FRAMES, data.MAX_FRAMES) / words)
    return min(rates) * (1 - cfg.SLT.SPEED_JITTER) if rates else 0.0


def evaluator_sizes(cfg: DictConfig) -> dict:
    slt = cfg.SLT
    return {"d_model": slt.D_MODEL, "heads": slt.HEADS, "encoder_layers": slt.ENCODER_LAYERS,
            "decoder_layers": slt.DECODER_LAYERS, "ff_dim": slt.FF_DIM, "dropout": slt.DROPOUT,
            "max_words": slt.MAX_WORDS, "min_frames": cfg.DATASET.MIN_FRAMES,
            "max_frames": cfg.DATASET.MAX_FRAMES}


class TranslatorModule(pl.LightningModule):
    def __init__(self, cfg: DictConfig, model: SignToText):
        super().__init__()
        self.cfg = cfg
        self.model = model
        self.val_pairs: list[tuple[str, str]] = []  # (hypothesis, reference)

    @classmethod
    def from_config(cls, cfg: DictConfig, train_texts: list[str], mean133: np.ndarray,
                    std133: np.ndarray, train_frames: Sequence[int] | None = None) -> TranslatorModule:
        """A fresh evaluator whose vocabulary is the words of the train sentences. With `train_frames` (the
        clips' lengths) and SLT.WORDS_BY_LENGTH, its translations get at most as many words as the fastest
        training signing fits into the clip (SignToText.word_budget)."""
        sizes = evaluator_sizes(cfg)
        if cfg.SLT.WORDS_BY_LENGTH and train_frames is not None:
            sizes["frames_per_word"] = fastest_frames_per_word(train_texts, train_frames, cfg)
        model = SignToText(build_vocabulary(train_texts), mean133, std133, **sizes)
        return cls(cfg, model)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.model(batch["motion"], batch["lengths"], batch["texts"], self.cfg.SLT.LABEL_SMOOTHING)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["texts"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss = self.model(batch["motion"], batch["lengths"], batch["texts"])
        self.log("val/loss", loss, sync_dist=True, batch_size=len(batch["texts"]))
        hypotheses = self.model.translate(batch["motion"], batch["lengths"])
        self.val_pairs.extend(zip(hypotheses, batch["texts"], strict=True))

    def on_validation_epoch_end(self) -> None:
        if not self.val_pairs:
            return
        hypotheses, references = zip(*self.val_pairs, strict=True)
        scores = corpus_scores(list(hypotheses), list(references))
        self.log_dict({f"val/{k}": float(v) for k, v in scores.items() if k != "BLEU4"})
        self.log("val/BLEU4", scores["BLEU4"], prog_bar=True)
        experiment = getattr(self.logger, "experiment", None)
        if self.trainer.is_global_zero and isinstance(experiment, SummaryWriter):
            lines = [f"{h} ← {r}" for h, r in self.val_pairs[:VAL_TEXTS_LOGGED]]  # hypothesis ← reference
            experiment.add_text("val/translations", "  \n".join(lines), self.global_step)
        self.val_pairs.clear()

    def configure_optimizers(self) -> dict:
        return adamw_cosine(self.model.parameters(), self.cfg, int(self.trainer.estimated_stepping_batches))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["sasoke"] = {"stage": "slt", "config": OmegaConf.to_container(self.cfg),
                                "evaluator": self.model.metadata()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = checkpoint.get("sasoke", {})
        last = exp_dir(self.cfg) / "checkpoints" / "last.ckpt"
        if meta.get("stage") != "slt":
            raise CheckpointError(f"cannot resume stage slt from {last}: it is a stage {meta.get('stage')!r} "
                                  f"checkpoint. NAME={self.cfg.NAME} already holds another run; choose a new NAME")
        if meta.get("evaluator", {}).get("vocabulary") != self.model.vocabulary:
            raise CheckpointError(f"cannot resume from {last}: its vocabulary is not the one of the train split "
                                  "now in the cache (the data changed); choose a new NAME")


class MotionTextDataModule(pl.LightningDataModule):
    """Whole normalised clips with their sentences: augmented in train, as recorded in val and test."""

    def __init__(self, cfg: DictConfig, mean133: np.ndarray, std133: np.ndarray):
        super().__init__()
        self.cfg, self.mean133, self.std133 = cfg, mean133, std133

    def dataset(self, split: str) -> MotionDataset | AugmentedMotionText:
        data = self.cfg.DATASET
        clips = load_split(self.cfg, split)
        whole = MotionDataset(clips, self.mean133, self.std133, window=None, min_frames=data.MIN_FRAMES,
                              max_frames=data.MAX_FRAMES)
        if split != "train":
            return whole
        slt = self.cfg.SLT
        return AugmentedMotionText(whole, speed_jitter=slt.SPEED_JITTER, noise=slt.NOISE, time_warp=slt.TIME_WARP)

    def _loader(self, split: str, train: bool, batch_size: int) -> DataLoader:
        workers = self.cfg.TRAIN.NUM_WORKERS
        return DataLoader(self.dataset(split), batch_size=batch_size, shuffle=train, num_workers=workers,
                          persistent_workers=workers > 0, collate_fn=collate_motion)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.cfg.TRAIN.BATCH_SIZE)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.cfg.TEST.BATCH_SIZE)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.cfg.TEST.SPLIT, False, self.cfg.TEST.BATCH_SIZE)
