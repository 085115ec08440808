"""What happens when things break underneath a run: kill -9 in the middle of training or of the cache
build, an output folder that cannot be created, a disk that fills up while a checkpoint is written.

Training killed mid-epoch must resume from last.ckpt and end on the same optimizer step count as a run
that was never interrupted, and no checkpoint may ever be half written. A killed cache build must never
leave a cache that loads wrong. Disk and folder failures must end in one clear error, exit code 2.
"""

from __future__ import annotations

import errno
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from mGPT.data.prepare import build_cache, load_cache, load_stats
from mGPT.errors import CheckpointError, DataError
from mGPT.models.checkpoints import AtomicCheckpointIO
from tests.tiny_chain import REPO, TINY_VQ, TOKENIZER_CFG, run

SPLITS = ("train", "val", "test", "dictionary")
BATCH_SIZE = 2
EPOCHS = 2


def train_command(data: Path, exp: Path, name: str) -> list[str]:
    """Stage 1 at toy size, batches of 2 clips, last.ckpt refreshed after every optimizer step."""
    return ["train.py", "--cfg", TOKENIZER_CFG, f"DATASET.DATA_ROOT={data}", f"FOLDER_EXP={exp}",
            f"NAME={name}", *TINY_VQ, f"TRAIN.BATCH_SIZE={BATCH_SIZE}", f"TRAIN.MAX_EPOCHS={EPOCHS}",
            "TRAIN.NUM_WORKERS=0", "TRAIN.CKPT_EVERY_N_STEPS=1", "TRAIN.VAL_EVERY_N_EPOCHS=1"]


def saved_step(checkpoint: Path) -> int | None:
    try:
        return int(torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"])
    except (OSError, RuntimeError, KeyError, EOFError):
        return None


def kill_9_when(argv: list[str], ready: Callable[[], bool], poll_seconds: float) -> None:
    """Start `python argv` and kill -9 it as soon as ready() holds; fail if it ends first."""
    process = subprocess.Popen([sys.executable, *argv], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        while process.poll() is None:
            if ready():
                process.send_signal(signal.SIGKILL)
                process.wait()
                return
            time.sleep(poll_seconds)
        raise AssertionError(f"{' '.join(argv[:3])} ended (exit code {process.returncode}) before it could be killed")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def kill_when(command: list[str], checkpoint: Path, ready: Callable[[int], bool]) -> int:
    """Start `python command`, kill -9 it once `checkpoint` holds a step for which ready(step); that step."""
    steps: list[int | None] = []

    def step_ready() -> bool:
        steps.append(saved_step(checkpoint) if checkpoint.is_file() else None)
        return steps[-1] is not None and ready(steps[-1])

    kill_9_when(command, step_ready, poll_seconds=0.01)
    return steps[-1]


def assert_every_checkpoint_loads(folder: Path) -> None:
    checkpoints = sorted(folder.glob("*.ckpt"))
    assert checkpoints, f"no checkpoint in {folder}"
    for checkpoint in checkpoints:
        assert saved_step(checkpoint) is not None, f"{checkpoint} is half written"


@pytest.mark.slow
def test_training_killed_mid_epoch_resumes_to_the_same_step_count(small_sample: Path, tmp_path: Path) -> None:
    steps_per_epoch = math.ceil(len(load_cache(small_sample / "_cache", "train")) / BATCH_SIZE)
    total = EPOCHS * steps_per_epoch
    run(train_command(small_sample, tmp_path, "straight"))
    assert saved_step(tmp_path / "straight" / "checkpoints" / "last.ckpt") == total

    command = train_command(small_sample, tmp_path, "killed")
    checkpoints = tmp_path / "killed" / "checkpoints"
    first = kill_when(command, checkpoints / "last.ckpt", lambda step: 2 <= step < steps_per_epoch - 2)
    assert_every_checkpoint_loads(checkpoints)
    second = kill_when(command, checkpoints / "last.ckpt",
                       lambda step: steps_per_epoch + 2 <= step < total - 2)  # after resuming, epoch 2
    assert_every_checkpoint_loads(checkpoints)
    assert first < steps_per_epoch < second < total

    result = run(command)
    assert f"resuming from {checkpoints / 'last.ckpt'}" in result.stdout
    assert saved_step(checkpoints / "last.ckpt") == total
    assert_every_checkpoint_loads(checkpoints)
    assert sorted(path.name for path in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]  # no temp files


def cache_matches_or_refuses(cache: Path, reference: Path) -> list[str]:
    """Each split (and the statistics) of `cache` either refuses to load or equals the clean build; the
    splits that loaded."""
    loaded = []
    for split in SPLITS:
        try:
            packed = load_cache(cache, split)
        except DataError:
            continue
        clean = load_cache(reference, split)
        assert packed.names == clean.names and np.array_equal(packed.frames, clean.frames), split
        loaded.append(split)
    try:
        stats = load_stats(cache)
    except DataError:
        return loaded
    assert all(np.array_equal(stats[key], value) for key, value in load_stats(reference).items())
    return loaded


def kill_prepare_when(data: Path, ready: Callable[[Path], bool]) -> None:
    command = ["-m", "mGPT.data.prepare", "--data-root", str(data), "--workers", "1"]
    kill_9_when(command, lambda: ready(data / "_cache"), poll_seconds=0.005)


@pytest.mark.slow
def test_cache_build_killed_part_way_never_loads_broken(small_sample: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(small_sample, data, ignore=shutil.ignore_patterns("_cache"))
    reference = tmp_path / "reference"
    build_cache(data, reference)

    # 1. killed while the train frames are being written: nothing may load yet
    kill_prepare_when(data, lambda cache: any((cache / "train").glob(".frames.npy.*.tmp")))
    assert cache_matches_or_refuses(data / "_cache", reference) == []
    # 2. killed after train was committed, while a later split is written: train loads, whole and right
    kill_prepare_when(data, lambda cache: (cache / "train" / "index.json").is_file()
                      and any(True for split in SPLITS[1:] for _ in (cache / split).glob(".*.tmp")))
    assert "train" in cache_matches_or_refuses(data / "_cache", reference)
    # 3. the next run completes the cache, equal to a build that was never interrupted
    run(["-m", "mGPT.data.prepare", "--data-root", str(data)])
    assert cache_matches_or_refuses(data / "_cache", reference) == list(SPLITS)
    assert not list((data / "_cache").rglob("*.tmp"))


@pytest.mark.slow
def test_unwritable_experiment_folder(small_sample: Path, tmp_path: Path) -> None:
    """Root ignores chmod, so the folder is made impossible instead: it would have to live under a file."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run(train_command(small_sample, blocker / "exp", "blocked"), check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"error: cannot write the experiment folder {blocker / 'exp' / 'blocked'}" in result.stderr


def limit_file_size(max_bytes: int) -> Callable[[], None]:
    """For Popen's preexec_fn: writing a file past max_bytes fails with EFBIG, as a full disk fails with
    ENOSPC (Python ignores SIGXFSZ, so the write returns the error instead of killing the process)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))


@pytest.mark.slow
def test_disk_full_while_saving_a_checkpoint(small_sample: Path, tmp_path: Path) -> None:
    result = run(train_command(small_sample, tmp_path, "full"), check=False, preexec_fn=limit_file_size(1 << 20))
    checkpoints = tmp_path / "full" / "checkpoints"
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    expected = f"cannot write the checkpoint last.ckpt into the folder {checkpoints}: File too large"
    assert expected in result.stderr
    assert not list(checkpoints.iterdir())  # no partial checkpoint, no temp file


@pytest.mark.slow
def test_disk_full_while_building_the_cache(small_sample: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(small_sample, data, ignore=shutil.ignore_patterns("_cache"))
    result = run(["-m", "mGPT.data.prepare", "--data-root", str(data)], check=False,
                 preexec_fn=limit_file_size(1 << 20))  # the train frames are 1.5 MB
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"error: cannot read or write {data / '_cache'}: File too large" in result.stderr
    with pytest.raises(DataError, match="index.json"):
        load_cache(data / "_cache", "train")


def test_atomic_checkpoint_keeps_the_old_file_when_the_disk_is_full(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 7}, path)
    (path.parent / ".last.ckpt.stale.tmp").write_bytes(b"left by a killed run")

    def no_space(fd: int) -> None:  # the data did not fit: the disk says so when it is flushed
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(CheckpointError, match=f"into the folder {path.parent}: No space left on device"):
        io.save_checkpoint({"global_step": 8}, path)
    assert torch.load(path, weights_only=True)["global_step"] == 7
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # the stale and the new temp are gone
