"""Build a small random-weight mBART (demo and tests) in the folder format of facebook/mbart-large-cc25.

    python scripts/make_tiny_mbart.py --corpus data/Isharah --out deps/mbart-tiny [--d-model 256] [--layers 3]

--corpus is a text file with one sentence per line, or an Isharah data root (the SENTENCE column of every
split CSV). The folder loads with the same from_pretrained code as the real model; its weights are random.
"""

import argparse
import sys
from pathlib import Path

from mGPT.archs.tiny_mbart import make_tiny_mbart, read_corpus
from mGPT.errors import SaSOKEError, os_error_message


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", required=True, type=Path, help="sentence file or Isharah data root")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the model into")
    parser.add_argument("--d-model", type=int, default=256, help="hidden size (default 256)")
    parser.add_argument("--layers", type=int, default=3, help="encoder and decoder layers each (default 3)")
    parser.add_argument("--vocab-size", type=int, default=None,
                        help="at most this many sentencepiece pieces (default 4000; fewer on a small corpus)")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed (default 0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        sentences = read_corpus(args.corpus)
        print(f"{len(sentences)} distinct sentences from {args.corpus}")
        out_dir = make_tiny_mbart(sentences, args.out, d_model=args.d_model, layers=args.layers,
                                  vocab_size=args.vocab_size, seed=args.seed)
    except SaSOKEError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # a full disk or an --out that cannot be a folder
        print(f"error: {os_error_message(err, args.out)}", file=sys.stderr)
        sys.exit(2)
    print(f"tiny mBART written to {out_dir}")


if __name__ == "__main__":
    main()
