"""Calendar features of a series' timestamps, used as past covariates (TSLib's `timeF` inputs).

They are GluonTS's `time_features_from_frequency_str`: the features that vary at the data's
frequency (hourly data: hour of day, day of week, day of month, day of year), each scaled to
[-0.5, 0.5]. TSLib's time-feature encoding is the same set, and TPGN's authors feed it to their
network next to every variate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from gluonts.time_feature import time_features_from_frequency_str

from tsk.datasets.frames import Series


def time_feature_names(freq: str) -> list[str]:
    """The features made for data of frequency `freq` (a pandas offset alias), in order."""
    return [feature.__name__ for feature in time_features_from_frequency_str(freq)]


def time_features(index: pd.DatetimeIndex, freq: str) -> np.ndarray:
    """`[len(index), F]` calendar features of `index` for data of frequency `freq`."""
    features = time_features_from_frequency_str(freq)
    return np.stack([np.asarray(feature(index), dtype=np.float64) for feature in features], axis=1)


def with_time_features(series: Series, freq: str) -> Series:
    """`series` with the calendar features of its timestamps appended after its columns."""
    values = np.concatenate([series.values, time_features(series.ds, freq)], axis=1)
    return Series(series.uid, series.ds, values, series.freq)


SEASONS = {"D": 7, "B": 5, "W": 52, "M": 12, "Q": 4, "Y": 1}
"""Steps per season of data at a daily or longer step (its offset's base alias): a week of days
(5 business days), a year of weeks, months or quarters; a year has none longer."""


def season_length(freq: str) -> int:
    """The seasonal period, in steps, of data of frequency `freq` (a pandas offset alias): a
    day for data stepping within a day (24 hourly, 96 every 15 minutes, 144 every 10), and for
    longer steps `SEASONS` (a multiple step, e.g. '2D', divides it where it can). 1: none."""
    offset = pd.tseries.frequencies.to_offset(freq)
    day = pd.Timedelta(days=1)
    try:
        step = pd.Timedelta(offset)
    except ValueError:  # calendar offsets (months, weeks anchored on a day) have no fixed length
        step = None
    if step is not None and step < day:
        return max(1, day // step) if day % step == pd.Timedelta(0) else 1
    alias = offset.name.split("-")[0]  # 'W-SUN' -> 'W'; 'BMS' (business month start) -> 'M'
    if len(alias) > 1 and alias[0] in "BC":
        alias = alias[1:]
    season = SEASONS.get("B" if alias in ("B", "C") else alias[0], 1)
    n = getattr(offset, "n", 1)
    return season // n if n > 0 and season % n == 0 else 1
