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

from mGPT.config import cache_dir, evaluation_dir, parse_args
from mGPT.data.baseline_motion import mean_pose_clips, nearest_neighbour_clips, reference_clips
from mGPT.data.features import features_to_smplx
from mGPT.data.prepare import load_stats
from mGPT.errors import run_cli
from mGPT.files import writable_dir
from mGPT.kinematics import Kinematics, build_kinematics
from mGPT.metrics.sign_metrics import ReconstructionMetrics, SignDTWMetrics
from mGPT.models.datamodule import load_split


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


@torch.no_grad()  # inference only; a decorator, so the grad mode of a caller in the same process is restored
def main() -> None:
    cfg = parse_args(__doc__.splitlines()[0])
    kinematics = build_kinematics(cfg.KINEMATICS.BACKEND, cfg.KINEMATICS.SMPLX_DIR)
    stats = load_stats(cache_dir(cfg))
    mean_frame = features_to_smplx(stats["mean133"].astype(np.float32))  # (179,)
    test = load_split(cfg, cfg.TEST.SPLIT)
    # the configured tokenizer's frames per code (DETO refuses parts that differ)
    lengths = cfg.DATASET.MIN_FRAMES, cfg.DATASET.MAX_FRAMES, 2 ** cfg.VQ.BODY.DOWN_T
    refs = reference_clips(test, *lengths)
    if cfg.STAGE == "vae":
        results = {"mean_pose": reconstruction_baseline(kinematics, mean_frame, refs)}
        unit = "mm, over all frames"
    else:
        neighbours = nearest_neighbour_clips(test.texts, load_split(cfg, "train"), *lengths)
        results = {
            "mean_pose": dtw_baseline(kinematics, mean_pose_clips(stats["mean133"], refs), refs),
            "nearest_neighbour": dtw_baseline(kinematics, neighbours, refs),
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
