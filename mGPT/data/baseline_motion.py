"""The motion of the two baselines, and the reference clips they are scored against (scripts/baselines.py and
scripts/back_translate.py score them by the same code as the models).

Mean pose: the train split's mean frame for every frame of the reference. Nearest neighbour: the training clip
whose sentence shares the most (normalised) words with the test sentence.
"""

from __future__ import annotations

import numpy as np

from mGPT.data.arabic import tokenize_words
from mGPT.data.features import features_to_smplx, reference_params
from mGPT.data.prepare import PackedSplit


def reference_clips(split: PackedSplit, min_frames: int = 40, max_frames: int = 400,
                    multiple: int = 4) -> list[np.ndarray]:
    """Each clip as test.py sees it: length rules applied (`multiple` = the tokenizer's frames per code),
    (T, 179)."""
    return [reference_params(split.clip(i), min_frames, max_frames, multiple) for i in range(len(split))]


def nearest_neighbour(text: str, train_words: list[set[str]]) -> int:
    """Index of the first training sentence sharing the most words with `text`."""
    words = set(tokenize_words(text))
    return int(np.argmax([len(words & candidate) for candidate in train_words]))


def nearest_neighbour_clips(texts: list[str], train: PackedSplit, min_frames: int = 40,
                            max_frames: int = 400, multiple: int = 4) -> list[np.ndarray]:
    """For each text, the (T, 179) training clip of its nearest-neighbour sentence."""
    train_words = [set(tokenize_words(t)) for t in train.texts]
    train_refs = reference_clips(train, min_frames, max_frames, multiple)
    return [train_refs[nearest_neighbour(t, train_words)] for t in texts]


def mean_pose_clips(mean133: np.ndarray, references: list[np.ndarray]) -> list[np.ndarray]:
    """The mean frame (from the 133-dim train mean) repeated for as many frames as each reference."""
    mean_frame = features_to_smplx(np.asarray(mean133, dtype=np.float32))  # (179,)
    return [np.repeat(mean_frame[None], len(ref), axis=0) for ref in references]
