"""The keypoint importer: release and .pose reading, every bad input, the written layout, resume after a kill."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mGPT.data import keypoints as kp
from mGPT.data.fit_check import phone_keypoints
from mGPT.data.fit_smplx import FitSettings, PoseModel
from mGPT.data.isharah import read_clip, read_split_csv, split_csv_path
from mGPT.data.mediapipe import LEFT_HAND, POSE
from mGPT.errors import DataError
from mGPT.layout import SMPLX_KEYS

REPO = Path(__file__).resolve().parents[1]
QUICK = FitSettings(iterations=3, body_iterations=2)


def _rest_clip(frames: int, seed: int) -> np.ndarray:
    """(frames, 86, 2) points of a figure at rest, seen by the simulated phone."""
    params = np.zeros((frames, 179), dtype=np.float32)
    params[:, 3 + 15 * 3 + 2] = -1.1  # left shoulder down
    params[:, 3 + 16 * 3 + 2] = 1.1
    clip = phone_keypoints("x", params, np.random.default_rng(seed), drop_hand=0.0, model=_MODEL)
    return clip.points


_MODEL = PoseModel()


def _release(tmp_path: Path, entries: dict, labels: dict[str, str]) -> tuple[Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    release, label_file = tmp_path / "release.pkl", tmp_path / "labels.txt"
    release.write_bytes(pickle.dumps(entries))
    label_file.write_text("id|gloss\n" + "".join(f"{k}|{v}\n" for k, v in labels.items()), encoding="utf-8")
    return release, label_file


def test_import_writes_the_isharah_layout(tmp_path):
    entries = {"00_0001": {"keypoints": _rest_clip(6, 0)}, "01_0002": {"keypoints": _rest_clip(5, 1)}}
    release, labels = _release(tmp_path, entries, {"00_0001": "سوال هو", "01_0002": "بيت"})
    result = kp.import_keypoints(release, tmp_path / "data", "train", labels, fps=25, image_size=(1080, 1920),
                                 settings=QUICK)
    assert result["written"] == 2 and not result["skipped"]
    table = read_split_csv(split_csv_path(tmp_path / "data", "train"))
    assert list(table.SENTENCE_NAME) == ["00_0001", "01_0002"]
    assert list(table.SENTENCE) == ["سوال هو", "بيت"] and (table.fps == 25).all()
    assert table.END_REALIGNED.tolist() == [6 / 25, 5 / 25]
    frames = read_clip(tmp_path / "data" / "train" / "poses" / "00_0001")
    assert frames.shape == (6, 179)
    with open(tmp_path / "data" / "train" / "poses" / "00_0001" / "00_0001_0_3D.pkl", "rb") as handle:
        first = pickle.load(handle)
    assert sorted(first) == sorted(key for key, _ in SMPLX_KEYS)
    # one signer, one shape
    assert np.allclose(frames[:, 166:176], frames[0, 166:176])


def test_worker_processes_write_what_one_process_writes(tmp_path):
    entries = {f"0{i}_000{i}": {"keypoints": _rest_clip(6 + i, i)} for i in range(3)}
    release, labels = _release(tmp_path, entries, {k: "a" for k in entries})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what each worker runs with: the same arithmetic, so the same numbers
    try:
        alone = kp.import_keypoints(release, tmp_path / "alone", "train", labels, image_size=(1080, 1920),
                                    settings=QUICK, batch_frames=6, workers=1)
    finally:
        torch.set_num_threads(threads)
    shared = kp.import_keypoints(release, tmp_path / "shared", "train", labels, image_size=(1080, 1920),
                                 settings=QUICK, batch_frames=6, workers=2, threads=1)
    assert alone["written"] == shared["written"] == 3
    for clip in entries:
        one = read_clip(tmp_path / "alone" / "train" / "poses" / clip)
        assert one.shape == (6 + int(clip[1]), 179) and np.abs(one).max() > 0
        np.testing.assert_array_equal(read_clip(tmp_path / "shared" / "train" / "poses" / clip), one)


def _bad(tmp_path, entries, labels, strict):
    release, label_file = _release(tmp_path, entries, labels)
    return kp.import_keypoints(release, tmp_path / "data", "train", label_file, image_size=(1080, 1920),
                               strict=strict, settings=QUICK)


GOOD = _rest_clip(4, 2)


@pytest.mark.parametrize(("entry", "message"), [
    (np.zeros((4, 86, 2)), "every point is zero or NaN"),
    (np.full((4, 86, 2), np.nan), "every point is zero or NaN"),
    (np.zeros((4, 85, 2)), "shape (4, 85, 2), expected (T, 86, 2)"),
    ("text", "keypoints are str"),
    ({"points": GOOD}, "no 'keypoints' entry"),
])
def test_bad_clip_is_skipped_and_named_or_stops_strict(tmp_path, entry, message):
    entries = {"00_0001": {"keypoints": GOOD}, "00_0002": entry if isinstance(entry, dict) else {"keypoints": entry}}
    labels = {"00_0001": "a", "00_0002": "b"}
    result = _bad(tmp_path / "lenient", entries, labels, strict=False)
    assert result["written"] == 1 and len(result["skipped"]) == 1
    assert "00_0002" in result["skipped"][0] and message in result["skipped"][0]
    with pytest.raises(DataError, match="00_0002.*--strict"):
        _bad(tmp_path / "strict", entries, labels, strict=True)


def test_label_without_keypoints_and_keypoints_without_label(tmp_path):
    entries = {"00_0001": {"keypoints": GOOD}, "00_0003": {"keypoints": GOOD}}
    result = _bad(tmp_path, entries, {"00_0001": "a", "00_0002": "b"}, strict=False)
    assert result["written"] == 1
    joined = " | ".join(result["skipped"])
    assert "'00_0003': has keypoints but no label" in joined and "'00_0002': has a label but no keypoints" in joined


def test_partly_missing_points_are_fitted(tmp_path):
    points = GOOD.copy()
    points[1, LEFT_HAND] = 0.0  # a missed hand
    points[2, POSE.start + 23] = np.nan
    result = _bad(tmp_path, {"00_0001": {"keypoints": points}}, {"00_0001": "a"}, strict=True)
    assert result["written"] == 1
    assert np.isfinite(read_clip(tmp_path / "data" / "train" / "poses" / "00_0001")).all()


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_release_that_runs_code_or_is_not_a_dict(tmp_path):
    release, labels = _release(tmp_path, {}, {"00_0001": "a"})
    release.write_bytes(pickle.dumps({"00_0001": _Payload()}))
    with pytest.raises(DataError, match="refused global .*system.*not run"):
        kp.import_keypoints(release, tmp_path / "data", "train", labels)
    assert not (tmp_path / "pwned").exists()
    release.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError, match="expected a dict"):
        kp.import_keypoints(release, tmp_path / "data", "train", labels)


@pytest.mark.slow  # one subprocess per bad input: 3 s of make test
def test_cli_errors_are_one_line(tmp_path):
    release, labels = _release(tmp_path, {"00_0001": {"keypoints": np.zeros((3, 85, 2))}}, {"00_0001": "a"})
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "mGPT.data.keypoints", "--poses", str(release), "--labels",
                             str(labels), "--out", str(tmp_path / "data"), "--strict"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 2 and "00_0001" in result.stderr and "(3, 85, 2)" in result.stderr
    assert "Traceback" not in result.stderr


def _pose_file(path: Path, with_hands: bool = True) -> None:
    """A small MediaPipe Holistic-like .pose file made with pose-format."""
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

    names = [("POSE_LANDMARKS", 33)]
    if with_hands:
        names += [("LEFT_HAND_LANDMARKS", 21), ("RIGHT_HAND_LANDMARKS", 21)]
    components = [PoseHeaderComponent(name, [str(i) for i in range(size)], [], [], "XYZC") for name, size in names]
    header = PoseHeader(0.1, PoseHeaderDimensions(1080, 1920, 0), components)
    points = GOOD  # (4, 86, 2)
    data = np.zeros((4, 1, sum(size for _, size in names), 3), dtype=np.float32)
    data[:, 0, :25, :2] = points[:, POSE]
    if with_hands:
        data[:, 0, 33:54, :2] = points[:, 21:42]
        data[:, 0, 54:75, :2] = points[:, 0:21]
    body = NumPyPoseBody(fps=24, data=data, confidence=np.ones(data.shape[:3], dtype=np.float32))
    with open(path, "wb") as handle:
        Pose(header, body).write(handle)


def test_pose_lexicon_becomes_a_dictionary_split(tmp_path):
    lexicon = tmp_path / "lexicon"
    (lexicon / "ase").mkdir(parents=True)
    _pose_file(lexicon / "ase" / "a.pose")
    _pose_file(lexicon / "ase" / "b.pose", with_hands=False)
    (lexicon / "index.csv").write_text("path,spoken_language,signed_language,start,end,words,glosses,priority\n"
                                       "ase/a.pose,en,ase,0,100,A,A,0\nase/b.pose,en,ase,0,100,B,B,0\n")
    result = kp.import_keypoints(lexicon, tmp_path / "data", settings=QUICK)
    assert result["split_dir"].name == "dictionary" and result["written"] == 1
    assert "'ase_b'" in result["skipped"][0] and "LEFT_HAND_LANDMARKS" in result["skipped"][0]
    table = read_split_csv(split_csv_path(tmp_path / "data", "dictionary"))
    assert table.SENTENCE.tolist() == ["A"] and table.fps.tolist() == [24.0]
    assert read_clip(tmp_path / "data" / "dictionary" / "poses" / "ase_a").shape == (4, 179)


@pytest.mark.slow
def test_rerun_skips_finished_clips_and_resumes_after_a_kill(tmp_path):
    entries = {f"0{i}_000{i}": {"keypoints": _rest_clip(40, i)} for i in range(4)}
    release, labels = _release(tmp_path, entries, {k: "a" for k in entries})
    out = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "mGPT.data.keypoints", "--poses", str(release), "--labels", str(labels),
               "--out", str(out), "--image-size", "1080", "1920", "--batch-frames", "40",
               "--iterations", "20"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    poses = out / "train" / "poses"
    deadline = time.time() + 240
    while time.time() < deadline and not (poses.is_dir() and any(p.name[0] != "." for p in poses.iterdir())):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = sorted(p.name for p in poses.iterdir() if not p.name.startswith("."))
    assert 1 <= len(done) < 4, "the kill should land between clips"
    for name in done:  # every finished clip is whole
        assert read_clip(poses / name).shape == (40, 179)
    before = {name: (poses / name / f"{name}_0_3D.pkl").stat().st_mtime_ns for name in done}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"{len(done)} already done" in result.stdout
    assert sorted(p.name for p in poses.iterdir()) == sorted(entries)  # no partial folders left
    assert all((poses / n / f"{n}_0_3D.pkl").stat().st_mtime_ns == t for n, t in before.items())
    assert len(read_split_csv(split_csv_path(out, "train"))) == 4


def test_the_smplx_layer_is_fitted_where_its_files_exist(tmp_path, capsys):
    from mGPT.kinematics import SkeletonKinematics
    from tests.test_kinematics import write_fake_smplx

    write_fake_smplx(tmp_path / "smpl_models" / "smplx", SkeletonKinematics())
    release, labels = _release(tmp_path, {"00_0001": {"keypoints": _rest_clip(4, 0)}}, {"00_0001": "a"})
    common = ["--poses", str(release), "--labels", str(labels), "--image-size", "1080", "1920",
              "--iterations", "2", "--body-iterations", "2"]
    for choice, folder, backend in (("auto", "smpl_models", "smplx"), ("auto", "missing", "skeleton"),
                                    ("skeleton", "smpl_models", "skeleton")):
        out = tmp_path / f"{choice}_{folder}"
        assert kp.main([*common, "--out", str(out), "--kinematics", choice,
                        "--smplx-dir", str(tmp_path / folder)]) == 0
        assert f"skeleton: {backend};" in capsys.readouterr().out
        assert read_clip(out / "train" / "poses" / "00_0001").shape == (4, 179)
    assert kp.main([*common, "--out", str(tmp_path / "x"), "--kinematics", "smplx",
                    "--smplx-dir", str(tmp_path / "missing")]) == 2
    assert "SMPLX_NEUTRAL.npz" in capsys.readouterr().err
