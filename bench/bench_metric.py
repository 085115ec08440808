"""Benchmark DTW-MPJPE against SOKE-style per-cell Python loops, with both alignments, on the same pairs.

SOKE's released test code scores with root alignment (its numbers are DTW-MPJPE, whatever the keys
say): one Python call per frame pair that translates the generated frame by the root joint and averages
the joint distances, then the DTW recursion as a Python double loop, one sequence pair at a time. The
Procrustes loop does the same with an SVD per frame pair. Both loops (SOKE_LOOPS) run here in one process
with ours on the same body-joint sequences (neck, shoulders, elbows, wrists; the pelvis is the root), made
by posing smooth random arm motions with the skeleton kinematics; the generated side is a time-warped,
perturbed copy of the reference, as a trained model would produce.

    python bench/bench_metric.py [--pairs 100] [--threads 1]

Ours is timed one pair at a time (dtw_mpjpe) and batched (frame_costs per pair, then dtw_batch, as
test.py scores through SignDTWMetrics). Every score and path length must equal the loop's (1e-9 m). For
root alignment the cost matrix and the recursion are also timed alone, next to the other exact ways found
to compute them. Times are CPU seconds of this process (one torch thread): on a shared machine wall time
mostly measures waiting; wall times are printed too. The first call of the compiled parts (numba compiles
them once per machine and caches them) is a warm-up, not timed.

The last line printed is `speedup=<loop time / batched time>` for root alignment.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from soke_style_dtw import loop_dtw, loop_dtw_mpjpe
from tqdm import tqdm

from mGPT.kinematics import build_kinematics
from mGPT.layout import FRAME_DIMS
from mGPT.metrics.dtw import _accumulate, dtw_batch, dtw_mpjpe, dtw_mpjpe_batch, frame_costs

ARM_JOINTS = (12, 13, 14, 15, 16, 17, 18, 19, 20, 21)  # SMPL-X neck, collars, head, shoulders, elbows, wrists
ALIGNMENTS = ("root", "procrustes")
TOLERANCE = 1e-9  # metres


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


def make_pairs(pairs: int, pred_frames: int, ref_frames: int, seed: int) -> tuple[list, list, int, list[int]]:
    """Generated and reference joints ((T1, J, 3), (T2, J, 3) float64 each), the body's root and joints."""
    rng = np.random.default_rng(seed)
    kinematics = build_kinematics("skeleton")
    body = kinematics.parts["body"]
    preds, refs = [], []
    with torch.no_grad():
        for _ in range(pairs):
            reference = smooth_arm_motion(ref_frames, rng)
            generated = time_warp(reference, pred_frames, rng)
            refs.append(kinematics(torch.as_tensor(reference)).numpy())
            preds.append(kinematics(torch.as_tensor(generated)).numpy())
    return preds, refs, body.root, list(body.joints)


def timed(run: Callable[[], object]) -> tuple[object, float, float]:
    """(result, CPU seconds, wall seconds) of one call."""
    start, start_cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.process_time() - start_cpu, time.perf_counter() - start


def per_call(run: Callable[[], object], repeats: int) -> float:
    """CPU seconds per call over `repeats` calls, after one untimed call."""
    run()
    start = time.process_time()
    for _ in range(repeats):
        run()
    return (time.process_time() - start) / repeats


def root_parts(preds: list, refs: list, root: int, joints: list[int], repeats: int = 20) -> dict:
    """CPU seconds per pair of the root cost matrix and of the recursion: ours and the alternatives."""
    pred, ref = torch.as_tensor(preds[0]), torch.as_tensor(refs[0])
    cost = frame_costs(pred, ref, "root", root, joints)
    pred_part = (pred - pred[:, root : root + 1])[:, joints].transpose(0, 1)  # (K, T1, 3)
    ref_part = (ref - ref[:, root : root + 1])[:, joints].transpose(0, 1)  # (K, T2, 3)

    def cdist() -> torch.Tensor:  # exact: no |a|^2 + |b|^2 - 2ab shortcut
        return torch.cdist(pred_part, ref_part, compute_mode="donot_use_mm_for_euclid_dist").mean(0)

    def broadcast() -> torch.Tensor:
        return torch.linalg.vector_norm(pred_part[:, :, None] - ref_part[:, None], dim=-1).mean(0)

    for name, alternative in (("torch.cdist", cdist), ("broadcast norm", broadcast)):
        gap = float((alternative() - cost).abs().max())
        if gap > TOLERANCE:
            raise AssertionError(f"{name} root costs differ from ours by {gap:.3e}")
    cost_rows = cost.numpy()
    return {
        "cost": {"ours (compiled loop)": per_call(lambda: frame_costs(pred, ref, "root", root, joints), repeats),
                 "torch.cdist, exact mode": per_call(cdist, repeats),
                 "torch broadcast + vector_norm": per_call(broadcast, max(1, repeats // 4))},
        "dp": {"ours (compiled, two rows)": per_call(lambda: _accumulate(cost_rows), repeats),
               "dtw_batch call (conversion + DP)": per_call(lambda: dtw_batch([cost]), repeats),
               "Python loop DP alone": per_call(lambda: loop_dtw(cost_rows.tolist()), 1)},
        "shape": tuple(cost.shape),
    }


def measure(pairs: int = 100, pred_frames: int = 200, ref_frames: int = 210, seed: int = 0) -> dict:
    """Per alignment: CPU and wall seconds of the loops, of ours one pair at a time and batched; the gaps."""
    preds, refs, root, joints = make_pairs(pairs, pred_frames, ref_frames, seed)
    results: dict = {"pairs": pairs, "joints": len(joints), "root_parts": root_parts(preds, refs, root, joints)}
    for align in ALIGNMENTS:
        dtw_mpjpe_batch(preds[:1], refs[:1], align, root, joints)  # warm-up: compiled code, allocator
        batched, batched_cpu, batched_wall = timed(lambda a=align: dtw_mpjpe_batch(preds, refs, a, root, joints))
        single, single_cpu, single_wall = timed(lambda a=align: [dtw_mpjpe(p, r, a, root, joints)
                                                                for p, r in zip(preds, refs, strict=True)])
        looped, loop_cpu, loop_wall = timed(lambda a=align: [
            loop_dtw_mpjpe(p, r, a, root, joints)
            for p, r in tqdm(zip(preds, refs, strict=True), total=pairs, desc=f"SOKE-style loop, {a}")])
        totals, lengths = batched
        loop_totals = np.array([total for total, _ in looped])
        gap = max(float(np.abs(totals - loop_totals).max()), float(np.abs(np.array(single) - loop_totals).max()))
        if gap > TOLERANCE or lengths.tolist() != [length for _, length in looped]:
            raise AssertionError(f"{align}: ours and the loop disagree by {gap:.3e} m or in path lengths")
        results[align] = {"batched_cpu_s": batched_cpu, "batched_s": batched_wall, "single_cpu_s": single_cpu,
                          "single_s": single_wall, "loop_cpu_s": loop_cpu, "loop_s": loop_wall,
                          "mean_m": float(totals.mean()), "max_difference": gap}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--pred-frames", type=int, default=200)
    parser.add_argument("--ref-frames", type=int, default=210)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1; the loops and the compiled parts use one core)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    result = measure(args.pairs, args.pred_frames, args.ref_frames, args.seed)
    print(f"{args.pairs} pairs of {args.pred_frames} x {args.ref_frames} frames, {result['joints']} body joints, "
          f"torch threads={torch.get_num_threads()}; CPU ms per pair (wall ms in brackets)")
    for align in ALIGNMENTS:
        r = result[align]
        loop = r["loop_cpu_s"]

        def ms(cpu: float, wall: float) -> str:
            return f"{1000 * cpu / args.pairs:8.2f} ({1000 * wall / args.pairs:.2f})"

        print(f"{align:>10}: SOKE-style loop {ms(loop, r['loop_s'])}, one pair at a time "
              f"{ms(r['single_cpu_s'], r['single_s'])} = {loop / r['single_cpu_s']:.0f}x, batched "
              f"{ms(r['batched_cpu_s'], r['batched_s'])} = {loop / r['batched_cpu_s']:.0f}x; mean "
              f"{r['mean_m']:.6f} m, max |ours - loop| {r['max_difference']:.1e} m, same path lengths")
    parts = result["root_parts"]
    print(f"root alignment, one {parts['shape'][0]} x {parts['shape'][1]} pair, CPU ms:")
    for stage in ("cost", "dp"):
        print(f"  {stage:>4}: " + ", ".join(f"{name} {1000 * s:.3f}" for name, s in parts[stage].items()))
    root = result["root"]
    print(f"speedup={root['loop_cpu_s'] / root['batched_cpu_s']:.1f}")


if __name__ == "__main__":
    main()
