"""Reading the Isharah dataset as it lies on disk: split CSVs and one SMPL-X pickle per frame.

Layout (SPEC section 1):

    <DATA_ROOT>/<split>/re_aligned/isharah_realigned_<split>_preprocessed_fps.csv
    <DATA_ROOT>/<split>/poses/<SENTENCE_NAME>/<SENTENCE_NAME>_<frame>_3D.pkl

The pickles come from whoever fitted SMPL-X to the videos, so they are untrusted: they are opened
with an unpickler that only rebuilds numpy arrays, numbers and plain containers.
"""

from __future__ import annotations

import _codecs
import builtins
import collections
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd

from mGPT.errors import DataError
from mGPT.layout import SMPLX_KEYS

CSV_COLUMNS = (
    "VIDEO_ID",
    "VIDEO_NAME",
    "SENTENCE_ID",
    "SENTENCE_NAME",
    "START_REALIGNED",
    "END_REALIGNED",
    "SENTENCE",
    "fps",
)
NUMERIC_COLUMNS = ("START_REALIGNED", "END_REALIGNED", "fps")

_REFUSED = "refused global"
FRAME_FILE_PATTERN = re.compile(r"^(?P<name>.+)_(?P<frame>\d+)_3D\.pkl$")


def split_csv_path(data_root: str | Path, split: str) -> Path:
    return Path(data_root) / split / "re_aligned" / f"isharah_realigned_{split}_preprocessed_fps.csv"


def pose_dir_path(data_root: str | Path, split: str, sentence_name: str) -> Path:
    return Path(data_root) / split / "poses" / sentence_name


def read_split_csv(path: str | Path) -> pd.DataFrame:
    """Read a split CSV with all of CSV_COLUMNS; text columns stay strings, numeric ones become floats.

    A cell in a numeric column that is not a number becomes NaN, so the caller can name the bad row
    instead of losing the whole split.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: split CSV not found; check --data-root and the split folder layout")
    try:
        # utf-8-sig drops a byte order mark; pandas handles CRLF line ends on its own.
        table = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        raise DataError(f"{path}: cannot read the CSV ({error}); it must be UTF-8 with a header row") from error
    table.columns = [str(column).strip() for column in table.columns]
    for column in CSV_COLUMNS:
        if column not in table.columns:
            raise DataError(
                f"{path}: required column {column!r} is missing (found {list(table.columns)}); "
                f"the CSV needs all of {list(CSV_COLUMNS)}"
            )
    for column in NUMERIC_COLUMNS:
        table[column] = pd.to_numeric(table[column].str.strip(), errors="coerce").astype("float64")
    return table


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays, numpy scalars and plain containers; refuses every other global."""

    # numpy 1.x pickles name numpy.core; numpy 2 renamed it numpy._core. Both resolve to numpy._core.
    # Protocols 0-2 spell bytes as _codecs.encode(text, "latin1").
    _ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
        ("numpy.core.multiarray", "scalar"): np._core.multiarray.scalar,
        ("numpy._core.multiarray", "scalar"): np._core.multiarray.scalar,
        ("numpy.core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
        ("numpy._core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
        ("_codecs", "encode"): _codecs.encode,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    _BUILTINS = ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool", "str",
                 "bytes", "bytearray")

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module in ("builtins", "__builtin__") and name in self._BUILTINS:
            return getattr(builtins, name)
        raise pickle.UnpicklingError(f"{_REFUSED} {module}.{name}")


def load_untrusted_pickle(path: str | Path, what: str = "frame pickles") -> object:
    """Unpickle `path` rebuilding only numpy arrays, numbers and plain containers; nothing in it is run."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return _NumpyOnlyUnpickler(handle).load()
    except pickle.UnpicklingError as error:
        if str(error).startswith(_REFUSED):
            raise DataError(
                f"{path}: {error}; {what} may only hold numpy arrays, numbers and plain containers "
                f"(the file was not run). Re-export it with numpy arrays only"
            ) from error
        raise DataError(f"{path}: corrupt pickle ({error}); re-export it or delete it") from error
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OSError) as error:
        raise DataError(f"{path}: unreadable pickle ({type(error).__name__}: {error}); "
                        f"re-export it or delete it") from error


def load_frame_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """Load one per-frame pickle: a dict whose values become numpy arrays. Nothing in it is executed."""
    path = Path(path)
    content = load_untrusted_pickle(path)
    if not isinstance(content, dict):
        raise DataError(f"{path}: expected a dict of SMPL-X arrays, found {type(content).__name__}")
    arrays = {}
    for key, value in content.items():
        try:
            arrays[str(key)] = np.asarray(value)
        except (ValueError, TypeError) as error:
            raise DataError(f"{path}: value of key {key!r} is not an array ({error})") from error
    return arrays


def frame_number(path: Path) -> int | None:
    match = FRAME_FILE_PATTERN.match(path.name)
    return int(match["frame"]) if match else None


def frame_files(pose_dir: str | Path) -> list[Path]:
    """Frame pickles of a clip folder, ordered by the integer frame number (x_9 before x_10).

    Files that do not look like `<NAME>_<frame>_3D.pkl` (e.g. .DS_Store) are ignored; gaps are fine.
    """
    pose_dir = Path(pose_dir)
    if not pose_dir.is_dir():
        raise DataError(f"{pose_dir}: pose folder not found; every CSV SENTENCE_NAME needs a folder of frames")
    numbered = [(frame_number(path), path.name, path) for path in pose_dir.iterdir() if path.is_file()]
    return [path for number, _, path in sorted(item for item in numbered if item[0] is not None)]


def frame_vector(arrays: dict[str, np.ndarray], path: Path) -> np.ndarray:
    """Concatenate the SMPLX_KEYS of one loaded frame into 179 finite float32 numbers."""
    parts = []
    for key, size in SMPLX_KEYS:
        if key not in arrays:
            raise DataError(f"{path}: missing key {key!r} (found {sorted(arrays)}); "
                            f"each frame needs all of {[k for k, _ in SMPLX_KEYS]}")
        value = arrays[key]
        if value.size != size:
            raise DataError(f"{path}: key {key!r} has {value.size} numbers (shape {value.shape}), "
                            f"expected {size}")
        if not np.issubdtype(value.dtype, np.number) or np.issubdtype(value.dtype, np.complexfloating):
            raise DataError(f"{path}: key {key!r} holds {value.dtype} values, expected real numbers")
        parts.append(value.reshape(size).astype(np.float32))
    vector = np.concatenate(parts)
    if not np.isfinite(vector).all():
        bad_key = next(key for (key, _), part in zip(SMPLX_KEYS, parts, strict=True)
                       if not np.isfinite(part).all())
        raise DataError(f"{path}: key {bad_key!r} contains NaN or inf; re-fit or delete this frame")
    return vector


def read_clip(pose_dir: str | Path) -> np.ndarray:
    """All frames of one clip folder as a (T, 179) float32 array in frame-number order."""
    pose_dir = Path(pose_dir)
    paths = frame_files(pose_dir)
    if not paths:
        raise DataError(f"{pose_dir}: no frame files named <NAME>_<frame>_3D.pkl in this folder")
    frames = [frame_vector(load_frame_pickle(path), path) for path in paths]
    return np.stack(frames)  # (T, 179)
