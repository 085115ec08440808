"""A whole SaSOKE run at toy size, made with the same command lines a user types (scripts/demo.py's chain).

synthetic sample (--small) -> packed cache -> tokenizer (1 epoch, width 32) -> motion codes -> tiny mBART
(d_model 32, 1 layer) -> sign dictionary -> generator (1 epoch) -> test scores. About a minute on 2 cores.
The fault, bad-input and determinism tests build one and then call the commands against it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOKENIZER_CFG = "configs/demo/deto.yaml"
GENERATOR_CFG = "configs/demo/soke.yaml"
TINY_VQ = [f"VQ.{part}.{key}=32" for part in ("BODY", "LHAND", "RHAND") for key in ("WIDTH", "CODE_DIM")]


def run(args: list[str], check: bool = True, timeout: float = 300, env: dict | None = None,
        **kwargs) -> subprocess.CompletedProcess:
    """`python <args>` from the repository root; output captured as text. One torch thread: the test
    machines are small and shared, where more threads mostly wait on each other."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8", **(env or {})}
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                            encoding="utf-8", timeout=timeout, env=full_env, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"`python {' '.join(args)}` exited with {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@dataclass(frozen=True)
class TinyChain:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def cache(self) -> Path:
        return self.data / "_cache"

    @property
    def mbart(self) -> Path:
        return self.root / "mbart"

    @property
    def tokenizer_ckpt(self) -> Path:
        return self.root / "exp" / "tiny_deto" / "checkpoints" / "last.ckpt"

    @property
    def generator_ckpt(self) -> Path:
        return self.root / "exp" / "tiny_soke" / "checkpoints" / "last.ckpt"

    @property
    def scores(self) -> Path:
        return self.root / "results" / "tiny_soke" / "test_rank_0" / "test_scores.json"

    def tokenizer_overrides(self) -> list[str]:
        return [f"DATASET.DATA_ROOT={self.data}", f"FOLDER_EXP={self.root / 'exp'}",
                f"FOLDER_RESULTS={self.root / 'results'}", "NAME=tiny_deto", *TINY_VQ, "TRAIN.MAX_EPOCHS=1"]

    def generator_overrides(self) -> list[str]:
        return [f"DATASET.DATA_ROOT={self.data}", f"FOLDER_EXP={self.root / 'exp'}",
                f"FOLDER_RESULTS={self.root / 'results'}", "NAME=tiny_soke", f"LM.MBART_PATH={self.mbart}",
                f"TRAIN.PRETRAINED_VAE={self.tokenizer_ckpt}", f"TEST.CHECKPOINT={self.generator_ckpt}",
                "TRAIN.MAX_EPOCHS=1"]


def build_chain(root: Path) -> TinyChain:
    chain = TinyChain(root)
    run(["-m", "mGPT.data.synthetic", "--out", str(chain.data), "--small", "--seed", "0"])
    run(["-m", "mGPT.data.prepare", "--data-root", str(chain.data)])
    run(["train.py", "--cfg", TOKENIZER_CFG, *chain.tokenizer_overrides()])
    run(["scripts/get_motion_code.py", "--cfg", GENERATOR_CFG, *chain.generator_overrides()])
    run(["scripts/make_tiny_mbart.py", "--corpus", str(chain.data), "--out", str(chain.mbart),
         "--d-model", "32", "--layers", "1"])
    run(["scripts/build_dictionary.py", "--tokenizer", str(chain.tokenizer_ckpt),
         "--data-root", str(chain.data)])
    run(["train.py", "--cfg", GENERATOR_CFG, *chain.generator_overrides()])
    run(["test.py", "--cfg", GENERATOR_CFG, *chain.generator_overrides()])
    return chain
