"""Stage 2: train the multi-head mBART generator on (text, codes) and score it by generation + DTW."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

from mGPT.archs.amg import Decoded, SignGenerator, checked_length_options
from mGPT.archs.beam import beam_decode
from mGPT.archs.deto import CONFIG_SAFE_GLOBALS, DETO, load_tokenizer
from mGPT.archs.slt import SignToText
from mGPT.config import BACK_TRANSLATION_PREFIX, default_config, exp_dir
from mGPT.data.features import features_to_smplx
from mGPT.errors import CheckpointError, ConfigError
from mGPT.kinematics import build_kinematics
from mGPT.layout import PARTS
from mGPT.metrics.back_translation import translate_params
from mGPT.metrics.dtw import dtw_mpjpe_batch
from mGPT.metrics.length import LengthMetrics
from mGPT.metrics.sign_metrics import PairDTW, SignDTWMetrics
from mGPT.metrics.text_scores import CORPUS_KEYS, corpus_scores
from mGPT.models.schedule import adamw_cosine
from mGPT.models.slt_module import VAL_TEXTS_LOGGED

# Generation metrics exist only on generation epochs (TRAIN.GEN_VAL_EVERY_N_EPOCHS).
GENERATION_MONITOR = "val/DTW_MPJPE_mean"
# Of the length metrics (mGPT.metrics.length), the ones logged as val/length_<name> on generation epochs.
LOGGED_LENGTH_METRICS = ("ratio_mean", "ratio_p95", "at_cap_share")
LENGTH_HEAD_PREFIX = "generator.length_head."
DECODINGS = ("greedy", "sample", "beam")  # TEST.DECODING


def checked_decoding(decoding: str) -> str:
    """`decoding` (TEST.DECODING, or a request's choice) if it is one of DECODINGS."""
    if decoding not in DECODINGS:
        raise ConfigError(f"TEST.DECODING must be one of {', '.join(DECODINGS)}, got {decoding!r}")
    return decoding


def uses_length_head(cfg: DictConfig) -> bool:
    """True when decoding reads the length head's estimate (LM.LENGTH_BOUND or LM.LENGTH_STEER on)."""
    return bool(cfg.LM.LENGTH_BOUND) or bool(cfg.LM.LENGTH_STEER)


@torch.no_grad()
def codes_to_smplx(tokenizer: DETO, codes: list[torch.Tensor]) -> list[np.ndarray]:
    """Codes (N_i, 3) -> SMPL-X parameters (N_i * frames_per_code, 179), one clip at a time (no padding leaks)."""
    params = []
    for clip_codes in codes:
        if len(clip_codes) == 0:  # a sample that stopped at once still gets one step, never an empty clip
            clip_codes = torch.zeros(1, 3, dtype=torch.long)
        features = tokenizer.decode(clip_codes[None].to(tokenizer.mean.device))[0]  # (N * frames_per_code, 133)
        params.append(features_to_smplx(features).float().cpu().numpy())
    return params


def tokenizer_from_metadata(meta: dict) -> DETO:
    """An empty DETO shaped like the one stored in a stage 2 checkpoint (weights come with the state dict)."""
    cfg = meta["tokenizer_config"]
    mean = torch.tensor(meta["tokenizer_mean133"], dtype=torch.float32)
    std = torch.tensor(meta["tokenizer_std133"], dtype=torch.float32)
    return DETO(cfg["body"], cfg["lhand"], cfg["rhand"], mean, std)


class GeneratorModule(pl.LightningModule):
    """The generator over a frozen tokenizer. `dtw` scores generated against reference motion and
    `use_kv_cache` decodes with the key/value cache; benchmarks swap in SOKE-style parts that give the
    same scores and tokens, slower (bench/bench_pipeline.py). `evaluator`, a frozen sign-to-text model,
    reads the generated val signing on generation epochs (val/BT_* scores); it is never saved with the generator."""

    def __init__(self, cfg: DictConfig, tokenizer: DETO, dtw: PairDTW = dtw_mpjpe_batch, use_kv_cache: bool = True,
                 evaluator: SignToText | None = None):
        super().__init__()
        self.cfg = cfg
        self.use_kv_cache = use_kv_cache
        self.tokenizer = tokenizer.eval().requires_grad_(False)  # frozen: decodes codes for scoring
        sizes = tuple(self.tokenizer.config()[p]["code_num"] for p in PARTS)
        lm = cfg.LM
        checked_length_options(lm.LENGTH_BOUND, lm.LENGTH_STEER)  # a bad value fails now, not at the first validation
        checked_decoding(cfg.TEST.DECODING)  # a bad value fails now, not at the first validation
        self.generator = SignGenerator(lm.MBART_PATH, codebook_sizes=sizes, hand_weight=lm.HAND_WEIGHT,
                                       src_lang=lm.SRC_LANG, max_text_tokens=lm.MAX_TEXT_TOKENS,
                                       max_motion_tokens=lm.MAX_MOTION_TOKENS,
                                       head_weights=tuple(cfg.LOSS.HEAD_WEIGHTS),
                                       frames_per_code=self.tokenizer.frames_per_code,
                                       length_weight=cfg.LOSS.LENGTH_WEIGHT, end_weight=cfg.LOSS.END_WEIGHT,
                                       label_smoothing=cfg.LOSS.LABEL_SMOOTHING,
                                       keyword_layout=lm.KEYWORD_LAYOUT)
        self.kinematics = build_kinematics(cfg.KINEMATICS.BACKEND, cfg.KINEMATICS.SMPLX_DIR).requires_grad_(False)
        self.val_metrics = SignDTWMetrics(self.kinematics.parts, dtw=dtw)
        self.test_metrics = SignDTWMetrics(self.kinematics.parts, dtw=dtw)
        self.val_lengths = LengthMetrics(self.generator.max_motion_tokens)
        self.test_outputs: list[dict] = []
        self.evaluator = evaluator.eval().requires_grad_(False) if evaluator is not None else None
        self.val_readings: list[tuple[int, str, np.ndarray]] = []  # (index, text, generated (T, 179)) per val clip
        # the frame rate of the codes' clips: the cache's, which the data module checks the config against
        self.fps = float(cfg.DATASET.TARGET_FPS)
        # from_pretrained hands back eval mode and Lightning keeps modes as set: dropout must train
        self.generator.train()

    def train(self, mode: bool = True) -> GeneratorModule:
        """Modes follow `mode`, except the frozen tokenizer (in training mode its codebooks would move) and the
        evaluator (its dropout would change its reading)."""
        super().train(mode)
        self.tokenizer.eval()
        if self.evaluator is not None:
            self.evaluator.eval()
        return self

    @classmethod
    def from_config(cls, cfg: DictConfig, evaluator: SignToText | None = None) -> GeneratorModule:
        """A fresh generator over the tokenizer that TRAIN.PRETRAINED_VAE names (ours or SOKE's)."""
        if not cfg.TRAIN.PRETRAINED_VAE:
            raise CheckpointError("stage 2 needs a tokenizer: set TRAIN.PRETRAINED_VAE=<tokenizer checkpoint>")
        if uses_length_head(cfg) and not cfg.LOSS.LENGTH_WEIGHT:
            raise ConfigError(f"LM.LENGTH_BOUND={cfg.LM.LENGTH_BOUND} and LM.LENGTH_STEER={cfg.LM.LENGTH_STEER} "
                              "read the length head, which LOSS.LENGTH_WEIGHT=0 leaves untrained: set "
                              "LOSS.LENGTH_WEIGHT > 0 (e.g. 1.0) or switch both off")
        tokenizer = load_tokenizer(cfg.TRAIN.PRETRAINED_VAE, cfg.DATASET.MEAN_PATH, cfg.DATASET.STD_PATH)
        return cls(cfg, tokenizer, evaluator=evaluator)

    @classmethod
    def from_checkpoint(cls, path: str | Path, cfg: DictConfig | None = None, map_location: str = "cpu",
                        dtw: PairDTW = dtw_mpjpe_batch, use_kv_cache: bool = True) -> GeneratorModule:
        """Everything from one stage 2 checkpoint: the tokenizer travels inside it."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"generator checkpoint not found: {path}")
        try:
            with torch.serialization.safe_globals(CONFIG_SAFE_GLOBALS):  # tensors and plain data, never code
                checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # torch raises many types for a file it refuses or cannot parse
            raise CheckpointError(
                f"{path} is not a readable generator checkpoint ({type(err).__name__}: {str(err)[:200]}); "
                "only files that hold tensors and plain data are loaded, since unpickling anything else "
                "could run code. Give the stage 2 checkpoint, e.g. "
                "experiments/mgpt/<NAME>/checkpoints/best.ckpt"
            ) from err
        meta = checkpoint.get("sasoke", {}) if isinstance(checkpoint, dict) else {}
        if meta.get("stage") != "lm":
            raise CheckpointError(
                f"{path} is not a generator (stage 'lm') checkpoint (stage {meta.get('stage')!r}); "
                "give the stage 2 checkpoint, e.g. experiments/mgpt/<NAME>/checkpoints/best.ckpt"
            )
        cfg = cfg if cfg is not None else default_config(meta["config"])  # keys added since get their defaults
        _check_length_head(path, meta, checkpoint["state_dict"], cfg)
        module = cls(cfg, tokenizer_from_metadata(meta), dtw=dtw, use_kv_cache=use_kv_cache)
        module.load_state_dict(module._completed_state_dict(checkpoint["state_dict"]))
        # it generates motion at the rate it was trained on, whatever the config now says
        module.fps = float(meta.get("fps", meta["config"]["DATASET"]["TARGET_FPS"]))
        return module.eval()

    @property
    def fingerprint(self) -> str:
        return self.tokenizer.fingerprint()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.generator(batch["texts"], batch["codes"], batch["keywords"], sources=batch.get("sources"))
        self.log_dict({f"train/{k}": v for k, v in out.items() if k != "loss"}, batch_size=len(batch["texts"]))
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=len(batch["texts"]))
        return out["loss"]

    def generate_smplx(self, texts: list[str], keywords: list | None, decoding: str | None = None,
                       temperature: float | None = None, top_k: int | None = None,
                       generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], list[np.ndarray]]:
        """Codes (N_i, 3) and SMPL-X parameters (4 N_i, 179) per text. Decoding options left None follow
        TEST.DECODING (with TEST.NUM_BEAMS and TEST.LENGTH_PENALTY for beam search), TEST.TEMPERATURE and
        TEST.TOP_K (`decoding`: greedy, sample or beam); `generator` seeds sampling."""
        decoded, params = self.decode_smplx(texts, keywords, decoding, temperature, top_k, generator)
        return decoded.codes, params

    def decode_smplx(self, texts: list[str], keywords: list | None, decoding: str | None = None,
                     temperature: float | None = None, top_k: int | None = None,
                     generator: torch.Generator | None = None) -> tuple[Decoded, list[np.ndarray]]:
        """generate_smplx, with what the decoder says of each sample's length (at the cap or not)."""
        test, lm = self.cfg.TEST, self.cfg.LM
        decoding = checked_decoding(test.DECODING if decoding is None else decoding)
        if decoding == "beam":
            decoded = beam_decode(self.generator, texts, keywords, num_beams=test.NUM_BEAMS,
                                  length_penalty=test.LENGTH_PENALTY, length_bound=lm.LENGTH_BOUND,
                                  length_steer=lm.LENGTH_STEER)
        else:
            decoded = self.generator.decode(
                texts, keywords, use_cache=self.use_kv_cache, generator=generator, do_sample=decoding == "sample",
                temperature=test.TEMPERATURE if temperature is None else temperature,
                top_k=test.TOP_K if top_k is None else top_k,
                length_bound=lm.LENGTH_BOUND, length_steer=lm.LENGTH_STEER,
            )
        return decoded, codes_to_smplx(self.tokenizer, decoded.codes)

    def joints(self, params: np.ndarray) -> torch.Tensor:
        return self.kinematics(torch.as_tensor(params, device=self.device)).float()

    def _score_batch(self, batch: dict, metrics: SignDTWMetrics, lengths: LengthMetrics | None = None
                     ) -> list[dict]:
        decoded, generated = self.decode_smplx(batch["texts"], batch["keywords"])
        references = [r.cpu().numpy() for r in batch["references"]]  # (T_i, 179) each
        metrics.update(batch["index"].to(self.device), [self.joints(g) for g in generated],
                       [self.joints(r) for r in references])
        at_cap = decoded.at_cap.tolist()
        # an untrained length head (LOSS.LENGTH_WEIGHT 0) predicts noise: record no estimate rather than that
        predicted = decoded.predicted_steps.tolist() if self.cfg.LOSS.LENGTH_WEIGHT > 0 else [None] * len(at_cap)
        if lengths is not None:
            lengths.update(batch["index"].to(self.device), [len(g) for g in generated],
                           [len(r) for r in references], at_cap)
        return [{"index": int(i), "name": n, "text": t, "codes": c.cpu().numpy(), "generated": g, "reference": r,
                 "at_cap": cap, "predicted_steps": steps}
                for i, n, t, c, g, r, cap, steps in zip(batch["index"], batch["names"], batch["texts"], decoded.codes,
                                                        generated, references, at_cap,
                                                        predicted, strict=True)]

    def _generation_epoch(self) -> bool:
        every = self.cfg.TRAIN.GEN_VAL_EVERY_N_EPOCHS
        return every > 0 and (self.current_epoch + 1) % every == 0 and not self.trainer.sanity_checking

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self.generator(batch["texts"], batch["codes"], batch["keywords"], sources=batch.get("sources"))
        self.log_dict({f"val/{k}": v for k, v in out.items()}, sync_dist=True, batch_size=len(batch["texts"]))
        if self._generation_epoch():
            samples = self._score_batch(batch, self.val_metrics, self.val_lengths)
            if self.evaluator is not None:
                self.val_readings += [(s["index"], s["text"], s["generated"]) for s in samples]
            if batch_idx == 0:
                self._log_videos(samples[: self.cfg.TRAIN.VAL_VIDEOS])

    def on_validation_epoch_end(self) -> None:
        if self._generation_epoch():
            scores = self.val_metrics.compute()
            logged = {f"val/{k}": v for k, v in scores.items() if torch.is_tensor(v)}
            # one number for best.ckpt: a generator that is good at the body but poor at the hands is not good
            logged[GENERATION_MONITOR] = torch.stack([scores[f"DTW_MPJPE_{p}"] for p in PARTS]).mean()
            lengths = self.val_lengths.compute()  # generated / reference frames, gathered over processes
            logged.update({f"val/length_{k}": lengths[k] for k in LOGGED_LENGTH_METRICS if k in lengths})
            self.log_dict(logged, sync_dist=True)
            self.val_metrics.reset()
            self.val_lengths.reset()
            if self.evaluator is not None:
                self._log_back_translation()

    def _log_back_translation(self) -> None:
        """The evaluator's corpus scores of every val clip generated this epoch, as val/BT_*."""
        readings = self.val_readings
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, readings)
            readings = [r for rank in gathered for r in rank]
        # a distributed sampler pads the split with repeats: each clip is read once, in split order
        readings = sorted({index: (index, text, params) for index, text, params in readings}.values(),
                          key=lambda r: r[0])
        self.val_readings = []
        texts = [text for _, text, _ in readings]
        hypotheses = translate_params(self.evaluator, [params for _, _, params in readings],
                                      self.cfg.TEST.BATCH_SIZE)
        scores = corpus_scores(hypotheses, texts)
        # every process holds the same gathered readings, so the scores need no further syncing
        self.log_dict({f"{BACK_TRANSLATION_PREFIX}{k}": float(scores[k]) for k in CORPUS_KEYS if k != "BLEU4"})
        self.log(f"{BACK_TRANSLATION_PREFIX}BLEU4", float(scores["BLEU4"]), prog_bar=True)
        experiment = getattr(self.logger, "experiment", None)
        if isinstance(experiment, SummaryWriter) and self.trainer.is_global_zero:
            lines = [f"{h} ← {r}" for h, r in list(zip(hypotheses, texts, strict=True))[:VAL_TEXTS_LOGGED]]
            experiment.add_text("val/back_translation", "  \n".join(lines), self.global_step)

    def _log_videos(self, samples: list[dict]) -> None:
        from mGPT.render.tensorboard import add_gif
        from mGPT.render.video import render_video_frames

        experiment = getattr(self.logger, "experiment", None)
        # other DDP ranks get a dummy experiment whose methods return None; only rank 0 writes the logs
        if not self.trainer.is_global_zero or not isinstance(experiment, SummaryWriter):
            return
        for k, sample in enumerate(samples):
            frames = render_video_frames(sample["generated"], kinematics=self.kinematics, caption=sample["text"],
                                         reference_params=sample["reference"], avatar=self.cfg.RENDER.AVATAR,
                                         view=self.cfg.RENDER.VIEW, size=(320, 240))  # (T, H, W, 3) uint8
            add_gif(experiment, f"val/sample_{k}", frames, self.global_step, fps=self.fps)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.test_outputs.extend(self._score_batch(batch, self.test_metrics))

    def configure_optimizers(self) -> dict:
        # a frozen length head (LOSS.LENGTH_WEIGHT 0) stays out, so optimizer states from before it still load
        trained = [p for p in self.generator.parameters() if p.requires_grad]
        return adamw_cosine(trained, self.cfg, int(self.trainer.estimated_stepping_batches))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        meta = self.tokenizer.checkpoint_metadata()
        checkpoint["sasoke"] = {
            "stage": "lm",
            "config": OmegaConf.to_container(self.cfg),
            "tokenizer_config": meta["tokenizer_config"],
            "tokenizer_mean133": meta["mean133"],
            "tokenizer_std133": meta["std133"],
            "tokenizer_fingerprint": meta["fingerprint"],
            "fps": self.fps,
        }
        # the kinematics are fixed data and the evaluator a checkpoint of its own: neither travels with it, in
        # the weights nor in the live weights that TRAIN.EMA_DECAY's averaging keeps next to them
        for key in ("state_dict", "current_model_state"):
            if key in checkpoint:
                checkpoint[key] = {k: v for k, v in checkpoint[key].items()
                                   if not k.startswith(("kinematics.", "evaluator."))}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = checkpoint.get("sasoke", {})
        last = exp_dir(self.cfg) / "checkpoints" / "last.ckpt"
        if meta.get("stage") != "lm":
            raise CheckpointError(f"cannot resume stage 2 (lm) from {last}: it is a stage {meta.get('stage')!r} "
                                  f"checkpoint. NAME={self.cfg.NAME} already holds another run; choose a new NAME")
        if meta.get("tokenizer_fingerprint") != self.fingerprint:
            raise CheckpointError(f"cannot resume from {last}: it was trained with a different tokenizer than "
                                  f"TRAIN.PRETRAINED_VAE={self.cfg.TRAIN.PRETRAINED_VAE}; use a new NAME or the "
                                  "same tokenizer")
        # The optimizer holds the length head only while LOSS.LENGTH_WEIGHT > 0: resuming cannot switch it.
        trained_before = bool(meta.get("config", {}).get("LOSS", {}).get("LENGTH_WEIGHT"))  # absent: 0, before it
        if trained_before != (self.generator.length_weight > 0):
            raise CheckpointError(f"cannot resume from {last} with LOSS.LENGTH_WEIGHT={self.generator.length_weight}: "
                                  f"that run trained {'with' if trained_before else 'without'} the length head, "
                                  "and its optimizer state holds it only then. Resume with the weight it was "
                                  "trained with, or start a new NAME")
        checkpoint["state_dict"] = self._completed_state_dict(checkpoint["state_dict"])
        if "current_model_state" in checkpoint:  # TRAIN.EMA_DECAY: the live weights, loaded after these
            checkpoint["current_model_state"] = self._completed_state_dict(checkpoint["current_model_state"])

    def _completed_state_dict(self, state: dict) -> dict:
        """A saved state dict with what checkpoints lack filled in from this module: the kinematics and the
        evaluator (never saved) and, in a checkpoint from before it existed, the length head (untrained)."""
        state = dict(state)
        missing = {**self.kinematics.state_dict(prefix="kinematics."),
                   **self.generator.length_head.state_dict(prefix=LENGTH_HEAD_PREFIX)}
        if self.evaluator is not None:
            missing.update(self.evaluator.state_dict(prefix="evaluator."))
        if any(key.startswith(LENGTH_HEAD_PREFIX) for key in state):  # a head that is there must load whole
            missing = {k: v for k, v in missing.items() if not k.startswith(LENGTH_HEAD_PREFIX)}
        for key, value in missing.items():
            state.setdefault(key, value)
        return state


def _check_length_head(path: Path, meta: dict, state_dict: dict, cfg: DictConfig) -> None:
    """Decoding with LM.LENGTH_BOUND or LM.LENGTH_STEER needs a checkpoint whose length head was trained."""
    if not uses_length_head(cfg):
        return
    if not any(key.startswith(LENGTH_HEAD_PREFIX) for key in state_dict):
        raise ConfigError(f"{path} has no length head (it predates it), so LM.LENGTH_BOUND and LM.LENGTH_STEER "
                          "cannot be used with it: set both to 0, or retrain with LOSS.LENGTH_WEIGHT > 0")
    trained_with = meta["config"].get("LOSS", {}).get("LENGTH_WEIGHT") or 0.0
    if not trained_with > 0:
        raise ConfigError(f"the length head of {path} was not trained (LOSS.LENGTH_WEIGHT was 0), so "
                          "LM.LENGTH_BOUND and LM.LENGTH_STEER cannot be used with it: set both to 0, or "
                          "retrain with LOSS.LENGTH_WEIGHT > 0")
