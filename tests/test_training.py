"""Stage 1 (the tokenizer) through train.py and test.py: outputs, resuming, DDP, checkpoint choice and errors.

The slow tests run the real commands on the small synthetic sample (conftest.py); the others check the pieces
train.py and test.py are built from, in process.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from conftest import DEMO_DETO, DEMO_SOKE, REPO, TOKENIZER_EPOCHS, tokenizer_overrides
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader

from mGPT.archs.deto import DETO, load_tokenizer
from mGPT.config import load_config
from mGPT.data.features import apply_length_rules, smplx_to_features
from mGPT.data.prepare import load_cache, load_stats
from mGPT.errors import CheckpointError, ConfigError
from mGPT.layout import PARTS
from mGPT.models.checkpoints import trained_checkpoint
from mGPT.models.lm_module import GENERATION_MONITOR, GeneratorModule
from mGPT.models.vae_module import TokenizerModule
from train import build_callbacks, build_trainer

EMA_STATE = ("codebook", "code_sum", "code_count", "initialised")
TINY_PART = {"code_dim": 16, "width": 16, "down_t": 2, "depth": 1, "dilation_growth": 3, "ema_decay": 0.99}


def scalars(log_dir, tag: str) -> list[float]:
    events = EventAccumulator(str(log_dir))
    events.Reload()
    return [event.value for event in events.Scalars(tag)]


def read_checkpoint(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def tiny_deto() -> DETO:
    parts = [{"nfeats": n, "code_num": c, **TINY_PART} for n, c in ((43, 96), (45, 192), (45, 192))]
    return DETO(*parts, np.zeros(133, np.float32), np.ones(133, np.float32))


# ---------------------------------------------------------------- in process


class LineModule(pl.LightningModule):
    """y = w x fitted to zero: enough to drive checkpoint callbacks, 2 steps per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.line = torch.nn.Linear(1, 1)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self.line(batch).pow(2).mean()

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.log("val/loss", self.line(batch).pow(2).mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(torch.ones(4, 1), batch_size=2)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(torch.ones(2, 1), batch_size=2)


class LastCheckpointProbe(pl.Callback):
    """The global step that last.ckpt holds when each epoch starts (None: no file yet)."""

    def __init__(self, path) -> None:
        self.path, self.steps = path, []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.steps.append(read_checkpoint(self.path)["global_step"] if self.path.is_file() else None)


def test_last_checkpoint_follows_every_epoch_and_best_only_validated_ones(tmp_path) -> None:
    # 3 epochs, validation after the 2nd only: last.ckpt must hold the 3rd (resuming would redo it otherwise)
    cfg = load_config(DEMO_DETO, ["ACCELERATOR=cpu", "TRAIN.MAX_EPOCHS=3", "TRAIN.VAL_EVERY_N_EPOCHS=2",
                                  "TRAIN.MONITOR=val/loss", "TRAIN.LOG_EVERY_N_STEPS=1"])
    ckpt_dir = tmp_path / "checkpoints"
    logger = TensorBoardLogger(save_dir=str(tmp_path), name="", version="logs")
    probe = LastCheckpointProbe(ckpt_dir / "last.ckpt")
    trainer = build_trainer(cfg, ckpt_dir, [*build_callbacks(cfg, ckpt_dir), probe], logger)
    trainer.fit(LineModule())
    assert probe.steps == [None, 2, 4]  # on disk while training, as a killed Colab runtime leaves it
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert read_checkpoint(ckpt_dir / "last.ckpt")["global_step"] == 6
    assert read_checkpoint(ckpt_dir / "best.ckpt")["global_step"] == 4


class GenerationLineModule(LineModule):
    """Logs a generation metric only every 2nd epoch, as GeneratorModule does; it is lowest after epoch 2."""

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        if (self.current_epoch + 1) % 2 == 0:
            self.log(GENERATION_MONITOR, float(abs(self.current_epoch - 1.5)))


def test_stage2_best_checkpoint_is_judged_on_generation_epochs_only(tmp_path) -> None:
    cfg = load_config(DEMO_SOKE, ["ACCELERATOR=cpu", "TRAIN.MAX_EPOCHS=5", "TRAIN.VAL_EVERY_N_EPOCHS=1",
                                  "TRAIN.GEN_VAL_EVERY_N_EPOCHS=2", "TRAIN.LOG_EVERY_N_STEPS=1"])
    assert cfg.TRAIN.MONITOR == GENERATION_MONITOR  # the shipped stage 2 configs judge by generation
    ckpt_dir = tmp_path / "checkpoints"
    logger = TensorBoardLogger(save_dir=str(tmp_path), name="", version="logs")
    trainer = build_trainer(cfg, ckpt_dir, build_callbacks(cfg, ckpt_dir), logger)
    trainer.fit(GenerationLineModule())  # raises if best.ckpt looked for the metric on epochs 1, 3 or 5
    assert read_checkpoint(ckpt_dir / "best.ckpt")["global_step"] == 4  # epoch 2 (0.5) beats epoch 4 (1.5)
    assert read_checkpoint(ckpt_dir / "last.ckpt")["global_step"] == 10


class FrozenPartLineModule(LineModule):
    """LineModule with a frozen layer beside it (as the generator has its tokenizer); it records the live weight
    after every optimizer step and the weight that validation sees."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = torch.nn.Linear(3, 3).requires_grad_(False)
        self.live: list[float] = []
        self.validated: list[float] = []

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.live.append(self.line.weight.item())

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        self.validated.append(self.line.weight.item())


def test_ema_validates_and_saves_the_moving_average_and_keeps_frozen_weights_exact(tmp_path) -> None:
    decay = 0.5
    cfg = load_config(DEMO_DETO, ["ACCELERATOR=cpu", "TRAIN.MAX_EPOCHS=2", "TRAIN.VAL_EVERY_N_EPOCHS=1",
                                  "TRAIN.MONITOR=val/loss", "TRAIN.LOG_EVERY_N_STEPS=1", f"TRAIN.EMA_DECAY={decay}"])
    ckpt_dir = tmp_path / "checkpoints"
    module = FrozenPartLineModule()
    frozen = {k: v.clone() for k, v in module.frozen.state_dict().items()}
    logger = TensorBoardLogger(save_dir=str(tmp_path), name="", version="logs")
    build_trainer(cfg, ckpt_dir, build_callbacks(cfg, ckpt_dir), logger).fit(module)
    average = [module.live[0]]  # the first update copies the weights; then average += (1 - decay)(live - average)
    for live in module.live[1:]:
        average.append(average[-1] + (1 - decay) * (live - average[-1]))
    assert module.validated == pytest.approx([average[1], average[3]], abs=1e-6)  # 2 steps per epoch
    assert average[3] != pytest.approx(module.live[3], abs=1e-3)  # the test tells the two apart
    last = read_checkpoint(ckpt_dir / "last.ckpt")
    assert last["state_dict"]["line.weight"].item() == pytest.approx(average[3], abs=1e-6)
    assert last["current_model_state"]["line.weight"].item() == pytest.approx(module.live[3], abs=1e-6)
    assert all(torch.equal(last["state_dict"][f"frozen.{k}"], v) for k, v in frozen.items())


def test_the_moving_average_leaves_an_unmoved_weight_bit_for_bit() -> None:
    from torch.optim.swa_utils import get_ema_avg_fn

    from train import moving_average

    weight, moved = torch.randn(10_000), torch.randn(10_000)
    update = moving_average(0.99)
    assert torch.equal(update(weight, weight, torch.tensor(5)), weight)
    assert not torch.equal(get_ema_avg_fn(0.99)(weight, weight, 5), weight)  # what torch's formula does to it
    torch.testing.assert_close(update(weight, moved, torch.tensor(5)), 0.99 * weight + 0.01 * moved)
    with pytest.raises(ConfigError, match="TRAIN.EMA_DECAY"):
        moving_average(1.0)


def test_test_checkpoint_then_best_then_last_of_a_run_without_validation(tmp_path, capsys) -> None:
    overrides = [f"FOLDER_EXP={tmp_path}", "NAME=run"]
    checkpoints = tmp_path / "run" / "checkpoints"
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*best\.ckpt.*TEST\.CHECKPOINT"):
        trained_checkpoint(load_config(DEMO_DETO, overrides))
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.ckpt").write_bytes(b"")
    assert trained_checkpoint(load_config(DEMO_DETO, overrides)) == checkpoints / "last.ckpt"
    assert "no best.ckpt" in capsys.readouterr().out
    (checkpoints / "best.ckpt").write_bytes(b"")
    assert trained_checkpoint(load_config(DEMO_DETO, overrides)) == checkpoints / "best.ckpt"
    chosen = tmp_path / "other.ckpt"
    chosen.write_bytes(b"")
    assert trained_checkpoint(load_config(DEMO_DETO, [*overrides, f"TEST.CHECKPOINT={chosen}"])) == chosen


def test_tokenizer_module_keeps_the_given_tokenizer_and_trains_its_codebooks() -> None:
    # the demo config says width 128; a loaded tokenizer of width 16 must be used as it is, in training mode
    tokenizer = tiny_deto().eval()
    module = TokenizerModule(load_config(DEMO_DETO), tokenizer)
    assert module.tokenizer is tokenizer
    assert all(m.training for m in module.tokenizer.modules())
    module.tokenizer(torch.randn(2, 16, 133))
    assert all(bool(vae.quantizer.initialised) for vae in tokenizer.part_vaes().values())


def test_joint_loss_is_zero_for_a_perfect_reconstruction_and_skips_padded_frames() -> None:
    module = TokenizerModule(load_config(DEMO_DETO, ["LOSS.JOINT_WEIGHT=1.0"]), tiny_deto())
    motion = torch.randn(2, 8, 133) * 0.3  # (B, T, 133), normalised (the tiny tokenizer's std is 1)
    mask = torch.ones(2, 8)
    assert float(module._joint_loss(motion, motion, mask)) == 0.0
    bent = motion.clone()
    bent[:, 4:, 30:75] += 0.5  # the left hand bends in the second half only
    mask[:, 4:] = 0.0  # ... which is padding
    assert float(module._joint_loss(bent, motion, mask)) == 0.0
    mask[:, 4:] = 1.0
    loss = float(module._joint_loss(bent, motion, mask))
    # by hand: the left hand's wrist-rooted joint distance, averaged over its joints and all 8 frames, then
    # over the three parts (body and right hand did not move)
    pred, ref = module.joints(bent), module.joints(motion)
    lhand = module.kinematics.parts["lhand"]
    def rooted(joints: torch.Tensor) -> torch.Tensor:
        return joints[:, :, lhand.joints] - joints[:, :, lhand.root, None]

    moved = rooted(pred) - rooted(ref)
    assert loss == pytest.approx(float(moved.norm(dim=-1).mean()) / 3, rel=1e-5)
    assert loss > 1e-3


def test_joint_weight_adds_its_term_and_zero_leaves_the_plain_loss() -> None:
    torch.manual_seed(0)
    batch = {"motion": torch.randn(2, 8, 133) * 0.3, "mask": torch.ones(2, 8), "names": ["a", "b"]}
    plain = TokenizerModule(load_config(DEMO_DETO), tiny_deto())
    joint = TokenizerModule(load_config(DEMO_DETO, ["LOSS.JOINT_WEIGHT=2.0"]), tiny_deto())
    joint.tokenizer.load_state_dict(plain.tokenizer.state_dict())
    plain_losses, _ = plain.eval()._losses(batch)  # eval: the codebooks do not move between the two calls
    joint_losses, _ = joint.eval()._losses(batch)
    assert "loss_joints" not in plain_losses
    commit = plain.cfg.LOSS.COMMIT_WEIGHT * plain_losses["loss_commit"]
    torch.testing.assert_close(plain_losses["loss"], plain_losses["loss_recon"] + commit)
    torch.testing.assert_close(joint_losses["loss"], plain_losses["loss"] + 2.0 * joint_losses["loss_joints"])
    joint_losses["loss_joints"].backward()  # it trains the decoders, through the kinematics
    assert joint.tokenizer.part_vaes()["lhand"].decoder.model[-1].weight.grad.abs().sum() > 0


def test_resuming_from_a_checkpoint_of_the_other_stage_names_the_file_and_the_fix(tmp_path) -> None:
    cfg = load_config(DEMO_DETO, [f"FOLDER_EXP={tmp_path}", "NAME=shared_name"])
    module = TokenizerModule(cfg, tiny_deto())
    with pytest.raises(CheckpointError) as error:
        module.on_load_checkpoint({"sasoke": {"stage": "lm"}, "state_dict": {}})
    message = str(error.value)
    assert str(tmp_path / "shared_name" / "checkpoints" / "last.ckpt") in message
    assert "'lm'" in message and "NAME=shared_name" in message and "new NAME" in message


# ---------------------------------------------------------------- through the commands


@pytest.mark.slow
def test_stage1_training_lowers_the_loss_and_writes_an_experiment(tokenizer_run, small_sample) -> None:
    exp = tokenizer_run.exp
    assert sorted(p.name for p in tokenizer_run.checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert load_config(exp / "config.yaml").NAME == "tiny_deto"
    assert list((exp / "logs").glob("events.out.tfevents.*"))
    assert "module(s) in eval mode" not in tokenizer_run.stderr
    assert "could not find the monitored key" not in tokenizer_run.stderr  # validation every 5 epochs only

    recon = scalars(exp / "logs", "train/loss_recon")
    assert len(recon) == TOKENIZER_EPOCHS * 3  # 24 clips in batches of 8, logged every step
    assert np.mean(recon[-3:]) < 0.8 * np.mean(recon[:3]), recon
    val_recon = scalars(exp / "logs", "val/loss_recon")
    assert len(val_recon) == 2 and val_recon[1] < val_recon[0]
    for part in PARTS:  # reconstruction metrics on the joints, in millimetres
        aligned, plain = (scalars(exp / "logs", f"val/{m}_{part}")[-1] for m in ("PA_MPJPE", "MPJPE"))
        assert 0 < aligned < plain

    checkpoint = read_checkpoint(tokenizer_run.checkpoints / "best.ckpt")
    meta = checkpoint["sasoke"]
    assert meta["stage"] == "vae"
    sizes = meta["tokenizer_config"]
    assert (sizes["body"]["width"], sizes["body"]["code_num"], sizes["lhand"]["code_num"]) == (64, 96, 192)
    stats = load_stats(small_sample / "_cache")
    np.testing.assert_allclose(meta["mean133"], stats["mean133"], rtol=1e-6)
    np.testing.assert_allclose(meta["std133"], stats["std133"], rtol=1e-6)
    assert all(key.startswith("tokenizer.") for key in checkpoint["state_dict"])

    tokenizer = load_tokenizer(tokenizer_run.checkpoints / "best.ckpt")
    assert tokenizer.fingerprint() == meta["fingerprint"]
    assert tokenizer.load_report.missing == [] and tokenizer.load_report.unexpected == []
    clip = load_cache(small_sample / "_cache", "test").clip(0)
    features = smplx_to_features(apply_length_rules(clip, 40, 400))  # (T, 133)
    codes = tokenizer.encode(torch.from_numpy(features)[None])  # (1, T/4, 3)
    assert codes.shape == (1, len(features) // 4, 3)
    assert [int(codes[..., p].max()) < n for p, n in enumerate((96, 192, 192))] == [True] * 3


# train.py with a spy: counts codebook (re)initialisations, records the EMA state the first step starts from
SPY = """
import runpy, sys
import torch
from mGPT.archs.vqvae import EMAQuantizer
from mGPT.models.vae_module import TokenizerModule

EMA_STATE = {ema_state!r}
initialisations, first_step = [], {{}}
initialise_from = EMAQuantizer.initialise_from

def counting_initialise_from(self, flat):
    initialisations.append(1)
    initialise_from(self, flat)

def on_train_batch_start(self, batch, batch_idx):
    if not first_step:
        first_step.update({{k: v.clone() for k, v in self.tokenizer.state_dict().items()
                           if k.rsplit(".", 1)[-1] in EMA_STATE}})

EMAQuantizer.initialise_from = counting_initialise_from
TokenizerModule.on_train_batch_start = on_train_batch_start
report, sys.argv = sys.argv[1], [{train!r}, *sys.argv[2:]]
try:
    runpy.run_path({train!r}, run_name="__main__")
finally:
    torch.save({{"initialisations": len(initialisations), "first_step": first_step}}, report)
"""


@pytest.mark.slow
def test_resume_continues_epochs_and_codebook_state(run_command, workdir, small_sample, tmp_path) -> None:
    spy = tmp_path / "spy.py"
    spy.write_text(SPY.format(ema_state=EMA_STATE, train=str(REPO / "train.py")))
    arguments = ["--cfg", DEMO_DETO, *tokenizer_overrides(small_sample, "tiny_resume"),
                 "TRAIN.VAL_EVERY_N_EPOCHS=3"]
    checkpoints = workdir / "experiments" / "mgpt" / "tiny_resume" / "checkpoints"

    first = run_command([spy, tmp_path / "first.pt", *arguments, "TRAIN.MAX_EPOCHS=2"])
    assert "resuming" not in first.stdout
    assert "no best.ckpt" in first.stdout  # no validation in 2 epochs: said, and last.ckpt still written
    assert torch.load(tmp_path / "first.pt")["initialisations"] == 3  # one codebook per part: the spy sees it
    saved = read_checkpoint(checkpoints / "last.ckpt")
    assert saved["global_step"] == 2 * 3

    resumed = run_command([spy, tmp_path / "resumed.pt", *arguments, "TRAIN.MAX_EPOCHS=4"])
    assert "resuming from experiments/mgpt/tiny_resume/checkpoints/last.ckpt" in resumed.stdout
    report = torch.load(tmp_path / "resumed.pt")
    assert report["initialisations"] == 0
    saved_ema = {k.removeprefix("tokenizer."): v for k, v in saved["state_dict"].items()
                 if k.rsplit(".", 1)[-1] in EMA_STATE}
    assert sorted(report["first_step"]) == sorted(saved_ema) and len(saved_ema) == 3 * len(EMA_STATE)
    for key, value in saved_ema.items():
        assert torch.equal(report["first_step"][key], value), key

    final = read_checkpoint(checkpoints / "last.ckpt")
    assert final["epoch"] == 3 and final["global_step"] == 4 * 3  # written as epoch index 3 ended
    assert read_checkpoint(checkpoints / "best.ckpt")["global_step"] == 3 * 3  # validated after epoch 3
    assert not torch.equal(final["state_dict"]["tokenizer.vae.quantizer.code_count"],
                           saved["state_dict"]["tokenizer.vae.quantizer.code_count"])


@pytest.mark.slow
def test_two_process_ddp_on_cpu_trains_and_checkpoints(run_command, workdir, small_sample) -> None:
    overrides = [*tokenizer_overrides(small_sample, "tiny_ddp"), "ACCELERATOR=cpu", "DEVICES=2",
                 "TRAIN.MAX_EPOCHS=2"]
    result = run_command([REPO / "train.py", "--cfg", DEMO_DETO, *overrides], timeout=240)
    output = result.stdout + result.stderr
    assert "distributed_backend=gloo" in output and "GLOBAL_RANK: 1" in output
    checkpoint = read_checkpoint(workdir / "experiments" / "mgpt" / "tiny_ddp" / "checkpoints" / "last.ckpt")
    steps_per_epoch = math.ceil(math.ceil(24 / 2) / 8)  # each process sees half of the 24 clips
    assert checkpoint["global_step"] == 2 * steps_per_epoch
    assert checkpoint["sasoke"]["stage"] == "vae"


@pytest.mark.slow
def test_stage1_test_scores_every_clip_in_mm(run_command, workdir, small_sample, tiny_tokenizer) -> None:
    # no VQ overrides: the checkpoint's sizes (width 64) must win over the demo config's (128)
    run_command([REPO / "test.py", "--cfg", DEMO_DETO, "NAME=tiny_deto", f"DATASET.DATA_ROOT={small_sample}"])
    out = workdir / "results" / "mgpt" / "tiny_deto" / "test_rank_0"
    scores = json.loads((out / "test_scores.json").read_text())
    summary = json.loads((out / "test_summary.json").read_text())

    test = load_cache(small_sample / "_cache", "test")
    assert sorted(scores) == sorted(test.names)
    keys = sorted(f"{metric}_{part}" for metric in ("MPJPE", "PA_MPJPE") for part in PARTS)
    for name, sample in scores.items():
        assert sorted(sample) == keys, name
        for part in PARTS:
            assert 0 < sample[f"PA_MPJPE_{part}"] < sample[f"MPJPE_{part}"] < 1000, (name, sample)
    assert summary["stage"] == "vae" and summary["samples"] == len(test)
    assert summary["kinematics_backend"] == "skeleton"
    assert summary["checkpoint"].endswith("tiny_deto/checkpoints/best.ckpt")
    assert summary["config"] == "tiny_deto"
    # the summary is over all frames: the frame-weighted mean of the per-clip scores
    frames = {name: len(apply_length_rules(test.clip(i), 40, 400)) for i, name in enumerate(test.names)}
    for key in keys:
        weighted = sum(scores[n][key] * frames[n] for n in frames) / sum(frames.values())
        assert summary["means_mm"][key] == pytest.approx(weighted, rel=1e-4), key


# ---------------------------------------------------------------- stage 2 pieces, in process


def random_codes(steps: int) -> torch.Tensor:
    """(steps, 3) codes inside the tiny tokenizer's codebooks (96, 192, 192)."""
    return torch.stack([torch.randint(0, size, (steps,)) for size in (96, 192, 192)], dim=1)


def test_train_and_val_loss_are_the_same_head_weighted_sum(tiny_mbart, monkeypatch) -> None:
    cfg = load_config(DEMO_SOKE, [f"LM.MBART_PATH={tiny_mbart}", "LOSS.HEAD_WEIGHTS=[1.0,0.5,2.0]",
                                  "TRAIN.VAL_EVERY_N_EPOCHS=5", "TRAIN.GEN_VAL_EVERY_N_EPOCHS=5"])
    module = GeneratorModule(cfg, tiny_deto()).eval()  # no dropout: both steps see the same network
    logged: dict[str, torch.Tensor] = {}
    monkeypatch.setattr(module, "log", lambda name, value, **kwargs: logged.__setitem__(name, value))
    monkeypatch.setattr(module, "log_dict", lambda values, **kwargs: logged.update(values))
    torch.manual_seed(0)
    batch = {"texts": ["أنا أذهب إلى المدرسة", "الكتاب على الطاولة"], "codes": [random_codes(5), random_codes(3)],
             "keywords": [None, None]}

    loss = module.training_step(batch, 0)
    assert logged["train/loss"] is loss
    module.validation_step(batch, 0)
    heads = [logged[f"val/loss_{part}"] for part in PARTS]
    weighted = 1.0 * heads[0] + 0.5 * heads[1] + 2.0 * heads[2]
    torch.testing.assert_close(logged["val/loss"], weighted)
    torch.testing.assert_close(loss, weighted)
    assert abs(float((sum(heads) - weighted).detach())) > 1e-3  # the weights matter for this batch


def test_generator_checkpoint_keeps_its_frame_rate_and_frame_limit(tiny_mbart, tmp_path) -> None:
    """The rate a generator was trained at travels with it; its frame limit is steps x the tokenizer's frames."""
    parts = [{"nfeats": n, "code_num": c, **TINY_PART, "down_t": 3} for n, c in ((43, 96), (45, 192), (45, 192))]
    tokenizer = DETO(*parts, np.zeros(133, np.float32), np.ones(133, np.float32))
    cfg = load_config(DEMO_SOKE, [f"LM.MBART_PATH={tiny_mbart}", "DATASET.TARGET_FPS=20",
                                  "LM.MAX_MOTION_TOKENS=12"])
    module = GeneratorModule(cfg, tokenizer)
    assert module.fps == 20
    assert module.generator.frames_per_code == 8 and module.generator.max_frames == 96
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "generator.ckpt")

    later = load_config(DEMO_SOKE, [f"LM.MBART_PATH={tiny_mbart}"])  # DATASET.TARGET_FPS: 24
    loaded = GeneratorModule.from_checkpoint(tmp_path / "generator.ckpt", later)
    assert loaded.fps == 20 and loaded.tokenizer.frames_per_code == 8
    assert loaded.generator.max_frames == 100 * 8
