"""Evaluate a trained stage on the test split and write results/mgpt/<NAME>/test_rank_0/.

    python test.py --cfg configs/soke.yaml [TEST.CHECKPOINT=path] [TEST.SAVE_VIDEOS=4] ...

Stage 1 (vae): reconstruct every test clip; MPJPE and PA-MPJPE per part in millimetres.
Stage 2 (lm): generate from the text of every test clip; DTW-MPJPE and DTW-MPJPE-PA per part (SPEC 6), and with
TEST.BACK_TRANSLATION=<evaluator checkpoint> the back-translation scores of the generated signing (SPEC 10).
Evaluator (slt): translate every recorded test clip; BLEU-1..4, chrF, ROUGE-L (the back-translation upper bound).

`evaluate(cfg, ...)` does the same from Python; its optional arguments replace the clip reader, the DTW
and the decoding cache (bench/bench_pipeline.py times it with SOKE-style parts, which score the same).
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import TQDMProgressBar

from mGPT.config import evaluation_dir, parse_args
from mGPT.data.datasets import ClipSourceFactory, from_cache
from mGPT.data.features import smplx_params_dict
from mGPT.errors import ConfigError, run_cli
from mGPT.files import writable_dir
from mGPT.layout import PARTS
from mGPT.metrics.dtw import dtw_mpjpe_batch
from mGPT.metrics.length import length_summary
from mGPT.metrics.sign_metrics import PairDTW
from mGPT.models.checkpoints import trained_checkpoint


def print_table(title: str, rows: dict[str, float], unit: str) -> None:
    print(f"\n{title}")
    print(f"{'metric':<24}{'body':>12}{'lhand':>12}{'rhand':>12}   ({unit})")
    for metric in sorted({k.rsplit('_', 1)[0] for k in rows}):
        print(f"{metric:<24}" + "".join(f"{rows.get(f'{metric}_{p}', float('nan')):>12.4f}" for p in PARTS))


def test_tokenizer(cfg: DictConfig, ckpt: Path, out: Path, clip_source: ClipSourceFactory = from_cache) -> dict:
    from mGPT.archs.deto import load_tokenizer
    from mGPT.models.datamodule import SignDataModule
    from mGPT.models.vae_module import TokenizerModule

    tokenizer = load_tokenizer(ckpt, cfg.DATASET.MEAN_PATH, cfg.DATASET.STD_PATH)
    module = TokenizerModule(cfg, tokenizer)  # the checkpoint's sizes, not the config's VQ
    data = SignDataModule(cfg, tokenizer.mean.numpy(), tokenizer.std.numpy(), clip_source=clip_source,
                          frames_per_code=tokenizer.frames_per_code)
    trainer = pl.Trainer(accelerator=cfg.ACCELERATOR, devices=1, precision=cfg.PRECISION, logger=False,
                         callbacks=[TQDMProgressBar()])
    trainer.test(module, datamodule=data, verbose=False)
    per_sample = module.test_per_sample
    means = {k: float(v) for k, v in module.test_metrics.compute().items()}  # over all frames
    (out / "test_scores.json").write_text(json.dumps(per_sample, indent=1, ensure_ascii=False))
    summary = {"stage": "vae", "means_mm": means, "samples": len(per_sample),
               "kinematics_backend": module.kinematics.backend, "checkpoint": str(ckpt), "config": cfg.NAME}
    (out / "test_summary.json").write_text(json.dumps(summary, indent=1))
    print_table(f"tokenizer reconstruction, {len(per_sample)} {cfg.TEST.SPLIT} clips", means, "mm")
    return summary


def test_generator(cfg: DictConfig, ckpt: Path, out: Path, clip_source: ClipSourceFactory = from_cache,
                   dtw: PairDTW = dtw_mpjpe_batch, use_kv_cache: bool = True) -> dict:
    from mGPT.models.datamodule import SignDataModule, load_split
    from mGPT.models.lm_module import GeneratorModule

    module = GeneratorModule.from_checkpoint(ckpt, cfg, dtw=dtw, use_kv_cache=use_kv_cache)
    evaluator = None
    if cfg.TEST.BACK_TRANSLATION:  # loaded first: a wrong path fails before the generation, not after it
        from mGPT.archs.slt import load_evaluator

        evaluator = load_evaluator(cfg.TEST.BACK_TRANSLATION)
    fps = load_split(cfg, cfg.TEST.SPLIT).target_fps  # the config must agree with the cache (ConfigError)
    if fps != module.fps:
        raise ConfigError(f"{ckpt} was trained on clips at {module.fps:g} fps, but the {cfg.TEST.SPLIT} cache is "
                          f"packed at {fps:g} fps: its motion would be scored against references at another "
                          "speed. Test on a cache packed at the checkpoint's rate (prepare --target-fps), or "
                          "retrain on this one")
    data = SignDataModule(cfg, fingerprint=module.fingerprint, clip_source=clip_source,
                          frames_per_code=module.tokenizer.frames_per_code)
    trainer = pl.Trainer(accelerator=cfg.ACCELERATOR, devices=1, precision=cfg.PRECISION, logger=False,
                         callbacks=[TQDMProgressBar()])
    trainer.test(module, datamodule=data, verbose=False)
    scores = module.test_metrics.compute()
    score_names = module.test_metrics.score_names  # DTW_MPJPE[_PA]_{body,lhand,rhand}
    names = {s["index"]: s["name"] for s in module.test_outputs}
    per_sample = {
        names[int(i)]: {k: float(scores[f"{k}_per_sample"][row]) for k in score_names}
        for row, i in enumerate(scores["sample_ids"])
    }
    means = {k: float(scores[k]) for k in score_names}
    means_mm = {k: float(scores[f"{k}_mm"]) for k in score_names}
    (out / "test_scores.json").write_text(json.dumps(per_sample, indent=1, ensure_ascii=False))
    summary = {"stage": "lm", "means_m": means, "means_mm_per_step": means_mm, "samples": len(per_sample),
               "kinematics_backend": module.kinematics.backend, "checkpoint": str(ckpt), "config": cfg.NAME,
               "decoding": cfg.TEST.DECODING, "retrieval": bool(cfg.LM.RETRIEVAL),
               **({"num_beams": int(cfg.TEST.NUM_BEAMS), "length_penalty": float(cfg.TEST.LENGTH_PENALTY)}
                  if cfg.TEST.DECODING == "beam" else {}),
               "length_bound": float(cfg.LM.LENGTH_BOUND or 0.0), "length_steer": float(cfg.LM.LENGTH_STEER or 0.0)}
    outputs = sorted(module.test_outputs, key=lambda s: s["index"])
    summary["length"] = length_summary([len(s["generated"]) for s in outputs], [len(s["reference"]) for s in outputs],
                                       [s["at_cap"] for s in outputs], cap_steps=module.generator.max_motion_tokens)
    if evaluator is not None:  # the evaluator's reading of each generated clip, per sample and on the corpus
        from mGPT.metrics.back_translation import back_translate

        scores = back_translate(evaluator.to(module.device), [s["name"] for s in outputs],
                                [s["generated"] for s in outputs], [s["text"] for s in outputs],
                                progress="back-translation")
        summary["back_translation"] = {"evaluator": str(cfg.TEST.BACK_TRANSLATION), **scores}
    (out / "test_summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    if cfg.TEST.SAVE_PREDICTIONS:
        for sample in outputs:
            record = {"text": sample["text"], "codes": sample["codes"],
                      "generated": smplx_params_dict(sample["generated"]),
                      "reference": smplx_params_dict(sample["reference"]),
                      "scores": per_sample[sample["name"]], "at_cap": sample["at_cap"],
                      "predicted_steps": sample["predicted_steps"]}
            with open(out / f"{sample['name']}.pkl", "wb") as f:
                pickle.dump(record, f)
    if cfg.TEST.SAVE_VIDEOS:
        from mGPT.render.video import render_video

        for sample in outputs[: cfg.TEST.SAVE_VIDEOS]:
            path = render_video(sample["generated"], out / "videos" / f"{sample['name']}.mp4",
                                kinematics=module.kinematics, caption=sample["text"],
                                reference_params=sample["reference"], fps=fps,
                                avatar=cfg.RENDER.AVATAR, size=tuple(cfg.RENDER.SIZE), view=cfg.RENDER.VIEW)
            print(f"video: {path}")
    print_table(f"generation, {len(per_sample)} {cfg.TEST.SPLIT} clips, accumulated DTW cost", means, "m")
    print_table("the same per DTW step", means_mm, "mm")
    length = summary["length"]
    print(f"\nlength, generated / reference frames: mean {length['ratio_mean']:.3f}, p95 {length['ratio_p95']:.3f}; "
          f"{length['at_cap_share']:.1%} of clips used every step allowed (cap {length['cap_steps']} steps)")
    if evaluator is not None:
        print_back_translation(summary["back_translation"], "generated")
    return summary


def print_back_translation(scores: dict, label: str) -> None:
    from mGPT.metrics.back_translation import format_header, format_row

    print(f"\nback-translation, {scores['samples']} clips (0-100; compare with the ground truth's row of "
          "scripts/back_translate.py)")
    print(format_header())
    print(format_row(label, scores["corpus"]))


def test_evaluator(cfg: DictConfig, ckpt: Path, out: Path, clip_source: ClipSourceFactory = from_cache) -> dict:
    from mGPT.archs.slt import load_evaluator
    from mGPT.data.baseline_motion import reference_clips
    from mGPT.metrics.back_translation import back_translate
    from mGPT.models.datamodule import load_split

    device = torch.device("cuda" if torch.cuda.is_available() and cfg.ACCELERATOR != "cpu" else "cpu")
    evaluator = load_evaluator(ckpt, map_location=device)
    split = load_split(cfg, cfg.TEST.SPLIT)
    clips = reference_clips(clip_source(split, cfg.TEST.SPLIT), cfg.DATASET.MIN_FRAMES, cfg.DATASET.MAX_FRAMES)
    scores = back_translate(evaluator, split.names, clips, split.texts, cfg.TEST.BATCH_SIZE, "translate")
    (out / "test_scores.json").write_text(json.dumps(scores["per_sample"], indent=1, ensure_ascii=False))
    summary = {"stage": "slt", "motion": "ground truth", "corpus": scores["corpus"], "samples": scores["samples"],
               "signatures": scores["signatures"], "checkpoint": str(ckpt), "config": cfg.NAME}
    (out / "test_summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    print_back_translation(scores, "ground truth")
    return summary


def evaluate(cfg: DictConfig, clip_source: ClipSourceFactory = from_cache, dtw: PairDTW = dtw_mpjpe_batch,
             use_kv_cache: bool = True) -> dict:
    """What `python test.py` does for `cfg`: score the trained stage, write evaluation_dir(cfg), return the
    summary. `clip_source` reads the clips (stage 1 inputs, stage 2 references), `dtw` scores stage 2 and
    `use_kv_cache` decodes with the key/value cache."""
    pl.seed_everything(cfg.SEED)
    ckpt = trained_checkpoint(cfg)
    out = writable_dir(evaluation_dir(cfg), "results")
    with torch.no_grad():
        if cfg.STAGE == "vae":
            summary = test_tokenizer(cfg, ckpt, out, clip_source)
        elif cfg.STAGE == "lm":
            summary = test_generator(cfg, ckpt, out, clip_source, dtw, use_kv_cache)
        else:
            summary = test_evaluator(cfg, ckpt, out, clip_source)
    print(f"\nscores: {out / 'test_scores.json'}\nsummary: {out / 'test_summary.json'} ({summary['samples']} samples)")
    return summary


def main() -> None:
    evaluate(parse_args(__doc__.splitlines()[0]))


if __name__ == "__main__":
    sys.exit(run_cli(main))
