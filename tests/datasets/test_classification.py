"""UCR/UEA classification loaders: the archive files agree with the reference `.npz` copies, and
the `.ts` parser keeps missing values, variable lengths and label strings, and names bad lines."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from tsk.datasets import (
    CLASSIFICATION_NAMES,
    ClassificationData,
    load_classification,
    read_ts,
    read_ucr_tsv,
)

EXPECTED = {  # name: (n_train, n_test, channels, length or None when variable)
    "ECG200": (100, 100, 1, 96),
    "GunPoint": (50, 150, 1, 150),
    "ItalyPowerDemand": (67, 1029, 1, 24),
    "ArrowHead": (36, 175, 1, 251),
    "BasicMotions": (40, 40, 6, 100),
    "JapaneseVowels": (270, 370, 12, None),
    "UWaveGestureLibrary": (120, 320, 3, 315),
}


def test_names_cover_the_shared_sets():
    assert set(CLASSIFICATION_NAMES) == set(EXPECTED)


@pytest.mark.parametrize("name", CLASSIFICATION_NAMES)
def test_matches_npz_copy(data_dir, name):
    data = load_classification(name, data_dir)
    ref = np.load(data_dir / "classification" / name / f"{name}.npz")
    n_train, n_test, channels, length = EXPECTED[name]
    assert isinstance(data, ClassificationData)
    assert data.name == name and data.n_channels == channels
    assert data.equal_length == (length is not None)
    for split, n in (("train", n_train), ("test", n_test)):
        X, y = getattr(data, f"X_{split}"), getattr(data, f"y_{split}")
        # labels stay the strings of the file, e.g. "-1" (ECG200), "1.0" (UWave), "Standing"
        assert y.dtype.kind == "U" and y.shape == (n,)
        np.testing.assert_array_equal(y, ref["class_names"][ref[f"y_{split}"]])
        if length is None:
            lengths = ref[f"len_{split}"]
            assert isinstance(X, list) and len(X) == n
            assert [s.shape for s in X] == [(channels, int(k)) for k in lengths]
            for series, padded, k in zip(X, ref[f"X_{split}"], lengths, strict=True):
                assert series.dtype == np.float32 and not np.isnan(series).any()
                np.testing.assert_allclose(series, padded[:, :k], rtol=1e-6, atol=0)
        else:
            assert isinstance(X, np.ndarray) and X.dtype == np.float32
            assert X.shape == (n, channels, length)
            np.testing.assert_allclose(X, ref[f"X_{split}"], rtol=1e-6, atol=0)
    np.testing.assert_array_equal(data.classes, np.unique(ref["class_names"]))


def test_japanese_vowels_lengths_vary(data_dir):
    data = load_classification("JapaneseVowels", data_dir)
    lengths = np.concatenate([data.lengths_train, data.lengths_test])
    assert lengths.min() == 7 and lengths.max() == 29
    assert "length=7-29" in repr(data)


def test_root_defaults_to_env(data_dir, monkeypatch):
    monkeypatch.setenv("TSK_DATA_DIR", str(data_dir))
    data = load_classification("ItalyPowerDemand")
    assert data.X_train.shape == (67, 1, 24)


def test_uncompressed_files(data_dir, tmp_path):
    # .ts (GunPoint) and .tsv (ECG200) without .gz load the same as the gzipped originals
    for name, ext in (("GunPoint", "ts"), ("ECG200", "tsv")):
        folder = tmp_path / "classification" / name
        folder.mkdir(parents=True)
        for split in ("TRAIN", "TEST"):
            with gzip.open(data_dir / "classification" / name / f"{name}_{split}.{ext}.gz", "rb") as src, \
                    open(folder / f"{name}_{split}.{ext}", "wb") as dst:
                shutil.copyfileobj(src, dst)
        plain, packed = load_classification(name, tmp_path), load_classification(name, data_dir)
        np.testing.assert_array_equal(plain.X_train, packed.X_train)
        np.testing.assert_array_equal(plain.X_test, packed.X_test)
        np.testing.assert_array_equal(plain.y_test, packed.y_test)


def test_missing_dataset_names_path_and_source(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_classification("GunPoint", tmp_path)
    message = str(err.value)
    assert str(tmp_path / "classification" / "GunPoint" / "GunPoint_TRAIN.ts") in message
    assert "timeseriesclassification.com/description.php?Dataset=GunPoint" in message
    assert "cs.ucr.edu" in message


def test_unknown_name_lists_known(tmp_path):
    with pytest.raises(ValueError, match="Known: .*GunPoint") as err:
        load_classification("GunPont", tmp_path)
    assert "Did you mean 'GunPoint'" in str(err.value)
    with pytest.raises(ValueError, match="Unknown"):
        load_classification("../forecasting", tmp_path)


def test_unlisted_dataset_in_folder_loads(tmp_path):
    folder = tmp_path / "classification" / "Mine"
    folder.mkdir(parents=True)
    (folder / "Mine_TRAIN.tsv").write_text("a\t1\t2\nb\t3\t4\n")
    (folder / "Mine_TEST.tsv").write_text("b\t5\t6\n")
    data = load_classification("Mine", tmp_path)
    np.testing.assert_array_equal(data.X_test, [[[5, 6]]])
    assert list(data.y_train) == ["a", "b"] and data.n_channels == 1 and data.equal_length


TINY_TS = """# a comment before the header
@problemName Tiny
@TimeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@ClassLabel true up down

@DATA
1,2,3:4,5,6:up
# a comment between series
7,?,9,10:11,12,NaN,14:down
0.5:1e-3:up
"""


def write(tmp_path, text, name="tiny.ts"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_ts_variable_length_and_missing(tmp_path):
    X, y = read_ts(write(tmp_path, TINY_TS))
    assert list(y) == ["up", "down", "up"]
    assert isinstance(X, list) and [s.shape for s in X] == [(2, 3), (2, 4), (2, 1)]
    assert all(s.dtype == np.float32 for s in X)
    np.testing.assert_array_equal(X[0], [[1, 2, 3], [4, 5, 6]])
    # "?" and "NaN" stay missing, at their place, nothing dropped or filled
    np.testing.assert_array_equal(X[1], [[7, np.nan, 9, 10], [11, 12, np.nan, 14]])
    np.testing.assert_allclose(X[2], [[0.5], [1e-3]])


def test_read_ts_equal_length_gives_array_and_crlf(tmp_path):
    text = "@classLabel true 1.0 2.0\r\n@data\r\n1,2:3,4:1.0\r\n5,6:7,8:2.0\r\n"
    path = tmp_path / "crlf.ts"
    path.write_bytes(text.encode())
    X, y = read_ts(path)
    assert isinstance(X, np.ndarray) and X.dtype == np.float32 and X.shape == (2, 2, 2)
    assert list(y) == ["1.0", "2.0"]  # not 1, not "1.0\r"


def test_read_ts_gz(tmp_path):
    path = tmp_path / "tiny.ts.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(TINY_TS)
    X, y = read_ts(path)
    assert len(X) == 3 and list(y) == ["up", "down", "up"]


@pytest.mark.parametrize(("body", "match"), [
    ("1,2:3,4:up\n5,6:down\n", r"line 4: 1 channels, expected 2 \(as on line 3\)"),
    ("1,2:3,x4:up\n", r"line 3: value 2 is not a number: 'x4'"),
    ("1,2:3,4:up\n1,,2:3,4,5:down\n", r"line 4: value 2 is not a number: ''"),
    ("1,2:3,4,5:up\n", r"line 3: channels have different lengths \[2, 3\]"),
    ("1,2:3,4:sideways\n", r"line 3: label 'sideways' is not among"),
])
def test_read_ts_errors_name_file_and_line(tmp_path, body, match):
    path = write(tmp_path, "@classLabel true up down\n@data\n" + body, name="bad.ts")
    with pytest.raises(ValueError, match=match) as err:
        read_ts(path)
    assert str(path) in str(err.value)


def test_read_ts_header_checks(tmp_path):
    with pytest.raises(ValueError, match="line 4: 2 channels, but the header declares 3"):
        read_ts(write(tmp_path, "@dimensions 3\n@classLabel true a\n@data\n1:2:a\n"))
    with pytest.raises(ValueError, match="line 3: 2 channels, but the header declares 1"):
        read_ts(write(tmp_path, "@univariate true\n@data\n1:2:a\n"))
    with pytest.raises(ValueError, match="line 4: length 3, but @equalLength true"):
        read_ts(write(tmp_path, "@equalLength true\n@data\n1,2:a\n1,2,3:a\n"))
    with pytest.raises(ValueError, match="no @data line"):
        read_ts(write(tmp_path, "@classLabel true a\n"))
    with pytest.raises(ValueError, match="timeStamps true"):
        read_ts(write(tmp_path, "@timeStamps true\n@data\n(0,1):a\n"))


def test_read_ts_unlabelled(tmp_path):
    X, y = read_ts(write(tmp_path, "@classLabel false\n@data\n1,2:3,4\n"))
    assert y is None and X.shape == (1, 2, 2)


def test_read_ucr_tsv(tmp_path):
    # trailing NaN is the 2018 archive's padding of variable-length sets; inner NaN is missing data
    path = write(tmp_path, "-1\t1.5\t2\t3\n1\t4\tNaN\t6\n2\t7\t8\tNaN\n", name="tiny.tsv")
    X, y = read_ucr_tsv(path)
    assert list(y) == ["-1", "1", "2"]
    assert [s.shape for s in X] == [(1, 3), (1, 3), (1, 2)]
    np.testing.assert_array_equal(X[1], [[4, np.nan, 6]])
    X, _ = read_ucr_tsv(path, strip_trailing_nan=False)
    assert isinstance(X, np.ndarray) and X.shape == (3, 1, 3) and np.isnan(X[2, 0, 2])
    with pytest.raises(ValueError, match=r"tiny2.tsv, line 2: value 1 is not a number"):
        read_ucr_tsv(write(tmp_path, "1\t2\n1\tabc\n", name="tiny2.tsv"))
