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
