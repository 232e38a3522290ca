"""Metrics: forecasts (MSE/MAE, the TSLib benchmark's, on scaled data, GluonTS's MASE/sMAPE, and
the M4 competition's sMAPE/MASE/OWA with its Naive2 benchmark), prediction intervals (coverage,
the interval score), probabilistic forecasts (the pinball loss, GluonTS's weighted quantile loss,
the CRPS of quantiles, normal and Student's t forecasts),
classification (scikit-learn's accuracy, balanced accuracy, macro F1, log-loss, confusion
matrix), speech quality (SI-SNR; PESQ and STOI through their reference packages) and predicted
video frames (per-frame MSE, PSNR and SSIM through torchmetrics)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn import metrics as sk_metrics

from tsk.conformal import check_levels


def mse(target: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean((np.asarray(target, np.float64) - forecast) ** 2))


def mae(target: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(target, np.float64) - forecast)))


def _interval_arrays(target: Any, lower: Any, upper: Any) -> tuple[np.ndarray, ...]:
    """`target`, `lower` and `upper` as float arrays of one shape, the target with no NaN."""
    arrays = tuple(np.asarray(a, dtype=np.float64) for a in (target, lower, upper))
    if not arrays[0].shape == arrays[1].shape == arrays[2].shape or arrays[0].size == 0:
        raise ValueError(f"target, lower and upper must be non-empty arrays of one shape, got "
                         f"{[a.shape for a in arrays]}.")
    if np.isnan(arrays[0]).any():
        raise ValueError("target has missing values (NaN): leave them out first (e.g. "
                         "target[observed]), as they are neither inside nor outside an interval.")
    return arrays


def coverage(target: Any, lower: Any, upper: Any) -> float:
    """Empirical coverage of prediction intervals: the share of `target` values inside
    `[lower, upper]` (bounds included). A calibrated 80% interval covers about 0.8."""
    target, lower, upper = _interval_arrays(target, lower, upper)
    return float(np.mean((lower <= target) & (target <= upper)))


def interval_score(target: Any, lower: Any, upper: Any, level: float) -> float:
    """Mean interval score of central prediction intervals at `level` percent (Winkler 1972;
    Gneiting and Raftery 2007, "Strictly proper scoring rules, prediction, and estimation",
    JASA 102(477), eq. 43): with `alpha = 1 - level / 100`, each value scores the interval's
    width plus `2 / alpha` times how far the target falls outside it,
    `(u - l) + 2/alpha (l - y) 1[y < l] + 2/alpha (y - u) 1[y > u]`. Lower is better, in the
    units of `target`; it rewards narrow intervals only while they cover. (M4's MSIS is this
    score divided by the series' in-sample seasonal-naive MAE.)"""
    levels = check_levels(level)
    if len(levels) != 1:
        raise ValueError(f"interval_score scores intervals of one level, got {level!r}: call it "
                         "once per level.")
    level = levels[0]
    target, lower, upper = _interval_arrays(target, lower, upper)
    alpha = 1.0 - level / 100.0
    below = np.clip(lower - target, 0.0, None)
    above = np.clip(target - upper, 0.0, None)
    return float(np.mean((upper - lower) + 2.0 / alpha * (below + above)))


# ---- probabilistic forecasts: quantiles and distributions -------------------------------------
def _quantile_arrays(target: Any, forecasts: Any, quantiles: Any) -> tuple[np.ndarray, ...]:
    """`target [...]`, `forecasts [..., Q]` and `quantiles [Q]` as float arrays, checked."""
    target = np.asarray(target, dtype=np.float64)
    forecasts = np.asarray(forecasts, dtype=np.float64)
    quantiles = np.atleast_1d(np.asarray(quantiles, dtype=np.float64))
    if quantiles.ndim != 1 or not ((quantiles > 0) & (quantiles < 1)).all():
        raise ValueError(f"quantiles must be probabilities strictly between 0 and 1, got "
                         f"{quantiles.tolist()}.")
    if forecasts.shape != (*target.shape, len(quantiles)) or target.size == 0:
        raise ValueError(f"forecasts must hold one value per target value and quantile, "
                         f"{(*target.shape, len(quantiles))}, got {forecasts.shape} (target "
                         f"{target.shape}, {len(quantiles)} quantiles).")
    _check_observed(target)
    return target, forecasts, quantiles


def _check_observed(target: np.ndarray) -> None:
    if np.isnan(target).any():
        raise ValueError("target has missing values (NaN): leave them out first (e.g. "
                         "target[observed]); a forecast cannot be scored against them.")


def _pinball(target: np.ndarray, forecasts: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Each value's pinball loss at each quantile, `[..., Q]`."""
    errors = target[..., None] - forecasts
    return np.maximum(quantiles * errors, (quantiles - 1.0) * errors)


def pinball_loss(target: Any, forecast: Any, quantile: float) -> float:
    """Mean pinball (quantile) loss of `forecast` as the `quantile`-quantile of `target`
    (Koenker and Bassett 1978): `q (y - f)` where the value is above the forecast,
    `(1 - q) (f - y)` where below. Its expectation is smallest at the true q-quantile; at
    q = 0.5 it is half the absolute error."""
    forecasts = np.asarray(forecast, dtype=np.float64)[..., None]
    target, forecasts, quantiles = _quantile_arrays(target, forecasts, [quantile])
    return float(_pinball(target, forecasts, quantiles).mean())


def weighted_quantile_loss(target: Any, forecasts: Any, quantiles: Any) -> float:
    """Mean weighted quantile loss (GluonTS's `mean_wQuantileLoss`; Salinas et al. 2020,
    DeepAR): for each quantile q, `2 * sum |pinball_q(y, f_q)| / sum |y|` over all values,
    then the mean over the quantiles. `forecasts[..., Q]` are the quantile forecasts of
    `target [...]`. Scale-free (relative to the values' absolute sum), lower is better; NaN,
    with a warning, where every value is 0."""
    target, forecasts, quantiles = _quantile_arrays(target, forecasts, quantiles)
    denominator = np.abs(target).sum()
    if denominator == 0:
        warnings.warn("The weighted quantile loss is undefined here (NaN): every target value "
                      "is 0, so its denominator, sum |y|, is 0.", stacklevel=2)
        return float("nan")
    losses = 2.0 * _pinball(target, forecasts, quantiles).reshape(-1, len(quantiles)).sum(0)
    return float(np.mean(losses / denominator))


def crps_quantiles(target: Any, forecasts: Any, quantiles: Any) -> float:
    """The CRPS approximated from quantile forecasts: twice the pinball loss averaged over the
    quantiles and values. The CRPS is the integral over q in (0, 1) of twice the pinball loss
    of the q-quantile (Laio and Tamea 2007; Gneiting and Ranjan 2011), so on an even grid this
    is its midpoint rule; on a coarse grid (0.1, 0.5, 0.9) a rough estimate that ignores the
    tails. For a point forecast (one quantile, 0.5) it is the MAE."""
    target, forecasts, quantiles = _quantile_arrays(target, forecasts, quantiles)
    return float(2.0 * _pinball(target, forecasts, quantiles).mean())


def _distribution_arrays(target: Any, *params: Any) -> tuple[np.ndarray, ...]:
    arrays = tuple(np.asarray(a, dtype=np.float64) for a in (target, *params))
    try:
        shapes = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        shapes = None
    if shapes != arrays[0].shape or arrays[0].size == 0:
        raise ValueError(f"the parameters must have the shape of target (or broadcast to it), "
                         f"got {[a.shape for a in arrays]}.")
    _check_observed(arrays[0])
    if not (arrays[2] > 0).all():
        raise ValueError("scale must be positive.")
    return arrays


def crps_normal(target: Any, loc: Any, scale: Any) -> float:
    """Mean continuous ranked probability score of normal forecasts N(loc, scale^2) of `target`,
    in closed form (Gneiting, Raftery, Westveld and Goldman 2005, Monthly Weather Review 133,
    eq. 5; Gneiting and Raftery 2007, JASA 102(477)): with `z = (y - loc) / scale`,
    `scale * (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi))`. In the units of `target`, lower is
    better; it generalizes the absolute error (a point forecast's CRPS is its MAE)."""
    from scipy.stats import norm

    target, loc, scale = _distribution_arrays(target, loc, scale)
    z = (target - loc) / scale
    scores = scale * (z * (2.0 * norm.cdf(z) - 1.0) + 2.0 * norm.pdf(z) - 1.0 / np.sqrt(np.pi))
    return float(scores.mean())


def crps_student_t(target: Any, loc: Any, scale: Any, df: Any) -> float:
    """Mean CRPS of Student's t forecasts (location `loc`, scale `scale`, `df` > 1 degrees of
    freedom) of `target`, in closed form (Jordan, Krueger and Lerch 2019, "Evaluating
    probabilistic forecasts with scoringRules", Journal of Statistical Software 90(12)): with
    `z = (y - loc) / scale` and the standard t's cdf F and density f, `scale * (z (2 F(z) - 1)
    + 2 f(z) (df + z^2) / (df - 1) - 2 sqrt(df) B(1/2, df - 1/2) / ((df - 1) B(1/2, df/2)^2))`
    (B: the beta function). Finite only where the mean is (df > 1)."""
    from scipy.special import betaln
    from scipy.stats import t

    target, loc, scale, df = _distribution_arrays(target, loc, scale, df)
    if not (df > 1).all():
        raise ValueError("The CRPS of a Student's t needs df > 1 (a finite mean).")
    z = (target - loc) / scale
    constant = 2.0 * np.sqrt(df) / (df - 1.0) * np.exp(betaln(0.5, df - 0.5) - 2.0 * betaln(0.5, df / 2.0))
    scores = scale * (z * (2.0 * t.cdf(z, df) - 1.0)
                      + 2.0 * t.pdf(z, df) * (df + z**2) / (df - 1.0) - constant)
    return float(scores.mean())


def gluonts_scores(
    history: np.ndarray, target: np.ndarray, forecast: np.ndarray, freq: str
) -> dict[str, float]:
    """Mean MASE and sMAPE over windows with GluonTS's own metric functions.

    `history[W, L, C]`, `target[W, H, C]`, `forecast[W, H, C]`, all in the original scale; the
    MASE denominator is the seasonal naive error on each window's history, as in GluonTS.
    Missing values (NaN) in `target` or `history` are left out, as GluonTS's evaluator masks
    them; a window and channel with no observed target is not scored.
    """
    from gluonts.evaluation import metrics as gluonts_metrics
    from gluonts.time_feature import get_seasonality

    season = get_seasonality(freq)
    mases, smapes = [], []
    for w in range(target.shape[0]):
        for c in range(target.shape[2]):
            observed = ~np.isnan(target[w, :, c])
            if not observed.any():
                continue
            truth, guess = target[w, observed, c], forecast[w, observed, c]
            past = np.ma.masked_invalid(history[w, :, c])
            seasonal_error = float(np.ma.filled(
                gluonts_metrics.calculate_seasonal_error(past, freq, season), np.nan))
            if seasonal_error > 0:
                mases.append(gluonts_metrics.mase(truth, guess, seasonal_error))
            smapes.append(gluonts_metrics.smape(truth, guess))
    if not mases:
        warnings.warn("MASE is undefined here (NaN): every window's history is constant, so its "
                      "seasonal naive error, MASE's denominator, is 0.", stacklevel=2)
    return {"mase": float(np.mean(mases)) if mases else float("nan"),
            "smape": float(np.nanmean(smapes))}


# ---- the M4 competition's point-forecast metrics ----------------------------------------------
# As the organisers' evaluation code computes them (Mcompetitions/M4-methods, "Benchmarks and
# Evaluation.R"): per series and step, then the mean over all series and steps (every series of a
# group has the same horizon, so this is the mean over series of each series' mean).

M4_SEASONALITY_CRITICAL = 1.645
"""The one-sided 90% normal quantile of M4's autocorrelation seasonality test."""


def _m4_pairs(target: Any, forecast: Any) -> tuple[np.ndarray, np.ndarray]:
    """`target` and `forecast` as float arrays `[n_series, horizon]` (one series: `[horizon]`)."""
    target = np.atleast_2d(np.asarray(target, dtype=np.float64))
    forecast = np.atleast_2d(np.asarray(forecast, dtype=np.float64))
    if target.shape != forecast.shape or target.ndim != 2 or target.size == 0:
        raise ValueError(f"target and forecast must be equal [n_series, horizon] (or [horizon]) "
                         f"arrays, got {np.shape(target)} and {np.shape(forecast)}.")
    return target, forecast


def smape(target: Any, forecast: Any) -> float:
    """M4's symmetric MAPE, in percent: `200 |y - yhat| / (|y| + |yhat|)` averaged over every
    step of every series (`[n_series, horizon]` or one series' `[horizon]`). A step where both
    are 0 counts 0 (the formula is 0/0 there; M4's data has no zeros)."""
    target, forecast = _m4_pairs(target, forecast)
    error = np.abs(target - forecast)
    scale = np.abs(target) + np.abs(forecast)
    ratio = np.divide(error, scale, out=np.zeros_like(error), where=scale > 0)
    return float(200.0 * ratio.mean())


def mase(insample: Any, target: Any, forecast: Any, season: int = 1) -> float:
    """M4's mean absolute scaled error: each series' absolute errors over the horizon divided by
    the mean absolute `season`-step difference of its whole training part (`insample`: one
    array per series, of any lengths; one series: an array), averaged over every step of every
    series. Raises where a series' scale is 0 or undefined (constant, or not longer than
    `season`)."""
    target, forecast = _m4_pairs(target, forecast)
    if isinstance(insample, np.ndarray) and insample.ndim == 1:
        insample = [insample]
    insample = [np.asarray(x, dtype=np.float64) for x in insample]
    if len(insample) != len(target):
        raise ValueError(f"insample has {len(insample)} series, target {len(target)}.")
    if season < 1:
        raise ValueError(f"season must be a positive number of steps, got {season!r}.")
    scales = np.array([np.mean(np.abs(x[season:] - x[:-season])) if len(x) > season else np.nan
                       for x in insample])
    bad = np.flatnonzero(~(scales > 0))
    if bad.size:
        raise ValueError(f"MASE is undefined for {bad.size} series (e.g. index {bad[0]}): its "
                         f"training part is constant or not longer than the season ({season}), "
                         "so the seasonal-naive error that scales it is 0 or empty.")
    return float((np.abs(target - forecast) / scales[:, None]).mean())


def owa(smape: float, mase: float, smape_naive2: float, mase_naive2: float) -> float:
    """M4's overall weighted average: the mean of the sMAPE and the MASE, each relative to
    Naive2's on the same series (1: as good as Naive2; below 1: better)."""
    return 0.5 * (smape / smape_naive2 + mase / mase_naive2)


def seasonality_test(series: Any, season: int) -> bool:
    """M4's seasonality test (the benchmarks' `SeasonalityTest`): the autocorrelation at lag
    `season` is significant at 90%, `|r_m| > 1.645 sqrt((1 + 2 sum_{k<m} r_k^2) / n)`. As there,
    the autocorrelations are R's `acf` (mean removed, denominator n, lags up to
    `floor(10 log10 n)`): no season above that lag, nor one with fewer than 3 full seasons of
    data, nor a constant series, counts as seasonal; nor does `season` 1."""
    x = np.asarray(series, dtype=np.float64)
    n = len(x)
    if season <= 1 or n < 3 * season or season > min(int(10 * np.log10(n)), n - 1):
        return False
    centred = x - x.mean()
    variance = float(centred @ centred)
    if variance == 0:
        return False
    acf = np.array([centred[k:] @ centred[:-k] for k in range(1, season + 1)]) / variance
    limit = M4_SEASONALITY_CRITICAL / np.sqrt(n) * np.sqrt(1 + 2 * np.sum(acf[:-1] ** 2))
    return bool(abs(acf[-1]) > limit)


def seasonal_indices(series: Any, season: int) -> np.ndarray:
    """The `season` multiplicative seasonal indices of classical decomposition (R's
    `decompose(type="multiplicative")`): the series divided by its centred moving average
    (`season` terms, or 2 x `season` when even), each position's mean ratio (position `t % season`
    from the series' first value), normalized to mean 1."""
    x = np.asarray(series, dtype=np.float64)
    if season < 2 or len(x) < 2 * season:
        raise ValueError(f"classical decomposition needs a season of 2 or more steps and at least 2 "
                         f"seasons of data; got season {season} and {len(x)} values.")
    weights = np.ones(season + 1 - season % 2)
    if season % 2 == 0:
        weights[[0, -1]] = 0.5
    weights /= season
    half = len(weights) // 2
    ratio = np.full(len(x), np.nan)
    ratio[half:len(x) - half] = x[half:len(x) - half] / np.convolve(x, weights, mode="valid")
    figure = np.array([np.nanmean(ratio[i::season]) for i in range(season)])
    return figure / figure.mean()


def naive2(series: Any, horizon: int, season: int) -> np.ndarray:
    """M4's Naive2 forecast of one series' next `horizon` values: where the series passes
    `seasonality_test` at `season`, its last value divided by its seasonal index, times the
    indices of the coming steps (`seasonal_indices`); else its last value repeated."""
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"naive2 forecasts one series, a non-empty 1-D array; got shape {x.shape}.")
    if not seasonality_test(x, season):
        return np.full(horizon, x[-1])
    figure = seasonal_indices(x, season)
    n = len(x)
    return x[-1] / figure[(n - 1) % season] * figure[(n + np.arange(horizon)) % season]


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
