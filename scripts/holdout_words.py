"""A copy of a dataset whose train split never shows some words: what retrieval is for.

    python scripts/holdout_words.py --data-root data/sample --words "اليوم كتاب" --out data/sample_holdout

Every train clip whose sentence holds one of the words is left out of the new train CSV; val, test and
dictionary stay as they are. The pose folders are linked, not copied. A generator trained on the copy
meets those words first at test time, where only the sign dictionary knows them; compare it with
retrieval on and off, and use scripts/retrieval_check.py --words "...". Then build the copy's cache, codes and
dictionary as for any data root (the script prints the commands).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from mGPT.data.arabic import normalize_arabic, tokenize_words
from mGPT.data.isharah import read_split_csv, split_csv_path
from mGPT.errors import DataError, SaSOKEError, run_cli

SPLITS = ("train", "val", "test", "dictionary")


def holdout_words(data_root: Path, words: list[str], out: Path) -> tuple[int, int]:
    """Write the copy; returns (train clips kept, train clips left out)."""
    held = {normalize_arabic(w) for w in words}
    if not held or "" in held:
        raise SaSOKEError("give at least one non-empty Arabic word with --words")
    if out.exists():
        raise SaSOKEError(f"{out} exists; give a new folder with --out")
    source_csv = split_csv_path(data_root, "train")
    read_split_csv(source_csv)  # the checks every reader makes: the file exists and has every column
    train = pd.read_csv(source_csv, dtype=str, keep_default_na=False)  # cells verbatim, so the copy reads the same
    keep = [not (held & set(tokenize_words(s))) for s in train["SENTENCE"]]
    if all(keep):
        raise DataError(f"no train sentence in {source_csv} holds any of {words}")

    csv_path = split_csv_path(out, "train")
    csv_path.parent.mkdir(parents=True)
    train[keep].to_csv(csv_path, index=False)
    # absolute targets, so the copy works from any folder
    (out / "train" / "poses").symlink_to((data_root / "train" / "poses").resolve(), target_is_directory=True)
    for split in SPLITS[1:]:
        if (data_root / split).is_dir():
            (out / split).symlink_to((data_root / split).resolve(), target_is_directory=True)
    kept = sum(keep)
    return kept, len(keep) - kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, type=Path, help="a dataset in the Isharah layout")
    parser.add_argument("--words", required=True, help="words no train clip may hold (one string, separated by spaces)")
    parser.add_argument("--out", required=True, type=Path, help="new folder for the copy")
    args = parser.parse_args()
    kept, left_out = holdout_words(args.data_root, args.words.split(), args.out)
    print(f"{args.out}: {kept} train clips kept, {left_out} left out (they hold {args.words})")
    print("next: python -m mGPT.data.prepare --data-root", args.out)
    print("      python scripts/get_motion_code.py --cfg <stage 2 config> DATASET.DATA_ROOT=" + os.fspath(args.out))
    print("      python scripts/build_dictionary.py --tokenizer <tokenizer ckpt> --data-root", args.out)


if __name__ == "__main__":
    sys.exit(run_cli(main))
