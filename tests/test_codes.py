import numpy as np
import pytest

from mGPT.data.codes import load_codes, save_codes
from mGPT.errors import DataError


def test_round_trip_and_fingerprint_check(tmp_path):
    clips = [np.array([[1, 2, 3], [4, 5, 6]]), np.array([[7, 8, 9]])]
    path = save_codes(tmp_path / "codes.npz", {"train": clips, "val": []}, {"train": ["a", "b"], "val": []}, "f00d")
    train = load_codes(path, "train", "f00d")
    assert train.names == ["a", "b"] and len(train) == 2
    np.testing.assert_array_equal(train.clip(0), clips[0])
    np.testing.assert_array_equal(train.clip(1), clips[1])
    assert train.clip(0).dtype == np.int64
    assert len(load_codes(path, "val")) == 0
    assert not list(tmp_path.glob("*.tmp*"))  # written through a temporary file that was renamed
    with pytest.raises(DataError, match="different tokenizer"):
        load_codes(path, "train", "beef")
    with pytest.raises(DataError, match="no codes for split 'test'"):
        load_codes(path, "test")


def test_missing_file_says_what_to_run(tmp_path):
    with pytest.raises(DataError, match="get_motion_code.py"):
        load_codes(tmp_path / "none.npz", "train")
