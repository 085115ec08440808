"""Every command a user types, given what users get wrong: each must stop with exit code 2 and one
`error:` line on stderr naming the file, key or folder at fault (no traceback), or, for odd but usable
text, go on with a warning.

The commands run as subprocesses against one toy run (conftest's `chain`) built once per session.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_chain import GENERATOR_CFG, TOKENIZER_CFG, TinyChain, run

pytestmark = pytest.mark.slow
ARABIC_SENTENCE = "أنا أذهب إلى المدرسة"


class RunsCode:
    """Unpickling this runs `touch <marker>`: the marker's existence proves the file was executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture()
def blocking_file(tmp_path: Path) -> Path:
    """A regular file: nothing can be created under it, not even by root (chmod would not stop root)."""
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


@pytest.fixture(scope="session")
def malicious_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a checkpoint-looking file whose unpickling runs a command, the marker that command would create)."""
    folder = tmp_path_factory.mktemp("malicious")
    marker = folder / "code_ran"
    path = folder / "model.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": RunsCode(marker)}, path)
    return path, marker


@pytest.fixture(scope="session")
def other_tokenizer(chain: TinyChain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer checkpoint like the chain's but with other weights (so another fingerprint)."""
    checkpoint = torch.load(chain.tokenizer_ckpt, map_location="cpu", weights_only=False)
    key = next(k for k in checkpoint["state_dict"] if k.endswith("encoder.model.0.weight"))
    checkpoint["state_dict"][key] = checkpoint["state_dict"][key] + 0.5
    path = tmp_path_factory.mktemp("other") / "other_tokenizer.ckpt"
    torch.save(checkpoint, path)
    return path


def assert_clear_error(result, *fragments: str) -> None:
    """Exit code 2, exactly one `error:` line, no traceback, and every fragment in that line."""
    output = f"stdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-4000:]}"
    assert result.returncode == 2, f"exit code {result.returncode}, expected 2\n{output}"
    assert "Traceback" not in result.stderr, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, f"expected one 'error:' line\n{output}"
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in the error line\n{output}"


# ---------------------------------------------------------------- configs (train.py, test.py share them)


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = run(["train.py", "--cfg", str(missing)], check=False)
    assert_clear_error(result, "config file not found", str(missing))


def test_unknown_key_on_the_command_line(chain: TinyChain) -> None:
    result = run(["train.py", "--cfg", TOKENIZER_CFG, *chain.tokenizer_overrides(), "TRAIN.BATCHSIZE=4"],
                 check=False)
    assert_clear_error(result, "unknown config key TRAIN.BATCHSIZE", "the command line")


def test_wrong_type_on_the_command_line(chain: TinyChain) -> None:
    result = run(["test.py", "--cfg", GENERATOR_CFG, *chain.generator_overrides(), "TEST.BATCH_SIZE=many"],
                 check=False)
    assert_clear_error(result, "TEST.BATCH_SIZE", "wrong type", "many")


def test_unknown_key_and_bad_yaml_in_a_config_file(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(f"BASE: {Path(TOKENIZER_CFG).resolve()}\nTRAIN:\n  EPOCHS: 3\n")
    assert_clear_error(run(["train.py", "--cfg", str(unknown)], check=False), "TRAIN.EPOCHS", str(unknown))
    broken = tmp_path / "broken.yaml"
    broken.write_text("TRAIN: [unclosed\n")
    assert_clear_error(run(["test.py", "--cfg", str(broken)], check=False), "cannot parse", str(broken))


def test_wrong_data_root(chain: TinyChain, tmp_path: Path) -> None:
    overrides = [*chain.tokenizer_overrides(), f"DATASET.DATA_ROOT={tmp_path / 'no_data'}"]
    result = run(["train.py", "--cfg", TOKENIZER_CFG, *overrides], check=False)
    assert_clear_error(result, str(tmp_path / "no_data"), "mGPT.data.prepare")


def test_missing_mbart_folder(chain: TinyChain, tmp_path: Path) -> None:
    overrides = [*chain.generator_overrides(), f"LM.MBART_PATH={tmp_path / 'mbart'}", "NAME=no_mbart"]
    result = run(["train.py", "--cfg", GENERATOR_CFG, *overrides], check=False)
    assert_clear_error(result, str(tmp_path / "mbart"), "LM.MBART_PATH")


# ---------------------------------------------------------------- checkpoints of the wrong kind


def test_generator_checkpoint_given_as_the_tokenizer(chain: TinyChain) -> None:
    overrides = [*chain.generator_overrides(), f"TRAIN.PRETRAINED_VAE={chain.generator_ckpt}",
                 "NAME=wrong_vae"]
    result = run(["train.py", "--cfg", GENERATOR_CFG, *overrides], check=False)
    assert_clear_error(result, str(chain.generator_ckpt), "generator")


def test_tokenizer_checkpoint_given_to_the_generator_test(chain: TinyChain) -> None:
    overrides = [*chain.generator_overrides(), f"TEST.CHECKPOINT={chain.tokenizer_ckpt}"]
    result = run(["test.py", "--cfg", GENERATOR_CFG, *overrides], check=False)
    assert_clear_error(result, str(chain.tokenizer_ckpt), "stage 'lm'")


def test_generator_checkpoint_given_to_the_tokenizer_test(chain: TinyChain) -> None:
    overrides = [*chain.tokenizer_overrides(), f"TEST.CHECKPOINT={chain.generator_ckpt}"]
    result = run(["test.py", "--cfg", TOKENIZER_CFG, *overrides], check=False)
    assert_clear_error(result, str(chain.generator_ckpt), "generator")


def test_missing_checkpoint(chain: TinyChain, tmp_path: Path) -> None:
    missing = tmp_path / "gone.ckpt"
    overrides = [*chain.generator_overrides(), f"TEST.CHECKPOINT={missing}"]
    result = run(["test.py", "--cfg", GENERATOR_CFG, *overrides], check=False)
    assert_clear_error(result, str(missing), "not found")


def test_malicious_checkpoints_are_refused_unexecuted(chain: TinyChain, malicious_checkpoint) -> None:
    path, marker = malicious_checkpoint
    commands = [
        ["test.py", "--cfg", GENERATOR_CFG, *chain.generator_overrides(), f"TEST.CHECKPOINT={path}"],
        ["test.py", "--cfg", TOKENIZER_CFG, *chain.tokenizer_overrides(), f"TEST.CHECKPOINT={path}"],
        ["scripts/build_dictionary.py", "--tokenizer", str(path), "--data-root", str(chain.data),
         "--out", str(path.with_suffix(".json"))],
    ]
    for command in commands:
        assert_clear_error(run(command, check=False), str(path))
        assert not marker.exists(), f"loading {path} ran its code: {' '.join(command)}"


def test_codes_from_another_tokenizer(chain: TinyChain, other_tokenizer: Path) -> None:
    overrides = [*chain.generator_overrides(), f"TRAIN.PRETRAINED_VAE={other_tokenizer}", "NAME=other_codes",
                 "LM.RETRIEVAL=false"]
    result = run(["train.py", "--cfg", GENERATOR_CFG, *overrides], check=False)
    assert_clear_error(result, str(chain.cache / "codes.npz"), "different tokenizer", "get_motion_code.py")


def test_dictionary_from_another_tokenizer(chain: TinyChain, other_tokenizer: Path, tmp_path: Path) -> None:
    dictionary = tmp_path / "other_dictionary.json"
    run(["scripts/build_dictionary.py", "--tokenizer", str(other_tokenizer), "--data-root", str(chain.data),
         "--out", str(dictionary)])
    overrides = [*chain.generator_overrides(), f"DATASET.DICTIONARY_PATH={dictionary}"]
    result = run(["test.py", "--cfg", GENERATOR_CFG, *overrides], check=False)
    assert_clear_error(result, str(dictionary), "different tokenizer")


# ---------------------------------------------------------------- text to sign


def generate(chain: TinyChain, text: str, out: Path, *extra: str):
    return run(["-m", "mGPT.generate", "--cfg", GENERATOR_CFG, "--text", text, "--out", str(out), *extra,
                *chain.generator_overrides()], check=False)


def test_empty_text(chain: TinyChain, tmp_path: Path) -> None:
    assert_clear_error(generate(chain, "   ", tmp_path), "empty", "--text")
    # checked before any model loads: a missing checkpoint is not what the user hears about first
    result = run(["-m", "mGPT.generate", "--cfg", GENERATOR_CFG, "--text", "", "--out", str(tmp_path),
                  *chain.generator_overrides(), f"TEST.CHECKPOINT={tmp_path / 'missing.ckpt'}"], check=False)
    assert_clear_error(result, "empty", "--text")


def test_long_text_is_truncated_with_a_warning(chain: TinyChain, tmp_path: Path) -> None:
    text = ("أنا أذهب إلى المدرسة " * 500)[:10_000]
    result = generate(chain, text, tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "text tokens" in result.stderr and "keeping the first" in result.stderr, result.stderr[-3000:]
    (written,) = (tmp_path / "out").glob("*.pkl")
    with open(written, "rb") as handle:
        assert handle.read(2)  # a real file, whose name is cut to a sane length
    assert len(written.name) < 60


def test_non_arabic_text_warns(chain: TinyChain, tmp_path: Path) -> None:
    result = generate(chain, "I am going to school", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("not Arabic") == 1
    assert len(list((tmp_path / "out").glob("*.pkl"))) == 1


def test_generate_with_a_stage_1_config(chain: TinyChain, tmp_path: Path) -> None:
    result = run(["-m", "mGPT.generate", "--cfg", TOKENIZER_CFG, "--text", ARABIC_SENTENCE, "--out",
                  str(tmp_path), *chain.tokenizer_overrides()], check=False)
    assert_clear_error(result, TOKENIZER_CFG, "stage 'lm'")


# ---------------------------------------------------------------- data


def copy_data(chain: TinyChain, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(chain.data, data, ignore=shutil.ignore_patterns("_cache"))
    return data


def first_frame(data: Path, split: str = "train") -> Path:
    folder = sorted((data / split / "poses").iterdir())[0]
    return sorted(folder.glob("*_3D.pkl"))[0]


def test_prepare_missing_data_root(tmp_path: Path) -> None:
    result = run(["-m", "mGPT.data.prepare", "--data-root", str(tmp_path / "nothing")], check=False)
    assert_clear_error(result, str(tmp_path / "nothing"), "data root not found")


def test_prepare_csv_without_a_column(chain: TinyChain, tmp_path: Path) -> None:
    data = copy_data(chain, tmp_path)
    csv = data / "train" / "re_aligned" / "isharah_realigned_train_preprocessed_fps.csv"
    lines = csv.read_text(encoding="utf-8").splitlines()
    csv.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n", encoding="utf-8")  # drop fps
    result = run(["-m", "mGPT.data.prepare", "--data-root", str(data)], check=False)
    assert_clear_error(result, str(csv), "'fps'")


def test_malicious_frame_pickle_is_refused_unexecuted(chain: TinyChain, tmp_path: Path) -> None:
    data = copy_data(chain, tmp_path)
    frame, marker = first_frame(data), tmp_path / "code_ran"
    frame.write_bytes(pickle.dumps({"smplx_root_pose": RunsCode(marker)}))
    strict = run(["-m", "mGPT.data.prepare", "--data-root", str(data), "--strict"], check=False)
    assert_clear_error(strict, str(frame), "posix.system")
    lenient = run(["-m", "mGPT.data.prepare", "--data-root", str(data)])
    assert f"skipped train {frame.parent.name}" in lenient.stdout
    assert not marker.exists()


def test_nan_in_a_pose(chain: TinyChain, tmp_path: Path) -> None:
    data = copy_data(chain, tmp_path)
    frame = first_frame(data, "test")
    with open(frame, "rb") as handle:
        content = pickle.load(handle)
    content["smplx_rhand_pose"] = np.full_like(content["smplx_rhand_pose"], np.nan)
    frame.write_bytes(pickle.dumps(content))
    strict = run(["-m", "mGPT.data.prepare", "--data-root", str(data), "--strict"], check=False)
    assert_clear_error(strict, str(frame), "smplx_rhand_pose", "NaN")
    lenient = run(["-m", "mGPT.data.prepare", "--data-root", str(data)])
    skipped = json.loads((data / "_cache" / "test" / "skipped.json").read_text(encoding="utf-8"))
    assert [item["name"] for item in skipped] == [frame.parent.name]
    assert "NaN" in lenient.stdout


def test_synthetic_refuses_a_folder_of_real_data(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    result = run(["-m", "mGPT.data.synthetic", "--out", str(tmp_path), "--small"], check=False)
    assert_clear_error(result, str(tmp_path), "did not make")
    assert (tmp_path / "train").is_dir()


# ---------------------------------------------------------------- scripts


def test_motion_codes_without_a_tokenizer(chain: TinyChain) -> None:
    result = run(["scripts/get_motion_code.py", "--cfg", GENERATOR_CFG, *chain.generator_overrides(),
                  "TRAIN.PRETRAINED_VAE=null"], check=False)
    assert_clear_error(result, "TRAIN.PRETRAINED_VAE")


def test_dictionary_without_its_split(chain: TinyChain) -> None:
    result = run(["scripts/build_dictionary.py", "--tokenizer", str(chain.tokenizer_ckpt), "--data-root",
                  str(chain.data), "--split", "isolated"], check=False)
    assert_clear_error(result, str(chain.cache / "isolated"), "isolated")


def test_tiny_mbart_missing_corpus(tmp_path: Path) -> None:
    result = run(["scripts/make_tiny_mbart.py", "--corpus", str(tmp_path / "none.txt"), "--out",
                  str(tmp_path / "m")], check=False)
    assert_clear_error(result, str(tmp_path / "none.txt"))


def test_prepare_mbart_missing_source(chain: TinyChain, tmp_path: Path) -> None:
    result = run(["scripts/prepare_mbart.py", "--src", str(tmp_path / "mbart-large-cc25"), "--data-root",
                  str(chain.data), "--out", str(tmp_path / "pruned")], check=False)
    assert_clear_error(result, str(tmp_path / "mbart-large-cc25"))


def test_baselines_missing_cache(chain: TinyChain, tmp_path: Path) -> None:
    overrides = [*chain.generator_overrides(), f"DATASET.CACHE_DIR={tmp_path / 'cache'}"]
    result = run(["scripts/baselines.py", "--cfg", GENERATOR_CFG, *overrides], check=False)
    assert_clear_error(result, str(tmp_path / "cache"))


# ---------------------------------------------------------------- outputs that cannot be written


def test_unwritable_outputs(chain: TinyChain, blocking_file: Path) -> None:
    """Every command that writes, pointed at a folder under a regular file."""
    blocked = blocking_file / "out"
    commands = {
        "train.py": ["train.py", "--cfg", TOKENIZER_CFG, *chain.tokenizer_overrides(),
                     f"FOLDER_EXP={blocked}"],
        "test.py": ["test.py", "--cfg", GENERATOR_CFG, *chain.generator_overrides(),
                    f"FOLDER_RESULTS={blocked}"],
        "generate": ["-m", "mGPT.generate", "--cfg", GENERATOR_CFG, "--text", ARABIC_SENTENCE, "--out",
                     str(blocked), *chain.generator_overrides()],
        "prepare": ["-m", "mGPT.data.prepare", "--data-root", str(chain.data), "--out", str(blocked)],
        "synthetic": ["-m", "mGPT.data.synthetic", "--out", str(blocked), "--small"],
        "codes": ["scripts/get_motion_code.py", "--cfg", GENERATOR_CFG, *chain.generator_overrides(),
                  f"DATASET.CODES_PATH={blocked / 'codes.npz'}"],
        "dictionary": ["scripts/build_dictionary.py", "--tokenizer", str(chain.tokenizer_ckpt), "--data-root",
                       str(chain.data), "--out", str(blocked / "dictionary.json")],
        "tiny mbart": ["scripts/make_tiny_mbart.py", "--corpus", str(chain.data), "--out", str(blocked)],
        "baselines": ["scripts/baselines.py", "--cfg", GENERATOR_CFG, *chain.generator_overrides(),
                      f"FOLDER_RESULTS={blocked}"],
    }
    failures = []
    for name, command in commands.items():
        try:
            assert_clear_error(run(command, check=False), str(blocked))
        except AssertionError as failure:
            failures.append(f"{name}: {failure}")
    assert not failures, "\n\n".join(failures)
