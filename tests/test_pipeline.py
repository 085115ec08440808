"""Stage 2 (the generator) end to end: codes -> tiny mBART -> dictionary -> train.py -> test.py -> generate.

The slow tests run the real commands on the small synthetic sample and the tiny tokenizer of conftest.py;
the other checks, in process, that training leaves the tokenizer frozen.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import DEMO_DETO, DEMO_SOKE, REPO, TrainRun, generator_overrides, tokenizer_overrides
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mGPT.archs.deto import DETO, load_tokenizer
from mGPT.config import load_config
from mGPT.data.arabic import normalize_arabic
from mGPT.data.features import apply_length_rules, features_to_smplx, smplx_to_features
from mGPT.data.prepare import load_cache
from mGPT.layout import PARTS, SMPLX_KEYS
from mGPT.models.lm_module import GeneratorModule

DTW_KEYS = sorted(f"DTW_MPJPE{pa}_{part}" for pa in ("", "_PA") for part in PARTS)
GENERATOR = "tiny_soke"
TINY_PART = {"code_dim": 16, "width": 16, "down_t": 2, "depth": 1, "dilation_growth": 3, "ema_decay": 0.99}


def events(log_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def reference_params(clip: np.ndarray) -> np.ndarray:
    """What the pickles must hold as the reference: the clip after the length rules, through the features."""
    return features_to_smplx(smplx_to_features(apply_length_rules(clip, 40, 400)))


def check_smplx_dict(params: dict, frames: int | None = None) -> int:
    """Per-frame SMPL-X keys of SPEC 1 with arrays (T, dims); returns T."""
    assert [key for key, _ in SMPLX_KEYS] == list(params)
    lengths = {len(value) for value in params.values()}
    assert len(lengths) == 1, lengths
    for key, dims in SMPLX_KEYS:
        assert isinstance(params[key], np.ndarray) and params[key].shape[1:] == (dims,), key
        assert np.isfinite(params[key]).all(), key
    (length,) = lengths
    assert frames is None or length == frames
    return length


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def stacked(params: dict) -> np.ndarray:  # per-key dict -> (T, 179)
    return np.concatenate([params[key] for key, _ in SMPLX_KEYS], axis=-1)


# ---------------------------------------------------------------- in process


def test_the_generator_trains_while_its_tokenizer_stays_frozen(tiny_mbart) -> None:
    parts = [{"nfeats": n, "code_num": c, **TINY_PART} for n, c in ((43, 96), (45, 192), (45, 192))]
    tokenizer = DETO(*parts, np.zeros(133, np.float32), np.ones(133, np.float32))
    module = GeneratorModule(load_config(DEMO_SOKE, [f"LM.MBART_PATH={tiny_mbart}"]), tokenizer)
    for mode in (True, False, True):
        module.train(mode)
        assert all(m.training == mode for m in module.generator.modules())
        assert not any(m.training for m in module.tokenizer.modules())  # EMA codebooks must not move
    assert not any(p.requires_grad for p in module.tokenizer.parameters())


# ---------------------------------------------------------------- through the commands


@pytest.fixture(scope="module")
def chain(small_sample, tiny_tokenizer, motion_codes, tiny_mbart, sign_dictionary) -> dict:
    return {"data": small_sample, "tokenizer": tiny_tokenizer, "codes": motion_codes, "mbart": tiny_mbart,
            "dictionary": sign_dictionary}


def overrides(chain: dict, name: str = GENERATOR) -> list[str]:
    return generator_overrides(chain["data"], chain["tokenizer"], chain["mbart"], name)


@pytest.fixture(scope="module")
def generator_run(run_command, workdir, chain) -> TrainRun:
    """One epoch with validation, generation, DTW metrics and a TensorBoard video."""
    result = run_command([REPO / "train.py", "--cfg", DEMO_SOKE, *overrides(chain), "TRAIN.MAX_EPOCHS=1",
                          "TRAIN.VAL_EVERY_N_EPOCHS=1", "TRAIN.GEN_VAL_EVERY_N_EPOCHS=1",
                          "TRAIN.VAL_VIDEOS=1"])
    return TrainRun(workdir / "experiments" / "mgpt" / GENERATOR, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def generator_test(run_command, workdir, chain, generator_run) -> Path:
    result = run_command([REPO / "test.py", "--cfg", DEMO_SOKE, *overrides(chain),
                          "TEST.SAVE_PREDICTIONS=true", "TEST.SAVE_VIDEOS=1"])
    assert "DTW_MPJPE_PA" in result.stdout
    return workdir / "results" / "mgpt" / GENERATOR / "test_rank_0"


@pytest.mark.slow
def test_codes_carry_the_tokenizer_fingerprint_and_cover_every_clip(chain) -> None:
    from mGPT.data.codes import load_codes

    fingerprint = load_tokenizer(chain["tokenizer"]).fingerprint()
    for split in ("train", "val", "test"):
        packed = load_cache(chain["data"] / "_cache", split)
        codes = load_codes(chain["codes"], split, fingerprint)
        assert codes.names == list(packed.names)
        for i in range(len(packed)):
            assert codes.clip(i).shape == (len(apply_length_rules(packed.clip(i), 40, 400)) // 4, 3)
    dictionary = json.loads(chain["dictionary"].read_text(encoding="utf-8"))
    assert dictionary.pop("_tokenizer") == fingerprint
    words = load_cache(chain["data"] / "_cache", "dictionary").texts  # one isolated sign per word
    assert sorted(dictionary) == sorted(normalize_arabic(word) for word in words)
    for word, entry in dictionary.items():
        assert len(entry["body"]) == len(entry["lhand"]) == len(entry["rhand"]) > 0, word


@pytest.mark.slow
def test_stage2_training_validates_by_generation_and_logs_videos(generator_run, chain) -> None:
    assert sorted(p.name for p in (generator_run.exp / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    # the frozen tokenizer is in eval mode on purpose; the generator is not
    assert "module(s) in eval mode" not in generator_run.stderr
    assert "could not find the monitored key" not in generator_run.stderr
    logged = events(generator_run.exp / "logs")
    tags = logged.Tags()
    for key in DTW_KEYS:
        assert f"val/{key}" in tags["scalars"] and f"val/{key}_mm" in tags["scalars"], key
        (value,) = [event.value for event in logged.Scalars(f"val/{key}")]
        assert np.isfinite(value) and value > 0
    assert "val/loss" in tags["scalars"] and "train/loss" in tags["scalars"]
    (video,) = logged.Images("val/sample_0")
    frames = iio.imread(video.encoded_image_string, index=None)  # (T, H, W, 3)
    assert frames.ndim == 4 and len(frames) >= 32 and frames.shape[1:] == (video.height, video.width, 3)

    checkpoint = torch.load(generator_run.exp / "checkpoints" / "best.ckpt", weights_only=False)
    meta = checkpoint["sasoke"]
    assert meta["stage"] == "lm"
    assert meta["tokenizer_fingerprint"] == load_tokenizer(chain["tokenizer"]).fingerprint()
    assert not any(key.startswith("kinematics.") for key in checkpoint["state_dict"])


@pytest.mark.slow
def test_stage2_test_writes_scores_predictions_and_videos(generator_test, chain) -> None:
    scores = json.loads((generator_test / "test_scores.json").read_text(encoding="utf-8"))
    summary = json.loads((generator_test / "test_summary.json").read_text(encoding="utf-8"))
    test = load_cache(chain["data"] / "_cache", "test")
    assert sorted(scores) == sorted(test.names)
    for name, sample in scores.items():
        assert sorted(sample) == DTW_KEYS, name
        assert all(np.isfinite(v) and v > 0 for v in sample.values()), (name, sample)

    assert summary["stage"] == "lm" and summary["samples"] == len(test)
    assert summary["kinematics_backend"] == "skeleton" and summary["retrieval"] is True
    assert summary["checkpoint"].endswith(f"{GENERATOR}/checkpoints/best.ckpt")
    assert summary["config"] == GENERATOR
    for key in DTW_KEYS:
        assert summary["means_m"][key] == pytest.approx(np.mean([s[key] for s in scores.values()]), rel=1e-6)
        assert 0 < summary["means_mm_per_step"][key] < 1000 * summary["means_m"][key]

    tokenizer = load_tokenizer(chain["tokenizer"])
    for i, name in enumerate(test.names):
        with open(generator_test / f"{name}.pkl", "rb") as f:
            record = pickle.load(f)
        assert record["text"] == test.texts[i]
        assert record["scores"] == scores[name]
        codes = np.asarray(record["codes"])  # (N, 3) body, lhand, rhand
        assert codes.shape[1] == 3 and 1 <= len(codes) <= 8
        check_smplx_dict(record["generated"], frames=4 * len(codes))
        expected = features_to_smplx(tokenizer.decode(torch.from_numpy(codes)[None])[0]).numpy()
        np.testing.assert_allclose(stacked(record["generated"]), expected, atol=1e-5)
        reference = reference_params(test.clip(i))
        check_smplx_dict(record["reference"], frames=len(reference))
        np.testing.assert_allclose(stacked(record["reference"]), reference, atol=1e-6)

    (video,) = (generator_test / "videos").glob("*.mp4")
    assert video.stem in scores
    frames = iio.imread(video, index=None)  # (T, H, W, 3)
    assert frames.ndim == 4 and len(frames) > 0 and frames.shape[-1] == 3


@pytest.mark.slow
def test_evaluate_with_the_soke_style_parts_gives_the_same_codes_and_scores(workdir, chain, generator_test,
                                                                          tmp_path) -> None:
    """test.py's evaluate, in process, with the pickle reader, the Python DTW and uncached decoding that
    bench/bench_pipeline.py hands it: what `python test.py` wrote, exactly."""
    import importlib.util

    from soke_style_data import pickle_clips
    from soke_style_dtw import loop_dtw_mpjpe_batch

    spec = importlib.util.spec_from_file_location("sasoke_test_py", REPO / "test.py")
    test_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_py)
    checkpoint = workdir / "experiments" / "mgpt" / GENERATOR / "checkpoints" / "best.ckpt"
    cfg = load_config(DEMO_SOKE, [*overrides(chain), f"TEST.CHECKPOINT={checkpoint}", f"FOLDER_RESULTS={tmp_path}",
                                  "TEST.SAVE_PREDICTIONS=true"])
    summary = test_py.evaluate(cfg, clip_source=pickle_clips(chain["data"]), dtw=loop_dtw_mpjpe_batch,
                               use_kv_cache=False)
    out = tmp_path / GENERATOR / "test_rank_0"
    ours = json.loads((generator_test / "test_scores.json").read_text(encoding="utf-8"))
    soke_style = json.loads((out / "test_scores.json").read_text(encoding="utf-8"))
    assert sorted(soke_style) == sorted(ours) and summary["samples"] == len(ours)
    for name, scores in ours.items():
        for key, value in scores.items():
            assert soke_style[name][key] == pytest.approx(value, rel=1e-12, abs=1e-12), (name, key)
        with open(generator_test / f"{name}.pkl", "rb") as f, open(out / f"{name}.pkl", "rb") as g:
            assert np.array_equal(pickle.load(f)["codes"], pickle.load(g)["codes"]), name


@pytest.mark.slow
def test_retrieval_check_scores_the_test_split_with_dictionary_swapped_and_no_keywords(
        run_command, workdir, chain, generator_test) -> None:
    test = load_cache(chain["data"] / "_cache", "test")
    sentences = [normalize_arabic(t).split() for t in test.texts]
    word = next(w for w in sentences[0] if not all(w in s for s in sentences))  # both subsets non-empty
    holds = [word in s for s in sentences]
    result = run_command([REPO / "scripts" / "retrieval_check.py", "--cfg", DEMO_SOKE, *overrides(chain),
                          "--words", word])
    assert "swapped" in result.stdout
    report = json.loads((generator_test / "retrieval_check.json").read_text(encoding="utf-8"))
    summary = json.loads((generator_test / "test_summary.json").read_text(encoding="utf-8"))
    everything = report[f"all {len(test)} test clips"]
    assert sorted(everything) == ["dictionary", "none", "swapped"]
    for key in DTW_KEYS:  # the dictionary row is test.py's run: same checkpoint, keywords, greedy decoding
        assert everything["dictionary"][key] == pytest.approx(summary["means_m"][key], rel=1e-6)
    with_word = report[f"{sum(holds)} clips with the given words"]
    without = report[f"{len(holds) - sum(holds)} clips without them"]
    for row in ("dictionary", "swapped", "none"):  # the subsets split the clips: their means recombine
        for key in DTW_KEYS:
            recombined = (sum(holds) * with_word[row][key] + (len(holds) - sum(holds)) * without[row][key])
            assert recombined / len(holds) == pytest.approx(everything[row][key], rel=1e-6)

    # a generator trained without retrieval: only the no-keyword row, the same as above for this checkpoint
    run_command([REPO / "scripts" / "retrieval_check.py", "--cfg", DEMO_SOKE, *overrides(chain),
                 "LM.RETRIEVAL=false"])
    alone = json.loads((generator_test / "retrieval_check.json").read_text(encoding="utf-8"))
    assert alone[f"all {len(test)} test clips"] == {"none": pytest.approx(everything["none"], rel=1e-6)}


@pytest.mark.slow
def test_text_to_sign_cli_writes_parameters_and_a_video(run_command, workdir, chain, generator_run) -> None:
    run_command(["-m", "mGPT.generate", "--cfg", DEMO_SOKE, "--text", "أنا أذهب", "--out", "free_text",
                 "--video", "free_text/x.mp4", *overrides(chain)])
    (path,) = (workdir / "free_text").glob("*.pkl")
    with open(path, "rb") as f:
        record = pickle.load(f)
    assert record.pop("text") == "أنا أذهب"
    frames = check_smplx_dict(record)
    assert frames % 4 == 0 and 4 <= frames <= 32
    video = iio.imread(workdir / "free_text" / "x.mp4", index=None)
    assert len(video) == frames and video.shape[-1] == 3
    # the CLI's one path, from Python (what a web app calls): the same codes and parameters
    from mGPT.generate import checked_text, load_generator, text_to_sign

    checkpoint = workdir / "experiments" / "mgpt" / GENERATOR / "checkpoints" / "best.ckpt"
    module, dictionary = load_generator(load_config(DEMO_SOKE, [*overrides(chain), f"TEST.CHECKPOINT={checkpoint}"]))
    assert dictionary is not None and not module.training
    signing = text_to_sign(module, checked_text(" أنا أذهب "), dictionary)
    codes, params = signing.codes, signing.params
    assert codes.shape == (frames // 4, 3) and codes.dtype == np.int64
    np.testing.assert_array_equal(params, stacked(record))
    expected = features_to_smplx(module.tokenizer.decode(torch.from_numpy(codes)[None])[0]).numpy()
    np.testing.assert_allclose(params, expected, atol=1e-6)


@pytest.mark.slow
def test_stage2_resumes_from_last_checkpoint(run_command, workdir, chain, generator_run) -> None:
    resumed = workdir / "experiments" / "mgpt" / "tiny_soke_resumed"
    shutil.copytree(generator_run.exp, resumed)
    result = run_command([REPO / "train.py", "--cfg", DEMO_SOKE, *overrides(chain, resumed.name),
                          "TRAIN.MAX_EPOCHS=2", "TRAIN.GEN_VAL_EVERY_N_EPOCHS=0",
                          "TRAIN.MONITOR=val/loss"])
    assert f"resuming from experiments/mgpt/{resumed.name}/checkpoints/last.ckpt" in result.stdout
    assert "exists and is not empty" not in result.stderr  # resuming into our own folder is no warning
    checkpoint = torch.load(resumed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == 2 * 3  # written as epoch index 1 ended


@pytest.mark.slow
def test_two_process_ddp_validates_by_generation_and_only_rank_0_logs(run_command, workdir, chain) -> None:
    result = run_command([REPO / "train.py", "--cfg", DEMO_SOKE, *overrides(chain, "tiny_soke_ddp"),
                          "ACCELERATOR=cpu", "DEVICES=2", "TRAIN.MAX_EPOCHS=1", "TRAIN.VAL_EVERY_N_EPOCHS=1",
                          "TRAIN.GEN_VAL_EVERY_N_EPOCHS=1", "TRAIN.VAL_VIDEOS=1"], timeout=240)
    assert "GLOBAL_RANK: 1" in result.stdout + result.stderr
    exp = workdir / "experiments" / "mgpt" / "tiny_soke_ddp"
    logged = events(exp / "logs")
    assert len(logged.Images("val/sample_0")) == 1 and len(logged.Scalars("val/DTW_MPJPE_PA_body")) == 1
    checkpoint = torch.load(exp / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["sasoke"]["stage"] == "lm" and checkpoint["global_step"] == 2  # 12 clips per process


@pytest.mark.slow
def test_a_checkpoint_of_the_other_stage_is_refused_by_test_py(run_command, chain, generator_run) -> None:
    tokenizer, generator = chain["tokenizer"], generator_run.exp / "checkpoints" / "best.ckpt"
    result = run_command([REPO / "test.py", "--cfg", DEMO_SOKE, *overrides(chain),
                          f"TEST.CHECKPOINT={tokenizer}"], expect=2)
    assert last_line(result.stderr).startswith(f"error: {tokenizer} ")
    assert "not a generator (stage 'lm') checkpoint" in result.stderr
    result = run_command([REPO / "test.py", "--cfg", DEMO_DETO, *tokenizer_overrides(chain["data"], "any"),
                          f"TEST.CHECKPOINT={generator}"], expect=2)
    assert last_line(result.stderr).startswith(f"error: {generator} ")
    assert "a tokenizer checkpoint is needed" in result.stderr


@pytest.mark.slow
def test_without_retrieval_no_dictionary_is_needed(run_command, workdir, chain, tmp_path) -> None:
    missing = tmp_path / "no_dictionary.json"
    without = [*overrides(chain, "tiny_soke_plain"), f"DATASET.DICTIONARY_PATH={missing}"]
    result = run_command([REPO / "train.py", "--cfg", DEMO_SOKE, *without, "TRAIN.MAX_EPOCHS=1"], expect=2)
    assert f"sign dictionary not found: {missing}" in result.stderr and "LM.RETRIEVAL=false" in result.stderr

    without.append("LM.RETRIEVAL=false")
    result = run_command([REPO / "train.py", "--cfg", DEMO_SOKE, *without, "TRAIN.MAX_EPOCHS=1",
                          "TRAIN.VAL_EVERY_N_EPOCHS=5"])
    assert "no best.ckpt" in result.stdout  # validation never ran
    result = run_command([REPO / "test.py", "--cfg", DEMO_SOKE, *without])
    assert "using last.ckpt" in result.stdout
    summary = json.loads((workdir / "results" / "mgpt" / "tiny_soke_plain" / "test_rank_0" /
                          "test_summary.json").read_text())
    assert summary["retrieval"] is False
    assert summary["checkpoint"].endswith("tiny_soke_plain/checkpoints/last.ckpt")


@pytest.mark.slow
def test_baselines_for_both_stages(run_command, workdir, chain) -> None:
    run_command([REPO / "scripts" / "baselines.py", "--cfg", DEMO_DETO, "NAME=base_deto",
                 f"DATASET.DATA_ROOT={chain['data']}"])
    run_command([REPO / "scripts" / "baselines.py", "--cfg", DEMO_SOKE, "NAME=base_soke",
                 f"DATASET.DATA_ROOT={chain['data']}"])
    results = workdir / "results" / "mgpt"
    stage1 = json.loads((results / "base_deto" / "test_rank_0" / "baselines.json").read_text())
    stage2 = json.loads((results / "base_soke" / "test_rank_0" / "baselines.json").read_text())
    assert stage1["kinematics_backend"] == stage2["kinematics_backend"] == "skeleton"
    assert sorted(stage1["mean_pose"]) == sorted(f"{m}_{p}" for m in ("MPJPE", "PA_MPJPE") for p in PARTS)
    both_units = sorted([*DTW_KEYS, *(f"{key}_mm" for key in DTW_KEYS)])
    assert sorted(stage2["mean_pose"]) == sorted(stage2["nearest_neighbour"]) == both_units
    # a training clip that shares words with the sentence beats standing still
    for key in (f"DTW_MPJPE_PA_{part}" for part in PARTS):
        assert stage2["nearest_neighbour"][key] < stage2["mean_pose"][key], key


@pytest.mark.slow
def test_a_tokenizer_with_down_t_3_sets_every_length(run_command, workdir, small_sample, tiny_mbart, tmp_path) -> None:
    """DOWN_T 3 (8 frames per code) through the whole chain: clips are cut to multiples of 8, N codes decode
    to 8N frames, and generation stops at LM.MAX_MOTION_TOKENS x 8 frames."""
    from mGPT.data.codes import load_codes

    down_t = [f"VQ.{part}.DOWN_T=3" for part in ("BODY", "LHAND", "RHAND")]
    run_command([REPO / "train.py", "--cfg", DEMO_DETO, *tokenizer_overrides(small_sample, "deto_down8"), *down_t,
                 "TRAIN.MAX_EPOCHS=1", "TRAIN.VAL_EVERY_N_EPOCHS=1"])
    tokenizer_ckpt = workdir / "experiments" / "mgpt" / "deto_down8" / "checkpoints" / "last.ckpt"
    tokenizer = load_tokenizer(tokenizer_ckpt)
    assert tokenizer.frames_per_code == 8
    codes_file, dictionary = tmp_path / "codes.npz", tmp_path / "sign_dictionary.json"
    stage2 = [*generator_overrides(small_sample, tokenizer_ckpt, tiny_mbart, "soke_down8"),
              f"DATASET.CODES_PATH={codes_file}", f"DATASET.DICTIONARY_PATH={dictionary}"]
    run_command([REPO / "scripts" / "get_motion_code.py", "--cfg", DEMO_SOKE, *stage2])
    run_command([REPO / "scripts" / "build_dictionary.py", "--tokenizer", tokenizer_ckpt, "--data-root", small_sample,
                 "--out", dictionary])
    test = load_cache(small_sample / "_cache", "test")
    codes = load_codes(codes_file, "test", tokenizer.fingerprint())
    for i in range(len(test)):
        assert codes.clip(i).shape == (len(apply_length_rules(test.clip(i), 40, 400, 8)) // 8, 3)
    entries = json.loads(dictionary.read_text(encoding="utf-8"))
    entries.pop("_tokenizer")
    assert entries and all(len(entry["body"]) >= 5 for entry in entries.values())  # 40 frames or more: 5 codes

    run_command([REPO / "train.py", "--cfg", DEMO_SOKE, *stage2, "TRAIN.MAX_EPOCHS=1",
                 "TRAIN.VAL_EVERY_N_EPOCHS=1", "TRAIN.GEN_VAL_EVERY_N_EPOCHS=1"])
    run_command([REPO / "test.py", "--cfg", DEMO_SOKE, *stage2, "TEST.SAVE_PREDICTIONS=true"])
    results = workdir / "results" / "mgpt" / "soke_down8" / "test_rank_0"
    for i, name in enumerate(test.names):
        with open(results / f"{name}.pkl", "rb") as f:
            record = pickle.load(f)
        generated = np.asarray(record["codes"])
        assert 1 <= len(generated) <= 8  # LM.MAX_MOTION_TOKENS=8 steps: at most 64 frames
        check_smplx_dict(record["generated"], frames=8 * len(generated))
        expected = features_to_smplx(tokenizer.decode(torch.from_numpy(generated)[None])[0]).numpy()
        np.testing.assert_allclose(stacked(record["generated"]), expected, atol=1e-5)
        reference = features_to_smplx(smplx_to_features(apply_length_rules(test.clip(i), 40, 400, 8)))
        np.testing.assert_allclose(stacked(record["reference"]), reference, atol=1e-6)

    # the cache was packed at 24 fps: a config that says otherwise is refused, naming both and the fix
    result = run_command([REPO / "test.py", "--cfg", DEMO_SOKE, *stage2, "DATASET.TARGET_FPS=12"], expect=2)
    assert (f"the packed cache {small_sample / '_cache' / 'test'} has a frame rate of 24 fps, but "
            "DATASET.TARGET_FPS is 12 fps") in result.stderr
