"""The back-translation evaluator: a sign-to-text transformer that reads motion and writes Arabic words.

Motion (B, T, 133), normalised with the train statistics that the model stores, is embedded per frame,
downsampled 4x in time by two strided convolutions (one step = 4 frames, as the tokenizer's codes) and
read by a transformer encoder; a transformer decoder writes the sentence word by word.

Words, not sub-word pieces: the vocabulary is the set of normalised words (mGPT.data.arabic) of the
train sentences. Scores are computed on exactly those words, so the decoder's unit is the scoring unit;
the model needs no mBART folder, only its own checkpoint; and a sign-to-text model cannot say a word it
never saw signed anyway, so an open sub-word vocabulary would buy nothing. A test word that train lacks
becomes <unk> in the targets and can never be produced: it counts as a miss, as it should.

`load_evaluator` rebuilds the model from one stage `slt` checkpoint (weights, vocabulary, statistics).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mGPT.archs.deto import CONFIG_SAFE_GLOBALS
from mGPT.data.arabic import tokenize_words
from mGPT.data.features import normalize
from mGPT.errors import CheckpointError
from mGPT.layout import FEATURE_DIMS

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
DOWNSAMPLE = 4  # two stride-2 convolutions
OUR_PREFIX = "model."


def build_vocabulary(texts: list[str]) -> list[str]:
    """The special tokens, then every normalised word of `texts`, sorted (the same texts, the same ids)."""
    words = sorted({word for text in texts for word in tokenize_words(text)})
    return [*SPECIALS, *words]


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """(length, dim) fixed positions; clips of any length up to `length` get the same encoding."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


class SignToText(nn.Module):
    """Sign-language translation from 133-dim features to normalised Arabic words."""

    def __init__(self, vocabulary: list[str], mean133: Any, std133: Any, d_model: int = 256, heads: int = 4,
                 encoder_layers: int = 3, decoder_layers: int = 2, ff_dim: int = 1024, dropout: float = 0.1,
                 max_words: int = 32, min_frames: int = 40, max_frames: int = 400, frames_per_word: float = 0.0):
        super().__init__()
        if list(vocabulary[: len(SPECIALS)]) != list(SPECIALS):
            raise ValueError(f"vocabulary must start with {SPECIALS}, got {vocabulary[:4]}")
        self.vocabulary = list(vocabulary)
        self.word_ids = {word: i for i, word in enumerate(self.vocabulary)}
        self.sizes = {"d_model": d_model, "heads": heads, "encoder_layers": encoder_layers,
                        "decoder_layers": decoder_layers, "ff_dim": ff_dim, "dropout": dropout,
                        "max_words": max_words, "min_frames": min_frames, "max_frames": max_frames,
                        "frames_per_word": frames_per_word}
        # min_frames and max_frames are the length rules of the clips it learnt from: readers apply them too
        if not frames_per_word >= 0:
            raise ValueError(f"frames_per_word must be >= 0 (0 = no bound), got {frames_per_word}")
        self.max_words = max_words
        self.frames_per_word = float(frames_per_word)
        mean = torch.as_tensor(np.asarray(mean133, dtype=np.float32)).reshape(-1)
        std = torch.as_tensor(np.asarray(std133, dtype=np.float32)).reshape(-1)
        if mean.numel() != FEATURE_DIMS or std.numel() != FEATURE_DIMS:
            raise ValueError(f"mean and std must have {FEATURE_DIMS} numbers each, got {mean.numel()}, {std.numel()}")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

        self.frame_embedding = nn.Sequential(nn.Linear(FEATURE_DIMS, d_model), nn.GELU())
        self.downsample = nn.Sequential(  # (B, d, T) -> (B, d, T/4)
            nn.Conv1d(d_model, d_model, kernel_size=5, stride=2, padding=2), nn.GELU(),
            nn.Conv1d(d_model, d_model, kernel_size=5, stride=2, padding=2), nn.GELU(),
        )
        steps = max_frames // DOWNSAMPLE + 1
        self.register_buffer("positions", sinusoidal_positions(max(steps, max_words + 2), d_model), persistent=False)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d_model, heads, ff_dim, dropout, batch_first=True, norm_first=True),
            encoder_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.word_embedding = nn.Embedding(len(self.vocabulary), d_model, padding_idx=0)
        # the output layer is this matrix too: std d^-1/2 gives unit-scale logits, x sqrt(d) unit-scale inputs
        nn.init.normal_(self.word_embedding.weight, std=d_model**-0.5)
        with torch.no_grad():
            self.word_embedding.weight[0].zero_()  # the padding row, as padding_idx promises
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(d_model, heads, ff_dim, dropout, batch_first=True, norm_first=True),
            decoder_layers, norm=nn.LayerNorm(d_model))
        self.dropout = nn.Dropout(dropout)
        self.scale = math.sqrt(d_model)

    # ---------------------------------------------------------------- text

    def encode_text(self, text: str) -> list[int]:
        """Word ids of `text`, cut to max_words, then </s>."""
        unk = self.word_ids[UNK]
        ids = [self.word_ids.get(word, unk) for word in tokenize_words(text)][: self.max_words]
        return [*ids, self.word_ids[EOS]]

    def decode_ids(self, ids: list[int]) -> str:
        """Words up to the first </s>; padding and <s> are skipped, <unk> never comes out of `translate`."""
        words = []
        for i in ids:
            if i == self.word_ids[EOS]:
                break
            if i >= len(SPECIALS) or i == self.word_ids[UNK]:
                words.append(self.vocabulary[i])
        return " ".join(words)

    # ---------------------------------------------------------------- network

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        return normalize(features, self.mean, self.std)

    def encode_motion(self, motion: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, 133) normalised motion, (B,) frames -> memory (B, S, d) and its padding mask (B, S), S = ceil(T/4)."""
        x = self.frame_embedding(motion)  # (B, T, d)
        frames = torch.arange(motion.shape[1], device=motion.device)
        x = x * (frames[None, :] < lengths[:, None])[..., None]  # padding must not leak through the kernels
        x = self.downsample(x.transpose(1, 2)).transpose(1, 2)  # (B, S, d)
        steps = torch.div(lengths + DOWNSAMPLE - 1, DOWNSAMPLE, rounding_mode="floor")  # (B,)
        padding = torch.arange(x.shape[1], device=x.device)[None, :] >= steps[:, None]  # (B, S)
        x = self.dropout(x + self.positions[: x.shape[1]])
        return self.encoder(x, src_key_padding_mask=padding), padding

    def decode_logits(self, memory: torch.Tensor, memory_padding: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Decoder inputs (B, L) word ids, starting with <s> -> next-word logits (B, L, V)."""
        length = inputs.shape[1]
        x = self.dropout(self.word_embedding(inputs) * self.scale + self.positions[:length])  # (B, L, d)
        # True = may not attend, the same kind as the padding masks (mixing float and bool masks is deprecated)
        causal = torch.ones(length, length, dtype=torch.bool, device=inputs.device).triu(1)  # (L, L)
        x = self.decoder(x, memory, tgt_mask=causal, tgt_is_causal=True, tgt_key_padding_mask=inputs == 0,
                         memory_key_padding_mask=memory_padding)
        return x @ self.word_embedding.weight.T  # tied output layer: (B, L, V)

    def targets(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder inputs (B, L) = <s> + words, labels (B, L) = words + </s>; 0 pads both."""
        encoded = [self.encode_text(text) for text in texts]
        longest = max(len(ids) for ids in encoded)
        inputs = torch.zeros(len(texts), longest, dtype=torch.long)
        labels = torch.zeros(len(texts), longest, dtype=torch.long)
        for row, ids in enumerate(encoded):
            inputs[row, : len(ids)] = torch.tensor([self.word_ids[BOS], *ids[:-1]])
            labels[row, : len(ids)] = torch.tensor(ids)
        return inputs.to(device), labels.to(device)

    def forward(self, motion: torch.Tensor, lengths: torch.Tensor, texts: list[str],
                label_smoothing: float = 0.0) -> torch.Tensor:
        """Teacher-forced cross-entropy over the words and </s> of `texts` (padding ignored)."""
        memory, padding = self.encode_motion(motion, lengths)
        inputs, labels = self.targets(texts, motion.device)
        logits = self.decode_logits(memory, padding, inputs)  # (B, L, V)
        return nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=0,
                                           label_smoothing=label_smoothing)

    def word_budget(self, lengths: torch.Tensor) -> torch.Tensor:
        """The most words (B,) a clip of `lengths` frames (B,) may be read as: max_words, and with frames_per_word
        f > 0 also ceil(frames / f), at least 1. f is the fewest frames per word of any training clip at the
        fastest training speed (TranslatorModule.from_config): a clip cannot say words faster than any signer
        the evaluator learnt from, so a decoder that runs on, writing one word again and again, is stopped there.
        """
        budget = torch.full_like(lengths, self.max_words)
        if self.frames_per_word > 0:
            by_length = torch.ceil(lengths.double() / self.frames_per_word).long().clamp(min=1)
            budget = torch.minimum(budget, by_length)
        return budget

    @torch.no_grad()
    def translate(self, motion: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Greedy decoding of (B, T, 133) normalised motion; each sample stops at its own </s>, or after
        word_budget(lengths) words."""
        memory, padding = self.encode_motion(motion, lengths)
        batch = motion.shape[0]
        inputs = torch.full((batch, 1), self.word_ids[BOS], dtype=torch.long, device=motion.device)
        done = torch.zeros(batch, dtype=torch.bool, device=motion.device)
        budget = self.word_budget(lengths.to(motion.device))  # (B,)
        for written in range(self.max_words + 1):
            logits = self.decode_logits(memory, padding, inputs)[:, -1]  # (B, V)
            logits[:, [self.word_ids[PAD], self.word_ids[BOS], self.word_ids[UNK]]] = -torch.inf
            logits[written >= budget] = -torch.inf  # these have said all they may: only </s> is left
            logits[written >= budget, self.word_ids[EOS]] = 0.0
            step = logits.argmax(-1).masked_fill(done, self.word_ids[EOS])  # (B,)
            inputs = torch.cat([inputs, step[:, None]], dim=1)
            done |= step == self.word_ids[EOS]
            if done.all():
                break
        return [self.decode_ids(row[1:].tolist()) for row in inputs.cpu()]

    # ---------------------------------------------------------------- checkpoints

    def metadata(self) -> dict:
        """What a stage `slt` checkpoint stores next to the weights to rebuild this model on its own."""
        return {"vocabulary": self.vocabulary, "sizes": dict(self.sizes),
                "mean133": self.mean.cpu().tolist(), "std133": self.std.cpu().tolist()}

    @classmethod
    def from_metadata(cls, meta: dict) -> SignToText:
        return cls(meta["vocabulary"], meta["mean133"], meta["std133"], **meta["sizes"])


def load_evaluator(path: str | Path, map_location: str | torch.device = "cpu") -> SignToText:
    """The sign-to-text model of a stage `slt` checkpoint (train.py --cfg configs/slt.yaml), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"back-translation evaluator not found: {path}. Train one with "
                              "python train.py --cfg configs/slt.yaml, or give its checkpoint's path")
    try:
        with torch.serialization.safe_globals(CONFIG_SAFE_GLOBALS):  # tensors and plain data, never code
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a file it refuses or cannot parse
        raise CheckpointError(f"{path} is not a readable evaluator checkpoint ({type(err).__name__}: "
                              f"{str(err)[:200]})") from err
    meta = checkpoint.get("sasoke", {}) if isinstance(checkpoint, dict) else {}
    if meta.get("stage") != "slt" or "evaluator" not in meta:
        raise CheckpointError(f"{path} is not a back-translation evaluator (stage 'slt') checkpoint "
                              f"(stage {meta.get('stage')!r}); give experiments/mgpt/<NAME>/checkpoints/best.ckpt "
                              "of a run of configs/slt.yaml")
    # its layers' random initialisation, overwritten at once, must not move the caller's random stream: a
    # generator built after loading it would start from other weights than one built without it
    with torch.random.fork_rng(devices=[]):
        model = SignToText.from_metadata(meta["evaluator"])
    state = {k.removeprefix(OUR_PREFIX): v for k, v in checkpoint["state_dict"].items() if k.startswith(OUR_PREFIX)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the evaluator weights do not fit its stored sizes: {err}") from err
    return model.eval()
