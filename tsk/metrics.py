"""Metrics: forecasts (MSE/MAE, the TSLib benchmark's, on scaled data, and GluonTS's MASE/sMAPE),
classification (scikit-learn's accuracy, balanced accuracy, macro F1, log-loss, confusion
matrix), speech quality (SI-SNR; PESQ and STOI through their reference packages) and predicted
video frames (per-frame MSE, PSNR and SSIM through torchmetrics)."""

from __future__ import annotations

import warnings
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
    if not mases:
        warnings.warn("MASE is undefined here (NaN): every window's history is constant, so its "
                      "seasonal naive error, MASE's denominator, is 0.", stacklevel=2)
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


def _audio_pair(reference: Any, estimate: Any) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape or reference.ndim not in (1, 2) or reference.shape[-1] == 0:
        raise ValueError(f"reference and estimate must be waveforms of one shape, [samples] or "
                         f"[clips, samples]; got {reference.shape} and {estimate.shape}.")
    return reference, estimate


def si_snr(reference: Any, estimate: Any) -> float | np.ndarray:
    """Scale-invariant signal-to-noise ratio (dB) of `estimate` against `reference` (Le Roux et
    al. 2019): both centred, the estimate split into its projection on the reference (target)
    and the rest (noise), `10 log10(|target|^2 / |noise|^2)`. `[samples]` -> a float;
    `[clips, samples]` -> one value per clip."""
    reference, estimate = _audio_pair(reference, estimate)
    reference = reference - reference.mean(-1, keepdims=True)
    estimate = estimate - estimate.mean(-1, keepdims=True)
    eps = np.finfo(np.float64).eps
    scale = (estimate * reference).sum(-1, keepdims=True) / ((reference**2).sum(-1, keepdims=True) + eps)
    target = scale * reference
    noise = estimate - target
    value = 10 * np.log10(((target**2).sum(-1) + eps) / ((noise**2).sum(-1) + eps))
    return float(value) if value.ndim == 0 else value


def pesq(reference: Any, degraded: Any, sample_rate: int, mode: str = "wb") -> float:
    """PESQ (ITU-T P.862; mode "nb" narrow-band at 8 or 16 kHz, "wb" wide-band P.862.2 at
    16 kHz) of `degraded` against the clean `reference`, both `[samples]`, from the `pesq`
    package (the ITU reference C code)."""
    from tsk._extras import require

    package = require("pesq", "speech", feature="PESQ")
    reference, degraded = _audio_pair(reference, degraded)
    if reference.ndim != 1:
        raise ValueError("pesq scores one clip at a time: pass [samples] arrays.")
    if mode not in ("nb", "wb"):
        raise ValueError(f"mode must be 'nb' or 'wb', got {mode!r}.")
    allowed = (8000, 16000) if mode == "nb" else (16000,)
    if sample_rate not in allowed:
        raise ValueError(f"PESQ {mode!r} needs audio at {' or '.join(map(str, allowed))} Hz, got "
                         f"{sample_rate}: resample first (tsk.datasets.audio.resample).")
    return float(package.pesq(sample_rate, reference, degraded, mode))


def stoi(reference: Any, degraded: Any, sample_rate: int, extended: bool = False) -> float:
    """Short-time objective intelligibility (Taal et al. 2011; `extended`: ESTOI) of `degraded`
    against the clean `reference`, both `[samples]`, from the `pystoi` package (which resamples
    to 10 kHz itself)."""
    from tsk._extras import require

    package = require("pystoi", "speech", feature="STOI")
    reference, degraded = _audio_pair(reference, degraded)
    if reference.ndim != 1:
        raise ValueError("stoi scores one clip at a time: pass [samples] arrays.")
    return float(package.stoi(reference, degraded, sample_rate, extended=extended))


def video_scores(target: np.ndarray, prediction: np.ndarray) -> dict[str, Any]:
    """Per-frame scores of predicted frames, the video-prediction literature's: `target` and
    `prediction` `[n, T, C, H, W]` scaled to [0, 1]. MSE is a frame's squared error summed over
    its pixels and channels (Moving MNIST's convention), PSNR and SSIM (torchmetrics; Gaussian
    11x11 window, sigma 1.5) per frame with a data range of 1. Returns the means over every
    frame (`mse`, `psnr`, `ssim`) and the curves over the T steps (`*_per_step`, lists)."""
    import torch
    from torchmetrics.functional.image import (
        peak_signal_noise_ratio,
        structural_similarity_index_measure,
    )

    if np.shape(target) != np.shape(prediction) or np.ndim(target) != 5:
        raise ValueError(f"target and prediction must be equal [n, T, C, H, W] arrays, got "
                         f"{np.shape(target)} and {np.shape(prediction)}.")
    true = torch.as_tensor(np.asarray(target, np.float32))
    pred = torch.as_tensor(np.asarray(prediction, np.float32))
    n, steps = true.shape[:2]
    frames_true, frames_pred = true.flatten(0, 1), pred.flatten(0, 1)
    mse_frames = (frames_true - frames_pred).square().flatten(1).sum(1)
    psnr = peak_signal_noise_ratio(frames_pred, frames_true, data_range=1.0, reduction="none",
                                   dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(frames_pred, frames_true, data_range=1.0,
                                               reduction="none")
    scores: dict[str, Any] = {}
    for name, values in (("mse", mse_frames), ("psnr", psnr), ("ssim", ssim)):
        per_step = values.reshape(n, steps).double().mean(0)
        scores[name] = float(per_step.mean())
        scores[f"{name}_per_step"] = per_step.tolist()
    return scores
