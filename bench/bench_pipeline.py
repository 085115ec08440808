"""Whole-pipeline timings: training throughput of either stage, and test.py's evaluation end to end,
each as it is or with the SOKE-style parts handed in (--soke-style): the per-frame pickle reader of
bench/soke_style_data.py, the per-cell Python DTW of bench/soke_style_dtw.py and decoding without the
key/value cache.

    python bench/bench_pipeline.py --cfg configs/demo/deto.yaml [KEY=value ...] [--steps 20] [--soke-style]

trains the model train.py would build for `steps` optimizer steps (no checkpoints, no validation, no
logging) and prints one JSON line: steps per second after the first step, which carries one-off costs,
and the peak memory of the process (resident set on CPU, allocated tensors on GPU).

    python bench/bench_pipeline.py --evaluate --cfg configs/demo/soke.yaml [KEY=value ...] [--soke-style]

runs test.py's `evaluate` in this process and prints its summary as one JSON line. bench/run_all.py runs
either once per measurement in a fresh process, so peaks do not mix; `time_evaluate` times the second
one from start-up, as a user waits for `python test.py`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from soke_style_data import pickle_clips
from soke_style_dtw import loop_dtw_mpjpe_batch

from mGPT.config import load_config
from mGPT.data.datasets import ClipSourceFactory, from_cache

REPO = Path(__file__).resolve().parents[1]


class StepTimer(Callback):
    """The wall-clock time at the end of every training batch."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())


def peak_rss_mb() -> float:
    """This process's peak resident memory. Not getrusage's ru_maxrss: Linux carries that over from the
    parent through fork and exec, so a child of a big process reports the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: the best there is


def entry_point(script: str) -> ModuleType:
    """train.py or test.py as a module (not importable by name: the standard library owns `test`), so the
    benchmark runs exactly what `python <script>` would."""
    spec = importlib.util.spec_from_file_location(f"sasoke_{Path(script).stem}", REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clip_source(cfg, soke_style: bool) -> ClipSourceFactory:
    """The packed cache, or SOKE's way: every clip re-read from its per-frame pickles."""
    return pickle_clips(cfg.DATASET.DATA_ROOT) if soke_style else from_cache


def throughput(cfg_path: str, overrides: list[str], steps: int, soke_style: bool = False) -> dict:
    cfg = load_config(cfg_path, overrides)
    pl.seed_everything(cfg.SEED, workers=True)
    module, data = entry_point("train.py").build_module(cfg, clip_source(cfg, soke_style))
    timer = StepTimer()
    trainer = pl.Trainer(accelerator=cfg.ACCELERATOR, devices=1, precision=cfg.PRECISION, max_steps=steps,
                         limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
                         num_sanity_val_steps=0)
    trainer.fit(module, datamodule=data)
    if len(timer.ends) < 2:
        raise RuntimeError(f"only {len(timer.ends)} training steps ran; give --steps 2 or more")
    result = {"stage": cfg.STAGE, "steps": len(timer.ends), "batch_size": cfg.TRAIN.BATCH_SIZE,
              "steps_per_s": (len(timer.ends) - 1) / (timer.ends[-1] - timer.ends[0]),
              "peak_rss_mb": peak_rss_mb()}
    if torch.cuda.is_available() and cfg.ACCELERATOR != "cpu":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def evaluate(cfg_path: str, overrides: list[str], soke_style: bool = False) -> dict:
    """test.py's evaluation of `cfg_path`; with soke_style, through the pickle reader, the Python DTW and
    uncached decoding (same clips, same scores, same tokens: only the time differs)."""
    cfg = load_config(cfg_path, overrides)
    if not soke_style:
        return entry_point("test.py").evaluate(cfg)
    return entry_point("test.py").evaluate(cfg, clip_source=clip_source(cfg, True), dtw=loop_dtw_mpjpe_batch,
                                           use_kv_cache=False)


def time_evaluate(cfg_path: str, overrides: list[str], soke_style: bool = False,
                  env: dict | None = None) -> tuple[float, dict]:
    """`evaluate` in a fresh process; its wall-clock seconds (start-up included, as for `python test.py`)
    and the summary."""
    command = [sys.executable, "bench/bench_pipeline.py", "--evaluate", "--cfg", cfg_path, *overrides]
    if soke_style:
        command.append("--soke-style")
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, encoding="utf-8")
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return seconds, json.loads(result.stdout.strip().splitlines()[-1])  # the last line is the summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="stage config, e.g. configs/demo/deto.yaml")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps to time (default 20)")
    parser.add_argument("--evaluate", action="store_true", help="run test.py's evaluation instead of training")
    parser.add_argument("--soke-style", action="store_true",
                        help="with SOKE-style parts: pickle reader (both stages), Python DTW and no KV cache "
                             "(evaluation)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. TRAIN.BATCH_SIZE=8")
    args = parser.parse_args()
    if args.evaluate:
        print(json.dumps(evaluate(args.cfg, args.overrides, args.soke_style), ensure_ascii=False))
    else:
        print(json.dumps(throughput(args.cfg, args.overrides, args.steps, args.soke_style)))


if __name__ == "__main__":
    main()
