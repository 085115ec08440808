"""Data loading: one epoch of stage 1 training samples from the packed cache against SOKE's per-frame pickles.

    python bench/bench_data.py [--data-root DIR] [--small]

Both sides are the same MotionDataset (normalised 64-frame windows, random crops drawn from the same
seed) over the train split; only where the frames come from differs. Ours: the packed cache, one
memory-mapped array. SOKE's: on every __getitem__, list the clip's pose folder, sort it, unpickle each
frame and stack (bench/soke_style_data.py). The two epochs must yield identical tensors.

Without --data-root the default synthetic sample is generated in a temporary folder. Its pickles were
just written, so they sit in the OS page cache: the best case for the pickles. On a Google Drive mount
every file costs a network round trip. The last line is speedup=<pickle seconds / cache seconds>.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from soke_style_data import PickleSplit
from tqdm import tqdm

from mGPT.data.datasets import MotionDataset
from mGPT.data.prepare import PackedSplit, build_cache, load_cache, load_stats
from mGPT.data.synthetic import generate_dataset
from mGPT.layout import default_cache_dir

WINDOW = 64  # configs/demo/deto.yaml DATASET.WINDOW


def make_sample(root: Path, small: bool = False) -> Path:
    """The synthetic sample and its packed cache under root/data."""
    data = root / "data"
    generate_dataset(data, seed=0, small=small)
    build_cache(data)
    return data


def one_epoch(dataset: MotionDataset, desc: str) -> tuple[float, list[torch.Tensor]]:
    """Seconds to fetch every sample once, and the (WINDOW, 133) motions fetched."""
    torch.manual_seed(0)  # the same random crops on both sides
    start = time.perf_counter()
    motions = [dataset[i]["motion"] for i in tqdm(range(len(dataset)), desc=desc, unit="sample")]
    return time.perf_counter() - start, motions


def measure(data_root: Path, window: int = WINDOW, cache_epochs: int = 5) -> dict:
    """Seconds per epoch of each side; the cache side is averaged over a few epochs, being so short."""
    cache = default_cache_dir(data_root)
    packed: PackedSplit = load_cache(cache, "train")
    stats = load_stats(cache)

    def dataset(source) -> MotionDataset:
        return MotionDataset(source, stats["mean133"], stats["std133"], window=window, random_crop=True)

    cache_runs = [one_epoch(dataset(packed), "packed cache") for _ in range(cache_epochs)]
    cache_s, from_cache = sum(seconds for seconds, _ in cache_runs) / cache_epochs, cache_runs[0][1]
    pickle_s, from_pickles = one_epoch(dataset(PickleSplit.like(packed, data_root, "train")), "pickles")
    if not all(torch.equal(a, b) for a, b in zip(from_cache, from_pickles, strict=True)):
        raise AssertionError("the cache and the pickles gave different training samples")
    files = sum(1 for _ in (data_root / "train" / "poses").glob("*/*_3D.pkl"))
    return {"samples": len(packed), "frame_files": files, "cache_s": cache_s, "pickle_s": pickle_s,
            "cache_samples_per_s": len(packed) / cache_s, "pickle_samples_per_s": len(packed) / pickle_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, help="an Isharah-layout folder with its packed cache")
    parser.add_argument("--small", action="store_true", help="generate the small sample instead (tests)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        data = args.data_root or make_sample(Path(work), args.small)
        result = measure(data)
    print(f"{result['samples']} train samples ({result['frame_files']} frame pickles), window {WINDOW}")
    for side, key in (("packed cache", "cache"), ("pickles", "pickle")):
        rate, seconds = result[f"{key}_samples_per_s"], result[f"{key}_s"]
        print(f"{side:<13} {rate:.0f} samples/s ({seconds:.2f} s per epoch)")
    print(f"speedup={result['pickle_s'] / result['cache_s']:.1f}")


if __name__ == "__main__":
    main()
