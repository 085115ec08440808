"""Session fixtures: a small synthetic Isharah sample with its cache, and the stage 1 -> 2 chain at toy size.

Everything is built once per session in a temporary folder, by the same commands a user types:

    small_sample      data root of `mGPT.data.synthetic --small`, with its packed cache (24/6/6 clips)
    tokenizer_run     train.py on configs/demo/deto.yaml, VQ width 64, 10 epochs of 3 steps (10-20 s)
    tiny_tokenizer    its best.ckpt
    motion_codes      scripts/get_motion_code.py -> <cache>/codes.npz
    tiny_mbart        a random mBART, d_model 32, one layer, over the sample's sentences
    sign_dictionary   scripts/build_dictionary.py -> <cache>/sign_dictionary.json
    run_command       `python <script | -m module> ...` in the session's work folder, exit code checked
    chain             a whole toy run, tokenizer to scored generator (tests/tiny_chain.py, a minute or more)

The sample and the chain are shared: treat them as read-only (copy a folder before changing it). Commands
run with one torch thread: on a small shared machine more threads mostly wait on each other.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.tiny_chain import TinyChain, build_chain

REPO = Path(__file__).resolve().parents[1]
DEMO_DETO = REPO / "configs" / "demo" / "deto.yaml"
DEMO_SOKE = REPO / "configs" / "demo" / "soke.yaml"
TINY_WIDTH = 64
TINY_VQ = [f"VQ.{part}.{key}={TINY_WIDTH}" for part in ("BODY", "LHAND", "RHAND")
           for key in ("WIDTH", "CODE_DIM")]
TOKENIZER_NAME = "tiny_deto"
TOKENIZER_EPOCHS = 10
BATCH_SIZE = 8


@pytest.fixture
def load_script() -> Callable[[str], object]:
    """Import scripts/<name>.py as a module, to call its main() in-process."""

    def load(name: str) -> object:
        spec = importlib.util.spec_from_file_location(f"{name}_script", REPO / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The suite's models are tiny: one thread beats two, and far more so while anything else runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def grad_mode_left_as_found(request: pytest.FixtureRequest):
    """Code that switches autograd off for the whole process breaks whatever trains after it in the same
    process (a notebook, the web app, the next test): fail the test that leaked it, not a later victim."""
    enabled = torch.is_grad_enabled()
    yield
    if torch.is_grad_enabled() != enabled:
        torch.set_grad_enabled(enabled)
        pytest.fail(f"{request.node.nodeid} left torch's grad mode {'off' if enabled else 'on'}: use "
                    "`with torch.no_grad()` or the decorator instead of torch.set_grad_enabled")

RunCommand = Callable[..., subprocess.CompletedProcess]


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder commands run in: experiments/mgpt/<NAME>/ and results/mgpt/<NAME>/ land here."""
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="session")
def run_command(workdir: Path) -> RunCommand:
    """run_command(args, expect=0, threads=1, timeout=300) -> CompletedProcess of `python *args` in workdir.

    A test fails with the command's output when the exit code is not `expect`.
    """

    def run(args: list, expect: int = 0, threads: int = 1, timeout: int = 300) -> subprocess.CompletedProcess:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO),
               "PYTHONIOENCODING": "utf-8"}
        command = [sys.executable, *(str(arg) for arg in args)]
        result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != expect:
            pytest.fail(f"`{' '.join(command[1:])}` exited with {result.returncode}, expected {expect}\n"
                        f"--- stdout (end)\n{result.stdout[-4000:]}\n"
                        f"--- stderr (end)\n{result.stderr[-4000:]}")
        return result

    return run


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> TinyChain:
    """One toy run for the session, shared by the tests of the commands and of the app (read-only)."""
    return build_chain(tmp_path_factory.mktemp("chain"))


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data root of the small synthetic sample, with its packed cache in <root>/_cache (a few seconds)."""
    from mGPT.data.prepare import build_cache
    from mGPT.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("sample") / "data"
    generate_dataset(root, seed=0, small=True)
    build_cache(root)
    return root


def tokenizer_overrides(data_root: Path, name: str = TOKENIZER_NAME) -> list[str]:
    """Stage 1 at toy size on the sample: configs/demo/deto.yaml plus these."""
    return [f"NAME={name}", f"DATASET.DATA_ROOT={data_root}", *TINY_VQ, f"TRAIN.BATCH_SIZE={BATCH_SIZE}",
            "TRAIN.NUM_WORKERS=0", "TRAIN.LOG_EVERY_N_STEPS=1"]


def generator_overrides(data_root: Path, tokenizer: Path, mbart: Path, name: str) -> list[str]:
    """Stage 2 at toy size: configs/demo/soke.yaml plus these. Generation stops after 8 steps (32 frames)."""
    return [f"NAME={name}", f"DATASET.DATA_ROOT={data_root}", f"TRAIN.PRETRAINED_VAE={tokenizer}",
            f"LM.MBART_PATH={mbart}", "LM.MAX_MOTION_TOKENS=8", f"TRAIN.BATCH_SIZE={BATCH_SIZE}",
            f"TEST.BATCH_SIZE={BATCH_SIZE}", "TRAIN.NUM_WORKERS=0", "TRAIN.LOG_EVERY_N_STEPS=1"]


@dataclass(frozen=True)
class TrainRun:
    """A finished train.py run: its experiment folder and what it printed."""

    exp: Path
    stdout: str
    stderr: str

    @property
    def checkpoints(self) -> Path:
        return self.exp / "checkpoints"


@pytest.fixture(scope="session")
def tokenizer_run(run_command: RunCommand, workdir: Path, small_sample: Path) -> TrainRun:
    """Stage 1 through train.py: 10 epochs of 3 steps, validation every 5 epochs."""
    result = run_command([REPO / "train.py", "--cfg", DEMO_DETO, *tokenizer_overrides(small_sample),
                          f"TRAIN.MAX_EPOCHS={TOKENIZER_EPOCHS}", "TRAIN.VAL_EVERY_N_EPOCHS=5"])
    return TrainRun(workdir / "experiments" / "mgpt" / TOKENIZER_NAME, result.stdout, result.stderr)


@pytest.fixture(scope="session")
def tiny_tokenizer(tokenizer_run: TrainRun) -> Path:
    return tokenizer_run.checkpoints / "best.ckpt"


@pytest.fixture(scope="session")
def motion_codes(run_command: RunCommand, small_sample: Path, tiny_tokenizer: Path) -> Path:
    run_command([REPO / "scripts" / "get_motion_code.py", "--cfg", DEMO_SOKE,
                 f"DATASET.DATA_ROOT={small_sample}", f"TRAIN.PRETRAINED_VAE={tiny_tokenizer}"])
    return small_sample / "_cache" / "codes.npz"


@pytest.fixture(scope="session")
def tiny_mbart(tmp_path_factory: pytest.TempPathFactory, small_sample: Path) -> Path:
    from mGPT.archs.tiny_mbart import make_tiny_mbart, read_corpus

    return make_tiny_mbart(read_corpus(small_sample), tmp_path_factory.mktemp("mbart") / "mbart-tiny",
                           d_model=32, layers=1)


@pytest.fixture(scope="session")
def sign_dictionary(run_command: RunCommand, small_sample: Path, tiny_tokenizer: Path) -> Path:
    path = small_sample / "_cache" / "sign_dictionary.json"
    run_command([REPO / "scripts" / "build_dictionary.py", "--tokenizer", tiny_tokenizer,
                 "--data-root", small_sample, "--out", path])
    return path
