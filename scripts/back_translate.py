"""Back-translation scores of any motion source, read by one evaluator (SPEC 10).

    python scripts/back_translate.py --cfg configs/demo/slt.yaml \
        [--tokenizer experiments/mgpt/demo_deto/checkpoints/best.ckpt] \
        [--predictions results/mgpt/demo_soke/test_rank_0] [--predictions LABEL=FOLDER] [TEST.CHECKPOINT=...]

The evaluator is the config's (TEST.CHECKPOINT, else experiments/mgpt/<NAME>/checkpoints/best.ckpt). It reads,
for every clip of the test split (TEST.SPLIT):
  ground truth         the recorded signing: the upper bound, what the evaluator itself is worth
  tokenizer            --tokenizer: the recording encoded to codes and decoded again (what stage 2 can reach)
  generator            --predictions: the generated signing that test.py saved (TEST.SAVE_PREDICTIONS=true),
                       one <SENTENCE_NAME>.pkl per clip; LABEL=FOLDER names the row (else the run's NAME)
  nearest neighbour    the training clip whose sentence shares the most words
  mean pose            the train mean frame held for the whole clip: a reader that finds words here is guessing
Writes results/mgpt/<NAME>/test_rank_0/back_translation.json (corpus and per-sample scores with the
hypothesis text) and prints one row per source.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from mGPT.archs.slt import load_evaluator
from mGPT.config import cache_dir, evaluation_dir, load_config
from mGPT.data.baseline_motion import mean_pose_clips, nearest_neighbour_clips, reference_clips
from mGPT.data.features import features_to_smplx, params_dict_to_array, smplx_to_features
from mGPT.data.prepare import PackedSplit, load_stats
from mGPT.errors import DataError, run_cli
from mGPT.files import atomic_write_text, writable_dir
from mGPT.metrics.back_translation import back_translate, format_header, format_row
from mGPT.models.checkpoints import trained_checkpoint
from mGPT.models.datamodule import load_split


def reconstructions(tokenizer_ckpt: str, clips: list[np.ndarray]) -> list[np.ndarray]:
    """Each (T, 179) clip through the tokenizer: encode to codes, decode back to SMPL-X parameters."""
    from mGPT.archs.deto import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_ckpt).eval()
    out = []
    for clip in tqdm(clips, desc="tokenizer reconstruction", unit="clip"):
        features = torch.as_tensor(smplx_to_features(clip))[None]  # (1, T, 133) raw
        out.append(features_to_smplx(tokenizer.decode(tokenizer.encode(features))[0]).numpy())
    return out


def read_predictions(folder: Path, split: PackedSplit) -> list[np.ndarray]:
    """The generated (T, 179) parameters of every clip of `split`, from test.py's <SENTENCE_NAME>.pkl files."""
    from mGPT.data.isharah import load_frame_pickle  # numpy arrays and plain containers only, never code

    if not folder.is_dir():
        raise DataError(f"predictions folder not found: {folder}. Run test.py with TEST.SAVE_PREDICTIONS=true")
    missing = [name for name in split.names if not (folder / f"{name}.pkl").is_file()]
    if missing:
        raise DataError(f"{folder} lacks the predictions of {len(missing)} of {len(split)} clips (first: "
                        f"{missing[0]}.pkl); run test.py with TEST.SAVE_PREDICTIONS=true on the same split")
    params = []
    for name in split.names:
        generated = load_frame_pickle(folder / f"{name}.pkl").get("generated")  # a dict comes back as a 0-d array
        generated = generated.item() if isinstance(generated, np.ndarray) and generated.dtype == object else None
        if not isinstance(generated, dict):
            raise DataError(f"{folder / name}.pkl has no 'generated' parameters: is it a test.py prediction?")
        params.append(np.asarray(params_dict_to_array(generated), dtype=np.float32))
    return params


def prediction_sources(specs: list[str]) -> list[tuple[str, Path]]:
    """"LABEL=FOLDER" or "FOLDER" (labelled by the run's NAME: results/mgpt/<NAME>/test_rank_0)."""
    sources = []
    for spec in specs:
        label, _, folder = spec.rpartition("=") if "=" in spec else ("", "", spec)
        path = Path(folder)
        sources.append((label or f"generator ({path.resolve().parent.name})", path))
    return sources


def motion_sources(cfg: DictConfig, args: argparse.Namespace, split: PackedSplit) -> dict[str, list[np.ndarray]]:
    lengths = cfg.DATASET.MIN_FRAMES, cfg.DATASET.MAX_FRAMES
    truth = reference_clips(split, *lengths)
    sources = {"ground truth": truth}
    if args.tokenizer:
        sources["tokenizer reconstruction"] = reconstructions(args.tokenizer, truth)
    for label, folder in prediction_sources(args.predictions):
        sources[label] = read_predictions(folder, split)
    sources["nearest neighbour"] = nearest_neighbour_clips(split.texts, load_split(cfg, "train"),
                                                           *lengths)
    sources["mean pose"] = mean_pose_clips(load_stats(cache_dir(cfg))["mean133"], truth)
    return sources


@torch.no_grad()  # inference only; a decorator, so the grad mode of a caller in the same process is restored
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True, help="the evaluator's config, e.g. configs/slt.yaml")
    parser.add_argument("--tokenizer", help="a tokenizer checkpoint: also score its reconstructions")
    parser.add_argument("--predictions", action="append", default=[], metavar="[LABEL=]FOLDER",
                        help="a folder of test.py predictions (TEST.SAVE_PREDICTIONS=true); repeat for more rows")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. TEST.CHECKPOINT=...")
    args = parser.parse_args()
    cfg = load_config(args.cfg, args.overrides)
    evaluator_ckpt = trained_checkpoint(cfg)
    evaluator = load_evaluator(evaluator_ckpt)
    split = load_split(cfg, cfg.TEST.SPLIT)
    results = {"evaluator": str(evaluator_ckpt), "split": cfg.TEST.SPLIT, "sources": {}}
    for label, params in motion_sources(cfg, args, split).items():
        results["sources"][label] = back_translate(evaluator, split.names, params, split.texts,
                                                   cfg.TEST.BATCH_SIZE, progress=label)
    out = writable_dir(evaluation_dir(cfg), "results") / "back_translation.json"
    atomic_write_text(out, json.dumps(results, indent=1, ensure_ascii=False))
    print(f"\nback-translation by {evaluator_ckpt}, {len(split)} {cfg.TEST.SPLIT} clips (0-100)")
    print(format_header())
    for label, scores in results["sources"].items():
        print(format_row(label, scores["corpus"]))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
