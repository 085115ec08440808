import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from mGPT.data.isharah import (
    CSV_COLUMNS,
    frame_files,
    load_frame_pickle,
    read_clip,
    read_split_csv,
)
from mGPT.errors import DataError
from mGPT.layout import FRAME_DIMS, SMPLX_KEYS

HEADER = ",".join(CSV_COLUMNS)


def frame_dict(value: float) -> dict:
    """One frame whose every number is `value`, plus a key readers must ignore."""
    content = {key: np.full(size, value, np.float32) for key, size in SMPLX_KEYS}
    content["cam_trans"] = np.zeros(3, np.float32)
    return content


def write_pickle(path: Path, content: object, protocol: int = 4) -> Path:
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    return path


def test_smplx_keys_add_up_to_179():
    assert [key for key, _ in SMPLX_KEYS] == ["smplx_root_pose", "smplx_body_pose", "smplx_lhand_pose",
                                              "smplx_rhand_pose", "smplx_jaw_pose", "smplx_shape", "smplx_expr"]
    assert FRAME_DIMS == 179


def test_csv_with_bom_and_crlf_reads(tmp_path):
    path = tmp_path / "split.csv"
    text = f"{HEADER}\r\n7,v7.mp4,3,S01_0003_00007,1.5,4.25,أنا أذهب إلى البيت,30\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    table = read_split_csv(path)
    assert list(table.columns) == list(CSV_COLUMNS)
    row = table.iloc[0]
    assert row["VIDEO_ID"] == "7"
    assert row["SENTENCE_NAME"] == "S01_0003_00007"
    assert row["SENTENCE"] == "أنا أذهب إلى البيت"
    assert row["fps"] == 30.0
    assert row["END_REALIGNED"] - row["START_REALIGNED"] == pytest.approx(2.75)


def test_csv_bad_number_becomes_nan_not_an_error(tmp_path):
    path = tmp_path / "split.csv"
    path.write_text(f"{HEADER}\n1,v.mp4,1,a,0,1,نص,thirty\n", encoding="utf-8")
    assert np.isnan(read_split_csv(path).iloc[0]["fps"])


@pytest.mark.parametrize("missing", ["SENTENCE", "fps", "END_REALIGNED"])
def test_csv_missing_column_names_file_and_column(tmp_path, missing):
    path = tmp_path / "broken.csv"
    columns = [column for column in CSV_COLUMNS if column != missing]
    path.write_text(",".join(columns) + "\n" + ",".join("1" for _ in columns) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        read_split_csv(path)
    assert str(path) in str(error.value) and repr(missing) in str(error.value)


def test_csv_missing_file_names_it(tmp_path):
    with pytest.raises(DataError, match="nowhere.csv"):
        read_split_csv(tmp_path / "nowhere.csv")


def test_frame_files_sorted_by_integer_with_a_gap(tmp_path):
    numbers = [n for n in range(13) if n != 7]
    for n in reversed(numbers):
        (tmp_path / f"x_{n}_3D.pkl").write_bytes(b"")
    (tmp_path / ".DS_Store").write_bytes(b"")
    (tmp_path / "notes.txt").write_bytes(b"")
    names = [path.name for path in frame_files(tmp_path)]
    assert names == [f"x_{n}_3D.pkl" for n in numbers]
    assert names.index("x_10_3D.pkl") == names.index("x_9_3D.pkl") + 1


def test_read_clip_stacks_frames_in_frame_order(tmp_path):
    values = {0: 0.0, 1: 1.0, 2: 2.0, 9: 9.0, 10: 10.0}
    for n, value in values.items():
        write_pickle(tmp_path / f"clip_{n}_3D.pkl", frame_dict(value))
    frames = read_clip(tmp_path)
    assert frames.shape == (5, 179) and frames.dtype == np.float32
    np.testing.assert_array_equal(frames[:, 0], [0, 1, 2, 9, 10])
    np.testing.assert_array_equal(frames, np.repeat(np.array([0, 1, 2, 9, 10], np.float32)[:, None], 179, 1))


def test_read_clip_concatenates_keys_in_spec_order_and_flattens(tmp_path):
    content = {
        "smplx_expr": np.full(10, 7.0),
        "smplx_root_pose": np.full((1, 3), 1.0),
        "smplx_body_pose": np.full((21, 3), 2.0),
        "smplx_lhand_pose": np.full(45, 3.0, np.float64),
        "smplx_rhand_pose": [4.0] * 45,
        "smplx_jaw_pose": np.full(3, 5.0),
        "smplx_shape": np.full(10, 6.0),
        "cam_trans": np.full(3, 99.0),
    }
    write_pickle(tmp_path / "a_0_3D.pkl", content)
    frame = read_clip(tmp_path)[0]
    expected = np.concatenate([np.full(size, i + 1.0) for i, (_, size) in enumerate(SMPLX_KEYS)])
    np.testing.assert_array_equal(frame, expected)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_every_pickle_protocol_loads(tmp_path, protocol):
    path = write_pickle(tmp_path / "a_0_3D.pkl", {"x": np.arange(4, dtype=np.float32), "s": np.float64(2.5),
                                                   "n": [1, 2.0]}, protocol)
    content = load_frame_pickle(path)
    np.testing.assert_array_equal(content["x"], [0, 1, 2, 3])
    assert content["s"] == 2.5
    np.testing.assert_array_equal(content["n"], [1.0, 2.0])


def test_numpy_1_pickles_load(tmp_path):
    modern = pickle.dumps({"smplx_jaw_pose": np.array([1.0, 2.0, 3.0])}, protocol=2)
    assert b"numpy._core.multiarray" in modern
    path = tmp_path / "old_0_3D.pkl"
    path.write_bytes(modern.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    np.testing.assert_array_equal(load_frame_pickle(path)["smplx_jaw_pose"], [1, 2, 3])


class _Exploit:
    def __init__(self, call, target):
        self.call, self.target = call, target

    def __reduce__(self):
        return self.call, (str(self.target), "w") if self.call is open else (str(self.target),)


@pytest.mark.parametrize("call, refused", [(open, "io.open"), (os.mkdir, "mkdir")])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, call, refused):
    control = tmp_path / "created_by_plain_pickle"
    made = pickle.loads(pickle.dumps(_Exploit(call, control), protocol=2))
    getattr(made, "close", lambda: None)()
    assert control.exists(), "the exploit must really create a file when unpickled without restrictions"

    target = tmp_path / "pwned"
    path = write_pickle(tmp_path / "evil_0_3D.pkl", {"smplx_root_pose": _Exploit(call, target)}, protocol=2)
    with pytest.raises(DataError) as error:
        load_frame_pickle(path)
    assert str(path) in str(error.value) and refused in str(error.value)
    assert not target.exists()
    with pytest.raises(DataError):
        read_clip(tmp_path)
    assert not target.exists()


def _corrupt(path: Path) -> None:
    path.write_bytes(pickle.dumps(frame_dict(0.0))[:40])


def _missing_key(path: Path) -> None:
    content = frame_dict(0.0)
    del content["smplx_jaw_pose"]
    write_pickle(path, content)


def _wrong_size(path: Path) -> None:
    content = frame_dict(0.0)
    content["smplx_lhand_pose"] = np.zeros(44)
    write_pickle(path, content)


def _nan(path: Path) -> None:
    content = frame_dict(0.0)
    content["smplx_expr"][3] = np.nan
    write_pickle(path, content)


def _inf(path: Path) -> None:
    content = frame_dict(0.0)
    content["smplx_body_pose"][0] = np.inf
    write_pickle(path, content)


def _not_a_dict(path: Path) -> None:
    write_pickle(path, [np.zeros(179)])


def _text_values(path: Path) -> None:
    content = frame_dict(0.0)
    content["smplx_shape"] = np.array(["a"] * 10)
    write_pickle(path, content)


@pytest.mark.parametrize("spoil, message", [
    (_corrupt, "pickle"), (_missing_key, "'smplx_jaw_pose'"), (_wrong_size, "'smplx_lhand_pose' has 44"),
    (_nan, "'smplx_expr' contains NaN"), (_inf, "'smplx_body_pose' contains NaN or inf"),
    (_not_a_dict, "expected a dict"), (_text_values, "'smplx_shape'"),
])
def test_bad_frame_raises_data_error_naming_the_file(tmp_path, spoil, message):
    for n in range(3):
        write_pickle(tmp_path / f"c_{n}_3D.pkl", frame_dict(float(n)))
    bad = tmp_path / "c_1_3D.pkl"
    spoil(bad)
    with pytest.raises(DataError) as error:
        read_clip(tmp_path)
    assert str(bad) in str(error.value)
    assert message in str(error.value)


def test_empty_folder_raises_naming_it(tmp_path):
    (tmp_path / "readme.txt").write_text("no frames here")
    with pytest.raises(DataError, match="no frame files") as error:
        read_clip(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_missing_folder_raises_naming_it(tmp_path):
    folder = tmp_path / "S01_0001_00001"
    with pytest.raises(DataError, match="not found") as error:
        read_clip(folder)
    assert str(folder) in str(error.value)
