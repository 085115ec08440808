"""Whole-pipeline timings: training throughput of either stage, and test.py end to end against the same
test.py with SOKE-style parts switched in through the BASELINE config keys.

    python bench/bench_pipeline.py --cfg configs/demo/deto.yaml [KEY=value ...] [--steps 20]

trains the model train.py would build for `steps` optimizer steps (no checkpoints, no validation, no
logging) and prints one JSON line: steps per second after the first step, which carries one-off costs,
and the peak memory of the process (resident set on CPU, allocated tensors on GPU). bench/run_all.py runs
it once per measurement in a fresh process, so peaks do not mix, and uses `time_test_py` for the end to
end rows.
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

from mGPT.config import evaluation_dir, load_config

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


def train_script() -> ModuleType:
    """train.py as a module, so the benchmark trains exactly what `python train.py` would build."""
    spec = importlib.util.spec_from_file_location("sasoke_train", REPO / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def throughput(cfg_path: str, overrides: list[str], steps: int) -> dict:
    cfg = load_config(cfg_path, overrides)
    pl.seed_everything(cfg.SEED, workers=True)
    module, data = train_script().build_module(cfg)
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


def time_test_py(cfg_path: str, overrides: list[str], env: dict | None = None) -> tuple[float, dict]:
    """Run `python test.py`; its wall-clock seconds (start-up included) and its test_summary.json."""
    summary = REPO / evaluation_dir(load_config(cfg_path, overrides)) / "test_summary.json"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "test.py", "--cfg", cfg_path, *overrides], cwd=REPO, env=env,
                            capture_output=True, text=True, encoding="utf-8")
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"test.py {' '.join(overrides)} failed:\n{result.stdout[-2000:]}\n"
                           f"{result.stderr[-3000:]}")
    return seconds, json.loads(summary.read_text(encoding="utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cfg", required=True, help="stage config, e.g. configs/demo/deto.yaml")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps to time (default 20)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. BASELINE.PICKLE_LOADER=true")
    args = parser.parse_args()
    print(json.dumps(throughput(args.cfg, args.overrides, args.steps)))


if __name__ == "__main__":
    main()
