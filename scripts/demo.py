"""The whole chain on the embedded synthetic sample, on CPU: what `make demo` runs.

data -> cache -> tokenizer (train, test) -> codes -> tiny mBART -> dictionary -> generator (train, test)
-> videos. Every step is the same command a user would type; each is printed before it runs.
Re-running skips finished work (data and models already there, training resumes from last.ckpt).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from mGPT.config import evaluation_dir, load_config

DATA = "data/sample"
TOKENIZER_CFG = "configs/demo/deto.yaml"
GENERATOR_CFG = "configs/demo/soke.yaml"
TOKENIZER_CKPT = "experiments/mgpt/demo_deto/checkpoints/best.ckpt"
TINY_MBART = "deps/mbart-tiny"


def step(title: str, command: list[str], skip_if: str | None = None) -> float:
    print(f"\n=== {title}\n$ {' '.join(command)}", flush=True)
    if skip_if and Path(skip_if).exists():
        print(f"(skipped: {skip_if} exists)")
        return 0.0
    start = time.time()
    subprocess.run(command, check=True)
    return time.time() - start


def main() -> int:
    py = sys.executable
    timings = {
        "sample data": step("1/9 synthetic Isharah-layout sample", [py, "-m", "mGPT.data.synthetic", "--out", DATA],
                            skip_if=f"{DATA}/train"),
        "cache": step("2/9 packed cache", [py, "-m", "mGPT.data.prepare", "--cfg", TOKENIZER_CFG,
                                            "--data-root", DATA]),
        "tokenizer train": step("3/9 train the tokenizer (stage 1)", [py, "train.py", "--cfg", TOKENIZER_CFG]),
        "tokenizer test": step("4/9 test the tokenizer", [py, "test.py", "--cfg", TOKENIZER_CFG]),
        "codes": step("5/9 motion codes", [py, "scripts/get_motion_code.py", "--cfg", GENERATOR_CFG]),
        "tiny mbart": step("6/9 tiny offline mBART", [py, "scripts/make_tiny_mbart.py", "--corpus", DATA,
                                                      "--out", TINY_MBART], skip_if=f"{TINY_MBART}/config.json"),
        "dictionary": step("7/9 sign dictionary", [py, "scripts/build_dictionary.py", "--tokenizer", TOKENIZER_CKPT,
                                                   "--data-root", DATA]),
        "generator train": step("8/9 train the generator (stage 2)", [py, "train.py", "--cfg", GENERATOR_CFG]),
        "generator test": step("9/9 test the generator, render videos",
                               [py, "test.py", "--cfg", GENERATOR_CFG, "TEST.SAVE_VIDEOS=2",
                                "TEST.SAVE_PREDICTIONS=true"]),
        "baselines": step("baselines by the same metric code: mean pose, nearest neighbour",
                          [py, "scripts/baselines.py", "--cfg", GENERATOR_CFG]),
    }
    print("\n=== timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    print(f"total {sum(timings.values()):.0f} s. Videos: {evaluation_dir(load_config(GENERATOR_CFG)) / 'videos'}/")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as err:
        print(f"demo step failed (exit code {err.returncode}): {' '.join(err.cmd)}", file=sys.stderr)
        sys.exit(err.returncode)
