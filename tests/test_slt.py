"""The back-translation evaluator (SPEC 10): the sign-to-text model, its scores and its commands.

Fast: the model overfits a few clips to their exact sentences, a shuffled pairing of motion and text scores far
lower, the scores equal sacrebleu's on the same strings and a hand-computed ROUGE-L, Arabic spellings do not
matter, checkpoints round-trip. Slow: train.py / test.py / scripts/back_translate.py on the small sample, and a
generator's test.py with TEST.BACK_TRANSLATION.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import sacrebleu
import torch
from conftest import DEMO_SOKE, REPO, TrainRun, generator_overrides
from test_length import _lm_config, _tiny_deto

from mGPT.archs.slt import SPECIALS, SignToText, build_vocabulary, load_evaluator
from mGPT.config import load_config, monitor_mode, monitors_generation
from mGPT.data.arabic import normalize_arabic
from mGPT.errors import CheckpointError, ConfigError
from mGPT.metrics.back_translation import back_translate, score_translations, translate_params
from mGPT.metrics.text_scores import corpus_scores, sentence_scores
from mGPT.models.lm_module import GeneratorModule

# with diacritics, hamza forms and taa marbuta, as people type them; the model answers in the normalised form
SENTENCES = ["أنا أذهبُ إلى المدرسة", "هو يأكل خبزاً", "نحن نشرب الماء اليوم", "هي تقرأ كتاباً جديداً",
             "أنت تذهب إلى البيت", "هم يأكلون الخبز اليوم"]
FRAMES = (48, 40, 56, 44, 52, 60)


def tiny_model(texts: list[str]) -> SignToText:
    torch.manual_seed(0)
    return SignToText(build_vocabulary(texts), torch.zeros(133), torch.ones(133), d_model=64, heads=2,
                      encoder_layers=1, decoder_layers=1, ff_dim=128, dropout=0.0, max_words=8)


def padded_clips(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One random smooth motion per sentence, (6, 60, 133) zero-padded, lengths (6,)."""
    generator = torch.Generator().manual_seed(seed)
    motion = torch.zeros(len(FRAMES), max(FRAMES), 133)
    for row, frames in enumerate(FRAMES):
        motion[row, :frames] = torch.randn(frames // 4, 133, generator=generator).repeat_interleave(4, dim=0)
    return motion, torch.tensor(FRAMES)


@pytest.fixture(scope="module")
def overfit() -> tuple[SignToText, torch.Tensor, torch.Tensor]:
    model = tiny_model(SENTENCES)
    motion, lengths = padded_clips()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = model(motion, lengths, SENTENCES)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.losses = losses
    return model.eval(), motion, lengths


def test_the_evaluator_overfits_a_few_clips_to_their_exact_sentences(overfit) -> None:
    model, motion, lengths = overfit
    assert model.losses[-1] < 0.05 * model.losses[0]
    assert model.translate(motion, lengths) == [normalize_arabic(s) for s in SENTENCES]


def test_translation_does_not_depend_on_batch_padding(overfit) -> None:
    model, motion, lengths = overfit
    alone = [model.translate(motion[i:i + 1, :n], lengths[i:i + 1])[0] for i, n in enumerate(FRAMES)]
    assert alone == model.translate(motion, lengths)


def test_a_shuffled_pairing_of_motion_and_text_scores_far_lower(overfit) -> None:
    model, motion, lengths = overfit
    hypotheses = model.translate(motion, lengths)
    shuffled = SENTENCES[1:] + SENTENCES[:1]  # every clip paired with another clip's sentence
    right, wrong = corpus_scores(hypotheses, SENTENCES), corpus_scores(hypotheses, shuffled)
    assert right["BLEU4"] == pytest.approx(100) and right["ROUGE_L"] == pytest.approx(100)
    for key in ("BLEU1", "BLEU4", "chrF", "ROUGE_L"):
        assert wrong[key] < 0.5 * right[key], key
    assert wrong["BLEU4"] < 10


def test_a_clip_is_read_as_no_more_words_than_its_length_allows(overfit) -> None:
    import copy

    model, motion, lengths = overfit
    assert model.frames_per_word == 0  # the default: only max_words bounds a translation
    assert model.word_budget(torch.tensor([40, 1000])).tolist() == [8, 8]
    bounded = copy.deepcopy(model)
    bounded.frames_per_word = 20.0
    assert bounded.word_budget(torch.tensor([1, 40, 41, 100, 1000])).tolist() == [1, 2, 3, 5, 8]
    bounded.frames_per_word = 30.0  # clips of 40-60 frames: 2 words each, the sentences have 2-4
    budget = bounded.word_budget(lengths)
    hypotheses = bounded.translate(motion, lengths)
    full = model.translate(motion, lengths)
    for hypothesis, whole, words in zip(hypotheses, full, budget.tolist(), strict=True):
        assert hypothesis.split() == whole.split()[:words]  # the greedy reading, cut where the budget ends
    assert hypotheses != full  # some sentence was longer than its budget


def test_the_word_budget_is_the_fastest_training_signing() -> None:
    from mGPT.models.slt_module import TranslatorModule, fastest_frames_per_word

    cfg = load_config(REPO / "configs" / "demo" / "slt.yaml", ["SLT.SPEED_JITTER=0.2"])
    # 120 frames / 3 words = 40; 30 frames is resampled up to 40 (the length rules) / 2 words = 20; 90 / 2 = 45
    texts = ["هو يأكل خبزاً", "هو يأكل", "هي تقرأ"]
    assert fastest_frames_per_word(texts, [120, 30, 90], cfg) == pytest.approx(20 * 0.8)
    assert fastest_frames_per_word(texts, [120, 90, 30], cfg) == pytest.approx(20 * 0.8)
    assert fastest_frames_per_word(texts, [120, 90, 300], cfg) == pytest.approx(40 * 0.8)
    module = TranslatorModule.from_config(cfg, SENTENCES, torch.zeros(133), torch.ones(133), FRAMES)
    assert module.model.frames_per_word == pytest.approx(44 / 4 * 0.8)  # "هي تقرأ كتاباً جديداً", 44 frames
    off = load_config(REPO / "configs" / "demo" / "slt.yaml", ["SLT.WORDS_BY_LENGTH=false"])
    assert TranslatorModule.from_config(off, SENTENCES, torch.zeros(133), torch.ones(133), FRAMES
                                        ).model.frames_per_word == 0
    old = dict(module.model.metadata())  # a checkpoint from before the budget: no bound, as it was trained
    old["sizes"] = {k: v for k, v in old["sizes"].items() if k != "frames_per_word"}
    assert SignToText.from_metadata(old).frames_per_word == 0


def test_corpus_scores_equal_sacrebleu_called_directly_on_the_same_strings() -> None:
    hypotheses = ["انا اذهب الي المدرسه", "هو ياكل", "نحن نشرب الماء غدا", ""]
    references = ["انا اذهب الي البيت", "هو ياكل خبزا", "نحن نشرب الماء اليوم", "هي تقرا"]
    scores = corpus_scores(hypotheses, references)
    for n in (1, 2, 3, 4):
        direct = sacrebleu.BLEU(max_ngram_order=n, tokenize="none").corpus_score(hypotheses, [references])
        assert scores[f"BLEU{n}"] == pytest.approx(direct.score, abs=1e-9), n
    assert scores["BLEU4"] == pytest.approx(
        sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none").score, abs=1e-9)
    # on already normalised text sacrebleu's default tokenizer splits the same words
    assert scores["BLEU4"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score, abs=1e-9)
    assert scores["chrF"] == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [references]).score, abs=1e-9)
    assert scores["BLEU1"] > scores["BLEU4"] > 0
    # typed text is scored as sacrebleu scores its normalised form
    typed = ["أنا أذهبُ إلى المدرسة", "هو يأكل", "نحن نشرب الماء غداً", ""]
    assert corpus_scores(typed, references)["BLEU4"] == pytest.approx(sacrebleu.corpus_bleu(
        [normalize_arabic(t) for t in typed], [references], tokenize="none").score, abs=1e-9)

    per_sample = sentence_scores(hypotheses, references)
    for row, (h, r) in enumerate(zip(hypotheses, references, strict=True)):
        bleu = sacrebleu.sentence_bleu(h, [r], tokenize="none")  # sacrebleu's sentence BLEU: effective order
        assert per_sample[row]["BLEU4"] == pytest.approx(bleu.score, abs=1e-9)
        assert per_sample[row]["chrF"] == pytest.approx(sacrebleu.sentence_chrf(h, [r]).score, abs=1e-9)


def test_rouge_l_is_the_longest_common_subsequence_f1_on_arabic_words() -> None:
    # LCS("انا اذهب الي المدرسه", "انا اذهب الي البيت") = 3 of 4 and 4 words: F1 = 0.75
    # LCS("هو ياكل", "هو ياكل خبزا") = 2: P = 1, R = 2/3, F1 = 0.8; an empty hypothesis scores 0
    scores = corpus_scores(["انا اذهب الي المدرسه", "هو ياكل", ""], ["انا اذهب الي البيت", "هو ياكل خبزا", "هي"])
    assert scores["ROUGE_L"] == pytest.approx(100 * (0.75 + 0.8 + 0.0) / 3, abs=1e-4)
    # word order matters for ROUGE-L: the reverse shares one word in order
    reverse = corpus_scores(["ياكل هو"], ["هو ياكل"])
    assert reverse["ROUGE_L"] == pytest.approx(50, abs=1e-4) and reverse["BLEU1"] == pytest.approx(100)


def test_scores_do_not_depend_on_how_the_arabic_was_typed() -> None:
    typed = ["أنا أذهبُ إلى المدرسة، اليوم!", "هو يأكلُ خبزاً"]
    plain = ["انا اذهب الي المدرسه اليوم", "هو ياكل خبزا"]
    for scores in (corpus_scores(plain, typed), corpus_scores(typed, plain)):
        for key in ("BLEU1", "BLEU4", "chrF", "ROUGE_L"):
            assert scores[key] == pytest.approx(100), key


def test_bad_score_input_names_the_problem() -> None:
    with pytest.raises(ValueError, match="as many hypotheses as references"):
        corpus_scores(["a"], ["a", "b"])
    with pytest.raises(TypeError, match="list of sentences"):
        corpus_scores("انا", "انا")


def test_per_sample_results_carry_the_hypothesis_text() -> None:
    result = score_translations(["c1", "c2"], ["هو ياكل", "نحن"], ["هو ياكل", "هي تقرا"])
    assert result["samples"] == 2 and result["corpus"]["BLEU1"] > 0
    assert result["per_sample"]["c1"] == {"reference": "هو ياكل", "hypothesis": "هو ياكل", "BLEU4": pytest.approx(100),
                                          "chrF": pytest.approx(100), "ROUGE_L": pytest.approx(100)}
    assert result["per_sample"]["c2"]["hypothesis"] == "نحن" and result["per_sample"]["c2"]["BLEU4"] == 0
    assert "tok:none" in result["signatures"]["BLEU"]


def test_the_vocabulary_is_the_normalised_words_with_specials_first() -> None:
    vocabulary = build_vocabulary(["أنا أذهب", "انا اذهب الى المدرسة"])
    assert vocabulary == [*SPECIALS, "اذهب", "المدرسه", "الي", "انا"]  # sorted by code point
    model = tiny_model(["أنا أذهب"])
    unk, eos = model.word_ids["<unk>"], model.word_ids["</s>"]
    assert model.encode_text("أنا نذهب") == [model.word_ids["انا"], unk, eos]
    assert model.decode_ids([model.word_ids["انا"], eos, model.word_ids["اذهب"]]) == "انا"


def test_back_translate_reads_smplx_parameters_through_the_evaluators_statistics(overfit) -> None:
    from mGPT.data.features import features_to_smplx

    model, motion, lengths = overfit
    params = [features_to_smplx(motion[i, :n]).numpy() for i, n in enumerate(FRAMES)]  # mean 0, std 1
    result = back_translate(model, [f"clip{i}" for i in range(6)], params, SENTENCES, batch_size=4)
    assert result["corpus"]["BLEU4"] == pytest.approx(100)
    assert [s["hypothesis"] for s in result["per_sample"].values()] == [normalize_arabic(s) for s in SENTENCES]


def test_an_evaluator_checkpoint_round_trips_and_other_checkpoints_are_refused(overfit, tmp_path) -> None:
    model, motion, lengths = overfit
    path = tmp_path / "best.ckpt"
    torch.save({"sasoke": {"stage": "slt", "evaluator": model.metadata()},
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    torch.manual_seed(7)
    loaded = load_evaluator(path)
    after_loading = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(after_loading, torch.rand(3))  # loading leaves the random stream where it was
    assert loaded.vocabulary == model.vocabulary and not loaded.training
    assert loaded.translate(motion, lengths) == model.translate(motion, lengths)

    torch.save({"sasoke": {"stage": "lm"}, "state_dict": {}}, tmp_path / "generator.ckpt")
    with pytest.raises(CheckpointError, match="not a back-translation evaluator"):
        load_evaluator(tmp_path / "generator.ckpt")
    with pytest.raises(CheckpointError, match="not found.*train.py --cfg configs/slt.yaml"):
        load_evaluator(tmp_path / "missing.ckpt")


def test_training_clips_are_augmented_in_speed_and_noise(small_sample) -> None:
    from mGPT.data.datasets import MotionDataset
    from mGPT.data.motion_text import AugmentedMotionText
    from mGPT.data.prepare import load_cache, load_stats

    stats = load_stats(small_sample / "_cache")
    clips = MotionDataset(load_cache(small_sample / "_cache", "train"), stats["mean133"], stats["std133"])
    augmented = AugmentedMotionText(clips, speed_jitter=0.2, noise=0.05)
    torch.manual_seed(0)
    plain = clips[0]
    lengths = {augmented[0]["length"] for _ in range(20)}
    assert len(lengths) > 3 and all(0.8 * plain["length"] - 1 <= n <= 1.2 * plain["length"] + 1 for n in lengths)
    same_speed = AugmentedMotionText(clips, speed_jitter=0.0, noise=0.05)[0]
    noise = same_speed["motion"] - plain["motion"]
    assert same_speed["text"] == plain["text"] and float(noise.std()) == pytest.approx(0.05, rel=0.1)
    with pytest.raises(ValueError, match="whole clips"):
        AugmentedMotionText(MotionDataset(clips.split, stats["mean133"], stats["std133"], window=16))


def test_time_warp_retimes_a_clip_within_its_recorded_frames(small_sample) -> None:
    from mGPT.data.datasets import MotionDataset
    from mGPT.data.features import resample_length
    from mGPT.data.motion_text import AugmentedMotionText, warp_positions
    from mGPT.data.prepare import load_cache, load_stats

    torch.manual_seed(0)
    positions = [warp_positions(120, 90, 0.4) for _ in range(20)]
    for p in positions:  # increasing from the first frame to the last: re-timed, never reversed or cut
        assert p.shape == (90,) and p[0] == 0 and p[-1] == pytest.approx(119) and (np.diff(p) > 0).all()
    steps = np.stack([np.diff(p) for p in positions])  # local reading speed, frames per output frame
    uniform = 119 / 89
    assert steps.max() > 1.2 * uniform and steps.min() < uniform / 1.2  # the speed varies along the clip...
    assert steps.max() < np.exp(0.4) ** 2 * uniform  # ...within the bound exp(+-warp) sets, relative to the mean
    np.testing.assert_allclose(warp_positions(120, 90, 0.0), np.linspace(0, 119, 90))  # warp 0: uniform

    stats = load_stats(small_sample / "_cache")
    clips = MotionDataset(load_cache(small_sample / "_cache", "train"), stats["mean133"], stats["std133"])
    plain = clips[0]["motion"]  # (T, 133)
    warped = AugmentedMotionText(clips, speed_jitter=0.0, noise=0.0, time_warp=0.4)[0]
    assert warped["motion"].shape == plain.shape and warped["length"] == len(plain)
    assert not torch.allclose(warped["motion"], plain, atol=1e-3)  # it moved the signing in time
    torch.testing.assert_close(warped["motion"][[0, -1]], plain[[0, -1]])
    low, high = plain.min(0).values, plain.max(0).values  # interpolation between recorded frames: no new poses
    assert ((warped["motion"] >= low - 1e-5) & (warped["motion"] <= high + 1e-5)).all()
    unwarped = AugmentedMotionText(clips, speed_jitter=0.0, noise=0.0, time_warp=0.0)[0]
    torch.testing.assert_close(unwarped["motion"], plain)
    torch.manual_seed(1)
    sped = AugmentedMotionText(clips, speed_jitter=0.2, noise=0.0, time_warp=0.0)[0]["motion"]
    torch.testing.assert_close(sped, resample_length(plain, len(sped)))  # speed alone is the uniform resample
    with pytest.raises(ValueError, match="time_warp"):
        AugmentedMotionText(clips, time_warp=-0.1)


def test_best_checkpoint_keeps_the_highest_score_and_the_lowest_loss() -> None:
    configs = REPO / "configs"
    assert monitor_mode(load_config(configs / "demo" / "slt.yaml")) == "max"
    assert monitor_mode(load_config(configs / "demo" / "slt.yaml", ["TRAIN.MONITOR=val/loss"])) == "min"
    assert monitor_mode(load_config(configs / "demo" / "deto.yaml")) == "min"
    assert load_config(configs / "slt.yaml").TRAIN.MONITOR == "val/BLEU4"
    # a generator judged by its back-translation keeps its highest val/BT_BLEU4, on generation epochs only
    generator = load_config(configs / "soke.yaml", ["TRAIN.MONITOR=val/BT_BLEU4", "TRAIN.BACK_TRANSLATION=e.ckpt"])
    assert monitor_mode(generator) == "max" and monitors_generation(generator)
    with pytest.raises(ConfigError, match="TRAIN.BACK_TRANSLATION names no evaluator"):
        load_config(configs / "soke.yaml", ["TRAIN.MONITOR=val/BT_BLEU4"])


@pytest.mark.filterwarnings(r"ignore:Found \d+ module\(s\) in eval mode")  # the frozen parts, on purpose
def test_generation_validation_logs_the_evaluators_reading_and_never_saves_it(overfit, tiny_mbart,
                                                                              monkeypatch) -> None:
    evaluator = overfit[0]
    module = GeneratorModule(_lm_config(tiny_mbart), _tiny_deto(), evaluator=evaluator)
    module.train()
    assert module.generator.training and not module.evaluator.training  # its dropout stays off
    module.eval()
    logged: dict = {}
    monkeypatch.setattr(module, "log_dict", lambda values, **kwargs: logged.update(values))
    monkeypatch.setattr(module, "log", lambda name, value, **kwargs: logged.update({name: value}))
    monkeypatch.setattr(module, "_generation_epoch", lambda: True)
    monkeypatch.setattr(module, "_log_videos", lambda samples: None)  # no trainer, no TensorBoard here

    def batch(rows: list[int]) -> dict:
        return {"texts": [SENTENCES[i] for i in rows], "keywords": [None] * len(rows), "index": torch.tensor(rows),
                "codes": [torch.zeros(4, 3, dtype=torch.long)] * len(rows), "names": [f"c{i}" for i in rows],
                "references": [torch.zeros(FRAMES[i], 179) for i in rows]}

    # a distributed sampler's padding repeats clip 0: it is read once; the batches come in another order
    for batch_idx, rows in enumerate(([3, 4, 5, 0], [0, 1, 2])):
        module.validation_step(batch(rows), batch_idx)
    module.on_validation_epoch_end()
    params = module.decode_smplx(SENTENCES, None)[1]
    expected = corpus_scores(translate_params(evaluator, params), SENTENCES)
    assert {f"val/BT_{k}": v for k, v in expected.items()} == pytest.approx(
        {k: v for k, v in logged.items() if k.startswith("val/BT_")})
    assert "val/DTW_MPJPE_mean" in logged and module.val_readings == []

    saved = {"state_dict": module.state_dict(), "current_model_state": module.state_dict()}  # live: EMA_DECAY
    module.on_save_checkpoint(saved)
    for weights in ("state_dict", "current_model_state"):  # the evaluator is a checkpoint of its own
        assert not any(key.startswith(("evaluator.", "kinematics.")) for key in saved[weights])
    module.on_load_checkpoint(saved)  # resuming with the evaluator fills it in from the loaded one
    module.load_state_dict(saved["state_dict"])
    module.load_state_dict(saved["current_model_state"])
    torch.testing.assert_close(module.evaluator.state_dict(), evaluator.state_dict())


# ---------------------------------------------------------------- through the commands

SLT_NAME = "tiny_slt"
DEMO_SLT = REPO / "configs" / "demo" / "slt.yaml"


def evaluator_overrides(data_root) -> list[str]:
    return [f"NAME={SLT_NAME}", f"DATASET.DATA_ROOT={data_root}", "SLT.D_MODEL=64", "SLT.FF_DIM=128",
            "TRAIN.BATCH_SIZE=8", "TEST.BATCH_SIZE=8", "TRAIN.LOG_EVERY_N_STEPS=1", "TRAIN.VAL_EVERY_N_EPOCHS=2"]


@pytest.fixture(scope="module")
def evaluator_run(run_command, workdir, small_sample):
    result = run_command([REPO / "train.py", "--cfg", DEMO_SLT, *evaluator_overrides(small_sample),
                          "TRAIN.MAX_EPOCHS=4"])
    return TrainRun(workdir / "experiments" / "mgpt" / SLT_NAME, result.stdout, result.stderr)


@pytest.mark.slow
def test_train_py_trains_the_evaluator_with_bleu_validation_and_resumes(run_command, evaluator_run,
                                                                         small_sample) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    best, last = evaluator_run.checkpoints / "best.ckpt", evaluator_run.checkpoints / "last.ckpt"
    assert best.is_file() and last.is_file()
    checkpoint = torch.load(best, map_location="cpu", weights_only=False)
    assert checkpoint["sasoke"]["stage"] == "slt"
    events = EventAccumulator(str(evaluator_run.exp / "logs"))
    events.Reload()
    assert {"val/BLEU4", "val/BLEU1", "val/chrF", "val/ROUGE_L", "val/loss", "train/loss"} <= set(
        events.Tags()["scalars"])
    assert any(tag.startswith("val/translations") for tag in events.Tags()["tensors"])
    # best.ckpt keeps the highest val/BLEU4 of the two validations (epochs 2 and 4), not the lowest
    (key,) = [k for k in checkpoint["callbacks"] if "'monitor': 'val/BLEU4'" in k]
    assert "'mode': 'max'" in key
    bleu = [e.value for e in events.Scalars("val/BLEU4")]
    assert len(bleu) == 2 and float(checkpoint["callbacks"][key]["best_model_score"]) == pytest.approx(max(bleu))

    four_epochs = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    result = run_command([REPO / "train.py", "--cfg", DEMO_SLT, *evaluator_overrides(small_sample),
                          "TRAIN.MAX_EPOCHS=5"])
    assert "resuming from" in result.stdout
    resumed = torch.load(last, map_location="cpu", weights_only=False)
    # one more epoch; last.ckpt is written as each epoch ends, so it holds that epoch's index, 4, not a count
    assert resumed["epoch"] == 4 and resumed["global_step"] == 5 * four_epochs // 4


@pytest.mark.slow
def test_test_py_and_the_script_score_ground_truth_reconstruction_and_baselines(
        run_command, workdir, evaluator_run, small_sample, tiny_tokenizer) -> None:
    from mGPT.data.prepare import load_cache

    test = load_cache(small_sample / "_cache", "test")
    run_command([REPO / "test.py", "--cfg", DEMO_SLT, *evaluator_overrides(small_sample)])
    results = workdir / "results" / "mgpt" / SLT_NAME / "test_rank_0"
    summary = json.loads((results / "test_summary.json").read_text(encoding="utf-8"))
    per_sample = json.loads((results / "test_scores.json").read_text(encoding="utf-8"))
    assert summary["stage"] == "slt" and summary["samples"] == len(test) and sorted(per_sample) == sorted(test.names)
    hypotheses = [per_sample[name]["hypothesis"] for name in test.names]
    assert summary["corpus"] == pytest.approx(corpus_scores(hypotheses, test.texts))

    result = run_command([REPO / "scripts" / "back_translate.py", "--cfg", DEMO_SLT,
                          *evaluator_overrides(small_sample), "--tokenizer", tiny_tokenizer])
    table = json.loads((results / "back_translation.json").read_text(encoding="utf-8"))["sources"]
    assert list(table) == ["ground truth", "tokenizer reconstruction", "nearest neighbour", "mean pose"]
    assert table["ground truth"]["corpus"] == pytest.approx(summary["corpus"])  # the same evaluator, the same clips
    assert all(sorted(source["per_sample"]) == sorted(test.names) for source in table.values())
    assert "mean pose" in result.stdout and "BLEU-4" in result.stdout


@pytest.mark.slow
def test_a_generators_test_adds_back_translation_and_the_script_reads_its_predictions(
        run_command, workdir, evaluator_run, small_sample, tiny_tokenizer, motion_codes, tiny_mbart,
        sign_dictionary) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mGPT.data.prepare import load_cache

    generator = generator_overrides(small_sample, tiny_tokenizer, tiny_mbart, "bt_soke")
    evaluator = evaluator_run.checkpoints / "best.ckpt"
    # trained with the evaluator reading its val signing, best.ckpt judged by that reading
    run_command([REPO / "train.py", "--cfg", DEMO_SOKE, *generator, "TRAIN.MAX_EPOCHS=2", "TRAIN.VAL_EVERY_N_EPOCHS=1",
                 "TRAIN.GEN_VAL_EVERY_N_EPOCHS=1", "TRAIN.VAL_VIDEOS=0", f"TRAIN.BACK_TRANSLATION={evaluator}",
                 "TRAIN.MONITOR=val/BT_BLEU4"])
    exp = workdir / "experiments" / "mgpt" / "bt_soke"
    events = EventAccumulator(str(exp / "logs"))
    events.Reload()
    assert {f"val/BT_{k}" for k in ("BLEU1", "BLEU4", "chrF", "ROUGE_L")} <= set(events.Tags()["scalars"])
    assert any(tag.startswith("val/back_translation") for tag in events.Tags()["tensors"])
    checkpoint = torch.load(exp / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert not any(key.startswith("evaluator.") for key in checkpoint["state_dict"])
    (key,) = [k for k in checkpoint["callbacks"] if "'monitor': 'val/BT_BLEU4'" in k]
    bleu = {e.step: e.value for e in events.Scalars("val/BT_BLEU4")}
    assert "'mode': 'max'" in key and len(bleu) == 2
    assert float(checkpoint["callbacks"][key]["best_model_score"]) == pytest.approx(max(bleu.values()))
    # the training's reading of the val split is test.py's reading of best.ckpt on the same split
    run_command([REPO / "test.py", "--cfg", DEMO_SOKE, *generator, f"TEST.BACK_TRANSLATION={evaluator}",
                 "TEST.SPLIT=val"])
    val = json.loads((workdir / "results" / "mgpt" / "bt_soke" / "test_rank_0" / "test_summary.json").read_text())
    assert val["samples"] == len(load_cache(small_sample / "_cache", "val"))
    assert val["back_translation"]["corpus"]["BLEU4"] == pytest.approx(max(bleu.values()), abs=1e-4)

    result = run_command([REPO / "test.py", "--cfg", DEMO_SOKE, *generator, f"TEST.BACK_TRANSLATION={evaluator}",
                          "TEST.SAVE_PREDICTIONS=true"])
    assert "back-translation" in result.stdout
    predictions = workdir / "results" / "mgpt" / "bt_soke" / "test_rank_0"
    summary = json.loads((predictions / "test_summary.json").read_text(encoding="utf-8"))
    back = summary["back_translation"]
    assert back["evaluator"] == str(evaluator) and sorted(back["corpus"]) == sorted(
        ["BLEU1", "BLEU2", "BLEU3", "BLEU4", "chrF", "ROUGE_L"])
    assert sorted(back["per_sample"]) == sorted(json.loads((predictions / "test_scores.json").read_text()))
    assert all(isinstance(s["hypothesis"], str) and "reference" in s for s in back["per_sample"].values())

    run_command([REPO / "scripts" / "back_translate.py", "--cfg", DEMO_SLT, *evaluator_overrides(small_sample),
                 "--predictions", f"tiny generator={predictions}"])
    table = json.loads((workdir / "results" / "mgpt" / SLT_NAME / "test_rank_0" / "back_translation.json")
                       .read_text(encoding="utf-8"))["sources"]
    assert table["tiny generator"]["corpus"] == pytest.approx(back["corpus"])  # saved predictions read back alike
    assert np.isfinite(list(table["tiny generator"]["corpus"].values())).all()
