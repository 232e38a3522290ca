"""Metrics: forecasts (MSE/MAE, the TSLib benchmark's, on scaled data, and GluonTS's MASE/sMAPE)
and classification (scikit-learn's accuracy, balanced accuracy, macro F1, log-loss, confusion
matrix)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as sk_metrics


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
    from gluonts.evaluation import metrics as gluonts_metrics
    from gluonts.time_feature import get_seasonality

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


def classification_scores(truth: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro F1, log-loss and the confusion matrix (rows: true,
    columns: predicted, in the order of `classes`) of probabilities `proba[n, n_classes]`."""
    predicted = classes[proba.argmax(1)]
    labels = list(classes)
    return {
        "accuracy": float(sk_metrics.accuracy_score(truth, predicted)),
        "balanced_accuracy": float(sk_metrics.balanced_accuracy_score(truth, predicted)),
        "f1_macro": float(sk_metrics.f1_score(truth, predicted, labels=labels, average="macro",
                                              zero_division=0)),
        "log_loss": float(sk_metrics.log_loss(truth, proba, labels=labels)),
        "confusion_matrix": sk_metrics.confusion_matrix(truth, predicted, labels=labels).tolist(),
        "n": len(truth),
    }
