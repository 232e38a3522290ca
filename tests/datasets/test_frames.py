"""Bad input gets a clear error, and nothing is lost."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_long, make_wide
from tsk.datasets.frames import future_index, infer_schema, to_series


def test_long_and_wide_layouts():
    long = make_long(n_series=2, length=30, exogenous=1)
    schema = infer_schema(long, ["x0"])
    assert schema.layout == "long" and schema.targets == ("y",) and schema.exogenous == ("x0",)
    series = to_series(long, schema)
    assert [s.uid for s in series] == ["s0", "s1"] and series[0].values.shape == (30, 2)
    wide = make_wide(length=20, channels=3)
    schema = infer_schema(wide)
    assert schema.layout == "wide" and schema.targets == ("c0", "c1", "c2")
    (one,) = to_series(wide, schema)
    assert one.values.shape == (20, 3) and one.freq == "15min"


def test_unsorted_rows_are_sorted_and_none_dropped():
    long = make_long(n_series=3, length=25)
    shuffled = long.sample(frac=1.0, random_state=0)
    schema = infer_schema(shuffled)
    series = to_series(shuffled, schema)
    assert sum(len(s) for s in series) == len(long)
    for s in series:
        expected = long[long.unique_id == s.uid]
        np.testing.assert_array_equal(s.values[:, 0], expected.y.to_numpy())
        assert s.ds.is_monotonic_increasing


def test_missing_columns():
    long = make_long().drop(columns="y")
    with pytest.raises(ValueError, match="'y' is missing"):
        infer_schema(long)
    with pytest.raises(ValueError, match="No 'ds' column.*rename it"):
        infer_schema(make_wide().rename(columns={"ds": "date"}))
    with pytest.raises(ValueError, match=r"Exogenous column\(s\) \['temp'\] are not in the data"):
        infer_schema(make_long(), ["temp"])


def test_extra_columns_are_not_silently_used():
    long = make_long(exogenous=1)
    with pytest.raises(ValueError, match=r"Unexpected column\(s\) \['x0'\].*exogenous=\['x0'\]"):
        infer_schema(long)


def test_non_datetime_ds():
    wide = make_wide()
    wide["ds"] = wide["ds"].astype(str)
    with pytest.raises(TypeError, match="pd.to_datetime"):
        to_series(wide, infer_schema(wide))


def test_duplicate_timestamps():
    long = make_long(n_series=2, length=20)
    dup = pd.concat([long, long.iloc[[5]]], ignore_index=True)
    with pytest.raises(ValueError, match="1 duplicate timestamp.*series 's0'"):
        to_series(dup, infer_schema(dup))


def test_missing_values_are_an_error_that_says_where():
    wide = make_wide()
    wide.loc[7, "c1"] = np.nan
    wide.loc[9, "c2"] = np.inf
    with pytest.raises(ValueError, match=r"2 missing or infinite value\(s\), e.g. row 7 .*'c1'"):
        to_series(wide, infer_schema(wide))


def test_short_series_are_listed():
    long = pd.concat([make_long(n_series=2, length=40), make_long(n_series=1, length=10, seed=1)
                      .assign(unique_id="tiny")])
    with pytest.raises(ValueError, match=r"1 series are shorter than the 20 rows.*'tiny' \(10 rows\)"):
        to_series(long, infer_schema(long), min_length=20)


def test_non_numeric_values():
    long = make_long()
    long["y"] = long["y"].astype(str)
    with pytest.raises(TypeError, match="'y' must be numeric"):
        to_series(long, infer_schema(long))


@pytest.mark.parametrize("unit", ["ns", "us"])  # pandas 3 parses text to microseconds
def test_irregular_index_warns_and_uses_the_common_step(unit):
    wide = make_wide(length=30, freq="h").drop(index=[10, 11])
    wide["ds"] = wide["ds"].astype(f"datetime64[{unit}]")
    with pytest.warns(UserWarning, match="irregular time steps"):
        (series,) = to_series(wide, infer_schema(wide))
    assert len(series) == 28
    future = future_index(series, 3)
    assert list(future) == list(pd.date_range(series.ds[-1], periods=4, freq="h")[1:])


def test_not_a_frame():
    with pytest.raises(TypeError, match="Expected a pandas DataFrame"):
        infer_schema(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="empty"):
        infer_schema(pd.DataFrame(columns=["ds", "a"]))
