"""Encode every clip of every split once with the tokenizer, for stage 2.

    python scripts/get_motion_code.py --cfg configs/soke.yaml [KEY=value ...]

Reads the packed cache, applies the length rules (multiples of the tokenizer's frames per code F = 2**DOWN_T),
and writes codes (T/F, 3) = [body, lhand, rhand] per clip to DATASET.CODES_PATH (default <cache>/codes.npz),
stamped with the tokenizer's fingerprint.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np
import torch
from tqdm import tqdm

from mGPT.archs.deto import DETO, load_tokenizer
from mGPT.config import codes_path, parse_args
from mGPT.data.codes import save_codes
from mGPT.data.features import clip_features
from mGPT.data.prepare import PackedSplit
from mGPT.errors import CheckpointError, run_cli
from mGPT.models.datamodule import load_split

SPLITS = ("train", "val", "test")
BATCH = 32


@torch.no_grad()
def encode_split(tokenizer: DETO, packed: PackedSplit, min_frames: int, max_frames: int,
                 device: torch.device, desc: str) -> list[np.ndarray]:
    """Codes (T_i/F, 3) per clip, F = tokenizer.frames_per_code; clips of equal length are encoded together."""
    features = [clip_features(packed.clip(i), min_frames, max_frames, tokenizer.frames_per_code)
                for i in range(len(packed))]
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, clip in enumerate(features):
        by_length[len(clip)].append(i)
    codes: list[np.ndarray | None] = [None] * len(features)
    with tqdm(total=len(features), desc=desc, unit="clip") as bar:
        for indices in by_length.values():
            for start in range(0, len(indices), BATCH):
                chunk = indices[start : start + BATCH]
                batch = torch.from_numpy(np.stack([features[i] for i in chunk])).to(device)  # (B, T, 133)
                for i, clip_codes in zip(chunk, tokenizer.encode(batch).cpu().numpy(), strict=True):
                    codes[i] = clip_codes
                bar.update(len(chunk))
    return codes


def main() -> None:
    cfg = parse_args(__doc__.splitlines()[0])
    if not cfg.TRAIN.PRETRAINED_VAE:
        raise CheckpointError("set TRAIN.PRETRAINED_VAE=<tokenizer checkpoint> (ours or SOKE's) to extract codes")
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.ACCELERATOR != "cpu" else "cpu")
    tokenizer = load_tokenizer(cfg.TRAIN.PRETRAINED_VAE, cfg.DATASET.MEAN_PATH, cfg.DATASET.STD_PATH).to(device)
    splits, names = {}, {}
    for split in SPLITS:
        packed = load_split(cfg, split)
        splits[split] = encode_split(tokenizer, packed, cfg.DATASET.MIN_FRAMES, cfg.DATASET.MAX_FRAMES, device, split)
        names[split] = list(packed.names)
    path = save_codes(codes_path(cfg), splits, names, tokenizer.fingerprint())
    counts = ", ".join(f"{s}: {len(c)} clips" for s, c in splits.items())
    print(f"wrote {path} ({counts}; tokenizer {tokenizer.fingerprint()[:12]})")


if __name__ == "__main__":
    sys.exit(run_cli(main))
