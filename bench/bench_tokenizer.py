"""Training speed and peak memory of the full DETO tokenizer (three VQ-VAEs at SOKE's sizes, configs/vq/).

One step = forward + smooth-L1 and commitment loss + backward + AdamW step, on random normalised features.

    python bench/bench_tokenizer.py --steps 5 --device cpu
    python bench/bench_tokenizer.py --device cuda          # bf16 autocast off and on
    python bench/bench_tokenizer.py --json ...             # one JSON line per result (bench/run_all.py)

Peak memory: on CUDA, torch.cuda.max_memory_allocated (tensors only, not the caching allocator's slack).
On CPU torch keeps no peak counter, so the table shows how far the process's peak resident set
(resource.getrusage ru_maxrss) grew during the run; the peak is process-wide, so when several precisions
run on CPU only the first row's number is the whole cost of that run.
"""

import argparse
import json
import resource
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from mGPT.archs.deto import DETO
from mGPT.config import load_config, vq_kwargs
from mGPT.layout import FEATURE_DIMS, PARTS

STAGE1_CFG = "configs/deto.yaml"  # SOKE's sizes (VQ from configs/vq/) and commitment weight
WARMUP_STEPS = 2  # the first step initialises the codebooks and warms up kernels: not timed


@dataclass
class Result:
    device: str
    precision: str
    steps_per_s: float
    peak_mib: float
    memory_method: str
    n_params: int


def build_deto(width: int) -> DETO:
    """DETO with the configured VQ sizes, `width` channels and code dimensions."""
    sizes = vq_kwargs(load_config(STAGE1_CFG))
    parts = [{**sizes[part], "code_dim": width, "width": width} for part in PARTS]
    return DETO(*parts, torch.zeros(FEATURE_DIMS), torch.ones(FEATURE_DIMS))


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run(device: str, bf16: bool, steps: int, batch: int, frames: int, width: int) -> Result:
    rss_before = max_rss_mib()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    deto = build_deto(width).to(device).train()
    commit_weight = load_config(STAGE1_CFG).LOSS.COMMIT_WEIGHT
    optimizer = torch.optim.AdamW(deto.parameters(), lr=2e-4, betas=(0.9, 0.99))
    motion = torch.randn(batch, frames, FEATURE_DIMS, device=device)  # (B, T, 133) normalised features
    precision = "bf16 autocast" if bf16 else "fp32"

    def step() -> None:
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            out = deto(motion)
            recon_loss = F.smooth_l1_loss(out["recon"].float(), motion)
            commit = sum(out[f"commit_{part}"] for part in PARTS)
            loss = recon_loss + commit_weight * commit
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(WARMUP_STEPS):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in tqdm(range(steps), desc=f"{device} {precision}", leave=False):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start

    if device == "cuda":
        peak, method = torch.cuda.max_memory_allocated() / 2**20, "cuda max_memory_allocated"
    else:
        peak, method = max_rss_mib() - rss_before, "ru_maxrss growth"
    n_params = sum(p.numel() for p in deto.parameters())
    return Result(device, precision, steps / elapsed, peak, method, n_params)


def print_table(results: list[Result], batch: int, frames: int) -> None:
    header = f"{'device':<7}{'precision':<15}{'steps/s':>9}{'ms/step':>10}{'frames/s':>11}{'peak MiB':>10}  memory"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.device:<7}{r.precision:<15}{r.steps_per_s:>9.3f}{1000 / r.steps_per_s:>10.1f}"
            f"{r.steps_per_s * batch * frames:>11.0f}{r.peak_mib:>10.0f}  {r.memory_method}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help=f"timed steps (after {WARMUP_STEPS} warm-up)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=64, help="a multiple of 4")
    parser.add_argument("--width", type=int, default=512, help="conv width = code_dim (SOKE: 512)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--precision", choices=["fp32", "bf16", "both"], default=None,
        help="default: fp32 on cpu, both on cuda",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line per result instead of a table")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.frames % 4:
        parser.error(f"--frames must be a multiple of 4, got {args.frames}")
    precision = args.precision or ("both" if args.device == "cuda" else "fp32")
    modes = {"fp32": [False], "bf16": [True], "both": [False, True]}[precision]

    results = [run(args.device, bf16, args.steps, args.batch, args.frames, args.width) for bf16 in modes]
    if args.json:
        for result in results:
            print(json.dumps(asdict(result)))
        return
    print(f"DETO width {args.width}: {results[0].n_params / 1e6:.2f} M parameters; batch {args.batch} x "
          f"{args.frames} frames, {args.steps} timed steps, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    print_table(results, args.batch, args.frames)


if __name__ == "__main__":
    main()
