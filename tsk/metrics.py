"""Forecast metrics: MSE/MAE (the TSLib benchmark's, on scaled data) and GluonTS's MASE/sMAPE."""

from __future__ import annotations

import numpy as np
from gluonts.evaluation import metrics as gluonts_metrics
from gluonts.time_feature import get_seasonality


def mse(target: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean((np.asarray(target, np.float64) - forecast) ** 2))


def mae(target: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(target, np.float64) - forecast)))


def gluonts_scores(
    history: np.ndarray, target: np.ndarray, forecast: np.ndarray, freq: str
) -> dict[str, float]:
    """Mean MASE and sMAPE over windows with GluonTS's own metric functions.

    `history[W, L, C]`, `target[W, H, C]`, `forecast[W, H, C]`, all in the original scale; the
    MASE denominator is the seasonal naive error on each window's history, as in GluonTS.
    """
    season = get_seasonality(freq)
    mases, smapes = [], []
    for w in range(target.shape[0]):
        for c in range(target.shape[2]):
            past = history[w, :, c]
            seasonal_error = gluonts_metrics.calculate_seasonal_error(past, freq, season)
            if seasonal_error > 0:
                mases.append(gluonts_metrics.mase(target[w, :, c], forecast[w, :, c], seasonal_error))
            smapes.append(gluonts_metrics.smape(target[w, :, c], forecast[w, :, c]))
    return {"mase": float(np.mean(mases)) if mases else float("nan"),
            "smape": float(np.nanmean(smapes))}
