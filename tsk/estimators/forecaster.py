"""`Forecaster`: multi-horizon forecasting with any registered backbone, scikit-learn style."""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from torch import nn
from torch.utils.data import DataLoader

from tsk import backbones
from tsk._names import unknown_name_error
from tsk.conformal import (
    check_levels,
    conformal_quantile,
    interval_columns,
    level_name,
    quantile_columns,
    with_bounds,
    with_intervals,
    with_quantiles,
)
from tsk.datasets.calendar import season_length, time_feature_names, with_time_features
from tsk.datasets.covariates import (
    StaticCovariates,
    future_covariates,
    static_features,
    with_horizon,
)
from tsk.datasets.frames import (
    ID,
    LISTED_SERIES,
    TIME,
    WIDE_SERIES_ID,
    Schema,
    Series,
    check_fitted_frequency,
    check_policies,
    infer_schema,
    interpolate_missing,
    to_series,
    with_forecast_index,
)
from tsk.datasets.gluonts_data import gluonts_to_frame, is_gluonts_dataset
from tsk.datasets.scaling import StandardScaler
from tsk.datasets.windows import WindowDataset
from tsk.estimators.base import FitData, SequenceEstimator, check_positive_int, join_outputs
from tsk.estimators.registry import register_estimator
from tsk.heads.distributions import (
    POINT,
    ForecastOutput,
    PointForecast,
    check_quantiles,
    forecast_output,
    level_quantiles,
)
from tsk.heads.forecast import (
    GRID_KINDS,
    SEQUENCE_KINDS,
    ForecastNet,
    GridForecastNet,
    RidgeForecast,
    RidgeStartNet,
    SeasonalNaive,
    VariateForecastNet,
    mask_missing_inputs,
    token_count,
)
from tsk.heads.registry import TaskNetSpec, check_backbone_kind, get_task_net
from tsk.inference import mean_loss
from tsk.metrics import coverage, gluonts_scores, interval_score, mae, mse, weighted_quantile_loss

logger = logging.getLogger(__name__)

TOKEN_LAYOUTS = ("time", "patches", "variates")
LONG_LOOKBACK = 336
CUTOFF = "cutoff"  # `cross_validation`'s column of each window's forecast origin (Nixtla's name)
VALIDATION_SAMPLES = 16_384
"""Validation samples a fit scores, at most (give or take each series' last window). Beyond
that it validates on every k-th window of each validation series and its last (k at most the
horizon, so every validation row is still scored): stride-1 windows overlap in all but one
row, so the loss barely moves, while a pass over all of them can cost as much as the training
between two validations (20% of a 36,000-row, 21-channel series is ~149,000 windows;
benchmarks/results/profile_default_fit.md)."""
SHORT_SERIES_SHARE = 6
"""A short series' default lookback is at most this fraction of what it leaves after the horizon:
on ILI's 676 training weeks a third (217 steps) left the linear start worse (2.18-2.24 MSE
against 2.04-2.18 at 104) and s4d kept it at every horizon; a sixth is ~PatchTST's 104."""


@register_estimator
class Forecaster(SequenceEstimator):
    """Forecast the next `horizon` steps of one or many series from their last `lookback` steps.

    Data: a long frame (`unique_id`, `ds`, `y`, exogenous...) or a wide one (`ds` + one column
    per channel), or a GluonTS dataset. `fit` splits each series by time (the last
    `validation_size` of it validates, unless `val_df` is given; past `VALIDATION_SAMPLES`
    windows, every k-th), standardizes each series and channel with statistics of its training
    rows, trains on every stride-1 window with early stopping and restores the best checkpoint.
    `predict` returns the next `horizon` timestamps in the original scale. Unsorted rows are
    sorted.

    Messy data (docs/data.md, `tsk.datasets.frames`): `missing="raise"` (default) refuses NaN
    values, `"mask"` keeps them out of the loss, the scaling and the window normalization and
    feeds the network a 0/1 flag channel per input column that had missing values at fit
    (`missing_flags_`), `"interpolate"` fills them linearly in time. `freq=None` infers each
    series' frequency; a pandas frequency (e.g. "10min") puts the series on that grid, its gaps
    becoming missing values. `duplicates="raise"` (default), `"drop_exact"` or `"mean"` says
    what rows of one timestamp become. `predict` and `evaluate` apply the fitted policies.

    `tokens="time"` runs the backbone along time (one token per step); `tokens="patches"` runs it
    along PatchTST's patches (`patch_len` steps every `patch_stride`, by default `patch_len // 2`:
    ~8x fewer tokens at lookback 336 with the default 16; `patch_stride=patch_len`, patches that
    do not overlap, halves them again and trains 1.4-1.6x the windows a second, at the test MSE
    docs/getting-started.md records); `tokens="variates"` runs it across channels, each
    channel's window one token (the iTransformer / S-Mamba layout; needs
    `channel_independent=False`). `None` picks patches when the window holds at least four and
    the generic head is used, else time steps (`tokens_` says which).
    `lookback=None` picks 336 steps, a sixth of a short series (`lookback_` says what).
    `channel_independent=None` forecasts each channel on its own with a sequence backbone and all
    channels jointly with a grid backbone (Chimera: the channels are its variates, tokenized on
    their own along time; `tsk.heads.forecast.GridForecastNet`).

    Parameters left as `None` (`d_model`, `n_layers`, `dropout`) take the backbone's defaults;
    `backbone_kwargs` sets any other option of the backbone's config.
    `exogenous` names columns used as past covariates (inputs, not forecast); `futr_exog` names
    covariates also known over the horizon (`predict(futr_df=...)` gives their future values),
    and `fit(df, static_df=...)` static covariates per series (docs/forecasting.md
    "Covariates"; the generic head only: a paper's own network reads past covariates only).
    `time_features=True` adds calendar features of `ds` as past covariates (hourly data: hour of
    day, day of week, day of month, day of year; `tsk.datasets.calendar`); `None` follows the
    backbone's paper (TPGN's network reads them), `time_features_` says what a fit used.
    `instance_norm` (RevIN) is on by default, for every network: without it TPGN, whose
    authors switch it per dataset, is 1.3-2.2x worse on ETTh1/ETTh2 multivariate at horizon 720.
    `ridge_init` starts from the closed-form ridge forecast: a linear skip is solved on the
    training windows (its strength by generalized cross-validation on them) and frozen, and the
    deep part, zero at first, learns the rest; if no validation beats that start, it is kept.
    `None` (default) starts the generic head there (its own skip) and trains a paper's network
    (SpaceTime, TPGN) as its paper does, from random weights; `True` wraps a paper's network in
    `RidgeStartNet` (a skip plus the network behind a zero-initialized gate). TPGN from the ridge
    start was closer to the linear floor on TSLib's multivariate ETTh1/ETTh2 but up to 2.6x worse
    at its paper's long horizons (benchmarks/results). Never with `tokens="variates"`.
    `learning_rate=None` is 1e-3 from either start (`learning_rate_`), grown with a batch that
    `batch_size=None` chose by its data's size (`batch_size_`).
    Every fit also scores two baselines on validation (`fit_summary_.baselines`): that linear
    start (solved even when the network does not start there; `linear_start_`) and the
    seasonal-naive forecast, `season_length` steps back (None: a day for data stepping within a
    day, 7 for daily, 52 for weekly data, ..., 1 when the series step at different rates;
    `season_length_`); `evaluate(df, baselines=True)`
    scores them on `df` beside the model, with its skill over each.

    `conformal=True` gives any backbone split-conformal prediction intervals: after training,
    the fit keeps the absolute errors of the trained network on its validation windows
    (`conformal_scores_`, `[windows, horizon, targets]`), pooled over series, in standardized
    units (each error divided by its series' and channel's scale), and `predict(level=[80, 95])`
    adds `y-lo-95, y-lo-80, y-hi-80, y-hi-95` around the forecast `y` (in the wide layout, such
    columns for every target): the forecast -/+ the errors' quantile at that horizon step and
    channel, times the series' scale. One global model over series of different scales so gets
    intervals in each series' own units. The guarantee is split conformal's: with n calibration
    windows, the interval at level a covers the value of a new window at that step with
    probability at least a if the new window is exchangeable with them (the half-width is the
    ceil((n + 1) a)-th smallest of the n errors, `tsk.conformal`). Windows of one series
    overlap and follow each other in time, so they are not exchangeable (and the validation
    windows also picked the kept checkpoint): for time series the coverage is approximate, near
    the level where the errors are about stationary. Measure it: `evaluate(df, level=[80])`
    reports `coverage_80`, and `cross_validation` backtests the intervals.
    `quantiles=[0.1, 0.5, 0.9]` or `distribution="normal"` / `"student_t"` learn the intervals
    instead (generic-head backbones; not with `conformal=True`): the head emits quantiles (0.5
    added if missing, non-decreasing by construction), trained with the pinball loss, or a
    distribution's parameters, trained with its negative log-likelihood
    (`tsk.heads.distributions`). The forecast column holds the median or the mean;
    `predict(level=[80])` adds `y-lo-80, y-hi-80` from the model's quantiles (a quantile model
    gives the levels its grid holds both ends of), `predict(quantiles=[0.05])` adds `y-q-5`,
    and `evaluate` adds `crps` and `wql` (and with `level`, coverage and interval score). Learned
    intervals adapt to each window (wider where the series is harder) but carry no coverage
    guarantee; conformal ones have split conformal's (approximate for time series) with one
    width per horizon step. The baselines' validation losses (`fit_summary_.baselines`) stay
    MSEs, not comparable with such a model's loss: compare with `evaluate(baselines=True)`.
    `cross_validation(df, n_windows)` backtests the model as Nixtla's libraries do: copies fit
    on the data up to each forecast origin (cutoff) forecast the `horizon` steps after it.
    """

    _scores = {"mse": "minimize", "mae": "minimize", "mase": "minimize", "smape": "minimize"}
    # the validation loss is an MSE on standardized data, where forecasting the training mean
    # scores about 1: 1e4 is a diverged fit (SpaceTime at learning_rate 1e30: 3.5e10)
    _loss_ceiling = 1e4

    def __init__(
        self,
        backbone: str = "s4d",
        horizon: int = 96,
        lookback: int | None = None,
        *,
        channel_independent: bool | None = None,
        tokens: str | None = None,
        patch_len: int = 16,
        patch_stride: int | None = None,
        exogenous: Sequence[str] | None = None,
        futr_exog: Sequence[str] | None = None,
        time_features: bool | None = None,
        d_model: int | None = None,
        n_layers: int | None = None,
        dropout: float | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        head_dim: int = 8,
        instance_norm: bool = True,
        ridge_init: bool | None = None,
        season_length: int | None = None,
        validation_size: float = 0.2,
        conformal: bool = False,
        quantiles: Sequence[float] | None = None,
        distribution: str | None = None,
        missing: str = "raise",
        duplicates: str = "raise",
        freq: str | None = None,
        **training: Any,
    ) -> None:
        self.backbone = backbone
        self.horizon = horizon
        self.lookback = lookback
        self.channel_independent = channel_independent
        self.tokens = tokens
        self.patch_len = patch_len
        self.patch_stride = patch_stride
        self.exogenous = exogenous
        self.futr_exog = futr_exog
        self.time_features = time_features
        self.d_model = d_model
        self.n_layers = n_layers
        self.dropout = dropout
        self.backbone_kwargs = backbone_kwargs
        self.head_dim = head_dim
        self.instance_norm = instance_norm
        self.ridge_init = ridge_init
        self.season_length = season_length
        self.validation_size = validation_size
        self.conformal = conformal
        self.quantiles = quantiles
        self.distribution = distribution
        self.missing = missing
        self.duplicates = duplicates
        self.freq = freq
        self._set_training_params(training)

    # ---- fit ------------------------------------------------------------------------------
    def fit(self, df: Any, val_df: Any = None, *, static_df: pd.DataFrame | None = None,
            checkpoint_dir: str | os.PathLike | None = None) -> Forecaster:
        """Train on `df`; validate on `val_df` if given (its first `lookback` rows are context),
        else on the last `validation_size` of each series. `static_df` (long layout: `unique_id`
        and one column per static feature, a row per series) gives the series' static
        covariates. With `checkpoint_dir`, the training
        checkpoints are kept there, and a fit interrupted earlier (same model, same data, same
        folder) resumes from its last checkpoint (each epoch's end, and every 10 minutes within
        one) and ends as the uninterrupted fit would."""
        return self._fit(df, val_df, static_df, checkpoint_dir=checkpoint_dir)

    def _prepare_fit(self, df: Any, val_df: Any = None, static_df: Any = None) -> FitData:
        """Split, scale and window the data; keeps the fitted preprocessing state."""
        df = _as_frame(df)
        self.__dict__.pop("conformal_scores_", None)  # a refit calibrates anew, or not at all
        self.lookback_ = lookback = self.resolve_lookback(df)
        self.tokens_ = self._resolve_tokens(lookback)
        if self.tokens_ == "patches" and self.patch_len > lookback:
            raise ValueError(f"patch_len ({self.patch_len}) must not exceed the lookback "
                             f"({lookback}).")
        self.schema_ = schema = infer_schema(df, self.exogenous, self.futr_exog)
        series = to_series(df, schema, min_length=lookback + self.horizon, **self._policies())
        self.time_freq_ = _shared_frequency(series) if self._resolve_time_features() else None
        # the horizon's calendar is known ahead: the generic heads read it as such
        self.futr_calendar_ = self.time_freq_ is not None and self._generic_head()
        self._fit_static(static_df, [s.uid for s in series])
        series = self._with_time_features(series)
        if val_df is None:
            cuts = [self._train_rows(len(s), lookback) for s in series]
            validation = [(s, cut) for s, cut in zip(series, cuts, strict=True) if cut < len(s)]
        else:
            cuts = [len(s) for s in series]
            val_series = self._series(val_df, lookback + self.horizon, {s.freq for s in series})
            unknown = sorted({v.uid for v in val_series} - {s.uid for s in series})
            if unknown:
                raise ValueError(f"val_df has series not in df: {unknown[:10]}.")
            validation = [(v, 0) for v in val_series]
        scalers = {s.uid: self._fit_scaler(s.values[:cut]) for s, cut in zip(series, cuts, strict=True)}
        n_targets = len(schema.targets)
        self.missing_flags_ = [c for j, c in enumerate(schema.columns)
                               if any(np.isnan(s.values[:, j]).any()
                                      for s in [*series, *(v for v, _ in validation)])]
        train_set = self._window_dataset(
            [scalers[s.uid].transform(s.values) for s in series], self.horizon,
            self._static_features([s.uid for s in series]),
            starts=[(0, cut - lookback - self.horizon + 1) for cut in cuts],
        )
        val_set, skipped = None, {"training": train_set.n_unobserved}
        if validation:
            val_arrays = [scalers[v.uid].transform(v.values) for v, _ in validation]
            val_options = {"static": self._static_features([v.uid for v, _ in validation]),
                           "starts": [(max(cut - lookback, 0), len(v)) for v, cut in validation]}
            val_set = self._window_dataset(val_arrays, self.horizon, **val_options)
            skipped["validation"] = val_set.n_unobserved
            if len(val_set) > VALIDATION_SAMPLES:
                step = min(self.horizon, -(-len(val_set) // VALIDATION_SAMPLES))
                val_set = self._window_dataset(val_arrays, self.horizon, window_step=step,
                                               **val_options)
            if len(val_set) == 0:
                val_set = None
        if any(skipped.values()):
            warnings.warn("Skipped " + " and ".join(f"{n} {part}" for part, n in skipped.items() if n)
                          + " window(s) whose targets are all missing (nothing to learn or score "
                          "there).", stacklevel=4)
        if val_set is None and self.validation_size > 0:
            logger.warning("No series is long enough for a validation window: training without "
                           "early stopping for %d epochs.", self.max_epochs)
        if val_set is None and self.conformal:
            warnings.warn("conformal=True found no validation window to calibrate the intervals "
                          "on, so predict(level=...) will raise. Give the fit validation data: "
                          "validation_size > 0 on series long enough to hold out that share (at "
                          "least horizon rows) after lookback + horizon training rows, or val_df.",
                          stacklevel=4)
        self.n_inputs_ = ((1 if self._independent() else n_targets) + len(schema.columns)
                          - n_targets + len(self.time_feature_names_) + len(self._flag_columns()))
        self.n_outputs_ = 1 if self._independent() else n_targets
        self.scalers_ = scalers
        self.contexts_ = {s.uid: _tail(s, lookback) for s in series}
        freqs = {s.freq for s in series}
        self.season_length_ = self.season_length or (season_length(freqs.pop()) if len(freqs) == 1
                                                     else 1)
        return FitData(
            train_set, val_set, collate=WindowDataset.collate,
            digest=_data_digest([*zip(series, cuts, strict=True), *validation], self.static_values_),
            warm_start=_ridge_start if self._ridge_start(self.tokens_) else None,
            baselines=self._fit_baselines,
            calibrate=self._calibrate if self.conformal else None,
        )

    def _calibrate(self, net: nn.Module, validation: WindowDataset) -> None:
        """Keep the trained `net`'s absolute errors on the validation windows, in standardized
        units, `[windows, horizon, targets]` (NaN where a target is missing): the conformal
        scores every interval is drawn from (`_half_widths`)."""
        errors = validation.future_values().astype(np.float64) - self._window_forecasts(validation, net)
        self.conformal_scores_ = np.abs(errors)

    def _fit_baselines(self, net: nn.Module, train: DataLoader,
                       validation: DataLoader | None) -> dict[str, float]:
        """Keep the linear start (`linear_start_`: the net's own frozen skip when it started
        there, else the same closed form solved now) and return its validation loss and the
        seasonal-naive forecast's, in the units of the model's (`fit_summary_.baselines`)."""
        linear = self._masked(RidgeForecast(self.lookback_, self.horizon, self.n_outputs_,
                                            self.instance_norm))
        if self._ridge_start(self.tokens_):
            linear.skip.load_state_dict(net.skip.state_dict())
        else:
            linear.fit(train)
        self.linear_start_ = linear.eval()
        if validation is None:
            return {}
        return {name: mean_loss(baseline, validation) for name, baseline in self._baselines().items()}

    def _baselines(self) -> dict[str, nn.Module]:
        """The forecasts every fit is scored against, by name (`evaluate(baselines=True)`)."""
        if not hasattr(self, "linear_start_"):
            raise ValueError("This model was saved by a tsk without baselines: refit it to score "
                             "them.")
        return {"linear_start": self.linear_start_,
                "seasonal_naive": SeasonalNaive(self.horizon, self.season_length_, self.n_outputs_)}

    def _validate_params(self) -> None:
        self._check_positive_ints("horizon", "patch_len")
        if self.patch_stride is not None:
            self._check_positive_ints("patch_stride")
            if self.patch_stride > self.patch_len:
                raise ValueError(f"patch_stride ({self.patch_stride}) must not exceed patch_len "
                                 f"({self.patch_len}): steps between patches would be skipped.")
        if self.lookback is not None:
            self._check_positive_ints("lookback")
        if self.season_length is not None:
            self._check_positive_ints("season_length")
        if not 0 <= self.validation_size < 1:
            raise ValueError(f"validation_size must be in [0, 1), got {self.validation_size!r}.")
        if not isinstance(self.conformal, bool | np.bool_):
            raise TypeError(f"conformal must be True or False, got {self.conformal!r}.")
        check_policies(self.missing, self.duplicates, self.freq)
        backbones.get_spec(self.backbone)  # unknown names raise with the closest match
        if self.futr_exog and not self._generic_head():
            raise ValueError(self._covariates_error("futr_exog"))
        self._check_output()
        if self.tokens is not None and self.tokens not in TOKEN_LAYOUTS:
            raise unknown_name_error("tokens layout", self.tokens, TOKEN_LAYOUTS)
        if self.tokens == "variates" and self._independent():
            raise ValueError("tokens='variates' mixes channels: set channel_independent=False.")
        if self.tokens == "patches" and not self._generic_head():
            raise ValueError(f"Backbone {self.backbone!r} forecasts with its paper's own "
                             "network, which takes time steps: use tokens='time'.")
        if self._generic_head():
            check_backbone_kind(self.backbone, (*SEQUENCE_KINDS, *GRID_KINDS), "forecasting head")
        if self._grid():
            if self.channel_independent:
                raise ValueError(f"Backbone {self.backbone!r} models the channels jointly (a grid "
                                 "of variates x time): leave channel_independent unset (or False).")
            if self.tokens == "variates":
                raise ValueError(f"Backbone {self.backbone!r} already reads the variates as its "
                                 "grid's second axis: use tokens='time' or 'patches'.")

    def _check_output(self) -> None:
        """`quantiles` and `distribution`: valid, not both, not with `conformal=True`, and only
        for a backbone that forecasts with the generic head (which has the probabilistic
        outputs; a paper's own network forecasts points)."""
        if self.quantiles is None and self.distribution is None:
            return
        if self.quantiles is not None:
            check_quantiles(self.quantiles)
        if self.distribution is not None and not isinstance(self.distribution, str):
            raise TypeError(f"distribution must be 'normal', 'student_t' or None, got "
                            f"{self.distribution!r} ({type(self.distribution).__name__}).")
        forecast_output(self.quantiles, self.distribution)  # the name, and not both
        option = "quantiles" if self.quantiles is not None else "distribution"
        if self.conformal:
            raise ValueError(f"conformal=True and {option}= are two ways to get intervals: "
                             f"{option}= learns them in training, conformal=True calibrates "
                             "them around a point forecast on held-out errors. Choose one "
                             f"(drop conformal=True, or {option}=).")
        if not self._generic_head():
            generic = ", ".join(_generic_head_backbones())
            raise ValueError(f"Backbone {self.backbone!r} forecasts with its paper's own network, "
                             f"which forecasts points only: {option}= needs the generic "
                             f"forecasting head, which backbones {generic} use. Use "
                             f"one of them, or conformal=True for intervals around "
                             f"{self.backbone!r}'s point forecast.")

    def _output(self) -> ForecastOutput:
        """What the network outputs per target value (`tsk.heads.distributions`): the point
        forecast, `quantiles` or a `distribution`'s parameters."""
        return forecast_output(self.quantiles, self.distribution)

    def _probabilistic(self) -> bool:
        """Whether the model learns quantiles or a distribution (its own intervals)."""
        return self._output().probabilistic

    def _independent(self) -> bool:
        """`channel_independent` when set, else True for a sequence backbone (each channel its
        own series) and False for a grid backbone (the channels are its variates)."""
        if self.channel_independent is None:
            return not self._grid()
        return bool(self.channel_independent)

    def resolve_lookback(self, df: Any) -> int:
        """The lookback a fit on `df` uses: `lookback` when set, else 336 steps (the lookback of
        PatchTST and DLinear on ETT, where longer context beats the usual 96), cut to a sixth of
        what the shortest series leaves after the horizon (`SHORT_SERIES_SHARE`), so short
        series give many windows and a lookback their few seasons can fill."""
        if self.lookback is not None:
            return self.lookback
        frame = _as_frame(df)
        shortest = int(frame.groupby(ID, observed=True).size().min()) if ID in frame.columns else len(frame)
        return max(1, min(LONG_LOOKBACK, (shortest - self.horizon) // SHORT_SERIES_SHARE))

    def _resolve_tokens(self, lookback: int) -> str:
        """`tokens` when set, else patches where a window holds at least 4 of them and the
        generic head is used (at lookback 336 a training step is 5-13x cheaper), else time
        steps."""
        if self.tokens is not None:
            return self.tokens
        return "patches" if self._generic_head() and lookback >= 4 * self.patch_len else "time"

    def _paper_net(self) -> TaskNetSpec | None:
        """The paper's own forecasting network around the backbone (SpaceTime, TPGN), if any."""
        return get_task_net("forecast", self.backbone)

    def _generic_head(self) -> bool:
        """False where the backbone forecasts with its paper's own network (SpaceTime, TPGN)."""
        return self._paper_net() is None

    def _resolve_time_features(self) -> bool:
        """`time_features` when set, else whether the backbone's paper feeds them."""
        if self.time_features is not None:
            return bool(self.time_features)
        paper_net = self._paper_net()
        return paper_net is not None and paper_net.time_features

    @property
    def time_features_(self) -> bool:
        """Whether a fit appended calendar features to its inputs."""
        return self.time_freq_ is not None

    @property
    def time_feature_names_(self) -> list[str]:
        """The calendar features a fit appended to its inputs (after the exogenous columns)."""
        return time_feature_names(self.time_freq_) if self.time_freq_ else []

    def _with_time_features(self, series: list[Series]) -> list[Series]:
        """`series` with the fit's calendar features appended, when the fit uses them."""
        if not self.time_freq_:
            return series
        return [with_time_features(s, self.time_freq_) for s in series]

    def _series(self, df: Any, min_length: int, freqs: set[str] | None = None) -> list[Series]:
        """The series of new data, checked against the fit's schema and frequency (`freqs`: the
        training series', by default the fitted model's), with the fit's inputs."""
        series = to_series(_as_frame(df), self.schema_, min_length=min_length, **self._policies())
        if freqs is None:
            freqs = {context.freq for context in self.contexts_.values()}
        check_fitted_frequency(series, freqs)
        return self._with_time_features(series)

    def _ridge_start(self, tokens: str) -> bool:
        """Whether a fit with this token layout starts from the closed-form ridge forecast:
        `ridge_init`, by default only the generic head; never the variate-token network (its
        tokens are channels, not a window to regress on)."""
        if tokens == "variates":
            return False
        return self._generic_head() if self.ridge_init is None else bool(self.ridge_init)

    def _train_rows(self, length: int, lookback: int) -> int:
        """Rows of a series used for training; the rest (if any) validates."""
        if self.validation_size == 0:
            return length
        n_val = max(self.horizon, round(self.validation_size * length))
        return length - n_val if length - n_val >= lookback + self.horizon else length

    def _policies(self) -> dict[str, Any]:
        """How `to_series` treats missing values, duplicate rows and the time grid."""
        return {"missing": self.missing, "duplicates": self.duplicates, "freq": self.freq}

    def _flag_columns(self) -> list[int]:
        """The input columns (of a window's inputs) whose missingness the network reads as 0/1
        flag channels: those of `missing_flags_`; channel-independent, the one target column
        when any target had missing values."""
        flagged, targets = set(self.missing_flags_), self.schema_.targets
        if self._independent():
            columns, first_exogenous = ([0] if flagged & set(targets) else []), 1
        else:
            columns, first_exogenous = [i for i, c in enumerate(targets) if c in flagged], len(targets)
        exogenous = self.schema_.columns[len(targets):]  # past, then known ahead
        return columns + [first_exogenous + j for j, c in enumerate(exogenous) if c in flagged]

    # ---- covariates known ahead and static covariates ---------------------------------------
    def _n_futr(self) -> int:
        """How many inputs the network reads over the horizon too: the columns of `futr_exog`,
        then (generic heads) the calendar features, known ahead by nature."""
        calendar = len(self.time_feature_names_) if getattr(self, "futr_calendar_", False) else 0
        return len(self.schema_.futr_exog) + calendar

    def _futr_from(self) -> int | None:
        """The first column of a series' values known ahead (they run to its last column:
        `futr_exog`, then the calendar features), None if the network reads none."""
        if not self._n_futr():
            return None
        return len(self.schema_.targets) + len(self.schema_.exogenous)

    def _futr_first(self) -> int:
        """The first known-ahead channel of the network's input window."""
        first = 1 if self._independent() else len(self.schema_.targets)
        return first + len(self.schema_.exogenous)

    def _fit_static(self, static_df: Any, uids: list[str]) -> None:
        """Keep the encoding of `static_df` and each training series' encoded features."""
        self.static_, self.static_values_ = None, {}
        if static_df is None:
            return
        if self.schema_.layout != "long":
            raise ValueError("static_df gives features per series, and wide data is one series: "
                             "use the long layout (unique_id, ds, y) for static covariates.")
        if not self._generic_head():
            raise ValueError(self._covariates_error("static_df"))
        self.static_ = StaticCovariates.fit(static_df, uids)
        self.static_values_ = dict(zip(uids, self.static_.encode(static_df, uids), strict=True))

    def _static_features(self, uids: Sequence[str], static_df: Any = None) -> np.ndarray | None:
        """The static covariates of series `uids`, `[len(uids), S]` (None: the model has none):
        from `static_df` when given, else those of the fit."""
        return static_features(getattr(self, "static_", None), getattr(self, "static_values_", {}),
                               uids, static_df)

    def _covariates_error(self, kind: str) -> str:
        return (f"Backbone {self.backbone!r} forecasts with its paper's own network, which reads "
                f"past covariates only (exogenous=, time_features=), not {kind}. Covariates "
                f"known ahead (futr_exog) and static_df need a backbone of the generic head: "
                f"{', '.join(_generic_head_backbones())}.")

    def _window_dataset(self, arrays: list[np.ndarray], horizon: int,
                        static: np.ndarray | None = None, **options: Any) -> WindowDataset:
        """The network's windows over scaled `arrays` (series' values in the fit's columns),
        with the fit's flags, known-ahead columns and `static` rows."""
        return WindowDataset(arrays, self.lookback_, horizon, len(self.schema_.targets),
                             self._independent(), flags=self._flag_columns(),
                             futr_from=self._futr_from(), static=static, **options)

    def _warn_unflagged(self, series: list[Series]) -> None:
        """Warn where new data misses values in a column that had none at fit: the network has
        no flag for them and reads them as the mean."""
        if self.missing != "mask":
            return
        flagged = set(self.missing_flags_)
        if self._independent() and flagged & set(self.schema_.targets):
            flagged |= set(self.schema_.targets)
        unflagged = [c for j, c in enumerate(self.schema_.columns) if c not in flagged
                     and any(np.isnan(s.values[:, j]).any() for s in series)]
        if unflagged:
            warnings.warn(f"Column(s) {unflagged} have missing values here but had none at fit: "
                          "the model reads them as the mean, with no flag telling it they are "
                          "missing.", stacklevel=4)

    def _masked(self, net: nn.Module) -> nn.Module:
        """`net`, whose window normalization reads NaN as missing under `missing="mask"`."""
        return mask_missing_inputs(net) if self.missing == "mask" else net

    def _build_net(self) -> nn.Module:
        """The forecasting network (`_network`), masked under `missing="mask"`."""
        return self._masked(self._network())

    def _network(self) -> nn.Module:
        patch_len = self.patch_len if self.tokens_ == "patches" else None
        # the tokens it reads: one per channel, or the window's time steps or patches
        tokens = (self.n_inputs_ if self.tokens_ == "variates"
                  else token_count(self.lookback_, patch_len, self.patch_stride))
        config = self._backbone_config(tokens)
        backbone = backbones.create(self.backbone, **config)
        # channels the window normalization leaves alone: calendar features, then missing flags
        n_calendar = len(self.time_feature_names_) + len(self._flag_columns())
        static = getattr(self, "static_", None)
        covariates = {"n_futr": self._n_futr(), "n_static": len(static.names) if static else 0,
                      "futr_first": self._futr_first()}
        if self.tokens_ == "variates":
            return VariateForecastNet(
                backbone, self.lookback_, self.horizon, self.n_outputs_, backbone.config.d_model,
                dropout=backbone.config.dropout, instance_norm=self.instance_norm,
                n_calendar=n_calendar, head_dim=self.head_dim, output=self._output(),
                **covariates,
            )
        if self._grid():
            return GridForecastNet(
                backbone, self.lookback_, self.horizon, self.n_inputs_, self.n_outputs_,
                d_model=backbone.config.d_model, head_dim=self.head_dim,
                dropout=backbone.config.dropout, instance_norm=self.instance_norm,
                patch_len=patch_len, patch_stride=self.patch_stride, n_calendar=n_calendar,
                output=self._output(), **covariates,
            )
        paper_net = self._paper_net()
        if paper_net is not None:
            net = paper_net.build(
                backbone, lookback=self.lookback_, horizon=self.horizon, n_in=self.n_inputs_,
                n_out=self.n_outputs_, n_calendar=n_calendar, instance_norm=self.instance_norm,
            )
            if not self._ridge_start(self.tokens_):
                return net
            return RidgeStartNet(net, self.lookback_, self.horizon, self.n_outputs_,
                                 instance_norm=self.instance_norm)
        return ForecastNet(
            backbone, self.lookback_, self.horizon, self.n_inputs_, self.n_outputs_,
            d_model=backbone.config.d_model, head_dim=self.head_dim,
            dropout=backbone.config.dropout, instance_norm=self.instance_norm,
            patch_len=patch_len, patch_stride=self.patch_stride, n_calendar=n_calendar,
            output=self._output(), **covariates,
        )

    # ---- predict --------------------------------------------------------------------------
    def predict(self, df: Any = None, *, futr_df: pd.DataFrame | None = None,
                static_df: pd.DataFrame | None = None,
                level: float | Sequence[float] | None = None,
                quantiles: Sequence[float] | None = None) -> pd.DataFrame:
        """Forecast the `horizon` steps after each series' end: after the training data when
        `df` is None, else after the end of each series in `df` (only its last `lookback` rows
        are used). Returns the same layout as the training data, in the original scale; a
        `quantiles=` model forecasts its median, a `distribution=` model its mean.

        `futr_df` (needed when the model has `futr_exog`) gives the covariates known ahead over
        those `horizon` steps: `unique_id`, `ds` and the `futr_exog` columns (wide data: `ds`
        and the columns), a row per series and future timestamp; a series or timestamp it
        lacks raises, naming them. `static_df` gives the static covariates of series the fit
        did not see (or new values for those it did).

        `level` (percentages, e.g. `[80, 95]`) adds each forecast column's interval columns
        after the forecasts, named as Nixtla names them: `y-lo-95, y-lo-80, y-hi-80, y-hi-95`:
        split-conformal ones (`conformal=True`; the class docstring says what they cover) or
        the model's own central intervals (`quantiles=`: a level whose two quantiles
        `(1 -/+ level / 100) / 2` it was trained on; `distribution=`: any level).
        `quantiles` (probabilities, e.g. `[0.05, 0.5, 0.95]`; a `distribution=` model gives any,
        a `quantiles=` model those it was trained on) adds each forecast column's quantiles
        after that, named by their percentage: `y-q-5, y-q-50, y-q-95`.
        """
        self._check_fitted()
        if df is None:
            contexts = list(self.contexts_.values())
        else:
            series = self._series(df, self.lookback_)
            contexts = [_tail(s, self.lookback_) for s in series]
            self._warn_unflagged(contexts)
        futures = future_covariates(futr_df, contexts, self.schema_.futr_exog, self.horizon,
                                    self.schema_.layout, self.missing)
        static = self._static_features([c.uid for c in contexts], static_df)
        return self._forecast_frame(contexts, level, quantiles, futures, static)

    def _forecast_frame(self, contexts: list[Series], level: float | Sequence[float] | None,
                        quantiles: Sequence[float] | None = None,
                        futures: list[np.ndarray] | None = None,
                        static: np.ndarray | None = None) -> pd.DataFrame:
        """The forecast after each context (its last `lookback_` rows), a block of `horizon` rows
        per context in their order, in the original scale, with the intervals of `level` and
        the `quantiles` (None: none): what `predict` returns. `futures` are the `futr_exog`
        values over each context's horizon, `static` its series' static covariates."""
        levels, probabilities = self._check_intervals(level, quantiles)
        widths = self._half_widths(level) if not self._probabilistic() else {}
        scalers = [self._scaler(s) for s in contexts]
        inputs = [sc.transform(s.values) for sc, s in zip(scalers, contexts, strict=True)]
        horizon = 0
        if self._futr_from() is not None:  # the windows run on over the known horizon
            horizon = self.horizon
            inputs = with_horizon(inputs, contexts, scalers, horizon, len(self.schema_.columns),
                                  futures, self.time_freq_)
        dataset = self._window_dataset(inputs, horizon, static, all_windows=True)
        params = self._window_outputs(dataset)
        if not np.isfinite(params).all():
            raise FloatingPointError("The model forecast NaN or infinite values; its weights or "
                                     "these inputs are out of range (refit it, e.g. with a lower "
                                     "learning_rate).")
        output = getattr(self.net_, "forecast_output", POINT)
        forecasts = output.point(params)
        targets = list(self.schema_.targets)
        n_targets, rows = len(targets), len(contexts) * self.horizon
        # each context's scaler undone at once (StandardScaler.inverse_transform's arithmetic)
        means = np.stack([scaler.mean[:n_targets] for scaler in scalers])[:, None]
        scales = np.stack([scaler.scale[:n_targets] for scaler in scalers])[:, None]
        values = forecasts.astype(np.float64) * scales + means  # [contexts, horizon, targets]
        point = pd.DataFrame(values.reshape(rows, n_targets), columns=targets)
        if not output.probabilistic:
            frame = with_intervals(point, {lv: (width * scales).reshape(rows, n_targets)
                                           for lv, width in widths.items()})
            return with_forecast_index(frame, contexts, self.horizon, self.schema_.layout)

        def original(probabilities: Sequence[float]) -> np.ndarray:
            """The forecast's quantiles `[rows, targets, len(probabilities)]`, original units."""
            standard = output.quantile(params, probabilities)  # [contexts, horizon, targets, Q]
            return (standard * scales[..., None] + means[..., None]).reshape(rows, n_targets, -1)

        bounds = {}
        for lv in levels:
            both = original(level_quantiles(lv))
            bounds[lv] = (both[..., 0], both[..., 1])
        frame = with_bounds(point, bounds)
        if probabilities:
            frame = with_quantiles(frame, targets, original(probabilities), probabilities)
        return with_forecast_index(frame, contexts, self.horizon, self.schema_.layout)

    def _window_outputs(self, dataset: WindowDataset, net: nn.Module | None = None) -> np.ndarray:
        """The fitted network's (or `net`'s) output for every window of `dataset`, in
        standardized units: the forecast `[windows, horizon, targets]`, or a probabilistic
        model's parameters `[windows, horizon, targets, k]` (`tsk.heads.distributions`); one
        sample per window and channel when channel-independent, put back side by side."""
        raw = join_outputs(self._predict_outputs(dataset, collate=WindowDataset.collate,
                                                 net=net)).numpy()
        return dataset.side_by_side(raw)

    def _window_forecasts(self, dataset: WindowDataset, net: nn.Module | None = None) -> np.ndarray:
        """The fitted network's (or `net`'s) point forecast of every window of `dataset`,
        `[windows, horizon, targets]` in standardized units (`_window_outputs`; a probabilistic
        model's median or mean)."""
        net = self.net_ if net is None else net
        return getattr(net, "forecast_output", POINT).point(self._window_outputs(dataset, net))

    def check_intervals(self, level: float | Sequence[float] | None = None,
                        quantiles: Sequence[float] | None = None) -> None:
        """Raise, saying why, if this model cannot give intervals at `level` or these
        `quantiles`: before a fit, from its options (a script fails before reading data or
        training); once fitted, also when its conformal calibration has too few windows for a
        level. Checks what `predict(level=, quantiles=)` would, without forecasting."""
        self._validate_training_params()
        self._validate_params()
        self._check_intervals(level, quantiles)
        if self.__sklearn_is_fitted__() and not self._probabilistic():
            self._half_widths(level)

    def _check_intervals(self, level: float | Sequence[float] | None,
                         quantiles: Sequence[float] | None = None) -> tuple[list[float], list[float]]:
        """The levels and quantiles asked for, checked against what this model gives: a
        conformal model intervals, a `quantiles=` model the levels and quantiles of its
        trained grid, a `distribution=` model any."""
        levels = [] if level is None else check_levels(level)
        probabilities = [] if quantiles is None else check_quantiles(quantiles)
        output = self._output()
        if output.probabilistic:
            output.check_levels(levels)
            output.check_quantiles(probabilities)
        else:
            if levels:
                self._check_conformal()
            if probabilities:
                raise ValueError("quantiles= asks for the quantiles of a model that learns them: "
                                 "fit it with Forecaster(quantiles=[...]) or distribution='normal' "
                                 "/ 'student_t' (a conformal=True model gives intervals, level=, "
                                 "only).")
        return levels, probabilities

    def _half_widths(self, level: float | Sequence[float] | None) -> dict[float, np.ndarray]:
        """Each level's conformal half-width, `[horizon, targets]` in standardized units (a
        series' scale turns them into its own), from `conformal_scores_`; {} for no level."""
        if level is None:
            return {}
        levels = check_levels(level)
        self._check_conformal()
        scores = getattr(self, "conformal_scores_", None)
        if scores is None:
            raise ValueError("This model has no conformal calibration: it was fit with "
                             "conformal=False, or its fit had no validation window to calibrate "
                             "on. Fit it with conformal=True and validation data (validation_size "
                             "> 0 on series long enough to hold that share out, or val_df).")
        return {lv: conformal_quantile(scores, lv) for lv in levels}

    def _check_conformal(self) -> None:
        """A point model's intervals need `conformal=True`: say so where `level` is asked of
        another point model."""
        if not self.conformal:
            raise ValueError("level= asks for prediction intervals, which a point Forecaster "
                             "calibrates only with conformal=True: create it with Forecaster(..., "
                             "conformal=True) (its fit then keeps its errors on its validation "
                             "windows), or learn them with quantiles=[...] or distribution=, and "
                             "fit it again.")

    def _scaler(self, series: Series) -> StandardScaler:
        if series.uid in self.scalers_:
            return self.scalers_[series.uid]
        logger.info("Series %r was not seen in fit: scaling it with its own history.", series.uid)
        return self._fit_scaler(series.values)

    def _fit_scaler(self, values: np.ndarray) -> StandardScaler:
        """Standardize the data's columns; calendar features stay as they are, in [-0.5, 0.5]
        (TSLib feeds its time features unscaled)."""
        return StandardScaler.fit(values, keep_last=len(self.time_feature_names_))

    # ---- plot -----------------------------------------------------------------------------
    def plot(self, df: Any = None, n_series: int = 4, level: float | Sequence[float] | None = None,
             ax: Any = None, history: int | None = None, *,
             futr_df: pd.DataFrame | None = None, static_df: pd.DataFrame | None = None) -> Any:
        """Draw `predict(df, level=level)` after the data it continues and return the matplotlib
        Figure (`tsk.plotting.plot_forecast`; matplotlib comes with tsk's `plot` extra).

        One panel per series, for the first `n_series` in the forecast's order (ids sorted as
        text; only those are forecast), or in the wide layout one per target channel. Each shows
        the last `history` steps of its data (default two lookbacks; with `df=None`, the last
        `lookback_` steps of the training data, all the model keeps), the forecast and, with
        `level`, its intervals shaded, the wider the lighter (`level` needs a model that gives
        intervals, e.g. `conformal=True`, as `predict` says). `ax`: an Axes, or one per panel,
        to draw into. `futr_df`, `static_df`: the covariates `predict` takes.
        """
        from tsk.plotting import plot_forecast

        self._check_fitted()
        check_positive_int("n_series", n_series)
        targets, long = list(self.schema_.targets), self.schema_.layout == "long"
        if df is None:
            contexts = list(self.contexts_.values())[:n_series if long else None]
            data = pd.concat([pd.DataFrame({ID: c.uid, TIME: c.ds, **{
                t: c.values[:, j] for j, t in enumerate(targets)}}) for c in contexts])
            data = data if long else data.drop(columns=ID)
        else:
            data = _as_frame(df)
            if long and ID in data.columns:  # forecast only the series drawn
                ids = data[ID].astype(str)
                data = data[ids.isin(sorted(ids.unique())[:n_series]).to_numpy()]
        forecast = self.predict(None if df is None else data, level=level, futr_df=futr_df,
                                static_df=static_df)
        return plot_forecast(forecast, data, targets=targets, level=level, n_series=n_series,
                             history=2 * self.lookback_ if history is None else history, ax=ax)

    # ---- evaluate -------------------------------------------------------------------------
    def evaluate(self, df: Any, *, baselines: bool = False,
                 metric_scalers: dict[str, StandardScaler] | None = None,
                 level: float | Sequence[float] | None = None,
                 static_df: pd.DataFrame | None = None) -> dict[str, float]:
        """Score every stride-1 window of `df` (the first `lookback` rows are context).

        `mse`/`mae` are on standardized data (the TSLib benchmark metrics, averaged over
        windows x horizon x channels); `mase`/`smape` are GluonTS's, in the original scale.
        `baselines=True` scores the fit's baselines on the same windows beside the model
        (`linear_start_mse`, `seasonal_naive_mae`, ...: the closed-form linear start and the
        seasonal-naive forecast, `season_length_` steps back) and the model's skill over each,
        `skill_linear_start` = 1 - mse / linear_start_mse (above 0: the model beats it).
        `level` (a `conformal=True` model's intervals, or a `quantiles=` / `distribution=`
        model's own) scores the model's intervals too: `coverage_80` (the share of values
        inside the 80% interval, `tsk.metrics.coverage`) and `interval_score_80` (the Winkler /
        Gneiting-Raftery interval score, `tsk.metrics.interval_score`, on standardized data as
        `mse` is). A `quantiles=` / `distribution=` model also gets `crps` (on standardized
        data, as `mae`, which it generalizes: a normal's or a Student's t's in closed form, a
        quantile model's from its quantiles, `tsk.metrics.crps_quantiles`) and `wql` (GluonTS's
        mean weighted quantile loss, scale-free, in each series' original units over its
        trained quantiles, or a distribution's 0.1, ..., 0.9); `mse`, `mae`, `mase` and `smape`
        score its point forecast (the median or the mean).
        `metric_scalers` (uid -> scaler, e.g. another model's `scalers_`) standardizes the
        errors with other statistics than this model's own: a model refit on train + validation
        is then scored on the training split's scale, as the TSLib protocol does.
        Under `missing="mask"` every metric skips missing targets, and windows whose targets are
        all missing are not scored (`n_windows` counts the scored ones). Covariates known ahead
        are read from `df` itself (each window's horizon rows); `static_df` as in `predict`.
        """
        self._check_fitted()
        levels, _ = self._check_intervals(level)
        output = getattr(self.net_, "forecast_output", POINT)
        widths = {} if output.probabilistic else self._half_widths(level)
        nets = {"": self.net_, **(self._baselines() if baselines else {})}
        series = self._series(df, self.lookback_ + self.horizon)
        self._warn_unflagged(series)
        n_targets = len(self.schema_.targets)
        targets = slice(0, n_targets)
        totals: dict[str, list[float]] = {}
        weights = []
        statics = self._static_features([s.uid for s in series], static_df)
        for i, s in enumerate(series):
            scaler = self._scaler(s)
            dataset = self._window_dataset([scaler.transform(s.values)], self.horizon,
                                           None if statics is None else statics[i:i + 1])
            n_windows = len(dataset.index)
            if n_windows == 0:  # every window's targets are missing
                continue
            starts = dataset.index[:, 1]
            truth = dataset.future_values()
            history = s.values[starts[:, None] + np.arange(self.lookback_), :n_targets]
            truth_original = scaler.inverse_transform(truth, targets)
            units = scaler  # the statistics the scores standardize with
            if metric_scalers is not None:
                if s.uid not in metric_scalers:
                    raise ValueError(f"metric_scalers has no scaler for series {s.uid!r} "
                                     f"(it has {sorted(metric_scalers)[:5]}).")
                units = metric_scalers[s.uid]
                truth = units.transform(truth_original, targets)
            observed = ~np.isnan(truth)
            for name, net in nets.items():
                raw = self._window_outputs(dataset, net)
                pred = getattr(net, "forecast_output", POINT).point(raw)
                original = scaler.inverse_transform(pred, targets)
                if metric_scalers is not None:
                    pred = units.transform(original, targets)
                scores = {"mse": mse(truth[observed], pred[observed]),
                          "mae": mae(truth[observed], pred[observed]),
                          **gluonts_scores(history, truth_original, original, s.freq)}
                for lv, width in (widths if name == "" else {}).items():  # the model's only
                    half = width * scaler.scale[:n_targets]  # in the series' own units
                    lower = units.transform(original - half, targets)[observed]
                    upper = units.transform(original + half, targets)[observed]
                    scores[f"coverage_{level_name(lv)}"] = coverage(truth[observed], lower, upper)
                    scores[f"interval_score_{level_name(lv)}"] = interval_score(
                        truth[observed], lower, upper, lv)
                if name == "" and output.probabilistic:
                    scores.update(_probabilistic_scores(
                        output, raw, scaler, units, n_targets, truth, truth_original, levels))
                for key, value in scores.items():
                    totals.setdefault(f"{name}_{key}" if name else key, []).append(value)
            weights.append(n_windows)
        if not weights:
            raise ValueError("No window of this data has an observed target to score: every "
                             "window's horizon is missing.")
        result = {key: float(np.average(vals, weights=weights)) for key, vals in totals.items()}
        for name in nets:
            if name:
                result[f"skill_{name}"] = 1.0 - result["mse"] / result[f"{name}_mse"]
        result["n_windows"] = int(sum(weights))
        return result

    def score(self, df: Any) -> float:
        """Negative MSE on standardized data (higher is better, as scikit-learn expects)."""
        return -self.evaluate(df)["mse"]

    # ---- backtesting ----------------------------------------------------------------------
    def cross_validation(self, df: Any, n_windows: int, step_size: int | None = None,
                         refit: bool | int = False,
                         level: float | Sequence[float] | None = None,
                         quantiles: Sequence[float] | None = None,
                         static_df: pd.DataFrame | None = None) -> pd.DataFrame:
        """Backtest: forecast `horizon` steps from each of the last `n_windows` forecast origins
        (cutoffs) of every series, beside the actual values, as Nixtla's `cross_validation`
        does.

        Each series' cutoffs are its own (series that end at different times have different
        ones), `step_size` rows apart (None: `horizon`, windows that tile the series' end), the
        last `horizon` rows before its end, so the last window's horizon ends at its last
        timestamp. A window forecasts from the data up to and including its cutoff, as
        `predict` given that data would (a fit's `missing="interpolate"` fills only from it),
        reading the covariates known ahead (`futr_exog`) over its horizon from `df` and the
        static covariates from `static_df`.

        The estimator itself is neither used nor changed: fresh copies of it (its parameters,
        `sklearn.base.clone`) are fit on the data up to a cutoff, as Nixtla's libraries fit
        theirs; a model fit on all of `df` would have seen the values it forecasts.
        `refit=False` fits one copy on the data up to the first cutoff and forecasts every
        window with it; `refit=True` fits one at every cutoff; `refit=k` one at every k-th
        (windows 1, k + 1, 2k + 1, ...), which also forecasts the k - 1 windows after its own.
        Each fit validates (and with `conformal=True` calibrates) on the last
        `validation_size` of its own data.

        Returns a long frame sorted by series, cutoff and time: `unique_id`, `ds`, `cutoff`, `y`
        (the actual value; NaN where the data has none: a missing value, or a step a `freq=`
        grid inserted) and the forecast, named after the backbone as Nixtla names a model's
        column (`s4d`), followed by its intervals for `level` (`s4d-lo-95`, `s4d-lo-80`,
        `s4d-hi-80`, ...; needs `conformal=True`, `quantiles=` or `distribution=`, as
        `predict`'s `level` does) and its `quantiles` (`s4d-q-10`, ...; as `predict`'s).
        Data in the wide layout keeps that layout:
        `ds`, `cutoff`, each channel's actual values under its own name, then its forecast as
        `<backbone>-<channel>` (`s4d-OT`, with `s4d-OT-lo-80`, ...). A series too short to hold
        the windows and a fit before them raises, naming it.
        """
        check_positive_int("n_windows", n_windows)
        step = self.horizon if step_size is None else step_size
        check_positive_int("step_size", step)
        every = _refit_every(refit, n_windows)
        self._validate_training_params()
        self._validate_params()
        self._check_intervals(level, quantiles)
        frame = _as_frame(df)
        schema = infer_schema(frame, self.exogenous, self.futr_exog)
        # the actual values, as the data has them (a fit interpolates only its own part)
        kept = "mask" if self.missing == "interpolate" else self.missing
        series = to_series(frame, schema, **{**self._policies(), "missing": kept})
        held_out = self.horizon + (n_windows - 1) * step
        needed = held_out + (self.lookback or 1) + self.horizon
        short = [s for s in series if len(s) < needed]
        if short:
            listed = ", ".join(f"{s.uid!r} ({len(s)} rows)" for s in short[:LISTED_SERIES])
            more = f" and {len(short) - LISTED_SERIES} more" if len(short) > LISTED_SERIES else ""
            raise ValueError(
                f"{len(short)} series are too short to backtest: {n_windows} window(s) of "
                f"horizon {self.horizon}, {step} step(s) apart, hold out the last {held_out} rows "
                f"of each, and a fit before them needs lookback + horizon = "
                f"{needed - held_out} rows{'' if self.lookback else ' or more'}, {needed} in "
                f"all: {listed}{more}. Lower n_windows, step_size or lookback, or leave those "
                "series out.")
        # ends[i][k]: the rows of series i up to and including its k-th cutoff
        ends = [[len(s) - held_out + k * step for k in range(n_windows)] for s in series]
        parts = []
        for first in range(0, n_windows, every):
            cutoffs = {s.uid: s.ds[stops[first] - 1] for s, stops in zip(series, ends, strict=True)}
            model = clone(self).fit(_rows_until(frame, schema, cutoffs), static_df=static_df)
            windows = slice(first, first + every)
            parts.append(model._backtest(series, [stops[windows] for stops in ends], level,
                                         quantiles))
        result = pd.concat(parts, ignore_index=True)
        repeated = sorted(set(result.columns[result.columns.duplicated()]))
        if repeated:
            raise ValueError(f"The backtest's forecast columns {repeated} have the names of data "
                             "columns: rename those columns of the data.")
        keys = [ID, CUTOFF, TIME] if schema.layout == "long" else [CUTOFF, TIME]
        return result.sort_values(keys, kind="stable", ignore_index=True)

    def _backtest(self, series: list[Series], ends: list[list[int]],
                  level: float | Sequence[float] | None,
                  quantiles: Sequence[float] | None = None) -> pd.DataFrame:
        """This fitted model's forecasts from the first `ends[i][k]` rows of each series `i`,
        beside the actual values after them: `cross_validation`'s rows, columns and names."""
        contexts, actual, futures = [], [], []
        futr = slice(len(self.schema_.columns) - len(self.schema_.futr_exog), None)
        for s, stops in zip(series, ends, strict=True):
            for end in stops:
                values = s.values[:end]
                if self.missing == "interpolate" and np.isnan(values).any():
                    values = interpolate_missing(s.ds[:end], values)  # from the past alone
                contexts.append(_tail(Series(s.uid, s.ds[:end], values, s.freq), self.lookback_))
                actual.append(Series(s.uid, s.ds[end:end + self.horizon],
                                     s.values[end:end + self.horizon], s.freq))
                futures.append(s.values[end:end + self.horizon, futr])  # known ahead
        contexts = self._with_time_features(contexts)
        self._warn_unflagged(contexts)
        static = self._static_features([c.uid for c in contexts])
        forecast = self._forecast_frame(contexts, level, quantiles, futures, static)
        forecast = forecast.drop(columns=[ID, TIME], errors="ignore")
        long, targets = self.schema_.layout == "long", list(self.schema_.targets)
        levels, probabilities = self._check_intervals(level, quantiles)
        renames = {}  # predict's names -> Nixtla's: the target's column holds the actual values
        for target in targets:
            name = self.backbone if long else f"{self.backbone}-{target}"
            renames[target] = name
            for column in [*interval_columns(target, levels),
                           *quantile_columns(target, probabilities)]:
                renames[column] = name + column[len(target):]
        head = {ID: np.repeat([c.uid for c in contexts], self.horizon)} if long else {}
        head[TIME] = actual[0].ds.append([a.ds for a in actual[1:]])
        head[CUTOFF] = pd.DatetimeIndex([c.ds[-1] for c in contexts]).repeat(self.horizon)
        values = np.concatenate([a.values[:, : len(targets)] for a in actual])
        head.update({target: values[:, j] for j, target in enumerate(targets)})
        return pd.concat([pd.DataFrame(head), forecast.rename(columns=renames)], axis=1)

    # ---- persistence ----------------------------------------------------------------------
    def export(self, path: str | os.PathLike) -> Path:
        """Write an inference artifact to folder `path`: the network as a `torch.export` program
        (torch alone runs it) with the scalers, columns, frequency, data policies and calendar
        features `predict` needs around it. `tsk.exported.load(path).predict(df)` returns what
        `predict(df)` does, without tsk's estimators, scikit-learn or Lightning (`tsk.exported`
        describes the files). The export is checked against `predict()` before it is written; a
        network torch.export cannot trace raises `tsk.exported.ExportError`. A `quantiles=` or
        `distribution=` model exports its point forecast (the median or the mean, `predict()`'s
        columns; the program ends with `tsk.heads.distributions.PointForecast`): its intervals
        and quantiles are not exported."""
        from tsk import exported

        self._check_fitted()
        state, arrays = self._fitted_state()
        metadata = {
            "estimator": type(self).__name__, "backbone": self.backbone, "horizon": self.horizon,
            "lookback": self.lookback_, **state["schema"], "channel_independent": self._independent(),
            "n_inputs": self.n_inputs_, "n_outputs": self.n_outputs_, "time_freq": self.time_freq_,
            "time_features": self.time_feature_names_, "policies": self._policies(),
            "flag_columns": self._flag_columns(),
            "freqs": sorted({c.freq for c in self.contexts_.values()}),
            "scaled_series": state["scaled_series"], "contexts": state["contexts"],
            "futr_from": self._futr_from(), "static": state["static"],
            "static_series": state.get("static_series", []),
            "forecast": self._output().point_name,
        }
        kept = {name: arrays[name] for name in ("scaler_mean", "scaler_scale", "context_values",
                                                 "static_values") if name in arrays}
        # checked on the model's own contexts; known-ahead covariates need values over their
        # horizon: each context's last ones, carried on, stand in (any values compare the two)
        futr_df = None
        if self.schema_.futr_exog:
            contexts = list(self.contexts_.values())
            first = len(self.schema_.columns) - len(self.schema_.futr_exog)
            futr_df = with_forecast_index(pd.DataFrame(
                np.concatenate([np.repeat(np.nan_to_num(c.values[-1:, first:len(self.schema_.columns)]),
                                          self.horizon, axis=0) for c in contexts]),
                columns=list(self.schema_.futr_exog)), contexts, self.horizon, self.schema_.layout)
        # the program runs on the CPU: what it must reproduce is the model's forecast there
        accelerator, self.accelerator = self.accelerator, "cpu"
        try:
            reference = self.predict(futr_df=futr_df)
        finally:
            self.accelerator = accelerator
        net = PointForecast(self.net_) if self._probabilistic() else self.net_
        return exported.write(path, net, metadata, kept, reference=reference, futr_df=futr_df)

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        uids = list(self.scalers_)
        state = {
            "schema": self.schema_.to_dict(),
            "n_inputs": self.n_inputs_,
            "n_outputs": self.n_outputs_,
            "lookback": self.lookback_,
            "tokens": self.tokens_,
            "time_freq": self.time_freq_,
            "scaled_series": uids,
            "contexts": [{"uid": c.uid, "freq": c.freq, "ds": c.ds.astype(str).tolist()}
                         for c in self.contexts_.values()],
            "fit_summary": vars(self.fit_summary_) if hasattr(self, "fit_summary_") else None,
            "season_length": self.season_length_,
            "missing_flags": self.missing_flags_,
            "futr_calendar": self.futr_calendar_,
            "static": None if self.static_ is None else self.static_.to_dict(),
        }
        arrays = {
            "scaler_mean": np.stack([self.scalers_[u].mean for u in uids]),
            "scaler_scale": np.stack([self.scalers_[u].scale for u in uids]),
            "context_values": np.stack([c.values for c in self.contexts_.values()]),
            "linear_start_weight": self.linear_start_.skip.weight.detach().numpy(),
            "linear_start_bias": self.linear_start_.skip.bias.detach().numpy(),
        }
        if getattr(self, "conformal_scores_", None) is not None:
            arrays["conformal_scores"] = self.conformal_scores_
        if self.static_ is not None:  # the training series' encoded static covariates
            state["static_series"] = list(self.static_values_)
            arrays["static_values"] = np.stack(list(self.static_values_.values()))
        return state, arrays

    def _restore_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.schema_ = Schema.from_dict(state["schema"])
        self.n_inputs_, self.n_outputs_ = state["n_inputs"], state["n_outputs"]
        self.lookback_ = state.get("lookback", self.lookback)
        self.tokens_ = state.get("tokens", self.tokens or "time")
        self.time_freq_ = state.get("time_freq")
        self.scalers_ = {
            uid: StandardScaler(arrays["scaler_mean"][i], arrays["scaler_scale"][i])
            for i, uid in enumerate(state["scaled_series"])
        }
        self.season_length_ = state.get("season_length", 1)
        self.missing_flags_ = state.get("missing_flags", [])
        self.futr_calendar_ = state.get("futr_calendar", False)  # False before tsk read it ahead
        self.static_ = StaticCovariates.from_dict(state["static"]) if state.get("static") else None
        self.static_values_ = dict(zip(state.get("static_series", []),
                                       arrays.get("static_values", []), strict=False))
        if "conformal_scores" in arrays:
            self.conformal_scores_ = arrays["conformal_scores"]
        if "linear_start_weight" in arrays:  # absent from models saved before the baselines
            self.linear_start_ = self._masked(RidgeForecast(self.lookback_, self.horizon,
                                                            self.n_outputs_, self.instance_norm)).eval()
            self.linear_start_.skip.weight.data = torch.as_tensor(arrays["linear_start_weight"])
            self.linear_start_.skip.bias.data = torch.as_tensor(arrays["linear_start_bias"])
        self.contexts_ = {}
        for i, c in enumerate(state["contexts"]):
            ds = pd.DatetimeIndex(pd.to_datetime(c["ds"]))
            self.contexts_[c["uid"]] = Series(c["uid"], ds, arrays["context_values"][i], c["freq"])


def _probabilistic_scores(output: ForecastOutput, params: np.ndarray, scaler: StandardScaler,
                          units: StandardScaler, n_targets: int, truth: np.ndarray,
                          truth_original: np.ndarray, levels: list[float]) -> dict[str, float]:
    """`Forecaster.evaluate`'s scores of a probabilistic model's forecasts `params` (of one
    series' windows, in the units `scaler` standardizes to) against `truth` (standardized by
    `units`; NaN: missing) and `truth_original`: `crps` and each level's coverage and interval
    score in the units of `truth`, `wql` in the original units."""
    observed = ~np.isnan(truth)
    params = params.astype(np.float64)
    mean, scale = scaler.mean[:n_targets], scaler.scale[:n_targets]
    original = output.affine(params, mean, scale)
    # the same forecasts in the units the scores standardize with (`units`, e.g. metric_scalers)
    standard = output.affine(params, (mean - units.mean[:n_targets]) / units.scale[:n_targets],
                             scale / units.scale[:n_targets])
    grid = output.evaluation_quantiles
    scores = {"crps": output.crps(standard[observed], truth[observed]),
              "wql": weighted_quantile_loss(truth_original[observed],
                                            output.quantile(original, grid)[observed], grid)}
    for lv in levels:
        bounds = output.quantile(standard, level_quantiles(lv))[observed]
        lower, upper = bounds[:, 0], bounds[:, 1]
        scores[f"coverage_{level_name(lv)}"] = coverage(truth[observed], lower, upper)
        scores[f"interval_score_{level_name(lv)}"] = interval_score(truth[observed], lower, upper, lv)
    return scores


def _generic_head_backbones() -> list[str]:
    """The backbones that forecast with the generic head (the others with their paper's own
    network): those that take covariates known ahead, static ones and probabilistic outputs."""
    return sorted(name for kind in (*SEQUENCE_KINDS, *GRID_KINDS)
                  for name in backbones.available(kind) if get_task_net("forecast", name) is None)


def _refit_every(refit: Any, n_windows: int) -> int:
    """How many windows each fit of `cross_validation` forecasts (`refit`: False, True or k)."""
    if isinstance(refit, bool | np.bool_):
        return 1 if refit else n_windows
    if not isinstance(refit, int | np.integer):
        raise TypeError(f"refit must be True, False or a number of windows, got {refit!r} "
                        f"({type(refit).__name__}).")
    if refit <= 0:
        raise ValueError(f"refit must be a positive number of windows (refit every k windows), "
                         f"True (every window) or False (fit once, before the first), got {refit}.")
    return int(refit)


def _rows_until(frame: pd.DataFrame, schema: Schema, cutoffs: dict[str, pd.Timestamp]
                ) -> pd.DataFrame:
    """The rows of `frame` up to and including their series' cutoff (`cutoffs`: uid -> time)."""
    if schema.layout == "long":
        limit = frame[ID].astype(str).map(pd.Series(cutoffs))
    else:
        limit = cutoffs[WIDE_SERIES_ID]
    return frame[frame[TIME] <= limit].reset_index(drop=True)


def _ridge_start(net: nn.Module, train: DataLoader, validation: DataLoader | None) -> None:
    """Start from the closed-form ridge forecast (`ForecastNet.init_skip_ridge`), solved on the
    training windows alone (the validation windows are early stopping's)."""
    net.init_skip_ridge(train)


def _shared_frequency(series: list[Series]) -> str:
    """The one frequency of all series, which names their calendar features."""
    freqs = sorted({s.freq for s in series})
    if len(freqs) > 1:
        raise ValueError(f"time_features need one frequency for all series, got {freqs}: fit "
                         "series of each frequency separately, or set time_features=False.")
    return freqs[0]


def _data_digest(parts: list[tuple[Series, int]],
                 static: dict[str, np.ndarray] | None = None) -> str:
    """A hash of the training and validation data (each series' id, timestamps, values and
    where its split falls, and its encoded static covariates), so that a resumed fit can tell
    it is given the same data. The
    timestamps count in nanoseconds whatever unit holds them (pandas 3 parses text to
    microseconds), so that a fit begun with another pandas resumes."""
    digest = hashlib.sha256()
    for series, cut in parts:
        digest.update(repr((series.uid, cut, series.values.shape)).encode())
        digest.update(series.ds.as_unit("ns").asi8.tobytes())
        digest.update(np.ascontiguousarray(series.values).tobytes())
    for uid, features in (static or {}).items():
        digest.update(repr(uid).encode() + np.ascontiguousarray(features).tobytes())
    return digest.hexdigest()


def _tail(series: Series, rows: int) -> Series:
    return Series(series.uid, series.ds[-rows:], series.values[-rows:], series.freq)


def _as_frame(data: Any) -> pd.DataFrame:
    return gluonts_to_frame(data) if is_gluonts_dataset(data) else data
