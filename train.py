"""Train stage 1 (tokenizer, STAGE: vae), stage 2 (generator, STAGE: lm) or the evaluator (STAGE: slt).

    python train.py --cfg configs/deto.yaml [KEY.SUB=value ...]

Re-running with the same NAME resumes from experiments/mgpt/<NAME>/checkpoints/last.ckpt.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar, WeightAveraging
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities.warnings import PossibleUserWarning

from mGPT.config import cache_dir, exp_dir, monitor_mode, monitors_generation, parse_args
from mGPT.data.datasets import ClipSourceFactory, from_cache
from mGPT.errors import ConfigError, run_cli
from mGPT.files import writable_dir
from mGPT.models.checkpoints import AtomicCheckpointIO


def build_module(cfg: DictConfig, clip_source: ClipSourceFactory = from_cache
                 ) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    """The module and data that `python train.py` trains; `clip_source` reads the clips (benchmarks swap
    in SOKE-style readers, bench/bench_pipeline.py)."""
    from mGPT.models.datamodule import SignDataModule

    if cfg.STAGE == "vae":
        from mGPT.archs.deto import load_tokenizer
        from mGPT.data.prepare import load_stats
        from mGPT.models.vae_module import TokenizerModule

        if cfg.TRAIN.PRETRAINED_VAE:  # fine-tune: the starting tokenizer's sizes and statistics come with it
            start = load_tokenizer(cfg.TRAIN.PRETRAINED_VAE, cfg.DATASET.MEAN_PATH, cfg.DATASET.STD_PATH)
            module = TokenizerModule(cfg, start)
        else:
            stats = load_stats(cache_dir(cfg))
            module = TokenizerModule.from_config(cfg, stats["mean133"], stats["std133"])
        tokenizer = module.tokenizer
        return module, SignDataModule(cfg, tokenizer.mean.numpy(), tokenizer.std.numpy(), clip_source=clip_source,
                                      frames_per_code=tokenizer.frames_per_code)

    if cfg.STAGE == "slt":  # the back-translation evaluator reads motion, normalised with the train statistics
        from mGPT.data.prepare import load_cache, load_stats
        from mGPT.models.slt_module import MotionTextDataModule, TranslatorModule

        stats = load_stats(cache_dir(cfg))
        train = load_cache(cache_dir(cfg), "train")
        module = TranslatorModule.from_config(cfg, train.texts, stats["mean133"], stats["std133"],
                                              train_frames=[int(n) for n in train.lengths])
        return module, MotionTextDataModule(cfg, stats["mean133"], stats["std133"])

    from mGPT.archs.slt import load_evaluator
    from mGPT.models.lm_module import GeneratorModule

    # loaded first: a wrong path fails before the training, not at the first generation epoch
    evaluator = load_evaluator(cfg.TRAIN.BACK_TRANSLATION) if cfg.TRAIN.BACK_TRANSLATION else None
    module = GeneratorModule.from_config(cfg, evaluator=evaluator)
    # sources are encoded once per split by the generator itself, not at every step
    return module, SignDataModule(cfg, fingerprint=module.fingerprint, clip_source=clip_source,
                                  source_encoder=module.generator.encode_sources,
                                  frames_per_code=module.tokenizer.frames_per_code)


def build_trainer(cfg: DictConfig, ckpt_dir, callbacks=(), logger=True) -> pl.Trainer:
    train = cfg.TRAIN
    distributed = cfg.DEVICES > 1 or cfg.NUM_NODES > 1
    return pl.Trainer(
        accelerator=cfg.ACCELERATOR, devices=cfg.DEVICES, num_nodes=cfg.NUM_NODES,
        strategy="ddp" if distributed else "auto", precision=cfg.PRECISION,
        max_epochs=train.MAX_EPOCHS, check_val_every_n_epoch=train.VAL_EVERY_N_EPOCHS,
        log_every_n_steps=train.LOG_EVERY_N_STEPS, accumulate_grad_batches=train.ACCUMULATE_GRAD_BATCHES,
        gradient_clip_val=train.GRAD_CLIP or None, default_root_dir=ckpt_dir.parent,
        callbacks=list(callbacks), logger=logger, num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],  # a kill while saving leaves the old checkpoint, never half of one
    )


def moving_average(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The exponential moving average of one weight, for Lightning's WeightAveraging: average + (1 - decay) x
    (current - average). Written as a lerp, a weight that has not moved (the frozen tokenizer and evaluator) stays
    bit for bit: torch's decay x average + (1 - decay) x current rounds it away by an ulp, and a tokenizer whose
    weights change no longer matches its codes and dictionary."""
    if not 0.0 < decay < 1.0:
        raise ConfigError(f"TRAIN.EMA_DECAY must be in (0, 1) (0 = off), got {decay}")

    @torch.no_grad()
    def update(average: torch.Tensor, current: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        return average.lerp(current, 1.0 - decay)

    return update


def build_callbacks(cfg: DictConfig, ckpt_dir: Path) -> list[pl.Callback]:
    """Checkpoints (best.ckpt, last.ckpt), learning-rate logging and progress bars."""
    # Generation metrics are logged only on generation epochs: best.ckpt is judged on those alone.
    judge_every = cfg.TRAIN.GEN_VAL_EVERY_N_EPOCHS if monitors_generation(cfg) else 1
    callbacks = [
        # best.ckpt is judged when validation runs (the lowest loss or error, the highest score); last.ckpt is
        # written after every epoch, validated or not, so that a resumed run (Colab disconnects) never repeats
        # epochs that had no validation
        ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=cfg.TRAIN.MONITOR, mode=monitor_mode(cfg),
                        save_top_k=1, save_on_train_epoch_end=False, enable_version_counter=False,
                        auto_insert_metric_name=False, every_n_epochs=judge_every),
        # a one-file "top 1" without a monitor, not save_last: in Lightning 2.6.6, save_last with save_top_k=0
        # writes last.ckpt only when training ends, so a disconnect lost every epoch since the start
        ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
                        save_on_train_epoch_end=True, enable_version_counter=False),
        LearningRateMonitor(logging_interval="step"),
        TQDMProgressBar(),  # plain text bars read well in Colab cells and log files alike
    ]
    if cfg.TRAIN.EMA_DECAY > 0:
        # validation, best.ckpt and last.ckpt hold the moving average; training steps move the live weights
        # (buffers are fixed data here: use_buffers=False copies them instead of averaging them)
        callbacks.append(WeightAveraging(use_buffers=False, avg_fn=moving_average(cfg.TRAIN.EMA_DECAY)))
    if cfg.TRAIN.CKPT_EVERY_N_STEPS > 0:
        # both callbacks write last.ckpt; without enable_version_counter=False the second makes last-v1.ckpt
        callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, save_top_k=0, save_last=True,
                                         every_n_train_steps=cfg.TRAIN.CKPT_EVERY_N_STEPS,
                                         enable_version_counter=False))
    return callbacks


def main() -> None:
    cfg = parse_args(__doc__.splitlines()[0])
    pl.seed_everything(cfg.SEED, workers=True)
    exp = writable_dir(exp_dir(cfg), "experiment")
    ckpt_dir = writable_dir(exp / "checkpoints", "checkpoint")
    OmegaConf.save(cfg, exp / "config.yaml")

    module, data = build_module(cfg)
    callbacks = build_callbacks(cfg, ckpt_dir)
    logger = TensorBoardLogger(save_dir=str(exp), name="", version="logs", default_hp_metric=False)
    trainer = build_trainer(cfg, ckpt_dir, callbacks, logger)

    last = ckpt_dir / "last.ckpt"
    resume = last.is_file()
    if resume:
        print(f"resuming from {last}")
    with warnings.catch_warnings():
        if resume:  # the folder is meant to hold our checkpoints
            warnings.filterwarnings("ignore", "Checkpoint directory .* exists and is not empty")
        if cfg.STAGE == "lm":  # its tokenizer is frozen in eval mode on purpose (GeneratorModule.train)
            warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode", PossibleUserWarning)
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume else None)
    if trainer.is_global_zero:
        best = ckpt_dir / "best.ckpt"
        if best.is_file():
            print(f"checkpoints: {best} and {last}")
        else:
            print(f"checkpoint: {last}. No validation ran in {cfg.TRAIN.MAX_EPOCHS} epochs "
                  f"(TRAIN.VAL_EVERY_N_EPOCHS={cfg.TRAIN.VAL_EVERY_N_EPOCHS}), so there is no best.ckpt; "
                  "test.py uses last.ckpt instead.")


if __name__ == "__main__":
    sys.exit(run_cli(main))
