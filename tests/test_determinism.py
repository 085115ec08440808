"""Same seed, same config, same machine: two runs of the whole (toy) chain give the same test scores.

Each run is a fresh set of processes, so anything seeded per process (hash randomisation, worker
seeds) or read in file-system order would show up here. When the scores differ, the message names the
first artefact of the chain that already differed. Both runs use one torch thread: a different thread
count may sum floats in another order, which is not what this test is about.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_chain import TinyChain, build_chain

pytestmark = pytest.mark.slow


def same_file(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


def same_weights(a: Path, b: Path) -> bool:
    """Checkpoints hold paths and times that differ between runs; their weights must not."""
    first = torch.load(a, map_location="cpu", weights_only=False)["state_dict"]
    second = torch.load(b, map_location="cpu", weights_only=False)["state_dict"]
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def same_npz(a: Path, b: Path) -> bool:
    with np.load(a) as first, np.load(b) as second:
        return first.files == second.files and all(np.array_equal(first[k], second[k]) for k in first.files)


def same_stats(a: Path, b: Path) -> bool:
    """stats.npz also names the cache build it came from, a hash that includes file times."""
    with np.load(a) as first, np.load(b) as second:
        return all(np.array_equal(first[k], second[k]) for k in ("mean179", "std179", "mean133", "std133"))


def first_difference(one: TinyChain, two: TinyChain) -> str:
    """The chain's artefacts in the order they are made; the first that differs between the runs."""
    stages = [
        ("synthetic train CSV", same_file,
         Path("data/train/re_aligned/isharah_realigned_train_preprocessed_fps.csv")),
        ("packed train frames", same_file, Path("data/_cache/train/frames.npy")),
        ("train statistics", same_stats, Path("data/_cache/stats.npz")),
        ("tokenizer weights", same_weights, one.tokenizer_ckpt.relative_to(one.root)),
        ("motion codes", same_npz, Path("data/_cache/codes.npz")),
        ("tiny mBART weights", same_file, Path("mbart/model.safetensors")),
        ("sign dictionary", same_file, Path("data/_cache/sign_dictionary.json")),
        ("generator weights", same_weights, one.generator_ckpt.relative_to(one.root)),
    ]
    for name, same, relative in stages:
        if not same(one.root / relative, two.root / relative):
            return f"{name} ({relative}) already differ"
    return "every artefact before the test scores is equal"


def test_two_runs_of_the_chain_score_the_same(tmp_path: Path) -> None:
    one = build_chain(tmp_path / "one")
    two = build_chain(tmp_path / "two")
    scores_one = json.loads(one.scores.read_text(encoding="utf-8"))
    scores_two = json.loads(two.scores.read_text(encoding="utf-8"))
    assert len(scores_one) == 6  # every clip of the small sample's test split was scored
    assert scores_one == scores_two, first_difference(one, two)
