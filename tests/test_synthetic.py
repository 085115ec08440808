import pickle

import numpy as np
import pytest
from mannequin import Mannequin

from mGPT.data.features import resample_length, smplx_to_features
from mGPT.data.isharah import CSV_COLUMNS, frame_files, read_clip, read_split_csv, split_csv_path
from mGPT.data.synthetic import FPS_CHOICES, VOCABULARY, generate_dataset, main
from mGPT.errors import DataError
from mGPT.layout import SMPLX_KEYS

SPLITS = ("train", "val", "test", "dictionary")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    summary = generate_dataset(root, seed=3, small=True)
    tables = {split: read_split_csv(split_csv_path(root, split)) for split in SPLITS}
    return root, summary, tables


def sentences(table) -> set[str]:
    return set(table["SENTENCE"])


def test_vocabulary_is_about_60_distinct_arabic_words():
    assert 55 <= len(VOCABULARY) <= 65
    assert len(set(VOCABULARY)) == len(VOCABULARY)
    for word in ("أنا", "أنت", "بيت", "مدرسة", "يذهب", "يأكل"):
        assert word in VOCABULARY
    assert all(any("\u0600" <= char <= "\u06ff" for char in word) and " " not in word for word in VOCABULARY)


def test_small_sizes_and_summary(dataset):
    root, summary, tables = dataset
    counts = {split: len(tables[split]) for split in SPLITS}
    assert counts == {"train": 24, "val": 6, "test": 6, "dictionary": 12}
    assert summary["words"] == 12
    assert {split: summary["splits"][split]["clips"] for split in SPLITS} == counts


def test_layout_frame_counts_and_timing(dataset):
    root, summary, tables = dataset
    for split, table in tables.items():
        assert list(table.columns) == list(CSV_COLUMNS)
        assert table["SENTENCE_NAME"].is_unique
        total = 0
        for _, row in table.iterrows():
            files = frame_files(root / split / "poses" / row["SENTENCE_NAME"])
            assert all(path.name.startswith(row["SENTENCE_NAME"] + "_") for path in files)
            assert row["fps"] in FPS_CHOICES
            duration = row["END_REALIGNED"] - row["START_REALIGNED"]
            assert round(duration * row["fps"]) == len(files)
            total += len(files)
        assert summary["splits"][split]["frames"] == total


def test_pickles_hold_the_seven_keys_and_an_ignored_extra(dataset):
    root, _, tables = dataset
    name = tables["train"]["SENTENCE_NAME"].iloc[0]
    with open(frame_files(root / "train" / "poses" / name)[0], "rb") as handle:
        content = pickle.load(handle)
    assert {key for key, _ in SMPLX_KEYS} < set(content) and "cam_trans" in content
    for key, size in SMPLX_KEYS:
        assert content[key].shape == (size,) and content[key].dtype == np.float32


def test_some_clips_have_gaps_in_frame_numbers(dataset):
    root, _, tables = dataset
    gaps = 0
    for split in SPLITS:
        for name in tables[split]["SENTENCE_NAME"]:
            numbers = [int(path.name.rsplit("_", 2)[1]) for path in frame_files(root / split / "poses" / name)]
            assert numbers == sorted(numbers) and numbers[0] == 0
            gaps += numbers[-1] != len(numbers) - 1
    assert gaps > 0


def test_val_and_test_sentences_unseen_but_words_known(dataset):
    _, _, tables = dataset
    train_words = {word for sentence in sentences(tables["train"]) for word in sentence.split()}
    for split in ("val", "test"):
        assert not sentences(tables[split]) & sentences(tables["train"])
        assert {word for sentence in sentences(tables[split]) for word in sentence.split()} <= train_words
    assert not sentences(tables["val"]) & sentences(tables["test"])
    assert all(2 <= len(sentence.split()) <= 6 for split in ("train", "val", "test")
               for sentence in sentences(tables[split]))


def test_dictionary_has_one_clip_per_word(dataset):
    _, _, tables = dataset
    words = list(tables["dictionary"]["SENTENCE"])
    assert len(words) == len(set(words)) == 12
    train_words = {word for sentence in sentences(tables["train"]) for word in sentence.split()}
    assert set(words) == train_words and set(words) <= set(VOCABULARY)


def test_every_word_is_a_distinct_sign(dataset):
    root, _, tables = dataset
    signs = np.stack([
        resample_length(smplx_to_features(read_clip(root / "dictionary" / "poses" / name))[:, :120], 64)
        for name in tables["dictionary"]["SENTENCE_NAME"]
    ])  # (words, 64, 120): arms and hands on a common time base
    distance = np.sqrt(((signs[:, None] - signs[None]) ** 2).mean(axis=(2, 3)))
    np.fill_diagonal(distance, np.inf)
    assert distance.min() > 0.05


def test_wrists_in_front_of_torso_between_hip_and_head(dataset):
    """Forward kinematics of every generated frame: hands where signing happens, not in a T-pose."""
    root, _, tables = dataset
    mannequin = Mannequin("convex")
    joint = mannequin.joint_names.index
    frames = np.concatenate([read_clip(root / split / "poses" / name)
                             for split in SPLITS for name in tables[split]["SENTENCE_NAME"]])
    pose = mannequin.rest_pose(batch_dims=(len(frames),))
    pose["body_pose"] = frames[:, 3:66].reshape(-1, 21, 3)
    pose["hand_pose"] = frames[:, 66:156].reshape(-1, 30, 3)
    joints = mannequin.joint_transforms(pose)[..., :3, 3]  # (N, 54, 3), y up, z forward
    rest = joints[0]
    for wrist in ("L_Wrist", "R_Wrist"):
        position = joints[:, joint(wrist)]
        assert (position[:, 1] > rest[joint("L_Hip"), 1]).all()
        assert (position[:, 1] < rest[joint("Head"), 1] + 0.1).all()
        assert (position[:, 2] > rest[joint("Spine3"), 2] + 0.08).all()
        assert (np.abs(position[:, 0]) < 0.4).all()
    # Arms move: the right wrist covers a good part of the signing space.
    right = joints[:, joint("R_Wrist")]
    assert np.ptp(right[:, 1]) > 0.2 and np.ptp(right[:, 0]) > 0.1


def test_jaw_and_expression_move(dataset):
    root, _, tables = dataset
    clip = read_clip(root / "train" / "poses" / tables["train"]["SENTENCE_NAME"].iloc[0])
    assert np.ptp(clip[:, 156]) > 0.02  # jaw opening
    assert np.ptp(clip[:, 169:179], axis=0).max() > 0.2


def test_same_seed_same_bytes_and_regenerating_replaces(tmp_path, dataset):
    first, _, _ = dataset
    second = tmp_path / "again"
    assert main(["--out", str(second), "--seed", "3", "--small"]) == 0
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(second) for path in second.rglob("*") if path.is_file())
    assert all((first / path).read_bytes() == (second / path).read_bytes() for path in files)

    generate_dataset(second, seed=4, small=True)  # a synthetic folder is replaced, not mixed
    csv = split_csv_path(second, "train")
    assert csv.read_bytes() != split_csv_path(first, "train").read_bytes()
    table = read_split_csv(csv)
    assert sorted(path.name for path in (second / "train" / "poses").iterdir()) == sorted(table["SENTENCE_NAME"])
    for _, row in table.iterrows():
        frames = frame_files(second / "train" / "poses" / row["SENTENCE_NAME"])
        assert len(frames) == round((row["END_REALIGNED"] - row["START_REALIGNED"]) * row["fps"])


def test_refuses_to_overwrite_real_data(tmp_path, capsys):
    (tmp_path / "train" / "poses").mkdir(parents=True)
    with pytest.raises(DataError, match=str(tmp_path)):
        generate_dataset(tmp_path, small=True)
    assert main(["--out", str(tmp_path), "--small"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert (tmp_path / "train" / "poses").is_dir()


@pytest.mark.slow
def test_default_size(tmp_path):
    summary = generate_dataset(tmp_path, seed=0)
    assert summary["words"] == len(VOCABULARY)
    assert summary["splits"]["train"]["clips"] == 300
    assert summary["splits"]["val"]["clips"] == summary["splits"]["test"]["clips"] == 40
    tables = {split: read_split_csv(split_csv_path(tmp_path, split)) for split in SPLITS}
    train_words = {word for sentence in sentences(tables["train"]) for word in sentence.split()}
    assert train_words == set(VOCABULARY)
    assert not (sentences(tables["val"]) | sentences(tables["test"])) & sentences(tables["train"])
