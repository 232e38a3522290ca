"""Calendar features: GluonTS's set for the data's frequency, each in [-0.5, 0.5]."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsk.datasets.calendar import season_length, time_feature_names, time_features, with_time_features
from tsk.datasets.frames import Series


def test_hourly_features_match_their_definitions():
    index = pd.date_range("2024-03-01 00:00", periods=24 * 9, freq="h")
    assert time_feature_names("h") == ["hour_of_day", "day_of_week", "day_of_month", "day_of_year"]
    features = time_features(index, "h")
    assert features.shape == (len(index), 4)
    expected = np.stack([
        index.hour / 23 - 0.5, index.dayofweek / 6 - 0.5, (index.day - 1) / 30 - 0.5,
        (index.dayofyear - 1) / 365 - 0.5,
    ], axis=1)
    np.testing.assert_allclose(features, expected, atol=1e-12)
    assert features.min() >= -0.5 and features.max() <= 0.5


def test_the_set_follows_the_frequency():
    assert time_feature_names("15min")[0] == "minute_of_hour"
    assert len(time_feature_names("15min")) == 5 and len(time_feature_names("D")) == 3


def test_appended_after_the_series_columns():
    index = pd.date_range("2024-01-01", periods=5, freq="h")
    series = Series("a", index, np.arange(10.0).reshape(5, 2), "h")
    out = with_time_features(series, "h")
    assert out.values.shape == (5, 6) and out.uid == "a" and out.ds.equals(index)
    np.testing.assert_array_equal(out.values[:, :2], series.values)
    np.testing.assert_allclose(out.values[:, 2], index.hour / 23 - 0.5)


@pytest.mark.parametrize(("freq", "season"), [
    ("h", 24), ("15min", 96), ("10min", 144), ("2h", 12), ("7min", 1), ("D", 7), ("B", 5),
    ("W", 52), ("W-MON", 52), ("MS", 12), ("ME", 12), ("BMS", 12), ("QS", 4), ("YS", 1),
    ("2D", 1),
])
def test_season_length_is_a_day_within_a_day_and_the_calendar_beyond(freq, season):
    assert season_length(freq) == season
