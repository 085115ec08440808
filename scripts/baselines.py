"""Baselines scored by the same metric code as test.py, to read the model's numbers against.

    python scripts/baselines.py --cfg configs/demo/deto.yaml   # stage 1: mean pose reconstruction
    python scripts/baselines.py --cfg configs/demo/soke.yaml   # stage 2: mean pose, nearest neighbour

Mean pose: the train split's mean frame for every frame. Nearest neighbour: the training clip whose
sentence shares the most (normalised) words with the test sentence. Writes
results/mgpt/<NAME>/test_rank_0/baselines.json.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch
from omegaconf import DictConfig

from mGPT.config import cache_dir, evaluation_dir, parse_args
from mGPT.data.arabic import tokenize_words
from mGPT.data.features import features_to_smplx, reference_params
from mGPT.data.prepare import PackedSplit, load_stats
from mGPT.errors import run_cli
from mGPT.files import writable_dir
from mGPT.kinematics import Kinematics, build_kinematics
from mGPT.metrics.sign_metrics import ReconstructionMetrics, SignDTWMetrics
from mGPT.models.datamodule import load_split


def reference_clips(cfg: DictConfig, split: PackedSplit) -> list[np.ndarray]:
    """Each clip as test.py sees it: length rules applied, (T, 179)."""
    data = cfg.DATASET
    frames_per_code = 2 ** cfg.VQ.BODY.DOWN_T  # the configured tokenizer's (DETO refuses parts that differ)
    return [reference_params(split.clip(i), data.MIN_FRAMES, data.MAX_FRAMES, frames_per_code)
            for i in range(len(split))]


def nearest_neighbour(text: str, train_words: list[set[str]]) -> int:
    words = set(tokenize_words(text))
    return int(np.argmax([len(words & candidate) for candidate in train_words]))


def joints(kinematics: Kinematics, params: np.ndarray) -> torch.Tensor:
    return kinematics(torch.as_tensor(params, dtype=torch.float32))


def reconstruction_baseline(kinematics: Kinematics, mean_frame: np.ndarray, refs: list[np.ndarray]) -> dict:
    metric = ReconstructionMetrics(kinematics.parts)
    for ref in refs:
        pred = np.repeat(mean_frame[None], len(ref), axis=0)
        metric.update(joints(kinematics, pred)[None], joints(kinematics, ref)[None], torch.tensor([len(ref)]))
    return {k: float(v) for k, v in metric.compute().items()}


def dtw_baseline(kinematics: Kinematics, preds: list[np.ndarray], refs: list[np.ndarray]) -> dict:
    metric = SignDTWMetrics(kinematics.parts)
    metric.update(torch.arange(len(refs)), [joints(kinematics, p) for p in preds],
                  [joints(kinematics, r) for r in refs])
    return {k: float(v) for k, v in metric.compute().items() if torch.is_tensor(v)}


def main() -> None:
    cfg = parse_args(__doc__.splitlines()[0])
    torch.set_grad_enabled(False)
    kinematics = build_kinematics(cfg.KINEMATICS.BACKEND, cfg.KINEMATICS.SMPLX_DIR)
    stats = load_stats(cache_dir(cfg))
    mean_frame = features_to_smplx(stats["mean133"].astype(np.float32))  # (179,)
    test = load_split(cfg, cfg.TEST.SPLIT)
    refs = reference_clips(cfg, test)
    if cfg.STAGE == "vae":
        results = {"mean_pose": reconstruction_baseline(kinematics, mean_frame, refs)}
        unit = "mm, over all frames"
    else:
        train = load_split(cfg, "train")
        train_words = [set(tokenize_words(t)) for t in train.texts]
        neighbours = [nearest_neighbour(t, train_words) for t in test.texts]
        train_refs = reference_clips(cfg, train)
        results = {
            "mean_pose": dtw_baseline(kinematics, [np.repeat(mean_frame[None], len(r), 0) for r in refs], refs),
            "nearest_neighbour": dtw_baseline(kinematics, [train_refs[n] for n in neighbours], refs),
        }
        unit = "DTW accumulated cost in m; *_mm = mm per path step"
    results["kinematics_backend"] = kinematics.backend
    out = writable_dir(evaluation_dir(cfg), "results") / "baselines.json"
    out.write_text(json.dumps(results, indent=1))
    for name, scores in results.items():
        if isinstance(scores, dict):
            print(f"\n{name} ({unit})")
            for key, value in sorted(scores.items()):
                print(f"  {key:<28}{value:>12.4f}")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
