"""Pack each Isharah split once into a cache that training reads instead of thousands of pickles.

    <out>/<split>/frames.npy    all kept clips' frames, concatenated: (N, 179) float32
    <out>/<split>/skipped.json  clips left out and why
    <out>/<split>/index.json    names, texts, offsets, lengths, frame rates, and the manifest
    <out>/stats.npz             mean/std of the train frames, 179- and 133-dim

index.json is the commit point: it is removed before a split is rewritten and written last, each
file through a temp file and os.replace, so a killed run leaves either the old cache or none, never
a mix. The manifest (CSV hash, per-clip fingerprints of file names, sizes and mtimes, target fps)
makes a re-run on unchanged data a no-op, and lets a rebuild copy unchanged clips from the old
cache instead of reading their pickles again (the slow part on a Drive mount).

    python -m mGPT.data.prepare [--cfg CONFIG] [--data-root DIR] [--out DIR] [--splits train val test dictionary]
        [--target-fps FPS] [--max-seconds S] [--strict] [--check]

The frame rate and the length limit come from CONFIG's DATASET.TARGET_FPS and DATASET.MAX_SECONDS
(default configs/default.yaml: 24 fps, 30 s), as do the data root and the cache folder; the flags
override them. index.json records what was used: the cache's frame rate is the one every clip, code and
video runs at, and training or testing with a config that says otherwise is an error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from tqdm import tqdm

from mGPT.config import CONFIG_DIR, load_config
from mGPT.data.features import resample_to_fps, stats_179_to_133
from mGPT.data.isharah import pose_dir_path, read_clip, read_split_csv, split_csv_path
from mGPT.errors import ConfigError, DataError, SaSOKEError, os_error_message
from mGPT.files import AtomicFile, atomic_write, atomic_write_text
from mGPT.layout import FRAME_DIMS, default_cache_dir

CACHE_FORMAT = 1
DEFAULT_SPLITS = ("train", "val", "test", "dictionary")
_NPY_HEADER_BYTES = 128  # room for any (N, 179) float32 header, so it can be written after the data

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class PackedSplit:
    """One cached split. `frames` is memory-mapped; clip(i) copies one clip out of it."""

    frames: np.ndarray  # (N, 179) float32, read-only memory map
    offsets: np.ndarray  # (C,) int64 first frame of each clip
    lengths: np.ndarray  # (C,) int64 frames per clip
    names: list[str]
    texts: list[str]
    source_fps: np.ndarray  # (C,) float64 the CSV frame rate each clip was recorded at
    target_fps: float  # every clip's frame rate in the cache
    video_ids: list[str] = field(default_factory=list)
    sentence_ids: list[str] = field(default_factory=list)
    fingerprints: list[str] = field(default_factory=list)  # of each clip's pose folder, for rebuilds
    build_id: str = ""  # hash of the manifest the split was built from
    max_seconds: float | None = None  # clips this long or longer were left out (None: not known)

    def __len__(self) -> int:
        return len(self.names)

    def clip(self, i: int) -> np.ndarray:
        start = int(self.offsets[i])
        return np.array(self.frames[start:start + int(self.lengths[i])], dtype=np.float32)  # (T_i, 179)


def _write_json(path: Path, content: object) -> None:
    atomic_write_text(path, json.dumps(content, ensure_ascii=False))


def _npy_header(rows: int) -> bytes:
    """NPY format 1.0 header for a C-order (rows, 179) float32 array, padded to _NPY_HEADER_BYTES."""
    description = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {FRAME_DIMS}), }}"
    padding = _NPY_HEADER_BYTES - 10 - len(description) - 1
    return b"\x93NUMPY\x01\x00" + (_NPY_HEADER_BYTES - 10).to_bytes(2, "little") + (
        description + " " * padding + "\n").encode("latin1")


class _FramesWriter:
    """Streams clips into a temp .npy file one at a time, so a split never has to fit in memory."""

    def __init__(self, path: Path) -> None:
        self.rows = 0
        self._file = AtomicFile(path)
        self._file.handle.write(b"\0" * _NPY_HEADER_BYTES)

    def append(self, frames: np.ndarray) -> None:
        self._file.handle.write(np.ascontiguousarray(frames, dtype="<f4").tobytes())
        self.rows += len(frames)

    def commit(self) -> None:
        self._file.handle.seek(0)
        self._file.handle.write(_npy_header(self.rows))
        self._file.commit()

    def discard(self) -> None:
        self._file.discard()


# ---------------------------------------------------------------- loading


def _rerun_hint(cache_dir: Path) -> str:
    return f"re-run `python -m mGPT.data.prepare --cfg <your config> --data-root <DATA_ROOT> --out {cache_dir}`"


def _read_index(split_dir: Path) -> dict:
    index_path = split_dir / "index.json"
    if not index_path.is_file():
        raise DataError(f"{index_path}: no packed cache for this split (missing, or a build was interrupted); "
                        f"{_rerun_hint(split_dir.parent)}")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        raise DataError(f"{index_path}: unreadable ({error}); {_rerun_hint(split_dir.parent)}") from error
    if not isinstance(index, dict) or index.get("format") != CACHE_FORMAT:
        raise DataError(f"{index_path}: not a cache index of format {CACHE_FORMAT}; {_rerun_hint(split_dir.parent)}")
    return index


def load_cache(cache_dir: str | Path, split: str) -> PackedSplit:
    """Open one packed split; any inconsistency between its files raises DataError."""
    split_dir = Path(cache_dir) / split
    index = _read_index(split_dir)
    frames_path = split_dir / "frames.npy"
    hint = _rerun_hint(Path(cache_dir))
    try:
        names = [str(name) for name in index["names"]]
        offsets = np.asarray(index["offsets"], dtype=np.int64).reshape(-1)
        lengths = np.asarray(index["lengths"], dtype=np.int64).reshape(-1)
        columns = {key: index[key] for key in ("texts", "video_ids", "sentence_ids", "source_fps",
                                                "fingerprints")}
        total_frames, target_fps, build_id = int(index["frames"]), float(index["target_fps"]), str(index["build_id"])
        max_seconds = float(index["max_seconds"])
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{split_dir / 'index.json'}: missing or malformed entry {error}; {hint}") from error
    if any(len(values) != len(names) for values in [offsets, lengths, *columns.values()]):
        raise DataError(f"{split_dir / 'index.json'}: per-clip lists differ in length; {hint}")
    expected_offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
    if (lengths <= 0).any() or not np.array_equal(offsets, expected_offsets) or lengths.sum() != total_frames:
        raise DataError(f"{split_dir / 'index.json'}: clip offsets and lengths do not tile the frames; {hint}")
    if not frames_path.is_file():
        raise DataError(f"{frames_path}: missing although index.json exists; {hint}")
    try:
        # A zero-byte array cannot be memory-mapped.
        frames = np.load(frames_path, mmap_mode="r" if total_frames else None, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise DataError(f"{frames_path}: unreadable ({error}); {hint}") from error
    if frames.shape != (total_frames, FRAME_DIMS) or frames.dtype != np.float32:
        raise DataError(f"{frames_path}: holds {frames.dtype} {frames.shape}, but index.json expects float32 "
                        f"({total_frames}, {FRAME_DIMS}); the cache is inconsistent, {hint}")
    return PackedSplit(
        frames=frames, offsets=offsets, lengths=lengths, names=names,
        texts=[str(text) for text in columns["texts"]],
        video_ids=[str(video_id) for video_id in columns["video_ids"]],
        sentence_ids=[str(sentence_id) for sentence_id in columns["sentence_ids"]],
        source_fps=np.asarray(columns["source_fps"], dtype=np.float64),
        target_fps=target_fps, fingerprints=[str(value) for value in columns["fingerprints"]], build_id=build_id,
        max_seconds=max_seconds,
    )


def check_cache_settings(packed: PackedSplit, split_dir: str | Path, target_fps: float, max_seconds: float) -> None:
    """ConfigError unless `packed` (the split at split_dir) was built with this frame rate and length limit,
    the values a run's DATASET.TARGET_FPS and DATASET.MAX_SECONDS name."""
    settings = (("TARGET_FPS", "target-fps", "frame rate", packed.target_fps, target_fps, " fps"),
                ("MAX_SECONDS", "max-seconds", "clip length limit", packed.max_seconds, max_seconds, " s"))
    for key, flag, what, cached, configured, unit in settings:
        if cached is None or float(cached) == float(configured):
            continue
        raise ConfigError(
            f"the packed cache {split_dir} has a {what} of {cached:g}{unit}, but DATASET.{key} is "
            f"{configured:g}{unit}. Re-pack it with this config (`python -m mGPT.data.prepare --cfg <your "
            f"config>`, or --{flag} {configured:g}), or set DATASET.{key}={cached:g} to use the cache as it is"
        )


def load_stats(cache_dir: str | Path) -> dict[str, np.ndarray]:
    """mean179, std179, mean133, std133 (float32) of the train split the cache holds now."""
    cache_dir = Path(cache_dir)
    path = cache_dir / "stats.npz"
    hint = _rerun_hint(cache_dir)
    if not path.is_file():
        raise DataError(f"{path}: no train statistics; {hint}")
    try:
        with np.load(path, allow_pickle=False) as content:
            stats = {key: np.asarray(content[key]) for key in content.files}
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: unreadable ({error}); {hint}") from error
    sizes = {"mean179": FRAME_DIMS, "std179": FRAME_DIMS, "mean133": 133, "std133": 133}
    for key, size in sizes.items():
        if key not in stats or stats[key].shape != (size,) or not np.isfinite(stats[key]).all():
            raise DataError(f"{path}: entry {key!r} is missing or not {size} finite numbers; {hint}")
    train_build = _read_index(cache_dir / "train").get("build_id")
    if str(stats.get("train_build_id", "")) != train_build:
        raise DataError(f"{path}: computed from another version of the train cache; {hint}")
    return {key: stats[key].astype(np.float32) for key in sizes}


# ---------------------------------------------------------------- building


@dataclass
class _Row:
    line: int  # line in the CSV file (header is line 1)
    name: str
    text: str
    video_id: str
    sentence_id: str
    fps: float
    folder: Path
    fingerprint: str = ""


def _problem(split: str, name: str, line: int, reason: str, kind: str = "bad") -> dict:
    return {"split": split, "name": name, "line": line, "reason": reason, "kind": kind}


def _row_problem(values: pd.Series, max_seconds: float) -> tuple[str, str] | None:
    """Why a CSV row cannot become a clip, as (kind, reason), or None when it is fine."""
    for column in ("START_REALIGNED", "END_REALIGNED", "fps"):
        if not math.isfinite(values[column]):
            return "bad", f"{column} is not a number"
    if values["fps"] <= 0:
        return "bad", f"fps {values['fps']} is not positive"
    duration = values["END_REALIGNED"] - values["START_REALIGNED"]
    if duration < 0:
        return "bad", "END_REALIGNED is before START_REALIGNED"
    if duration >= max_seconds:
        return "too_long", f"duration {duration:.2f} s is {max_seconds:g} s or more"
    if not values["SENTENCE"].strip():
        return "bad", "SENTENCE is empty"
    return None


def _fingerprint(folder: Path) -> str:
    """Hash of the folder's file names, sizes and mtimes: changes whenever a frame is added, removed or edited."""
    if not folder.is_dir():
        return ""
    entries = []
    for entry in os.scandir(folder):
        if entry.is_file():
            status = entry.stat()
            entries.append((entry.name, status.st_size, status.st_mtime_ns))
    entries.sort()
    return hashlib.sha1(json.dumps(entries).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _ordered_parallel(function: Callable[[Item], Result], items: Iterable[Item], workers: int) -> Iterator[Result]:
    """function over items on a thread pool, results in input order, at most 4 * workers in flight.

    Reading pickles from a network mount waits on I/O, so threads overlap the waits."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) >= 4 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _plan_rows(split: str, csv_path: Path, data_root: Path, max_seconds: float, strict: bool,
               skipped: list[dict]) -> list[_Row]:
    """CSV rows that may become clips; the others go to `skipped` (or raise, when strict)."""
    table = read_split_csv(csv_path)
    rows, seen = [], set()
    for position, values in enumerate(table.to_dict("records")):
        line, name = position + 2, values["SENTENCE_NAME"].strip()
        problem = _row_problem(values, max_seconds)
        if problem is None and not name:
            problem = ("bad", "SENTENCE_NAME is empty")
        if problem is None and name in seen:
            problem = ("bad", f"SENTENCE_NAME {name!r} repeats an earlier row")
        if problem is not None:
            kind, reason = problem
            if strict and kind == "bad":
                raise DataError(f"{csv_path}, line {line} ({name or 'no name'}): {reason}; fix the row, or run "
                                f"without --strict to skip bad clips")
            skipped.append(_problem(split, name, line, reason, kind))
            continue
        seen.add(name)
        rows.append(_Row(line=line, name=name, text=values["SENTENCE"].strip(), video_id=values["VIDEO_ID"].strip(),
                         sentence_id=values["SENTENCE_ID"].strip(), fps=float(values["fps"]),
                         folder=pose_dir_path(data_root, split, name)))
    return rows


def _read_resampled(row: _Row, target_fps: float) -> np.ndarray | DataError:
    try:
        return resample_to_fps(read_clip(row.folder), row.fps, target_fps)  # (T', 179)
    except DataError as error:
        return error
    except OSError as error:
        return DataError(f"{row.folder}: cannot read ({error})")


def _old_clips(split_dir: Path, target_fps: float) -> tuple[PackedSplit | None, dict[tuple[str, str, float], int]]:
    """The previous cache of this split, if it loads and used the same target fps, and its clips by key."""
    try:
        old = load_cache(split_dir.parent, split_dir.name)
    except DataError:
        return None, {}
    if old.target_fps != target_fps:
        return None, {}
    keys = zip(old.names, old.fingerprints, old.source_fps.tolist(), strict=True)
    return old, {key: i for i, key in enumerate(keys)}


def _build_split(split: str, data_root: Path, out_dir: Path, target_fps: float, max_seconds: float,
                 strict: bool, check_only: bool, workers: int) -> dict:
    csv_path = split_csv_path(data_root, split)
    skipped: list[dict] = []
    rows = _plan_rows(split, csv_path, data_root, max_seconds, strict, skipped)
    fingerprints = _ordered_parallel(lambda row: _fingerprint(row.folder), rows, workers)
    for row, fingerprint in zip(rows, tqdm(fingerprints, total=len(rows), desc=f"scan {split}", unit="clip"),
                                strict=True):
        row.fingerprint = fingerprint
    manifest = {
        "format": CACHE_FORMAT, "csv_sha256": _file_sha256(csv_path), "target_fps": target_fps,
        "max_seconds": max_seconds, "clips": [[row.name, row.fingerprint, row.fps] for row in rows],
    }
    build_id = hashlib.sha1(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    split_dir = out_dir / split

    if not check_only:
        up_to_date = _up_to_date_report(split_dir, build_id)
        if up_to_date is not None:
            return up_to_date
        split_dir.mkdir(parents=True, exist_ok=True)
        for stale in split_dir.glob(".*.tmp"):  # left behind by a killed run
            stale.unlink()
        old, old_keys = _old_clips(split_dir, target_fps)
    else:
        old, old_keys = None, {}

    def produce(row: _Row) -> np.ndarray | DataError:
        if not row.fingerprint:
            return DataError(f"{row.folder}: pose folder not found for CSV line {row.line}")
        key = (row.name, row.fingerprint, row.fps)
        if key in old_keys:
            return old.clip(old_keys[key])
        return _read_resampled(row, target_fps)

    writer = None if check_only else _FramesWriter(split_dir / "frames.npy")
    kept: list[_Row] = []
    lengths: list[int] = []
    try:
        results = _ordered_parallel(produce, rows, workers)
        for row, result in zip(rows, tqdm(results, total=len(rows), desc=f"read {split}", unit="clip"), strict=True):
            if isinstance(result, DataError):
                if strict:
                    raise DataError(f"{csv_path}, line {row.line} ({row.name}): {result}; fix or remove this "
                                    f"clip, or run without --strict to skip bad clips") from result
                skipped.append(_problem(split, row.name, row.line, str(result)))
                continue
            kept.append(row)
            lengths.append(len(result))
            if writer is not None:
                writer.append(result)
        if writer is None:
            return _split_report("checked", len(kept), sum(lengths), skipped)
        index = {
            "format": CACHE_FORMAT, "split": split, "build_id": build_id, "target_fps": target_fps,
            "max_seconds": max_seconds, "frames": writer.rows,
            "names": [row.name for row in kept], "texts": [row.text for row in kept],
            "video_ids": [row.video_id for row in kept], "sentence_ids": [row.sentence_id for row in kept],
            "offsets": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist() if kept else [],
            "lengths": lengths, "source_fps": [row.fps for row in kept],
            "fingerprints": [row.fingerprint for row in kept], "manifest": manifest,
        }
        (split_dir / "index.json").unlink(missing_ok=True)  # from here on the split does not load until done
        writer.commit()
        _write_json(split_dir / "skipped.json", skipped)
        _write_json(split_dir / "index.json", index)
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    return _split_report("built", len(kept), sum(lengths), skipped)


def _split_report(status: str, clips: int, frames: int, skipped: list[dict]) -> dict:
    return {"status": status, "clips": clips, "frames": frames, "skipped": skipped}


def _up_to_date_report(split_dir: Path, build_id: str) -> dict | None:
    """The report of the existing cache when it was built from exactly this manifest and still loads."""
    try:
        split = load_cache(split_dir.parent, split_dir.name)
        skipped = json.loads((split_dir / "skipped.json").read_text(encoding="utf-8"))
    except (DataError, OSError, json.JSONDecodeError):
        return None
    if split.build_id != build_id or not isinstance(skipped, list):
        return None
    return _split_report("up to date", len(split), int(split.lengths.sum()), skipped)


def _train_stats(train: PackedSplit, chunk_frames: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and population std of all train frames, two passes in float64 over chunks."""
    if len(train.frames) == 0:
        raise DataError("the train split has no usable clips, so there are no statistics to normalize with; "
                        "see the skipped clips above")
    chunks = range(0, len(train.frames), chunk_frames)
    total = sum(np.asarray(train.frames[i:i + chunk_frames], np.float64).sum(axis=0) for i in chunks)
    mean = total / len(train.frames)
    squares = sum(((np.asarray(train.frames[i:i + chunk_frames], np.float64) - mean) ** 2).sum(axis=0)
                  for i in chunks)
    return mean, np.sqrt(squares / len(train.frames))


def _ensure_stats(out_dir: Path) -> bool:
    """Write stats.npz unless it already matches the train cache; True when written."""
    try:
        load_stats(out_dir)
        return False
    except DataError:
        pass
    train = load_cache(out_dir, "train")
    mean179, std179 = _train_stats(train)
    mean133, std133 = stats_179_to_133(mean179, std179)
    arrays = {"mean179": mean179, "std179": std179, "mean133": mean133, "std133": std133}
    atomic_write(out_dir / "stats.npz", lambda handle: np.savez(
        handle, **{key: value.astype(np.float32) for key, value in arrays.items()},
        train_build_id=np.array(train.build_id), frames=np.array(len(train.frames))))
    return True


def build_cache(data_root: str | Path, out_dir: str | Path | None = None, splits: Iterable[str] = DEFAULT_SPLITS,
                target_fps: float = 24, max_seconds: float = 30, strict: bool = False, check_only: bool = False,
                workers: int = 8) -> dict:
    """Pack the splits of an Isharah folder (see the module docstring). Returns a report:

    {"out_dir", "check_only", "notes": [...], "stats_written": bool,
     "splits": {split: {"status": "built" | "up to date" | "checked", "clips", "frames", "skipped": [...]}}}
    where each skipped entry is {"split", "name", "line", "reason", "kind": "bad" | "too_long"}.
    """
    data_root = Path(data_root)
    out_dir = Path(out_dir) if out_dir is not None else default_cache_dir(data_root)
    if not data_root.is_dir():
        raise DataError(f"{data_root}: data root not found; pass the folder that holds train/ val/ test/")
    if target_fps <= 0 or max_seconds <= 0:
        raise DataError(f"--target-fps ({target_fps}) and --max-seconds ({max_seconds}) must be positive")
    report: dict = {"out_dir": str(out_dir), "check_only": check_only, "notes": [], "splits": {},
                    "stats_written": False}
    # Train first: it must exist, and the statistics come from it.
    ordered = sorted(dict.fromkeys(splits), key=lambda split: split != "train")
    for split in ordered:
        csv_path = split_csv_path(data_root, split)
        if not csv_path.is_file():
            if split == "train":
                raise DataError(f"{csv_path}: the train split CSV is missing; train is required")
            report["notes"].append(f"{split}: no split at {csv_path}, skipped")
            continue
        if not check_only:
            out_dir.mkdir(parents=True, exist_ok=True)
        report["splits"][split] = _build_split(split, data_root, out_dir, float(target_fps), float(max_seconds),
                                               strict, check_only, workers)
    if "train" in report["splits"] and not check_only:
        for stale in out_dir.glob(".stats.npz.*.tmp"):  # left behind by a killed run
            stale.unlink()
        report["stats_written"] = _ensure_stats(out_dir)
    return report


def format_report(report: dict) -> str:
    """Human-readable summary: one line per split, then every skipped clip and why."""
    lines = list(report["notes"])
    for split, entry in report["splits"].items():
        bad = sum(item["kind"] == "bad" for item in entry["skipped"])
        too_long = len(entry["skipped"]) - bad
        lines.append(f"{split}: {entry['status']}, {entry['clips']} clips, {entry['frames']} frames, "
                     f"skipped {len(entry['skipped'])} ({bad} bad, {too_long} too long)")
    for entry in report["splits"].values():
        for item in entry["skipped"]:
            lines.append(f"  skipped {item['split']} {item['name'] or '?'} (CSV line {item['line']}): {item['reason']}")
    if report["check_only"]:
        lines.append("check only: nothing was written")
    elif all(entry["status"] == "up to date" for entry in report["splits"].values()) and not report["stats_written"]:
        lines.append(f"cache at {report['out_dir']} is up to date")
    else:
        lines.append(f"cache written to {report['out_dir']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pack Isharah splits into a cache of frames for training.")
    parser.add_argument("--cfg", type=Path, default=CONFIG_DIR / "default.yaml",
                        help="config whose DATASET keys give the defaults below (default configs/default.yaml)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder holding train/ val/ test/ (default DATASET.DATA_ROOT)")
    parser.add_argument("--out", type=Path, default=None,
                        help="cache folder (default DATASET.CACHE_DIR, else <DATA_ROOT>/_cache)")
    parser.add_argument("--splits", nargs="+", default=list(DEFAULT_SPLITS))
    parser.add_argument("--target-fps", type=float, default=None, help="default DATASET.TARGET_FPS")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="drop clips this long or longer (default DATASET.MAX_SECONDS)")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad clip")
    parser.add_argument("--check", action="store_true", help="validate and report, write nothing")
    parser.add_argument("--workers", type=int, default=8, help="threads reading pickles")
    args = parser.parse_args(argv)
    folder = args.out
    try:
        data = load_config(args.cfg).DATASET
        data_root = args.data_root or Path(data.DATA_ROOT)
        out = args.out or (Path(data.CACHE_DIR) if data.CACHE_DIR else default_cache_dir(data_root))
        folder = out
        report = build_cache(data_root, out, splits=args.splits,
                             target_fps=data.TARGET_FPS if args.target_fps is None else args.target_fps,
                             max_seconds=data.MAX_SECONDS if args.max_seconds is None else args.max_seconds,
                             strict=args.strict, check_only=args.check, workers=max(args.workers, 1))
    except SaSOKEError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk or an --out that cannot be a folder
        print(f"error: {os_error_message(error, folder or args.cfg)}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
