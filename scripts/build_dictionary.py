"""Build the sign dictionary for retrieval from an isolated-sign split (one word per clip).

    python scripts/build_dictionary.py --tokenizer CKPT --data-root data/Isharah \
        [--cache DIR] [--split dictionary] [--mean-path mean.pt --std-path std.pt] [--out FILE]

The split lies in the data root like the others (<root>/dictionary/poses/..., its CSV's SENTENCE
column holds the word) and must be packed first with `python -m mGPT.data.prepare`. Each word is
encoded with the tokenizer; the JSON written (default <cache>/sign_dictionary.json, where
DATASET.DICTIONARY_PATH looks by default) holds the codes per word plus the tokenizer's fingerprint
under "_tokenizer", so a generator can refuse a dictionary made with another tokenizer.
"""

import argparse
import sys
from pathlib import Path

import torch  # noqa: E402

from mGPT.archs.deto import load_tokenizer
from mGPT.data.dictionary import build_dictionary
from mGPT.data.prepare import load_cache
from mGPT.errors import DataError, run_cli
from mGPT.layout import DICTIONARY_FILE, default_cache_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokenizer", required=True, type=Path, help="stage-1 checkpoint (ours or SOKE's)")
    parser.add_argument("--data-root", required=True, type=Path, help="Isharah folder with the split folders")
    parser.add_argument("--cache", type=Path, help="packed cache folder (default <data-root>/_cache)")
    parser.add_argument("--split", default="dictionary", help="isolated-sign split (default: dictionary)")
    parser.add_argument("--mean-path", type=Path, help="SOKE's mean.pt, only with SOKE's tokenizer")
    parser.add_argument("--std-path", type=Path, help="SOKE's std.pt, only with SOKE's tokenizer")
    parser.add_argument("--min-frames", type=int, default=40, help="shorter clips are resampled up")
    parser.add_argument("--max-frames", type=int, default=400, help="longer clips are resampled down")
    parser.add_argument("--out", type=Path, help=f"dictionary JSON (default <cache>/{DICTIONARY_FILE})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cache = args.cache or default_cache_dir(args.data_root)
    try:
        split = load_cache(cache, args.split)
    except DataError as err:
        raise DataError(
            f"{err}\nThe sign dictionary needs the isolated-sign split {args.split!r}: put its clips under "
            f"{args.data_root / args.split} (same layout as train/) and pack it with "
            f"python -m mGPT.data.prepare before running this script"
        ) from err
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = load_tokenizer(args.tokenizer, args.mean_path, args.std_path).to(device)
    dictionary = build_dictionary(tokenizer, split, args.min_frames, args.max_frames)
    out = args.out or Path(cache) / DICTIONARY_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    dictionary.save(out)
    print(
        f"wrote {out}: {len(dictionary)} words from {len(split.texts)} clips "
        f"(tokenizer {tokenizer.fingerprint()[:12]})"
    )


if __name__ == "__main__":
    sys.exit(run_cli(main))
