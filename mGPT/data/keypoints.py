"""Import real 2D sign-language keypoints as an Isharah SMPL-X split: fit, then write the per-frame layout.

    python -m mGPT.data.keypoints --poses pose_data_isharah1000.pkl --labels train.txt --split train \\
        --out DATA_ROOT [--fps 30] [--image-size W H] [--device cuda] [--workers N] [--threads N] [--strict]
    python -m mGPT.data.keypoints --poses LEXICON_DIR --out DATA_ROOT          # index.csv + .pose files

Inputs (SPEC 9): the Isharah pose release, one pickle {clip_id: {"keypoints": (T, 86, 2)}} with `id|gloss`
label lines; or `.pose` files (pose-format, MediaPipe Holistic): a folder with index.csv (a lexicon such as
spoken-to-signed's: one isolated sign per clip, written as the `dictionary` split unless --split says
otherwise), or a folder/file of .pose files with `id|text` labels (id = file name without .pose).

Output: DATA_ROOT/<split>/poses/<clip>/<clip>_<i>_3D.pkl (the seven SMPL-X keys, one per input frame) and
the 8-column CSV, so `python -m mGPT.data.prepare` and training read it unchanged. Each clip is written
into a hidden folder that is renamed into place when complete, so a killed run leaves no half clip and a
re-run skips the clips already there. Bad clips are skipped and listed (or stop the run with --strict).
"""

from __future__ import annotations

import argparse
import csv
import io
import multiprocessing
import os
import pickle
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mGPT.data.fit_smplx import ClipFit, ClipKeypoints, FitSettings, PoseModel, fit_clips, group_by_signer
from mGPT.data.isharah import CSV_COLUMNS, frame_files, load_untrusted_pickle, pose_dir_path, split_csv_path
from mGPT.data.mediapipe import LEFT_HAND, LIP_FACEMESH, LIPS, N_POINTS, POSE, POSE_POINTS, RIGHT_HAND
from mGPT.errors import ConfigError, DataError, run_cli
from mGPT.files import AtomicFile
from mGPT.kinematics import Kinematics, build_kinematics, smplx_model_file
from mGPT.layout import SMPLX_KEYS, SMPLX_SLICES

SHOWN_SKIPS = 20  # skipped clips listed by name; the rest are counted

# Phone video sizes, for a release that does not say its image size (portrait first)
_PHONE_SIZES = ((720, 1280), (1080, 1920), (1440, 2560), (2160, 3840), (1280, 720), (1920, 1080),
                (2560, 1440), (3840, 2160))


@dataclass
class RawClip:
    """A clip as read, before fitting: the 86-point layout plus what the CSV needs."""

    clip_id: str
    points: np.ndarray  # (T, 86, 2)
    visible: np.ndarray  # (T, 86)
    fps: float
    image_size: tuple[int, int] | None
    text: str
    depth: np.ndarray | None = None  # (T, 86)


class Report:
    """Skipped clips with their reasons; --strict turns the first into an error."""

    def __init__(self, strict: bool):
        self.strict, self.skipped = strict, []

    def bad(self, message: str) -> None:
        if self.strict:
            raise DataError(f"{message} (--strict: stopping; drop --strict to skip such clips)")
        self.skipped.append(message)


def read_labels(path: str | Path) -> dict[str, str]:
    """`id|text` lines -> {id: text}; a header line such as `id|gloss` is skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the labels ({error}); they must be UTF-8 `id|gloss` lines") from error
    labels = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if "|" not in line:
            raise DataError(f"{path} line {number}: {line[:60]!r} is not `id|text`")
        clip_id, text = (part.strip() for part in line.split("|", 1))
        if number == 1 and clip_id.lower() in ("id", "name", "clip"):
            continue
        labels[clip_id] = text
    if not labels:
        raise DataError(f"{path}: no `id|text` label lines found")
    return labels


def visible_points(points: np.ndarray) -> np.ndarray:
    """(T, 86, 2) -> (T, 86) bool: finite and not MediaPipe's (0, 0) for a missed point."""
    finite = np.isfinite(points).all(axis=-1)
    return finite & (np.abs(np.nan_to_num(points)).sum(axis=-1) > 0)


def in_image(points: np.ndarray, visible: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(T, 86) visibility less the points outside the frame: MediaPipe guesses those (an arm below the
    frame), and a guess is not an observation."""
    width, height = image_size
    inside = (points[..., 0] >= 0) & (points[..., 0] <= width) & (points[..., 1] >= 0) & (points[..., 1] <= height)
    return visible & inside


def check_clip(clip_id: str, keypoints: object) -> np.ndarray | str:
    """The (T, 86, 2) float array of a release entry, or the reason it cannot be fitted."""
    if isinstance(keypoints, dict):
        if "keypoints" not in keypoints:
            return f"clip {clip_id!r}: no 'keypoints' entry (found {sorted(map(str, keypoints))})"
        keypoints = keypoints["keypoints"]
    if not isinstance(keypoints, np.ndarray) or not np.issubdtype(keypoints.dtype, np.number):
        return f"clip {clip_id!r}: keypoints are {type(keypoints).__name__}, expected a numeric (T, 86, 2) array"
    if keypoints.ndim != 3 or keypoints.shape[1:] != (N_POINTS, 2) or len(keypoints) == 0:
        return f"clip {clip_id!r}: keypoints have shape {keypoints.shape}, expected (T, {N_POINTS}, 2)"
    points = keypoints.astype(np.float32)
    visible = visible_points(points)
    if not visible.any():
        return f"clip {clip_id!r}: every point is zero or NaN (MediaPipe found nobody); nothing to fit"
    if not visible[:, POSE].any():
        return f"clip {clip_id!r}: no body landmarks in any frame; nothing to fit"
    return points


def _guess_image_size(points: list[np.ndarray]) -> tuple[int, int]:
    """The smallest phone frame that holds every point of the release."""
    finite = np.concatenate([p[visible_points(p)] for p in points])
    extent = finite.max(axis=0)
    for width, height in _PHONE_SIZES:
        if extent[0] <= width and extent[1] <= height:
            return width, height
    return int(np.ceil(extent[0])), int(np.ceil(extent[1]))


def read_release(path: Path, labels: dict[str, str], fps: float, report: Report) -> list[RawClip]:
    """The Isharah pose pickle -> clips that have both keypoints and a label."""
    content = load_untrusted_pickle(path, what="pose releases")
    if not isinstance(content, dict):
        raise DataError(f"{path}: expected a dict {{clip_id: {{'keypoints': (T, 86, 2)}}}}, found "
                        f"{type(content).__name__}")
    clips = []
    for clip_id, entry in content.items():
        clip_id = str(clip_id)
        if clip_id not in labels:
            report.bad(f"clip {clip_id!r}: has keypoints but no label in the labels file")
            continue
        checked = check_clip(clip_id, entry)
        if isinstance(checked, str):
            report.bad(checked)
            continue
        clips.append(RawClip(clip_id, checked, visible_points(checked), fps, None, labels[clip_id]))
    for clip_id in sorted(set(labels) - {str(key) for key in content}):
        report.bad(f"clip {clip_id!r}: has a label but no keypoints in {path.name}")
    return clips


def read_pose_file(path: Path, clip_id: str, text: str, fps: float | None) -> RawClip | str:
    """A MediaPipe Holistic .pose file -> the 86-point layout (first person), or why it cannot be used."""
    from pose_format import Pose

    try:
        pose = Pose.read(path.read_bytes())
    except Exception as error:  # pose-format raises many kinds on a damaged file  # noqa: BLE001
        return f"clip {clip_id!r}: {path} is not a readable .pose file ({type(error).__name__}: {error})"
    components = {c.name: c for c in pose.header.components}
    needed = ("POSE_LANDMARKS", "LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS")
    missing = [name for name in needed if name not in components]
    if missing:
        return (f"clip {clip_id!r}: {path} has no {' / '.join(missing)} (components: {list(components)}); "
                "SaSOKE needs MediaPipe Holistic body and hands")
    data = np.ma.getdata(pose.body.data)[:, 0].astype(np.float32)  # (T, P, dims)
    missed = np.ma.getmaskarray(pose.body.data)[:, 0].any(axis=-1) | (pose.body.confidence[:, 0] <= 0)
    offset, start = 0, {}
    for component in pose.header.components:
        start[component.name] = offset
        offset += len(component.points)
    frames = len(data)
    points = np.zeros((frames, N_POINTS, 3), dtype=np.float32)
    seen = np.zeros((frames, N_POINTS), dtype=bool)

    def take(name: str, block: slice, indices: list[int]) -> None:
        rows = [start[name] + i for i in indices]
        points[:, block, : min(3, data.shape[-1])] = data[:, rows, :3]
        seen[:, block] = ~missed[:, rows]

    take("RIGHT_HAND_LANDMARKS", RIGHT_HAND, list(range(21)))
    take("LEFT_HAND_LANDMARKS", LEFT_HAND, list(range(21)))
    take("POSE_LANDMARKS", POSE, list(range(POSE_POINTS)))
    if "FACE_LANDMARKS" in components:
        take("FACE_LANDMARKS", LIPS, list(LIP_FACEMESH))
    if not seen[:, RIGHT_HAND].any() and not seen[:, LEFT_HAND].any():
        return f"clip {clip_id!r}: {path} never sees a hand; nothing to fit a sign to"
    width, height = pose.header.dimensions.width, pose.header.dimensions.height
    seen &= np.isfinite(points).all(axis=-1)
    # a hand's z is relative to its wrist in units of the image width (SPEC 9): make it pixels
    depth = np.zeros((frames, N_POINTS), dtype=np.float32)
    for block in (RIGHT_HAND, LEFT_HAND):
        depth[:, block] = (points[:, block, 2] - points[:, block.start, 2, None]) * width
    xy = np.where(seen[..., None], points[..., :2], 0.0)
    return RawClip(clip_id, xy, seen, float(fps or pose.body.fps), (int(width), int(height)), text, depth)


def read_pose_folder(path: Path, labels: dict[str, str] | None, fps: float | None,
                     report: Report) -> tuple[list[RawClip], bool]:
    """.pose input -> (clips, is_lexicon). A folder with index.csv is a lexicon (its words are the text)."""
    index = path / "index.csv" if path.is_dir() else None
    entries: list[tuple[str, Path, str]] = []
    if index is not None and index.is_file():
        with open(index, encoding="utf-8-sig", newline="") as handle:
            for row_number, row in enumerate(csv.DictReader(handle), start=2):
                if not row.get("path"):
                    report.bad(f"{index} row {row_number}: no path")
                    continue
                relative = Path(row["path"])
                clip_id = "_".join([*relative.parent.parts, relative.stem]) if relative.parent.parts else \
                    relative.stem
                text = (row.get("words") or row.get("glosses") or "").strip()
                entries.append((clip_id, path / relative, text))
        lexicon = True
    else:
        files = sorted(path.rglob("*.pose")) if path.is_dir() else [path]
        if labels is None:
            raise DataError(f"{path}: .pose files without an index.csv need --labels with `id|text` lines "
                            "(id = the file name without .pose)")
        for file in files:
            clip_id = file.stem
            if clip_id not in labels:
                report.bad(f"clip {clip_id!r}: {file} has no label in the labels file")
                continue
            entries.append((clip_id, file, labels[clip_id]))
        for clip_id in sorted(set(labels) - {entry[0] for entry in entries} - {f.stem for f in files}):
            report.bad(f"clip {clip_id!r}: has a label but no .pose file")
        lexicon = False
    clips = []
    for clip_id, file, text in tqdm(entries, desc="reading .pose", unit="file", leave=False):
        if not file.is_file():
            report.bad(f"clip {clip_id!r}: {file} listed but not found")
            continue
        if not text:
            report.bad(f"clip {clip_id!r}: {file} has no words/glosses to use as its text")
            continue
        clip = read_pose_file(file, clip_id, text, fps)
        if isinstance(clip, str):
            report.bad(clip)
        else:
            clips.append(clip)
    return clips, lexicon


def _write_clip(split_dir: Path, clip_id: str, params: np.ndarray) -> None:
    """(T, 179) -> poses/<clip>/<clip>_<i>_3D.pkl, complete or not at all (a folder rename)."""
    final = split_dir / "poses" / clip_id
    partial = split_dir / "poses" / f".{clip_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for i, frame in enumerate(params):
        arrays = {key: frame[SMPLX_SLICES[key]].astype(np.float32) for key, _ in SMPLX_KEYS}
        with open(partial / f"{clip_id}_{i}_3D.pkl", "wb") as handle:
            pickle.dump(arrays, handle, protocol=4)
            handle.flush()
            os.fsync(handle.fileno())
    shutil.rmtree(final, ignore_errors=True)  # a same-named folder from an older, different run
    os.replace(partial, final)


def _finished(split_dir: Path, clip: RawClip) -> bool:
    folder = pose_dir_path(split_dir.parent, split_dir.name, clip.clip_id)
    return folder.is_dir() and len(frame_files(folder)) == len(clip.points)


def _write_csv(data_root: Path, split: str, clips: list[RawClip]) -> Path:
    path = split_csv_path(data_root, split)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    for clip in clips:
        sentence_id = clip.clip_id.split("_", 1)[1] if "_" in clip.clip_id else clip.clip_id
        writer.writerow([clip.clip_id, clip.clip_id, sentence_id, clip.clip_id, 0.0,
                         round(len(clip.points) / clip.fps, 4), clip.text, clip.fps])
    with AtomicFile(path) as handle:
        handle.write(text.getvalue().encode("utf-8"))
    return path


def cpu_cores() -> int:
    """The cores this process may run on (a container or `taskset` can give fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _fit_task(task: tuple[int, list[ClipKeypoints], FitSettings | None, PoseModel, int]) -> tuple[int, list[ClipFit]]:
    index, batch, settings, model, threads = task
    torch.set_num_threads(threads)
    return index, fit_clips(batch, settings, model=model)


def fit_batches(batches: list[list[ClipKeypoints]], settings: FitSettings | None, model: PoseModel,
                device: str = "cpu", workers: int = 1, threads: int | None = None
                ) -> Iterator[tuple[list[ClipKeypoints], list[ClipFit]]]:
    """Each batch with its fits, as the batches finish. `workers` > 1 fits whole batches in that many CPU
    processes, `threads` torch threads each (default: the cores shared out): the fit's many small batched
    products keep one thread busy but gain little from a second, and the batches are independent
    (docs/fitting.md measures both). A batch's fit does not depend on where it runs."""
    if workers <= 1 or len(batches) <= 1 or torch.device(device).type != "cpu":
        for batch in batches:
            yield batch, fit_clips(batch, settings, device=device, model=model)
        return
    workers = min(workers, len(batches))
    threads = threads or max(cpu_cores() // workers, 1)
    tasks = [(index, batch, settings, model, threads) for index, batch in enumerate(batches)]
    # spawn, not fork: a fork of a process whose torch thread pool has started can hang
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for index, fits in pool.imap_unordered(_fit_task, tasks):
            yield batches[index], fits


def import_keypoints(poses: str | Path, out: str | Path, split: str | None = None, labels: str | Path | None = None,
                     fps: float | None = None, image_size: tuple[int, int] | None = None, device: str = "cpu",
                     strict: bool = False, batch_frames: int | None = None, settings: FitSettings | None = None,
                     limit: int | None = None, kinematics: Kinematics | None = None, workers: int | None = None,
                     threads: int | None = None) -> dict:
    """Fit and write one split; returns {"written", "skipped" (messages), "already", "split_dir", "csv"}.
    `kinematics`: the smplx layer fits with SMPL-X's own skeleton (fit_smplx.PoseModel); None: mannequin-x's.
    `workers`: processes fitting batches side by side (default: one per CPU core on a CPU, one on a GPU), with
    `threads` torch threads each (default: the cores shared out). `batch_frames`: frames fitted together
    (default: 1024 on a CPU, 4096 on a GPU)."""
    poses, out = Path(poses), Path(out)
    report = Report(strict)
    if not poses.exists():
        raise DataError(f"{poses}: not found; --poses takes the release .pkl, a .pose file or a folder")
    label_map = read_labels(labels) if labels is not None else None
    if poses.is_file() and poses.suffix == ".pkl":
        if label_map is None:
            raise DataError("--labels is required with a pose release pickle (`id|gloss` lines)")
        clips = read_release(poses, label_map, fps or 30.0, report)
        split = split or "train"
    else:
        clips, lexicon = read_pose_folder(poses, label_map, fps, report)
        split = split or ("dictionary" if lexicon else "train")
    if limit is not None:
        clips = clips[:limit]
    if not clips:
        raise DataError(f"{poses}: no usable clip ({len(report.skipped)} skipped: "
                        f"{'; '.join(report.skipped[:3])})")
    guessed = image_size or _guess_image_size([c.points for c in clips if c.image_size is None] or [np.ones((1, 1, 2))])
    split_dir = out / split
    todo = [clip for clip in clips if not _finished(split_dir, clip)]
    sizes = [image_size or c.image_size or guessed for c in todo]
    keypoints = [ClipKeypoints(c.clip_id, c.points, in_image(c.points, c.visible, size), size,
                               c.clip_id.split("_")[0], c.depth) for c, size in zip(todo, sizes, strict=True)]
    model = PoseModel(kinematics)
    on_gpu = torch.device(device).type == "cuda"
    if workers is None:
        workers = 1 if on_gpu else cpu_cores()
    # a CPU fits ~1024 frames fastest per frame (the working set stays in cache: docs/fitting.md); a GPU is
    # given more (not yet measured on one)
    batches = group_by_signer(keypoints, batch_frames or (4096 if on_gpu else 1024))
    with tqdm(total=sum(len(c.points) for c in keypoints), desc=f"fitting {split}", unit="frame") as bar:
        for batch, fits in fit_batches(batches, settings, model, device, workers, threads):
            for fit in fits:
                _write_clip(split_dir, fit.clip_id, fit.params)
            bar.update(sum(len(c.points) for c in batch))
    csv_path = _write_csv(out, split, clips)
    return {"written": len(todo), "already": len(clips) - len(todo), "skipped": report.skipped,
            "backend": model.backend, "split_dir": split_dir, "csv": csv_path,
            "image_size": guessed if image_size is None else image_size}


DEFAULT_SMPLX_DIR = "deps/smpl_models"  # configs' KINEMATICS.SMPLX_DIR, where notebook 1 puts the files


def _has_smplx(folder: str) -> bool:
    try:
        smplx_model_file(folder)
    except ConfigError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--poses", required=True, help="the release .pkl, a .pose file, or a folder of .pose")
    parser.add_argument("--labels", help="`id|gloss` lines (required with a .pkl; a lexicon has index.csv)")
    parser.add_argument("--split", help="split name (default: train; dictionary for a lexicon)")
    parser.add_argument("--out", required=True, help="DATA_ROOT: the split goes to DATA_ROOT/<split>/")
    parser.add_argument("--fps", type=float, help="frame rate (default 30 for the release; .pose files say theirs)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"),
                        help="video size in pixels (default: .pose header; for the release, the smallest "
                             "phone size holding every point)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes fitting batches side by side (default: one per CPU core; 1 with --device "
                             "cuda)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per worker (default: the CPU cores shared out among the workers)")
    parser.add_argument("--batch-frames", type=int, default=None,
                        help="frames fitted together (default: 1024 on a CPU, the fastest per frame there; 4096 on "
                             "a GPU)")
    parser.add_argument("--iterations", type=int, default=FitSettings.iterations,
                        help="Gauss-Newton iterations per batch (fewer: faster, rougher)")
    parser.add_argument("--body-iterations", type=int, default=FitSettings.body_iterations,
                        help=f"L-BFGS steps that first place the body, on every {FitSettings.keyframe_step}th frame")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad clip instead of skipping it")
    parser.add_argument("--kinematics", choices=("auto", "skeleton", "smplx"), default="auto",
                        help="the skeleton fitted: smplx = SMPL-X's own, from the licensed model files in "
                             "--smplx-dir; skeleton = mannequin-x's; auto (default): smplx where the files exist")
    parser.add_argument("--smplx-dir", default=DEFAULT_SMPLX_DIR,
                        help=f"folder holding smplx/SMPLX_NEUTRAL.npz (default {DEFAULT_SMPLX_DIR})")
    args = parser.parse_args(argv)

    def run() -> None:
        if args.threads:
            torch.set_num_threads(args.threads)
        kinematics = None
        if args.kinematics == "smplx" or (args.kinematics == "auto" and _has_smplx(args.smplx_dir)):
            kinematics = build_kinematics("smplx", args.smplx_dir)
        result = import_keypoints(args.poses, args.out, args.split, args.labels, args.fps,
                                  tuple(args.image_size) if args.image_size else None, args.device, args.strict,
                                  args.batch_frames, FitSettings(iterations=args.iterations,
                                                                         body_iterations=args.body_iterations),
                                  kinematics=kinematics, workers=args.workers, threads=args.threads)
        for message in result["skipped"][:SHOWN_SKIPS]:
            print(f"skipped: {message}", file=sys.stderr)
        if len(result["skipped"]) > SHOWN_SKIPS:
            print(f"skipped: ... and {len(result['skipped']) - SHOWN_SKIPS} more (a release covering several "
                  "splits lists the other splits' clips here)", file=sys.stderr)
        print(f"{result['split_dir']}: fitted {result['written']} clips, {result['already']} already done, "
              f"{len(result['skipped'])} skipped; skeleton: {result['backend']}; CSV {result['csv']}")
        if args.image_size is None and args.poses.endswith(".pkl"):
            print(f"image size assumed {result['image_size'][0]}x{result['image_size'][1]} (pass --image-size "
                  "if your videos differ)")

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
