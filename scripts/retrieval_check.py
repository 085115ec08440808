"""Does a trained generator use its retrieved keyword signs? Scores the test split three ways.

    python scripts/retrieval_check.py --cfg configs/demo/soke.yaml [--words "W1 W2 ..."] [overrides]

1. dictionary: keywords from the sign dictionary, as test.py gives them;
2. swapped: every word keeps its place in the source but carries another word's codes (a fixed
   derangement). A generator that copies signs from its keywords gets worse; one that ignores them
   does not;
3. none: no keywords at all.
With LM.RETRIEVAL=false (a generator trained without retrieval) only the third is scored, so the
subsets below can be compared between the two generators.
With --words, the means are also given over the test clips whose sentence holds one of those words,
e.g. words kept out of training with scripts/holdout_words.py. Writes
results/mgpt/<NAME>/test_rank_0/retrieval_check.json.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from mGPT.config import evaluation_dir, load_config
from mGPT.data.arabic import tokenize_words
from mGPT.data.dictionary import SignDictionary
from mGPT.errors import SaSOKEError, run_cli
from mGPT.files import writable_dir
from mGPT.models.checkpoints import trained_checkpoint


def swapped_codes(dictionary: SignDictionary, seed: int = 0) -> SignDictionary:
    """The same words, each carrying another word's codes: a cyclic shift of a random order moves every word."""
    words = list(dictionary)
    if len(words) < 2:
        raise SaSOKEError("the sign dictionary needs at least 2 words to swap their codes")
    order = np.random.default_rng(seed).permutation(len(words))
    donors = np.roll(order, 1)
    return SignDictionary({words[w]: dictionary.get(words[d]) for w, d in zip(order, donors, strict=True)},
                          dictionary.tokenizer_fingerprint)


def score(module, data, trainer: pl.Trainer, dictionary: SignDictionary | None) -> dict[str, np.ndarray]:
    """Per-sample scores (N,) in metres for every DTW score name, in dataset order, with `dictionary`'s keywords."""
    data.dataset(module.cfg.TEST.SPLIT).dictionary = dictionary
    module.test_outputs.clear()
    module.test_metrics.reset()
    trainer.test(module, datamodule=data, verbose=False)
    scores = module.test_metrics.compute()
    order = np.argsort(scores["sample_ids"])
    return {name: scores[f"{name}_per_sample"][order] for name in module.test_metrics.score_names}


def print_rows(title: str, rows: dict[str, dict[str, float]]) -> None:
    names = list(next(iter(rows.values())))
    print(f"\n{title}")
    print(f"{'keywords':<12}" + "".join(f"{n.replace('DTW_MPJPE', 'DTW'):>14}" for n in names) + "   (m)")
    for keywords, means in rows.items():
        print(f"{keywords:<12}" + "".join(f"{means[n]:>14.4f}" for n in names))


@torch.no_grad()  # inference only; a decorator, so the grad mode of a caller in the same process is restored
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True, help="the stage 2 config the generator was trained with")
    parser.add_argument("--words", default="", help="also report the test clips holding these words (one string, "
                        "words separated by spaces)")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. TEST.CHECKPOINT=path")
    args = parser.parse_args()

    from mGPT.models.datamodule import SignDataModule, load_dictionary
    from mGPT.models.lm_module import GeneratorModule

    cfg: DictConfig = load_config(args.cfg, args.overrides)
    if cfg.STAGE != "lm":
        raise SaSOKEError(f"{args.cfg} is a stage '{cfg.STAGE}' config; the retrieval check needs stage 'lm'")
    pl.seed_everything(cfg.SEED)
    checkpoint = trained_checkpoint(cfg)
    module = GeneratorModule.from_checkpoint(checkpoint, cfg)
    dictionary = load_dictionary(cfg, module.fingerprint)
    data = SignDataModule(cfg, fingerprint=module.fingerprint, frames_per_code=module.tokenizer.frames_per_code)
    trainer = pl.Trainer(accelerator=cfg.ACCELERATOR, devices=1, precision=cfg.PRECISION, logger=False,
                         enable_progress_bar=False, enable_model_summary=False)
    per_sample = {}
    if dictionary is not None:
        per_sample["dictionary"] = score(module, data, trainer, dictionary)
        per_sample["swapped"] = score(module, data, trainer, swapped_codes(dictionary, cfg.SEED))
    per_sample["none"] = score(module, data, trainer, None)

    texts = data.dataset(cfg.TEST.SPLIT).texts
    words = set(tokenize_words(args.words))
    holds_word = np.array([bool(words & set(tokenize_words(str(t)))) for t in texts])
    if words and not holds_word.any():
        raise SaSOKEError(f"no {cfg.TEST.SPLIT} sentence holds any of the words {args.words!r}")
    subsets = {f"all {len(texts)} {cfg.TEST.SPLIT} clips": np.ones(len(texts), dtype=bool)}
    if words:
        subsets[f"{int(holds_word.sum())} clips with the given words"] = holds_word
        subsets[f"{int((~holds_word).sum())} clips without them"] = ~holds_word
    report: dict[str, object] = {"checkpoint": str(checkpoint), "config": cfg.NAME, "words": sorted(words),
                                 "kinematics_backend": module.kinematics.backend}
    for subset, mask in subsets.items():
        if not mask.any():
            continue
        rows = {name: {k: float(v[mask].mean()) for k, v in scores.items()} for name, scores in per_sample.items()}
        print_rows(f"{subset}, accumulated DTW cost", rows)
        report[subset] = rows

    out = writable_dir(evaluation_dir(cfg), "results") / "retrieval_check.json"
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
