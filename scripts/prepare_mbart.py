"""Prune the full mBART-large-cc25 to the vocabulary of the Isharah sentences (and dictionary words).

    python scripts/prepare_mbart.py --src deps/mbart-large-cc25 --data-root data/Isharah \
        --out deps/mbart-isharah [--dictionary deps/sign_dictionary.json]
"""

import argparse
import sys
from pathlib import Path

from mGPT.archs.prune_mbart import collect_sentences, prune_mbart
from mGPT.data.dictionary import SignDictionary
from mGPT.errors import run_cli


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", required=True, type=Path, help="full facebook/mbart-large-cc25 folder")
    parser.add_argument("--data-root", required=True, type=Path, help="Isharah folder with the split folders")
    parser.add_argument("--out", required=True, type=Path, help="folder for the pruned model")
    parser.add_argument("--dictionary", type=Path, help="sign dictionary JSON whose words must be kept")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sentences = collect_sentences(args.data_root)
    words = list(SignDictionary.load(args.dictionary)) if args.dictionary else []
    print(f"{len(sentences)} distinct sentences, {len(words)} dictionary words")
    report = prune_mbart(args.src, args.out, sentences, extra_words=words)
    unk_share = report["unk_tokens"] / max(report["text_tokens"], 1)
    print(
        f"kept {report['kept']} of {report['total']} tokens ({report['kept'] / report['total']:.2%}); "
        f"<unk> in the text: {report['unk_tokens']} of {report['text_tokens']} tokens ({unk_share:.2%})"
    )
    print(f"pruned model written to {args.out}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
