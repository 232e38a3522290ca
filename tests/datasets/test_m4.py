"""The M4 loader: the real Hourly and Weekly files (ids, lengths, values read off the CSVs), the
synthetic timestamps (test continues train; the Forecaster's frequency inference reads them),
and clear errors for unknown groups, missing files and malformed rows."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from tsk.datasets import M4Data, load_m4
from tsk.datasets.frames import infer_schema, to_series
from tsk.datasets.m4 import TRAIN_END


@pytest.fixture(scope="module")
def m4_root(data_dir):
    if not (data_dir / "forecasting" / "m4").is_dir():
        pytest.skip(f"M4 files not found under {data_dir / 'forecasting' / 'm4'}")
    return data_dir


# group, series, horizon, m, train lengths, frequency, (first id's first two train values, first
# test value), as in the CSVs
GROUPS = [
    ("Hourly", 414, 48, 24, (700, 960), "h", (605.0, 586.0, 619.0)),
    ("Weekly", 359, 13, 1, (80, 2597), "W-SUN", (1089.2, 1078.91, 35397.16)),
]


@pytest.mark.parametrize(("group", "n", "horizon", "season", "lengths", "freq", "values"), GROUPS)
def test_shapes_ids_and_values(m4_root, group, n, horizon, season, lengths, freq, values):
    data = load_m4(group, m4_root)
    assert isinstance(data, M4Data)
    assert (data.group, data.horizon, data.seasonality, data.freq) == (group, horizon, season, freq)
    assert data.ids == tuple(f"{group[0]}{i}" for i in range(1, n + 1))
    assert data.n_series == len(data.insample) == n
    assert (min(map(len, data.insample)), max(map(len, data.insample))) == lengths
    assert data.outsample.shape == (n, horizon)
    assert (data.insample[0][0], data.insample[0][1], data.outsample[0, 0]) == values
    assert all(np.isfinite(x).all() for x in data.insample) and np.isfinite(data.outsample).all()
    with pytest.raises(ValueError, match="read-only"):
        data.outsample[0, 0] = 0.0
    assert load_m4(group.lower(), m4_root).group == group


@pytest.mark.parametrize(("group", "n", "horizon", "season", "lengths", "freq", "values"), GROUPS)
def test_long_frames_test_continues_train(m4_root, group, n, horizon, season, lengths, freq,
                                          values):
    data = load_m4(group, m4_root)
    train, test = data.train, data.test
    assert list(train.columns) == list(test.columns) == ["unique_id", "ds", "y"]
    assert len(train) == sum(map(len, data.insample)) and len(test) == n * horizon
    step = pd.tseries.frequencies.to_offset(freq)
    last = train.groupby("unique_id", sort=False).ds.max()
    first = test.groupby("unique_id", sort=False).ds.min()
    assert (last == TRAIN_END).all()
    assert (first == TRAIN_END + step).all()
    assert list(first.index) == list(data.ids)  # file order kept
    # the values, series by series, in time order
    h1 = train[train.unique_id == data.ids[0]]
    np.testing.assert_array_equal(h1.y.to_numpy(), data.insample[0])
    np.testing.assert_array_equal(test.y.to_numpy().reshape(n, horizon), data.outsample)
    # the Forecaster's own parsing finds one regular frequency for every series
    schema = infer_schema(train)
    series = to_series(train, schema)
    assert {s.freq for s in series} == {freq}
    assert {s.freq for s in to_series(test, schema)} == {freq}


def test_unknown_and_unsupported_groups(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown M4 group 'Minutely'.*Hourly, Weekly.*Yearly"):
        load_m4("Minutely", tmp_path)
    with pytest.raises(ValueError, match="M4 Monthly is not supported.*Hourly, Weekly"):
        load_m4("Monthly", tmp_path)


def test_missing_files_name_the_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="Weekly-train.csv not found.*Mcompetitions/M4-methods"):
        load_m4("Weekly", tmp_path)


def write_m4(folder, name, rows, gz=False):
    """An M4-style wide CSV: all fields quoted, padded with empty fields."""
    width = max(len(r) for r in rows)
    lines = [",".join(f'"V{i}"' for i in range(1, width + 1))]
    lines += [",".join(f'"{v}"' for v in [*r, *[""] * (width - len(r))]) for r in rows]
    text = "\n".join(lines) + "\n"
    path = folder / (name + (".gz" if gz else ""))
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def write_weekly(folder, train_rows, test_rows):
    write_m4(folder, "Weekly-train.csv", train_rows, gz=True)
    write_m4(folder, "Weekly-test.csv", test_rows)


def test_small_files_and_their_frames(tmp_path):
    write_weekly(tmp_path, [["W1", 1, 2, 3], ["W2", 5, 6]], [["W1", *range(4, 17)],
                                                          ["W2", *range(7, 20)]])
    data = load_m4("Weekly", tmp_path)
    np.testing.assert_array_equal(data.insample[1], [5.0, 6.0])
    assert data.train.ds.tolist()[:3] == [TRAIN_END - pd.Timedelta(weeks=2),
                                          TRAIN_END - pd.Timedelta(weeks=1), TRAIN_END]
    assert data.test.ds.iloc[0] == TRAIN_END + pd.Timedelta(weeks=1)


@pytest.mark.parametrize(("train", "test", "message"), [
    ([["W1", 1, "", 3]], [["W1", *range(13)]], r"missing or non-finite value.*position 2"),
    ([["W1", 1, "x", 3]], [["W1", *range(13)]], "non-numeric"),
    ([["W1", 1, "nan"]], [["W1", *range(13)]], "non-finite"),
    ([["W1"], ["W2", 1]], [["W1", *range(13)], ["W2", *range(13)]], "'W1' has no values"),
    ([["W1", 1, 2]], [["W1", *range(12)]], "needs 13 test values"),
    ([["W1", 1], ["W2", 1]], [["W2", *range(13)], ["W1", *range(13)]],
     "same series in the same order"),
])
def test_malformed_files_raise(tmp_path, train, test, message):
    write_weekly(tmp_path, train, test)
    with pytest.raises(ValueError, match=message):
        load_m4("Weekly", tmp_path)
