"""The whole chain on the embedded synthetic sample, on CPU: what `make demo` runs.

data -> cache -> tokenizer (train, test) -> codes -> tiny mBART -> dictionary -> back-translation evaluator
(train) -> generator (train, its val signing read by the evaluator) -> generator test with back-translation,
videos -> baselines -> the back-translation table (ground truth, tokenizer, generator, baselines). Every
step is the same command a user would type; each is printed before it runs. Re-running skips finished work
(data and models already there, training resumes from last.ckpt).
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
EVALUATOR_CFG = "configs/demo/slt.yaml"
TOKENIZER_CKPT = "experiments/mgpt/demo_deto/checkpoints/best.ckpt"
TINY_MBART = "deps/mbart-tiny"
EVALUATOR_CKPT = "experiments/mgpt/demo_slt/checkpoints/best.ckpt"
GENERATOR_RESULTS = "results/mgpt/demo_soke/test_rank_0"


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
        "sample data": step("1/11 synthetic Isharah-layout sample", [py, "-m", "mGPT.data.synthetic", "--out", DATA],
                            skip_if=f"{DATA}/train"),
        "cache": step("2/11 packed cache", [py, "-m", "mGPT.data.prepare", "--cfg", TOKENIZER_CFG,
                                             "--data-root", DATA]),
        "tokenizer train": step("3/11 train the tokenizer (stage 1)", [py, "train.py", "--cfg", TOKENIZER_CFG]),
        "tokenizer test": step("4/11 test the tokenizer", [py, "test.py", "--cfg", TOKENIZER_CFG]),
        "codes": step("5/11 motion codes", [py, "scripts/get_motion_code.py", "--cfg", GENERATOR_CFG]),
        "tiny mbart": step("6/11 tiny offline mBART", [py, "scripts/make_tiny_mbart.py", "--corpus", DATA,
                                                      "--out", TINY_MBART], skip_if=f"{TINY_MBART}/config.json"),
        "dictionary": step("7/11 sign dictionary", [py, "scripts/build_dictionary.py", "--tokenizer", TOKENIZER_CKPT,
                                                   "--data-root", DATA]),
        # the evaluator first: it reads the generator's val signing while the generator trains (val/BT_* scores)
        "evaluator train": step("8/11 train the back-translation evaluator (sign-to-text)",
                                [py, "train.py", "--cfg", EVALUATOR_CFG]),
        "generator train": step("9/11 train the generator (stage 2)", [py, "train.py", "--cfg", GENERATOR_CFG,
                                                                       f"TRAIN.BACK_TRANSLATION={EVALUATOR_CKPT}"]),
        "generator test": step("10/11 test the generator, back-translate, render videos",
                               [py, "test.py", "--cfg", GENERATOR_CFG, "TEST.SAVE_VIDEOS=2",
                                "TEST.SAVE_PREDICTIONS=true", f"TEST.BACK_TRANSLATION={EVALUATOR_CKPT}"]),
        "baselines": step("baselines by the same metric code: mean pose, nearest neighbour",
                          [py, "scripts/baselines.py", "--cfg", GENERATOR_CFG]),
        "back-translation": step("11/11 back-translation of every motion source by the same evaluator",
                                 [py, "scripts/back_translate.py", "--cfg", EVALUATOR_CFG, "--tokenizer",
                                  TOKENIZER_CKPT, "--predictions", f"generator={GENERATOR_RESULTS}"]),
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
