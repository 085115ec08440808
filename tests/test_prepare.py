import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

import mGPT.data.prepare as prepare
from mGPT.data.features import resample_to_fps, smplx_to_features
from mGPT.data.isharah import frame_files, read_clip, read_split_csv, split_csv_path
from mGPT.data.prepare import build_cache, load_cache, load_stats, main
from mGPT.data.synthetic import generate_dataset
from mGPT.errors import DataError
from mGPT.layout import default_cache_dir

SPLITS = ("train", "val", "test", "dictionary")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    generate_dataset(root, seed=1, small=True)
    return root


@pytest.fixture
def data_root(pristine, tmp_path):
    """A private copy of the first 8 train and 3 val clips of the small dataset, for a test to damage."""
    root = tmp_path / "Isharah"
    for split, clips in (("train", 8), ("val", 3)):
        csv_path = split_csv_path(root, split)
        csv_path.parent.mkdir(parents=True)
        lines = split_csv_path(pristine, split).read_text(encoding="utf-8").splitlines(keepends=True)
        csv_path.write_text("".join(lines[:clips + 1]), encoding="utf-8")
        for name in read_split_csv(csv_path)["SENTENCE_NAME"]:
            shutil.copytree(pristine / split / "poses" / name, root / split / "poses" / name)
    return root


@pytest.fixture(scope="module")
def built(pristine, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache")
    report = build_cache(pristine, out)
    return pristine, out, report


def rewrite_csv(root, split, edit):
    path = split_csv_path(root, split)
    table = read_split_csv(path)
    edit(table).to_csv(path, index=False)


def test_cache_round_trip_equals_read_clip_after_resampling(built):
    root, out, report = built
    assert {split: entry["status"] for split, entry in report["splits"].items()} == dict.fromkeys(SPLITS, "built")
    for split in SPLITS:
        table = read_split_csv(split_csv_path(root, split))
        packed = load_cache(out, split)
        assert packed.names == list(table["SENTENCE_NAME"])
        assert packed.texts == list(table["SENTENCE"])
        assert packed.video_ids == [str(v) for v in table["VIDEO_ID"]]
        np.testing.assert_array_equal(packed.source_fps, table["fps"])
        assert packed.target_fps == 24 and len(packed) == len(table)
        assert isinstance(packed.frames, np.memmap) and packed.frames.shape == (packed.lengths.sum(), 179)
        for i, (name, fps) in enumerate(zip(table["SENTENCE_NAME"], table["fps"], strict=True)):
            expected = resample_to_fps(read_clip(root / split / "poses" / name), fps, 24)
            clip = packed.clip(i)
            assert clip.dtype == np.float32 and clip.flags.writeable
            np.testing.assert_array_equal(clip, expected)


def test_stats_are_train_mean_and_std(built):
    _, out, _ = built
    train = load_cache(out, "train")
    frames = np.concatenate([train.clip(i) for i in range(len(train))]).astype(np.float64)
    stats = load_stats(out)
    np.testing.assert_allclose(stats["mean179"], frames.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["std179"], frames.std(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(stats["mean133"], smplx_to_features(stats["mean179"]))
    np.testing.assert_array_equal(stats["std133"], smplx_to_features(stats["std179"]))
    assert all(value.dtype == np.float32 for value in stats.values())


def test_default_out_dir_and_rerun_is_a_no_op(data_root, capsys):
    assert main(["--data-root", str(data_root), "--splits", "train", "val"]) == 0
    cache = default_cache_dir(data_root)
    assert cache == data_root / "_cache" and (cache / "train" / "index.json").is_file()
    watched = [cache / "train" / "frames.npy", cache / "train" / "index.json", cache / "stats.npz"]
    before = [path.stat().st_mtime_ns for path in watched]
    capsys.readouterr()
    assert main(["--data-root", str(data_root), "--splits", "train", "val"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert [path.stat().st_mtime_ns for path in watched] == before
    report = build_cache(data_root, splits=["train", "val"])
    assert {entry["status"] for entry in report["splits"].values()} == {"up to date"}
    assert report["stats_written"] is False


def _edit_frame(frame: Path, key: str, index, value: float) -> None:
    """Rewrite one frame pickle with content[key][index] = value."""
    with open(frame, "rb") as handle:
        content = pickle.load(handle)
    content[key][index] = value
    with open(frame, "wb") as handle:
        pickle.dump(content, handle)


def _count_reads(monkeypatch) -> list:
    reads = []

    def counting_read_clip(folder):
        reads.append(folder.name)
        return read_clip(folder)

    monkeypatch.setattr(prepare, "read_clip", counting_read_clip)
    return reads


def test_modified_clip_is_rebuilt_and_only_it_is_read(data_root, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    build_cache(data_root, out, splits=["train"])
    old = load_cache(out, "train")
    old_stats = load_stats(out)
    name = old.names[2]
    first_frame = frame_files(data_root / "train" / "poses" / name)[0]
    _edit_frame(first_frame, "smplx_body_pose", slice(None), 0.5)

    reads = _count_reads(monkeypatch)
    report = build_cache(data_root, out, splits=["train"])
    assert report["splits"]["train"]["status"] == "built" and report["stats_written"]
    assert reads == [name]
    new = load_cache(out, "train")
    np.testing.assert_array_equal(new.clip(2)[0, 3:66], 0.5)
    for i in (0, 1, 3, len(new) - 1):
        np.testing.assert_array_equal(new.clip(i), old.clip(i))
    assert not np.array_equal(load_stats(out)["mean179"], old_stats["mean179"])


def test_touched_clip_is_rebuilt(data_root, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    build_cache(data_root, out, splits=["train"])
    name = load_cache(out, "train").names[0]
    frame = frame_files(data_root / "train" / "poses" / name)[-1]
    stat = frame.stat()
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    reads = _count_reads(monkeypatch)
    assert build_cache(data_root, out, splits=["train"])["splits"]["train"]["status"] == "built"
    assert reads == [name]


def test_removed_row_and_new_target_fps_rebuild(data_root, tmp_path):
    out = tmp_path / "cache"
    build_cache(data_root, out, splits=["train"])
    removed = load_cache(out, "train").names[5]
    rewrite_csv(data_root, "train", lambda table: table.drop(index=5))
    assert build_cache(data_root, out, splits=["train"])["splits"]["train"]["status"] == "built"
    packed = load_cache(out, "train")
    assert removed not in packed.names and len(packed) == 7

    report = build_cache(data_root, out, splits=["train"], target_fps=12)
    assert report["splits"]["train"]["status"] == "built"
    slow = load_cache(out, "train")
    assert slow.target_fps == 12 and slow.names == packed.names
    assert same_clips(slow, source_truth(data_root, "train", slow, target_fps=12))
    assert slow.lengths.sum() < packed.lengths.sum()


def source_truth(root, split, packed, target_fps=24):
    """What each clip of a packed split must hold, read straight from the pickles."""
    fps = dict(zip(packed.names, packed.source_fps, strict=True))
    return [resample_to_fps(read_clip(root / split / "poses" / name), fps[name], target_fps) for name in packed.names]


def same_clips(packed, clips) -> bool:
    return len(packed) == len(clips) and all(np.array_equal(packed.clip(i), clip) for i, clip in enumerate(clips))


@pytest.mark.parametrize("failing_call", [1, 2, 3, 4])
def test_killed_write_never_leaves_a_half_cache(data_root, tmp_path, monkeypatch, failing_call):
    out = tmp_path / "cache"
    build_cache(data_root, out, splits=["train"])
    old = load_cache(out, "train")
    old_clips = [old.clip(i) for i in range(len(old))]
    frame = frame_files(data_root / "train" / "poses" / old.names[0])[0]
    _edit_frame(frame, "smplx_rhand_pose", slice(None), 1.25)

    real_replace, calls = os.replace, []

    def dying_replace(source, target):
        calls.append(target)
        if len(calls) == failing_call:
            raise KeyboardInterrupt("killed")
        real_replace(source, target)

    monkeypatch.setattr(prepare.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        build_cache(data_root, out, splits=["train"])
    monkeypatch.setattr(prepare.os, "replace", real_replace)

    assert len(calls) == failing_call
    try:
        packed = load_cache(out, "train")
    except DataError as error:
        assert "prepare" in str(error)
    else:  # whatever loads must be complete: all old, or all new
        assert same_clips(packed, old_clips) or same_clips(packed, source_truth(data_root, "train", packed))
        assert failing_call == 4  # only the statistics were not written
    with pytest.raises(DataError):
        load_stats(out)

    build_cache(data_root, out, splits=["train"])
    np.testing.assert_array_equal(load_cache(out, "train").clip(0)[0, 111:156], 1.25)
    load_stats(out)
    assert not list((out / "train").glob(".*.tmp"))


def test_bad_clips_are_skipped_counted_and_reported(data_root, tmp_path, capsys):
    table = read_split_csv(split_csv_path(data_root, "train"))
    names = list(table["SENTENCE_NAME"])
    shutil.rmtree(data_root / "train" / "poses" / names[0])
    frame_files(data_root / "train" / "poses" / names[1])[3].write_bytes(b"\x80\x04garbage")
    nan_frame = frame_files(data_root / "train" / "poses" / names[2])[0]
    _edit_frame(nan_frame, "smplx_jaw_pose", 1, np.nan)

    def lengthen_and_break(frame):
        frame.loc[3, "END_REALIGNED"] = frame.loc[3, "START_REALIGNED"] + 30.0
        frame["fps"] = frame["fps"].astype(object)
        frame.loc[4, "fps"] = "fast"
        return frame

    rewrite_csv(data_root, "train", lengthen_and_break)

    out = tmp_path / "cache"
    assert main(["--data-root", str(data_root), "--out", str(out), "--splits", "train"]) == 0
    printed = capsys.readouterr().out
    skipped = json.loads((out / "train" / "skipped.json").read_text(encoding="utf-8"))
    assert {item["name"]: item["kind"] for item in skipped} == {
        names[0]: "bad", names[1]: "bad", names[2]: "bad", names[3]: "too_long", names[4]: "bad"}
    reasons = {item["name"]: item["reason"] for item in skipped}
    assert "not found" in reasons[names[0]]
    assert frame_files(data_root / "train" / "poses" / names[1])[3].name in reasons[names[1]]
    assert "NaN" in reasons[names[2]] and nan_frame.name in reasons[names[2]]
    assert "30 s" in reasons[names[3]]
    assert "fps" in reasons[names[4]]
    assert {item["line"] for item in skipped} == {2, 3, 4, 5, 6}
    assert "skipped 5 (4 bad, 1 too long)" in printed
    assert all(name in printed for name in names[:5])
    packed = load_cache(out, "train")
    assert packed.names == names[5:]


def test_strict_stops_at_the_first_problem(data_root, tmp_path, capsys):
    name = read_split_csv(split_csv_path(data_root, "val"))["SENTENCE_NAME"].iloc[1]
    bad = frame_files(data_root / "val" / "poses" / name)[0]
    bad.write_bytes(b"not a pickle")
    out = tmp_path / "cache"
    assert main(["--data-root", str(data_root), "--out", str(out), "--splits", "train", "val", "--strict"]) == 2
    error = capsys.readouterr().err.splitlines()[-1]  # tqdm bars come before it
    assert error.startswith("error: ") and name in error and str(bad) in error
    with pytest.raises(DataError):
        load_cache(out, "val")
    with pytest.raises(DataError, match=name):
        build_cache(data_root, out, splits=["val", "train"], strict=True)


def test_strict_keeps_dropping_long_clips(data_root, tmp_path):
    rewrite_csv(data_root, "val", lambda table: table.assign(END_REALIGNED=table["START_REALIGNED"] + 40))
    report = build_cache(data_root, tmp_path / "cache", splits=["train", "val"], strict=True)
    assert report["splits"]["val"]["clips"] == 0
    assert len(load_cache(tmp_path / "cache", "val")) == 0


def test_check_writes_nothing(data_root, tmp_path, capsys):
    shutil.rmtree(data_root / "val" / "poses" / read_split_csv(split_csv_path(data_root, "val"))
                  ["SENTENCE_NAME"].iloc[0])
    out = tmp_path / "cache"
    assert main(["--data-root", str(data_root), "--out", str(out), "--check"]) == 0
    printed = capsys.readouterr().out
    assert not out.exists()
    assert "val: checked, 2 clips" in printed and "skipped 1 (1 bad" in printed and "nothing was written" in printed


def test_missing_optional_split_is_a_note_missing_train_an_error(data_root, tmp_path, capsys):
    report = build_cache(data_root, tmp_path / "cache")
    assert set(report["splits"]) == {"train", "val"}
    assert [note.split(":")[0] for note in report["notes"]] == ["test", "dictionary"]
    shutil.rmtree(data_root / "train")
    assert main(["--data-root", str(data_root), "--out", str(tmp_path / "other")]) == 2
    assert "train" in capsys.readouterr().err


def test_inconsistent_cache_files_raise(built, tmp_path):
    _, out, _ = built
    copy = tmp_path / "cache"
    shutil.copytree(out, copy)
    np.save(copy / "val" / "frames.npy", np.zeros((3, 179), np.float32))
    with pytest.raises(DataError, match="re-run") as error:
        load_cache(copy, "val")
    assert "frames.npy" in str(error.value)
    (copy / "test" / "frames.npy").unlink()
    with pytest.raises(DataError, match="frames.npy"):
        load_cache(copy, "test")
    (copy / "dictionary" / "index.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(DataError, match="index.json"):
        load_cache(copy, "dictionary")
    with pytest.raises(DataError, match="index.json"):
        load_cache(copy, "nonexistent")


def test_stale_stats_raise(built, tmp_path):
    _, out, _ = built
    copy = tmp_path / "cache"
    shutil.copytree(out, copy)
    stats = dict(np.load(copy / "stats.npz"))
    stats["train_build_id"] = np.array("something else")
    np.savez(copy / "stats.npz", **stats)
    with pytest.raises(DataError, match="stats.npz"):
        load_stats(copy)


def index_of(cache, split="train") -> dict:
    return json.loads((cache / split / "index.json").read_text(encoding="utf-8"))


def test_prepare_takes_frame_rate_and_length_limit_from_the_config(data_root, tmp_path, capsys):
    config = tmp_path / "slow.yaml"
    config.write_text(f"DATASET:\n  DATA_ROOT: {data_root}\n  TARGET_FPS: 12\n  MAX_SECONDS: 3.5\n")
    assert main(["--cfg", str(config), "--splits", "train"]) == 0
    cache = default_cache_dir(data_root)  # DATASET.DATA_ROOT, and no DATASET.CACHE_DIR
    index = index_of(cache)
    assert (index["target_fps"], index["max_seconds"]) == (12, 3.5)
    table = read_split_csv(split_csv_path(data_root, "train"))
    durations = table["END_REALIGNED"] - table["START_REALIGNED"]
    assert index["names"] == list(table["SENTENCE_NAME"][durations < 3.5])
    assert 0 < len(index["names"]) < len(table)  # the limit is one that drops some clips
    packed = load_cache(cache, "train")
    assert (packed.target_fps, packed.max_seconds) == (12, 3.5)
    assert same_clips(packed, source_truth(data_root, "train", packed, target_fps=12))

    # a flag overrides its key, the other key still comes from the config
    out = tmp_path / "flagged"
    assert main(["--cfg", str(config), "--out", str(out), "--splits", "train", "--target-fps", "10"]) == 0
    assert (index_of(out)["target_fps"], index_of(out)["max_seconds"]) == (10, 3.5)
    # no --cfg: configs/default.yaml, 24 fps and 30 s
    assert main(["--data-root", str(data_root), "--out", str(tmp_path / "plain"), "--splits", "train"]) == 0
    assert (index_of(tmp_path / "plain")["target_fps"], index_of(tmp_path / "plain")["max_seconds"]) == (24, 30)


@pytest.mark.parametrize("override, message", [
    ("DATASET.TARGET_FPS=12", "has a frame rate of 24 fps, but DATASET.TARGET_FPS is 12 fps"),
    ("DATASET.MAX_SECONDS=20", "has a clip length limit of 30 s, but DATASET.MAX_SECONDS is 20 s"),
])
def test_a_config_that_disagrees_with_the_cache_is_refused(built, override, message):
    from mGPT.config import CONFIG_DIR, load_config
    from mGPT.errors import ConfigError
    from mGPT.models.datamodule import SignDataModule

    root, cache, _ = built
    cfg = load_config(CONFIG_DIR / "deto.yaml", [f"DATASET.DATA_ROOT={root}", f"DATASET.CACHE_DIR={cache}",
                                                 override])
    stats = load_stats(cache)
    data = SignDataModule(cfg, stats["mean133"], stats["std133"])
    with pytest.raises(ConfigError) as error:
        data.dataset("train")
    text = str(error.value)
    assert f"the packed cache {cache / 'train'} {message}" in text
    assert "python -m mGPT.data.prepare --cfg" in text and "or set DATASET." in text
    agreeing = load_config(CONFIG_DIR / "deto.yaml", [f"DATASET.DATA_ROOT={root}", f"DATASET.CACHE_DIR={cache}"])
    assert len(SignDataModule(agreeing, stats["mean133"], stats["std133"]).dataset("train")) > 0
