"""The packed motion-code file that stage 2 trains from: codes (T/F, 3) = [body, lhand, rhand] per clip
(F = the tokenizer's frames per code).

One .npz next to the cache, per split `<split>/codes` (sum N_i, 3) int16 plus offsets, lengths and names
in cache order, and the fingerprint of the tokenizer that made them: codes from another tokenizer mean
other tokens, so stage 2 refuses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mGPT.errors import DataError
from mGPT.files import atomic_write


@dataclass
class SplitCodes:
    codes: np.ndarray  # (sum N_i, 3) int16
    offsets: np.ndarray  # (M,)
    lengths: np.ndarray  # (M,) tokens per clip
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def clip(self, i: int) -> np.ndarray:  # (N_i, 3) int64
        start = int(self.offsets[i])
        return self.codes[start : start + int(self.lengths[i])].astype(np.int64)


def save_codes(path: str | Path, splits: dict[str, list[np.ndarray]], names: dict[str, list[str]],
               fingerprint: str) -> Path:
    """Write all splits at once, atomically (temporary file, then rename)."""
    arrays: dict[str, np.ndarray] = {"tokenizer_fingerprint": np.array(fingerprint)}
    for split, clips in splits.items():
        lengths = np.array([len(c) for c in clips], dtype=np.int64)
        arrays[f"{split}/codes"] = (np.concatenate(clips) if clips else np.zeros((0, 3))).astype(np.int16)
        arrays[f"{split}/lengths"] = lengths
        arrays[f"{split}/offsets"] = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        arrays[f"{split}/names"] = np.array(names[split], dtype=str)
    return atomic_write(path, lambda handle: np.savez(handle, **arrays))


def load_codes(path: str | Path, split: str, fingerprint: str | None = None) -> SplitCodes:
    """One split's codes; with `fingerprint`, refuse codes made by a different tokenizer."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"motion codes not found: {path}. Run scripts/get_motion_code.py --cfg <config> first.")
    with np.load(path) as data:
        made_by = str(data["tokenizer_fingerprint"])
        if fingerprint is not None and made_by != fingerprint:
            raise DataError(
                f"{path} was made by a different tokenizer (fingerprint {made_by[:12]}, the configured "
                f"tokenizer is {fingerprint[:12]}). Re-run scripts/get_motion_code.py with this config."
            )
        if f"{split}/codes" not in data:
            raise DataError(f"{path} has no codes for split '{split}'. Re-run scripts/get_motion_code.py.")
        return SplitCodes(
            codes=data[f"{split}/codes"],
            offsets=data[f"{split}/offsets"],
            lengths=data[f"{split}/lengths"],
            names=[str(n) for n in data[f"{split}/names"]],
        )
