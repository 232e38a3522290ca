"""The TSLib ETT protocol: borders, window counts, scaler fit on train rows only."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler as SkStandardScaler

from tsk.datasets import ETT_NAMES, load_csv, load_dataset, load_ett
from tsk.datasets.scaling import StandardScaler
from tsk.datasets.windows import WindowDataset


@pytest.mark.parametrize("name", ETT_NAMES)
def test_borders_match_tslib(data_dir, name):
    split = load_ett(name, data_dir)
    scale = 4 if name.startswith("ETTm") else 1
    assert (split.train_end, split.val_end, split.test_end) == (8640 * scale, 11520 * scale,
                                                                14400 * scale)
    border1s, border2s = split.borders(96)
    # Time-Series-Library's Dataset_ETT_hour / Dataset_ETT_minute for seq_len=96
    assert border1s == [0, 12 * 30 * 24 * scale - 96, (12 + 4) * 30 * 24 * scale - 96]
    assert border2s == [12 * 30 * 24 * scale, (12 + 4) * 30 * 24 * scale, (12 + 8) * 30 * 24 * scale]
    assert len(split.frame) == 17420 * scale
    assert list(split.frame.columns) == ["ds", "HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]


@pytest.mark.parametrize(("name", "expected"), [
    ("ETTh1", {96: 2785, 192: 2689, 336: 2545, 720: 2161}),
    ("ETTm1", {96: 11425, 192: 11329, 336: 11185, 720: 10801}),
])
def test_every_test_window_is_kept(data_dir, name, expected):
    split = load_ett(name, data_dir)
    for lookback in (96, 336):
        test = split.test(lookback)
        for horizon, n in expected.items():
            assert split.n_windows("test", lookback, horizon) == n
            windows = WindowDataset([test.iloc[:, 1:].to_numpy()], lookback, horizon, 7, False)
            assert len(windows) == n
            window = windows[n - 1]
            x, y = window["inputs"], window["targets"]
            assert x.shape == (lookback, 7) and y.shape == (horizon, 7)
            np.testing.assert_allclose(y[-1].numpy(), test.iloc[-1, 1:].to_numpy(np.float32))


def test_scaler_matches_sklearn_on_train_rows(data_dir):
    split = load_ett("ETTh1", data_dir)
    train = split.train().iloc[:, 1:].to_numpy()
    ours = StandardScaler.fit(train)
    theirs = SkStandardScaler().fit(train)
    np.testing.assert_allclose(ours.mean, theirs.mean_)
    np.testing.assert_allclose(ours.scale, theirs.scale_)
    values = split.test(96).iloc[:, 1:].to_numpy()
    np.testing.assert_allclose(ours.transform(values), theirs.transform(values), rtol=1e-5, atol=1e-5)


def test_custom_split_is_70_10_20(data_dir):
    split = load_csv("exchange_rate", data_dir)
    n = len(split.frame)
    assert n == 7588
    assert split.train_end == int(0.7 * n) and split.test_end - split.val_end == int(0.2 * n)
    assert split.frame.columns[-1] == "OT"
    ili = load_dataset("ili", data_dir)
    assert len(ili.frame) == 966 and ili.train_end == 676


def test_ratio_protocol(data_dir):
    split = load_ett("ETTh1", data_dir, protocol="ratio")
    assert (split.train_end, split.val_end, split.test_end) == (10452, 13936, 17420)
    assert list(split.univariate().frame.columns) == ["ds", "OT"]


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ETTh1\.csv.*github\.com/zhouhaoyi/ETDataset"):
        load_ett("ETTh1", tmp_path)


def test_plain_csv_reads_like_gz(data_dir, tmp_path):
    import gzip
    import shutil

    with gzip.open(data_dir / "forecasting/ETT-small/ETTh2.csv.gz", "rb") as src, \
            open(tmp_path / "ETTh2.csv", "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain = load_ett("ETTh2", tmp_path)
    packed = load_ett("ETTh2", data_dir)
    assert plain.frame.equals(packed.frame)


def test_unknown_names_suggest_the_closest(data_dir):
    with pytest.raises(ValueError, match="Did you mean 'ETTh1'"):
        load_ett("ETTh_1", data_dir)
    with pytest.raises(ValueError, match="Did you mean 'exchange_rate'"):
        load_dataset("exchange_rat", data_dir)
