"""Generation that ends when the signing ends: the length head, the length bound and end steering, the end
label's calibration (END_WEIGHT, LABEL_SMOOTHING), and the length report of validation and test.py."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from conftest import DEMO_SOKE, REPO
from omegaconf import OmegaConf
from torch import nn

from mGPT.archs.amg import EXTRA_TOKENS, PARTS, SignGenerator
from mGPT.archs.deto import DETO
from mGPT.archs.tiny_mbart import make_tiny_mbart
from mGPT.config import load_config
from mGPT.errors import CheckpointError, ConfigError
from mGPT.metrics.length import SUMMARY_KEYS, LengthMetrics, length_summary
from mGPT.models.lm_module import LENGTH_HEAD_PREFIX, GeneratorModule

SIZES = (8, 12, 12)
TEXTS = ["مرحبا بك في المدرسة", "أين المستشفى من فضلك", "شكرا جزيلا لك يا صديقي", "كم عمرك اليوم"]
NEW_KEYS = {"LOSS": ("LENGTH_WEIGHT", "END_WEIGHT", "LABEL_SMOOTHING"), "LM": ("LENGTH_BOUND", "LENGTH_STEER")}
TINY_PART = {"code_dim": 16, "width": 16, "down_t": 2, "depth": 1, "dilation_growth": 3, "ema_decay": 0.99}


def _random_codes(lengths: list[int], seed: int, sizes: tuple[int, ...] = SIZES) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.stack([torch.randint(0, n, (length,), generator=gen) for n in sizes], dim=1)
            for length in lengths]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mbart(TEXTS, tmp_path_factory.mktemp("length") / "mbart", d_model=64, layers=2)


def _generator(tiny_dir: Path, **kwargs) -> SignGenerator:
    torch.manual_seed(0)
    return SignGenerator(tiny_dir, codebook_sizes=SIZES, **kwargs).eval()


def _scramble(generator: SignGenerator) -> SignGenerator:
    """mBART weights large enough that outputs depend on the inputs (its 0.02 init barely does)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for weight in generator.mbart.parameters():
            if weight.ndim == 2:
                weight.normal_(0.0, 0.5)
    return generator


@pytest.fixture
def never_ends(tiny_dir: Path) -> SignGenerator:
    """A generator whose </s> logit is far below every code's, with a length head predicting 3-8 steps that
    differ between the texts."""
    generator = _scramble(_generator(tiny_dir))
    torch.manual_seed(2)
    with torch.no_grad():
        generator.mbart.final_logits_bias[0, generator.eos_row] = -30.0
        generator.length_head[-1].weight.normal_(0.0, 0.3)
        generator.length_head[-1].bias.fill_(math.log(5.0))
    return generator


def _tiny_deto() -> DETO:
    parts = [{"nfeats": n, "code_num": c, **TINY_PART} for n, c in ((43, 96), (45, 192), (45, 192))]
    return DETO(*parts, np.zeros(133, np.float32), np.ones(133, np.float32))


def _never_ending_module(cfg) -> GeneratorModule:
    module = GeneratorModule(cfg, _tiny_deto()).eval()
    with torch.no_grad():
        module.generator.mbart.final_logits_bias[0, module.generator.eos_row] = -100.0
    return module


# ---------------------------------------------------------------- the length head


def test_the_length_head_learns_the_lengths_of_a_tiny_set(tiny_dir: Path) -> None:
    lengths = [3, 10, 25, 60]
    generator = _generator(tiny_dir, length_weight=1.0)
    codes = _random_codes(lengths, seed=1)
    optimizer = torch.optim.AdamW(generator.parameters(), lr=3e-3)
    for _ in range(400):
        generator.train()
        out = generator(TEXTS, codes)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        if out["length_error"] < 0.03:
            break
    generator.eval()
    predicted = generator.predict_steps(TEXTS)  # (4,)
    relative = predicted / torch.tensor(lengths, dtype=torch.float32) - 1.0
    assert relative.abs().max() < 0.1, predicted.tolist()


def test_the_length_loss_is_added_once_with_its_weight(tiny_dir: Path) -> None:
    generator = _scramble(_generator(tiny_dir, length_weight=0.5))
    codes = _random_codes([4, 7], seed=3)
    with torch.no_grad():
        out = generator(TEXTS[:2], codes)
        predicted = generator.predict_steps(TEXTS[:2])
    heads = out["loss_body"] + out["loss_lhand"] + out["loss_rhand"]
    torch.testing.assert_close(out["loss"], heads + 0.5 * out["loss_length"])
    assert ((predicted > 1) & (predicted < 100)).all()  # inside the clamp: its log is the head's output
    torch.testing.assert_close(out["loss_length"], F.mse_loss(predicted.log(), torch.tensor([4.0, 7.0]).log()))
    torch.testing.assert_close(out["length_error"], (predicted / torch.tensor([4.0, 7.0]) - 1).abs().mean())


def test_defaults_give_the_loss_of_a_generator_without_the_head(tiny_dir: Path, monkeypatch) -> None:
    """LENGTH_WEIGHT 0, END_WEIGHT 1, LABEL_SMOOTHING 0: bit for bit the generator from before the head, whose
    initial weights, random state, losses and gradients the head leaves as they were."""
    torch.manual_seed(0)
    with_head = SignGenerator(tiny_dir, codebook_sizes=SIZES)
    state_with = torch.random.get_rng_state()
    monkeypatch.setattr(SignGenerator, "_make_length_head", lambda self, d_model: nn.Identity())
    torch.manual_seed(0)
    without = SignGenerator(tiny_dir, codebook_sizes=SIZES)
    assert torch.equal(state_with, torch.random.get_rng_state())
    params = dict(with_head.named_parameters())
    assert all(torch.equal(p, params[name]) for name, p in without.named_parameters())
    assert not any(p.requires_grad for p in with_head.length_head.parameters())  # frozen: DDP ignores it

    codes = _random_codes([4, 9], seed=4)
    outs, grads = [], []
    for generator in (with_head, without):
        generator.train()
        torch.manual_seed(5)  # the same dropout draws
        out = generator(TEXTS[:2], codes)
        out["loss"].backward()
        outs.append(out)
        grads.append({n: p.grad for n, p in generator.named_parameters() if p.grad is not None})
    assert sorted(outs[0]) == sorted(outs[1]) and "loss_length" not in outs[0]
    for key in outs[0]:
        assert torch.equal(outs[0][key], outs[1][key]), key
    assert sorted(grads[0]) == sorted(grads[1])
    assert all(torch.equal(grads[0][name], grads[1][name]) for name in grads[0])


def test_end_weight_and_label_smoothing_are_torchs_cross_entropy_on_the_same_logits(tiny_dir: Path) -> None:
    codes = _random_codes([4, 2], seed=6)  # the second target is padded in the batch
    plain = _scramble(_generator(tiny_dir))
    calibrated = _scramble(_generator(tiny_dir, end_weight=3.0, label_smoothing=0.1))
    with torch.no_grad():
        out = calibrated(TEXTS[:2], codes)
        out_plain = plain(TEXTS[:2], codes)
        logits, labels = [], []
        for text, sample_codes in zip(TEXTS[:2], codes, strict=True):  # each sample alone: no padding at all
            rows, mask = calibrated.encode_source([text])
            steps = torch.cat([torch.full((1, 3), calibrated.tgt_lang_row), calibrated.code_rows(sample_codes)])
            logits.append(calibrated.mbart(input_ids=rows, attention_mask=mask,
                                           decoder_inputs_embeds=calibrated.embed_steps(steps[None])).logits[0])
            labels.append(torch.cat([sample_codes, torch.tensor([[n + EXTRA_TOKENS for n in SIZES]])]))
    all_logits, all_labels = torch.cat(logits), torch.cat(labels)  # (M, V), (M, 3)
    for p, part in enumerate(PARTS):
        window = torch.cat([calibrated.part_token_ids[p], torch.tensor([calibrated.eos_row])])
        weight = None
        if p == 0:  # the body head's </s>, the label that ends a sample
            weight = torch.ones(len(window))
            weight[-1] = 3.0
        expected = F.cross_entropy(all_logits[:, window], all_labels[:, p], weight=weight, label_smoothing=0.1)
        torch.testing.assert_close(out[f"loss_{part}"], expected)
        assert not torch.allclose(out[f"loss_{part}"], out_plain[f"loss_{part}"])


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"length_weight": -1.0}, "LOSS.LENGTH_WEIGHT"),
    ({"end_weight": 0.0}, "LOSS.END_WEIGHT"),
    ({"label_smoothing": 1.0}, "LOSS.LABEL_SMOOTHING"),
])
def test_bad_loss_values_name_their_key(tiny_dir: Path, kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        _generator(tiny_dir, **kwargs)


# ---------------------------------------------------------------- decoding


def test_decoding_stops_every_sample_at_its_length_bound_and_flags_it(never_ends: SignGenerator) -> None:
    unbounded = never_ends.decode(TEXTS, max_steps=30)
    assert [len(c) for c in unbounded.codes] == [30] * len(TEXTS) and unbounded.at_cap.all()
    predicted = never_ends.predict_steps(TEXTS)
    torch.testing.assert_close(unbounded.predicted_steps, predicted)
    for max_steps in (30, 6):
        bound = torch.ceil(1.5 * predicted).long().clamp(max=max_steps)  # (B,)
        for use_cache in (True, False):
            decoded = never_ends.decode(TEXTS, max_steps=max_steps, length_bound=1.5, use_cache=use_cache)
            assert [len(c) for c in decoded.codes] == bound.tolist()
            assert torch.equal(decoded.allowed_steps, bound) and decoded.at_cap.all()
            for codes, full in zip(decoded.codes, unbounded.codes, strict=True):
                assert torch.equal(codes, full[: len(codes)])  # the bound only cuts
    assert len(set(torch.ceil(1.5 * predicted).tolist())) > 1  # the texts get different bounds


def test_a_sample_that_ends_before_its_bound_is_not_at_the_cap(never_ends: SignGenerator) -> None:
    with torch.no_grad():
        never_ends.mbart.final_logits_bias[0, never_ends.eos_row] = 100.0  # now it ends at once
    decoded = never_ends.decode(TEXTS, max_steps=30, min_steps=1, length_bound=1.5)  # a bound is >= 2 steps
    assert [len(c) for c in decoded.codes] == [1] * len(TEXTS) and not decoded.at_cap.any()


def test_steering_ends_a_sample_that_would_not_end_at_or_after_its_predicted_length(never_ends) -> None:
    plain = never_ends.decode(TEXTS, max_steps=40)
    assert plain.at_cap.all()  # unsteered it never ends
    results = [never_ends.decode(TEXTS, max_steps=40, length_steer=50.0, use_cache=use_cache)
               for use_cache in (True, False)]
    for a, b in zip(results[0].codes, results[1].codes, strict=True):
        assert torch.equal(a, b)  # the cached and the recomputing decoder steer alike
    steered = results[0]
    assert not steered.at_cap.any()
    for codes, full, predicted in zip(steered.codes, plain.codes, steered.predicted_steps, strict=True):
        assert predicted <= len(codes) < 40
        assert torch.equal(codes, full[: len(codes)])  # before its end, steering changed no choice


def test_bad_decoding_values_name_their_key(never_ends: SignGenerator) -> None:
    with pytest.raises(ConfigError, match="LM.LENGTH_BOUND"):
        never_ends.decode(TEXTS[:1], length_bound=0.5)
    with pytest.raises(ConfigError, match="LM.LENGTH_STEER"):
        never_ends.decode(TEXTS[:1], length_steer=-1.0)


# ---------------------------------------------------------------- reporting


def test_length_summary_of_known_lengths() -> None:
    generated, reference = [40, 80, 400, 30], [40, 40, 100, 60]  # ratios 1, 2, 4, 0.5
    at_cap = [False, False, True, False]
    summary = length_summary(generated, reference, at_cap, cap_steps=100)
    assert tuple(summary) == SUMMARY_KEYS
    assert summary["ratio_mean"] == pytest.approx(7.5 / 4)
    assert summary["ratio_p95"] == pytest.approx(2.0 + 0.85 * (4.0 - 2.0))  # sorted 0.5 1 2 4, at 0.95 x 3
    assert summary["at_cap_share"] == 0.25 and summary["cap_steps"] == 100

    metric = LengthMetrics(cap_steps=100)
    metric.update(torch.tensor([3, 1]), generated[2:], reference[2:], at_cap[2:])
    metric.update(torch.tensor([0, 2, 3]), [40, 80, 400], [40, 40, 100], [False, False, True])  # 3 twice (DDP pad)
    computed = metric.compute()
    for key in ("ratio_mean", "ratio_p95", "at_cap_share"):
        assert float(computed[key]) == pytest.approx(summary[key]), key
    with pytest.raises(ValueError, match="2 generated lengths"):
        length_summary([1, 2], [1], [True], cap_steps=1)


def _lm_config(tiny_mbart: Path, *overrides: str):
    return load_config(DEMO_SOKE, [f"LM.MBART_PATH={tiny_mbart}", "LM.MAX_MOTION_TOKENS=8", "LM.RETRIEVAL=false",
                                   "TRAIN.VAL_VIDEOS=0", *overrides])


def test_generation_validation_logs_the_length_ratios(tiny_mbart: Path, monkeypatch) -> None:
    module = _never_ending_module(_lm_config(tiny_mbart))  # 8 steps x 4 frames = 32 frames, at the cap
    logged: dict = {}
    monkeypatch.setattr(module, "log_dict", lambda values, **kwargs: logged.update(values))
    monkeypatch.setattr(module, "_generation_epoch", lambda: True)
    monkeypatch.setattr(module, "_log_videos", lambda samples: None)  # no trainer, no TensorBoard here
    texts = ["أنا أذهب إلى المدرسة", "الكتاب على الطاولة"]
    batch = {"texts": texts, "codes": _random_codes([10, 16], seed=7, sizes=(96, 192, 192)),
             "keywords": [None, None], "index": torch.tensor([0, 1]), "names": ["a", "b"],
             "references": [torch.zeros(40, 179), torch.zeros(64, 179)]}
    module.validation_step(batch, 0)
    module.on_validation_epoch_end()
    expected = length_summary([32, 32], [40, 64], [True, True], cap_steps=8)  # ratios 0.8, 0.5
    for key in ("ratio_mean", "ratio_p95", "at_cap_share"):
        assert float(logged[f"val/length_{key}"]) == pytest.approx(expected[key]), key
    assert "val/DTW_MPJPE_mean" in logged


def _load_test_py():
    spec = importlib.util.spec_from_file_location("sasoke_test_py", REPO / "test.py")
    test_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_py)
    return test_py


def _write_codes(module: GeneratorModule, load_script, splits: tuple[str, ...]) -> None:
    """DATASET.CODES_PATH for the module's (untrained) tokenizer, as scripts/get_motion_code.py writes it."""
    from mGPT.data.codes import save_codes
    from mGPT.models.datamodule import load_split

    encode_split = load_script("get_motion_code").encode_split
    packed = {split: load_split(module.cfg, split) for split in splits}
    codes = {split: encode_split(module.tokenizer, packed[split], 40, 400, torch.device("cpu"), split)
             for split in splits}
    save_codes(module.cfg.DATASET.CODES_PATH, codes, {s: list(p.names) for s, p in packed.items()},
               module.fingerprint)


@pytest.mark.filterwarnings(r"ignore:Found \d+ module\(s\) in eval mode")  # the frozen tokenizer, on purpose
def test_stage2_training_logs_the_length_loss_and_ratios(tiny_mbart: Path, small_sample: Path, load_script,
                                                       tmp_path: Path) -> None:
    """One epoch through Lightning with the head on: its loss in train/ and val/, the ratios on the generation
    epoch, and a checkpoint whose head bounds decoding afterwards."""
    from pytorch_lightning.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mGPT.models.datamodule import SignDataModule
    from train import build_trainer

    cfg = _lm_config(tiny_mbart, f"DATASET.DATA_ROOT={small_sample}", f"DATASET.CODES_PATH={tmp_path / 'codes.npz'}",
                     "LOSS.LENGTH_WEIGHT=1.0", "LM.LENGTH_BOUND=1.5", "LM.LENGTH_STEER=10.0", "TRAIN.MAX_EPOCHS=1",
                     "TRAIN.VAL_EVERY_N_EPOCHS=1", "TRAIN.GEN_VAL_EVERY_N_EPOCHS=1", "TRAIN.BATCH_SIZE=8",
                     "TRAIN.LOG_EVERY_N_STEPS=1", "TRAIN.MONITOR=val/loss")
    module = GeneratorModule(cfg, _tiny_deto())
    _write_codes(module, load_script, ("train", "val"))
    data = SignDataModule(cfg, fingerprint=module.fingerprint, source_encoder=module.generator.encode_sources,
                          frames_per_code=module.tokenizer.frames_per_code)
    logger = TensorBoardLogger(save_dir=str(tmp_path), name="", version="logs", default_hp_metric=False)
    trainer = build_trainer(cfg, tmp_path / "checkpoints", logger=logger)
    trainer.fit(module, datamodule=data)
    events = EventAccumulator(str(tmp_path / "logs"))
    events.Reload()
    tags = events.Tags()["scalars"]
    for tag in ("train/loss_length", "train/length_error", "val/loss_length", "val/length_error",
                *(f"val/length_{k}" for k in ("ratio_mean", "ratio_p95", "at_cap_share"))):
        assert tag in tags and all(np.isfinite(e.value) for e in events.Scalars(tag)), tag
    assert 0.0 <= events.Scalars("val/length_at_cap_share")[-1].value <= 1.0

    path = tmp_path / "generator.ckpt"
    trainer.save_checkpoint(path)
    loaded = GeneratorModule.from_checkpoint(path, cfg)
    decoded = loaded.generator.decode(TEXTS, length_bound=1.5, length_steer=10.0)
    assert all(len(c) <= n for c, n in zip(decoded.codes, torch.ceil(1.5 * decoded.predicted_steps), strict=True))


@pytest.mark.filterwarnings(r"ignore:Found \d+ module\(s\) in eval mode")  # the frozen tokenizer, on purpose
def test_a_run_from_before_the_head_resumes_through_lightning(tiny_mbart: Path, small_sample: Path, load_script,
                                                             tmp_path: Path) -> None:
    """Its last.ckpt has no head and an optimizer state without it: resumed with the defaults, both load."""
    from mGPT.models.datamodule import SignDataModule
    from train import build_trainer

    def fit(epochs: int, tokenizer: DETO, ckpt_path: Path | None = None) -> pl.Trainer:
        cfg = _lm_config(tiny_mbart, f"DATASET.DATA_ROOT={small_sample}", f"DATASET.CODES_PATH={codes}",
                         f"TRAIN.MAX_EPOCHS={epochs}", "TRAIN.VAL_EVERY_N_EPOCHS=5", "TRAIN.GEN_VAL_EVERY_N_EPOCHS=0",
                         "TRAIN.BATCH_SIZE=8", "TRAIN.MONITOR=val/loss", f"FOLDER_EXP={tmp_path / 'exp'}")
        module = GeneratorModule(cfg, tokenizer)
        if not codes.is_file():
            _write_codes(module, load_script, ("train", "val"))
        data = SignDataModule(cfg, fingerprint=module.fingerprint, source_encoder=module.generator.encode_sources,
                              frames_per_code=module.tokenizer.frames_per_code)
        trainer = build_trainer(cfg, tmp_path / "checkpoints", logger=False)
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        return trainer

    codes = tmp_path / "codes.npz"
    tokenizer = _tiny_deto()
    trainer = fit(1, tokenizer)
    trainer.save_checkpoint(tmp_path / "new.ckpt")
    torch.save(_as_before_the_head(torch.load(tmp_path / "new.ckpt", weights_only=False)), tmp_path / "old.ckpt")
    resumed = fit(2, tokenizer, ckpt_path=tmp_path / "old.ckpt")
    assert resumed.current_epoch == 2
    head = resumed.lightning_module.generator.length_head
    assert not any(p.requires_grad for p in head.parameters())


def test_test_py_writes_the_length_entry(tiny_mbart: Path, small_sample: Path, load_script, tmp_path: Path) -> None:
    from mGPT.models.datamodule import load_split

    cfg = _lm_config(tiny_mbart, f"DATASET.DATA_ROOT={small_sample}", f"DATASET.CODES_PATH={tmp_path / 'codes.npz'}",
                     f"TEST.CHECKPOINT={tmp_path / 'generator.ckpt'}", f"FOLDER_RESULTS={tmp_path / 'results'}",
                     "TEST.SAVE_PREDICTIONS=true", "TEST.BATCH_SIZE=4")
    module = _never_ending_module(cfg)
    _write_codes(module, load_script, ("test",))
    packed = load_split(cfg, "test")
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, cfg.TEST.CHECKPOINT)

    summary = _load_test_py().evaluate(cfg)
    written = json.loads((tmp_path / "results" / cfg.NAME / "test_rank_0" / "test_summary.json").read_text())
    assert written["length"] == summary["length"]
    references = []
    for name in packed.names:  # the reference clips as scored, after the length rules
        with open(tmp_path / "results" / cfg.NAME / "test_rank_0" / f"{name}.pkl", "rb") as f:
            record = pickle.load(f)
        references.append(len(record["reference"]["smplx_root_pose"]))
        assert len(record["generated"]["smplx_root_pose"]) == 32  # every sample ran to the cap
        assert record["at_cap"] is True
        assert record["predicted_steps"] is None  # LOSS.LENGTH_WEIGHT 0: the head is untrained, its guess noise
    ratios = np.array([32 / r for r in references])
    assert written["length"]["ratio_mean"] == pytest.approx(ratios.mean())
    assert written["length"]["ratio_p95"] == pytest.approx(np.percentile(ratios, 95))
    assert written["length"]["at_cap_share"] == 1.0 and written["length"]["cap_steps"] == 8
    assert written["length_bound"] == 0.0 and written["length_steer"] == 0.0


# ---------------------------------------------------------------- checkpoints and configs


def _saved(module: GeneratorModule) -> dict:
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    return checkpoint


def _as_before_the_head(checkpoint: dict) -> dict:
    """The checkpoint as a SaSOKE from before the length head would have written it."""
    old = copy.deepcopy(checkpoint)
    old["state_dict"] = {k: v for k, v in old["state_dict"].items() if not k.startswith(LENGTH_HEAD_PREFIX)}
    for section, keys in NEW_KEYS.items():
        for key in keys:
            del old["sasoke"]["config"][section][key]
    return old


def test_an_old_checkpoint_without_the_head_loads_and_decodes_as_before(tiny_mbart: Path, tmp_path: Path) -> None:
    module = GeneratorModule(_lm_config(tiny_mbart), _tiny_deto()).eval()
    checkpoint = _saved(module)
    for section, keys in NEW_KEYS.items():  # checkpoints save the new keys
        assert all(key in checkpoint["sasoke"]["config"][section] for key in keys)
    assert any(key.startswith(LENGTH_HEAD_PREFIX) for key in checkpoint["state_dict"])
    torch.save(_as_before_the_head(checkpoint), tmp_path / "old.ckpt")

    loaded = GeneratorModule.from_checkpoint(tmp_path / "old.ckpt")  # its own saved config, completed
    assert loaded.cfg.LOSS.LENGTH_WEIGHT == 0.0 and loaded.cfg.LM.LENGTH_BOUND == 0.0
    assert loaded.cfg.LOSS.END_WEIGHT == 1.0 and loaded.cfg.LOSS.LABEL_SMOOTHING == 0.0
    texts = ["أنا أذهب إلى المدرسة", "الكتاب على الطاولة"]
    before, after = module.generate_smplx(texts, None)[0], loaded.generate_smplx(texts, None)[0]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    with pytest.raises(ConfigError, match="no length head"):
        GeneratorModule.from_checkpoint(tmp_path / "old.ckpt", _lm_config(tiny_mbart, "LM.LENGTH_BOUND=1.5"))


def test_a_head_trained_with_weight_0_cannot_bound_decoding(tiny_mbart: Path, tmp_path: Path) -> None:
    torch.save(_saved(GeneratorModule(_lm_config(tiny_mbart), _tiny_deto())), tmp_path / "untrained.ckpt")
    with pytest.raises(ConfigError, match="LOSS.LENGTH_WEIGHT was 0"):
        GeneratorModule.from_checkpoint(tmp_path / "untrained.ckpt", _lm_config(tiny_mbart, "LM.LENGTH_STEER=10"))
    trained = GeneratorModule(_lm_config(tiny_mbart, "LOSS.LENGTH_WEIGHT=1.0"), _tiny_deto())
    torch.save(_saved(trained), tmp_path / "trained.ckpt")
    loaded = GeneratorModule.from_checkpoint(tmp_path / "trained.ckpt", _lm_config(tiny_mbart, "LM.LENGTH_BOUND=1.5"))
    head = dict(trained.generator.length_head.named_parameters())
    assert all(torch.equal(p, head[n]) for n, p in loaded.generator.length_head.named_parameters())


def test_training_with_a_bound_needs_a_trained_head(tiny_mbart: Path) -> None:
    with pytest.raises(ConfigError, match="LOSS.LENGTH_WEIGHT"):
        GeneratorModule.from_config(_lm_config(tiny_mbart, "LM.LENGTH_BOUND=1.5"))
    with pytest.raises(ConfigError, match="LM.LENGTH_BOUND"):  # at once, not at the first generation epoch
        GeneratorModule(_lm_config(tiny_mbart, "LOSS.LENGTH_WEIGHT=1.0", "LM.LENGTH_BOUND=0.5"), _tiny_deto())


def test_resuming_cannot_switch_the_length_head_on_or_off(tiny_mbart: Path) -> None:
    tokenizer = _tiny_deto()  # one tokenizer: resuming checks its fingerprint
    old = _as_before_the_head(_saved(GeneratorModule(_lm_config(tiny_mbart), tokenizer)))
    resumed = GeneratorModule(_lm_config(tiny_mbart), tokenizer)
    resumed.on_load_checkpoint(old)  # from before the head, resumed without it: the head is filled in
    assert all(k in old["state_dict"] for k in resumed.state_dict() if k.startswith(LENGTH_HEAD_PREFIX))
    with_head = GeneratorModule(_lm_config(tiny_mbart, "LOSS.LENGTH_WEIGHT=1.0"), tokenizer)
    with pytest.raises(CheckpointError, match="LOSS.LENGTH_WEIGHT=1.0"):
        with_head.on_load_checkpoint(_as_before_the_head(_saved(resumed)))


def test_a_config_saved_before_the_length_keys_loads_with_their_defaults(tmp_path: Path) -> None:
    saved = OmegaConf.to_container(load_config(DEMO_SOKE))
    for section, keys in NEW_KEYS.items():
        for key in keys:
            del saved[section][key]
    path = tmp_path / "config.yaml"
    path.write_text(OmegaConf.to_yaml(saved), encoding="utf-8")
    cfg = load_config(path)
    assert (cfg.LOSS.LENGTH_WEIGHT, cfg.LOSS.END_WEIGHT, cfg.LOSS.LABEL_SMOOTHING) == (0.0, 1.0, 0.0)
    assert (cfg.LM.LENGTH_BOUND, cfg.LM.LENGTH_STEER) == (0.0, 0.0)
    assert load_config(DEMO_SOKE, ["LM.LENGTH_BOUND=null"]).LM.LENGTH_BOUND is None  # null = off
