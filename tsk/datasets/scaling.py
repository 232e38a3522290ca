"""Per-series, per-channel standardization fit on training rows only (as scikit-learn's
`StandardScaler`: population std, and scale 1 for constant channels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class StandardScaler:
    """Mean and scale per channel, `[C]`, fit once and applied everywhere."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> StandardScaler:
        """Fit on `values[T, C]` (the training rows)."""
        values = np.asarray(values, dtype=np.float64)
        mean = values.mean(axis=0)
        scale = values.std(axis=0)
        scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))] = 1.0
        return cls(mean.astype(np.float64), scale.astype(np.float64))

    def transform(self, values: np.ndarray, channels: slice = slice(None)) -> np.ndarray:
        """Standardize `values[..., C']` whose channels are `channels` of the fitted ones."""
        values = np.asarray(values, dtype=np.float64)
        return ((values - self.mean[channels]) / self.scale[channels]).astype(np.float32)

    def inverse_transform(self, values: np.ndarray, channels: slice = slice(None)) -> np.ndarray:
        """Undo the scaling of `values[..., C']` whose channels are `channels` of the fitted ones."""
        return np.asarray(values, dtype=np.float64) * self.scale[channels] + self.mean[channels]
