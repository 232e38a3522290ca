"""Per-series, per-channel standardization fit on training rows only (as scikit-learn's
`StandardScaler`: population std, scale 1 for constant channels, and missing values (NaN) left
out of the statistics and passed through as NaN)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class StandardScaler:
    """Mean and scale per channel, `[C]`, fit once and applied everywhere."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, keep_last: int = 0) -> StandardScaler:
        """Fit on `values[T, C]` (the training rows); NaN (a missing value) counts in no
        statistic, and a channel with no other value raises (it has no scale). The last
        `keep_last` channels pass unscaled (calendar features: TSLib feeds them as they are)."""
        values = np.asarray(values, dtype=np.float64)
        empty = np.flatnonzero(np.isnan(values).all(axis=0)) if len(values) else []
        if len(empty):
            raise ValueError(f"Channel(s) {empty.tolist()} have no observed value in the rows the "
                             "scaling is fit on (a series' training part): there is nothing to "
                             "scale them by. Shorten the validation part or drop them.")
        mean = np.nanmean(values, axis=0)
        scale = np.nanstd(values, axis=0)
        scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))] = 1.0
        if keep_last:
            mean[-keep_last:], scale[-keep_last:] = 0.0, 1.0
        return cls(mean.astype(np.float64), scale.astype(np.float64))

    def transform(self, values: np.ndarray, channels: slice = slice(None)) -> np.ndarray:
        """Standardize `values[..., C']` whose channels are `channels` of the fitted ones."""
        values = np.asarray(values, dtype=np.float64)
        return ((values - self.mean[channels]) / self.scale[channels]).astype(np.float32)

    def inverse_transform(self, values: np.ndarray, channels: slice = slice(None)) -> np.ndarray:
        """Undo the scaling of `values[..., C']` whose channels are `channels` of the fitted ones."""
        return np.asarray(values, dtype=np.float64) * self.scale[channels] + self.mean[channels]
