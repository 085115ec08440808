"""Benchmark DTW-MPJPE-PA: the project's batched implementation against a plain per-cell Python loop.

The loop is how SOKE scores: one Python call per frame pair computing its Procrustes cost with small
numpy operations, then the DTW recursion as a Python double loop, one sequence pair at a time. Both
run here in one process on the same body-joint sequences (neck, shoulders, elbows, wrists), made by
posing smooth random arm motions with the skeleton kinematics; the generated side is a time-warped,
perturbed copy of the reference, as a trained model would produce.

    python bench/bench_metric.py [--pairs 100]

The last line printed is `speedup=<loop time / batched time>`.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from soke_style_dtw import loop_dtw_mpjpe
from tqdm import tqdm

from mGPT.kinematics import build_kinematics
from mGPT.layout import FRAME_DIMS
from mGPT.metrics.dtw import dtw_mpjpe_batch

ARM_JOINTS = (12, 13, 14, 15, 16, 17, 18, 19, 20, 21)  # SMPL-X neck, collars, head, shoulders, elbows, wrists


def smooth_arm_motion(frames: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, 179) SMPL-X parameters: arms lowered in front of the body, each joint on a few sines."""
    params = np.zeros((frames, FRAME_DIMS))
    t = np.linspace(0.0, 1.0, frames)[:, None]  # (T, 1)
    for joint in ARM_JOINTS:
        offset = 3 + 3 * (joint - 1)  # body pose holds joints 1..21
        rest = rng.normal(scale=0.3, size=3)
        if joint in (16, 17):  # shoulders: bring the arms down from the T-pose
            rest[2] += -1.2 if joint == 16 else 1.2
        amplitude = rng.normal(scale=0.4, size=3)
        frequency = rng.uniform(0.5, 3.0, size=3)
        phase = rng.uniform(0.0, 2 * math.pi, size=3)
        params[:, offset : offset + 3] = rest + amplitude * np.sin(2 * math.pi * frequency * t + phase)
    return params


def time_warp(params: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """Resample (T, D) to `frames` along a random monotone time map, plus a little smooth noise."""
    source = np.linspace(0.0, 1.0, frames) ** rng.uniform(0.8, 1.25) * (len(params) - 1)
    warped = np.stack([np.interp(source, np.arange(len(params)), column) for column in params.T], axis=1)
    return warped + 0.05 * smooth_arm_motion(frames, rng)


def make_pairs(pairs: int, pred_frames: int, ref_frames: int, seed: int) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    kinematics = build_kinematics("skeleton")
    body = kinematics.parts["body"].joints
    preds, refs = [], []
    with torch.no_grad():
        for _ in range(pairs):
            reference = smooth_arm_motion(ref_frames, rng)
            generated = time_warp(reference, pred_frames, rng)
            refs.append(kinematics(torch.as_tensor(reference))[:, body].numpy())  # (T2, 7, 3)
            preds.append(kinematics(torch.as_tensor(generated))[:, body].numpy())  # (T1, 7, 3)
    return preds, refs


def measure(pairs: int = 100, pred_frames: int = 200, ref_frames: int = 210, seed: int = 0) -> dict:
    """Time both implementations on the same pairs; wall and CPU seconds of each, and the scores' gap."""
    preds, refs = make_pairs(pairs, pred_frames, ref_frames, seed)
    dtw_mpjpe_batch(preds[:1], refs[:1], align="procrustes")  # warm-up: first-call set-up is not per pair
    # wall clock is what a user waits; CPU time of this process is the steadier number on a shared machine
    start, start_cpu = time.perf_counter(), time.process_time()
    batched, _ = dtw_mpjpe_batch(preds, refs, align="procrustes")
    batched_seconds, batched_cpu = time.perf_counter() - start, time.process_time() - start_cpu

    start, start_cpu = time.perf_counter(), time.process_time()
    looped = np.array([loop_dtw_mpjpe(p, r, "procrustes")[0]
                       for p, r in tqdm(zip(preds, refs, strict=True), total=len(preds), desc="python loop")])
    loop_seconds, loop_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    max_difference = float(np.abs(batched - looped).max())
    if max_difference > 1e-6:
        raise AssertionError(f"batched and loop DTW-MPJPE-PA disagree by {max_difference:.3e} m")
    return {"pairs": pairs, "batched_s": batched_seconds, "batched_cpu_s": batched_cpu,
            "loop_s": loop_seconds, "loop_cpu_s": loop_cpu, "mean_m": float(batched.mean()),
            "max_difference": max_difference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--pred-frames", type=int, default=200)
    parser.add_argument("--ref-frames", type=int, default=210)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the batched side (the loop uses one core); on a busy "
                             "machine more threads mostly add synchronisation overhead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"{args.pairs} pairs of {args.pred_frames} x {args.ref_frames} frames, 7 body joints, "
          f"torch threads={torch.get_num_threads()}")
    result = measure(args.pairs, args.pred_frames, args.ref_frames, args.seed)
    print(f"batched: {result['batched_s']:.3f} s wall, {result['batched_cpu_s']:.3f} s cpu")
    print(f"python loop: {result['loop_s']:.3f} s wall, {result['loop_cpu_s']:.3f} s cpu")
    print(f"mean DTW-MPJPE-PA {result['mean_m']:.6f} m, "
          f"max |batched - loop| = {result['max_difference']:.3e}")
    print(f"cpu-time speedup {result['loop_cpu_s'] / result['batched_cpu_s']:.1f}")
    print(f"speedup={result['loop_s'] / result['batched_s']:.1f}")


if __name__ == "__main__":
    main()
