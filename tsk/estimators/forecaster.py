"""`Forecaster`: multi-horizon forecasting with any registered backbone, scikit-learn style."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from tsk import backbones
from tsk._names import unknown_name_error
from tsk.datasets.calendar import season_length, time_feature_names, with_time_features
from tsk.datasets.frames import (
    ID,
    TIME,
    Schema,
    Series,
    future_index,
    infer_schema,
    to_series,
)
from tsk.datasets.gluonts_data import gluonts_to_frame, is_gluonts_dataset
from tsk.datasets.scaling import StandardScaler
from tsk.datasets.windows import WindowDataset
from tsk.estimators.base import FitData, SequenceEstimator, join_outputs
from tsk.estimators.registry import register_estimator
from tsk.heads.forecast import (
    GRID_KINDS,
    SEQUENCE_KINDS,
    ForecastNet,
    GridForecastNet,
    RidgeForecast,
    RidgeStartNet,
    SeasonalNaive,
    VariateForecastNet,
    token_count,
)
from tsk.heads.registry import TaskNetSpec, check_backbone_kind, get_task_net
from tsk.metrics import gluonts_scores, mae, mse
from tsk.training import mean_loss

logger = logging.getLogger(__name__)

TOKEN_LAYOUTS = ("time", "patches", "variates")
LONG_LOOKBACK = 336
SHORT_SERIES_SHARE = 6
"""A short series' default lookback is at most this fraction of what it leaves after the horizon:
on ILI's 676 training weeks a third (217 steps) left the linear start worse (2.18-2.24 MSE
against 2.04-2.18 at 104) and s4d kept it at every horizon; a sixth is ~PatchTST's 104."""


@register_estimator
class Forecaster(SequenceEstimator):
    """Forecast the next `horizon` steps of one or many series from their last `lookback` steps.

    Data: a long frame (`unique_id`, `ds`, `y`, exogenous...) or a wide one (`ds` + one column
    per channel), or a GluonTS dataset. `fit` splits each series by time (the last
    `validation_size` of it validates, unless `val_df` is given), standardizes each series and
    channel with statistics of its training rows, trains on every stride-1 window with early
    stopping and restores the best checkpoint. `predict` returns the next `horizon` timestamps in
    the original scale. Missing values raise (fill them first); unsorted rows are sorted.

    `tokens="time"` runs the backbone along time (one token per step); `tokens="patches"` runs it
    along PatchTST's patches (`patch_len` steps every `patch_len // 2`: ~8x fewer tokens at
    lookback 336 with the default 16); `tokens="variates"` runs it across channels, each
    channel's window one token (the iTransformer / S-Mamba layout; needs
    `channel_independent=False`). `None` picks patches when the window holds at least four and
    the generic head is used, else time steps (`tokens_` says which).
    `lookback=None` picks 336 steps, a sixth of a short series (`lookback_` says what).
    `channel_independent=None` forecasts each channel on its own with a sequence backbone and all
    channels jointly with a grid backbone (Chimera: the channels are its variates, tokenized on
    their own along time; `tsk.heads.forecast.GridForecastNet`).

    Parameters left as `None` (`d_model`, `n_layers`, `dropout`) take the backbone's defaults;
    `backbone_kwargs` sets any other option of the backbone's config.
    `exogenous` names columns used as past covariates (inputs, not forecast).
    `time_features=True` adds calendar features of `ds` as past covariates (hourly data: hour of
    day, day of week, day of month, day of year; `tsk.datasets.calendar`); `None` follows the
    backbone's paper (TPGN's network reads them), `time_features_` says what a fit used.
    `instance_norm` (RevIN) is on by default, for every network: without it TPGN, whose
    authors switch it per dataset, is 1.3-2.2x worse on ETTh1/ETTh2 multivariate at horizon 720.
    `ridge_init` starts from the closed-form ridge forecast: a linear skip is solved on the
    training windows (strength picked on validation) and frozen, and the deep part, zero at
    first, learns the rest; if no validation beats that start, it is kept. `None` (default) starts the
    generic head there (its own skip) and trains a paper's network (SpaceTime, TPGN) as its paper
    does, from random weights; `True` wraps a paper's network in `RidgeStartNet` (a skip plus the
    network behind a zero-initialized gate). TPGN from the ridge start was closer to the linear
    floor on TSLib's multivariate ETTh1/ETTh2 but up to 2.6x worse at its paper's long horizons
    (benchmarks/results). Never with `tokens="variates"`.
    `learning_rate=None` is 1e-3 from either start (`learning_rate_`).
    Every fit also scores two baselines on validation (`fit_summary_.baselines`): that linear
    start (solved even when the network does not start there; `linear_start_`) and the
    seasonal-naive forecast, `season_length` steps back (None: a day for data stepping within a
    day, 7 for daily, 52 for weekly data, ..., 1 when the series step at different rates;
    `season_length_`); `evaluate(df, baselines=True)`
    scores them on `df` beside the model, with its skill over each.
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
        exogenous: Sequence[str] | None = None,
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
        **training: Any,
    ) -> None:
        self.backbone = backbone
        self.horizon = horizon
        self.lookback = lookback
        self.channel_independent = channel_independent
        self.tokens = tokens
        self.patch_len = patch_len
        self.exogenous = exogenous
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
        self._set_training_params(training)

    # ---- fit ------------------------------------------------------------------------------
    def fit(self, df: Any, val_df: Any = None, *,
            checkpoint_dir: str | os.PathLike | None = None) -> Forecaster:
        """Train on `df`; validate on `val_df` if given (its first `lookback` rows are context),
        else on the last `validation_size` of each series. With `checkpoint_dir`, the training
        checkpoints are kept there, and a fit interrupted earlier (same model, same data, same
        folder) resumes from its last checkpoint (each epoch's end, and every 10 minutes within
        one) and ends as the uninterrupted fit would."""
        return self._fit(df, val_df, checkpoint_dir=checkpoint_dir)

    def _prepare_fit(self, df: Any, val_df: Any = None) -> FitData:
        """Split, scale and window the data; keeps the fitted preprocessing state."""
        df = _as_frame(df)
        self.lookback_ = lookback = self.resolve_lookback(df)
        self.tokens_ = self._resolve_tokens(lookback)
        if self.tokens_ == "patches" and self.patch_len > lookback:
            raise ValueError(f"patch_len ({self.patch_len}) must not exceed the lookback "
                             f"({lookback}).")
        self.schema_ = schema = infer_schema(df, self.exogenous)
        series = to_series(df, schema, min_length=lookback + self.horizon)
        self.time_freq_ = _shared_frequency(series) if self._resolve_time_features() else None
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
        train_set = WindowDataset(
            [scalers[s.uid].transform(s.values) for s in series], lookback, self.horizon,
            n_targets, self._independent(),
            starts=[(0, cut - lookback - self.horizon + 1) for cut in cuts],
        )
        val_set = None
        if validation:
            val_set = WindowDataset(
                [scalers[v.uid].transform(v.values) for v, _ in validation], lookback,
                self.horizon, n_targets, self._independent(),
                starts=[(max(cut - lookback, 0), len(v)) for v, cut in validation],
            )
            if len(val_set) == 0:
                val_set = None
        if val_set is None and self.validation_size > 0:
            logger.warning("No series is long enough for a validation window: training without "
                           "early stopping for %d epochs.", self.max_epochs)
        self.n_inputs_ = ((1 if self._independent() else n_targets) + len(schema.exogenous)
                          + len(self.time_feature_names_))
        self.n_outputs_ = 1 if self._independent() else n_targets
        self.scalers_ = scalers
        self.contexts_ = {s.uid: _tail(s, lookback) for s in series}
        freqs = {s.freq for s in series}
        self.season_length_ = self.season_length or (season_length(freqs.pop()) if len(freqs) == 1
                                                     else 1)
        return FitData(
            train_set, val_set, collate=WindowDataset.collate,
            digest=_data_digest([*zip(series, cuts, strict=True), *validation]),
            warm_start=_ridge_start if self._ridge_start(self.tokens_) else None,
            baselines=self._fit_baselines,
        )

    def _fit_baselines(self, net: nn.Module, train: DataLoader,
                       validation: DataLoader | None) -> dict[str, float]:
        """Keep the linear start (`linear_start_`: the net's own frozen skip when it started
        there, else the same closed form solved now) and return its validation loss and the
        seasonal-naive forecast's, in the units of the model's (`fit_summary_.baselines`)."""
        linear = RidgeForecast(self.lookback_, self.horizon, self.n_outputs_, self.instance_norm)
        if self._ridge_start(self.tokens_):
            linear.skip.load_state_dict(net.skip.state_dict())
        else:
            linear.fit(train, validation)
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
        if self.lookback is not None:
            self._check_positive_ints("lookback")
        if self.season_length is not None:
            self._check_positive_ints("season_length")
        if not 0 <= self.validation_size < 1:
            raise ValueError(f"validation_size must be in [0, 1), got {self.validation_size!r}.")
        backbones.get_spec(self.backbone)  # unknown names raise with the closest match
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
        series = to_series(_as_frame(df), self.schema_, min_length=min_length)
        if freqs is None:
            freqs = {context.freq for context in self.contexts_.values()}
        fitted = sorted(freqs)
        other = [s for s in series if s.freq not in fitted]
        if other:
            raise ValueError(
                f"Series {other[0].uid!r} steps at {other[0].freq!r}; the model was fit on data at "
                f"{' / '.join(map(repr, fitted))}, and its forecast would step at that rate. "
                "Resample the data to the fitted frequency (df.resample) or fit a model on it.")
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

    def _build_net(self) -> nn.Module:
        patch_len = self.patch_len if self.tokens_ == "patches" else None
        # the tokens it reads: one per channel, or the window's time steps or patches
        tokens = self.n_inputs_ if self.tokens_ == "variates" else token_count(self.lookback_, patch_len)
        config = self._backbone_config(tokens)
        backbone = backbones.create(self.backbone, **config)
        n_calendar = len(self.time_feature_names_)
        if self.tokens_ == "variates":
            return VariateForecastNet(
                backbone, self.lookback_, self.horizon, self.n_outputs_, backbone.config.d_model,
                dropout=backbone.config.dropout, instance_norm=self.instance_norm,
                n_calendar=n_calendar,
            )
        if self._grid():
            return GridForecastNet(
                backbone, self.lookback_, self.horizon, self.n_inputs_, self.n_outputs_,
                d_model=backbone.config.d_model, head_dim=self.head_dim,
                dropout=backbone.config.dropout, instance_norm=self.instance_norm,
                patch_len=patch_len, n_calendar=n_calendar,
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
            patch_len=patch_len, n_calendar=n_calendar,
        )

    # ---- predict --------------------------------------------------------------------------
    def predict(self, df: Any = None) -> pd.DataFrame:
        """Forecast the `horizon` steps after each series' end: after the training data when
        `df` is None, else after the end of each series in `df` (only its last `lookback` rows
        are used). Returns the same layout as the training data, in the original scale."""
        self._check_fitted()
        if df is None:
            contexts = list(self.contexts_.values())
        else:
            series = self._series(df, self.lookback_)
            contexts = [_tail(s, self.lookback_) for s in series]
        scalers = [self._scaler(s) for s in contexts]
        dataset = WindowDataset(
            [sc.transform(s.values) for sc, s in zip(scalers, contexts, strict=True)],
            self.lookback_, 0, len(self.schema_.targets), self._independent(),
        )
        # [S * channels, H, outputs]
        raw = join_outputs(self._predict_outputs(dataset, collate=WindowDataset.collate)).numpy()
        if not np.isfinite(raw).all():
            raise FloatingPointError("The model forecast NaN or infinite values; its weights or "
                                     "these inputs are out of range (refit it, e.g. with a lower "
                                     "learning_rate).")
        forecasts = raw.reshape(len(contexts), -1, self.horizon, self.n_outputs_)
        forecasts = forecasts.transpose(0, 2, 1, 3).reshape(len(contexts), self.horizon, -1)
        n_targets = len(self.schema_.targets)
        frames = []
        for context, scaler, forecast in zip(contexts, scalers, forecasts, strict=True):
            values = scaler.inverse_transform(forecast, slice(0, n_targets))
            frame = pd.DataFrame(values, columns=list(self.schema_.targets))
            frame.insert(0, TIME, future_index(context, self.horizon))
            if self.schema_.layout == "long":
                frame.insert(0, ID, context.uid)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def _scaler(self, series: Series) -> StandardScaler:
        if series.uid in self.scalers_:
            return self.scalers_[series.uid]
        logger.info("Series %r was not seen in fit: scaling it with its own history.", series.uid)
        return self._fit_scaler(series.values)

    def _fit_scaler(self, values: np.ndarray) -> StandardScaler:
        """Standardize the data's columns; calendar features stay as they are, in [-0.5, 0.5]
        (TSLib feeds its time features unscaled)."""
        scaler = StandardScaler.fit(values)
        calendar = len(self.time_feature_names_)
        if calendar:
            scaler.mean[-calendar:], scaler.scale[-calendar:] = 0.0, 1.0
        return scaler

    # ---- evaluate -------------------------------------------------------------------------
    def evaluate(self, df: Any, *, baselines: bool = False,
                 metric_scalers: dict[str, StandardScaler] | None = None) -> dict[str, float]:
        """Score every stride-1 window of `df` (the first `lookback` rows are context).

        `mse`/`mae` are on standardized data (the TSLib benchmark metrics, averaged over
        windows x horizon x channels); `mase`/`smape` are GluonTS's, in the original scale.
        `baselines=True` scores the fit's baselines on the same windows beside the model
        (`linear_start_mse`, `seasonal_naive_mae`, ...: the closed-form linear start and the
        seasonal-naive forecast, `season_length_` steps back) and the model's skill over each,
        `skill_linear_start` = 1 - mse / linear_start_mse (above 0: the model beats it).
        `metric_scalers` (uid -> scaler, e.g. another model's `scalers_`) standardizes the
        errors with other statistics than this model's own: a model refit on train + validation
        is then scored on the training split's scale, as the TSLib protocol does.
        """
        self._check_fitted()
        nets = {"": self.net_, **(self._baselines() if baselines else {})}
        series = self._series(df, self.lookback_ + self.horizon)
        n_targets = len(self.schema_.targets)
        totals: dict[str, list[float]] = {}
        weights = []
        for s in series:
            scaler = self._scaler(s)
            scaled = scaler.transform(s.values)
            dataset = WindowDataset([scaled], self.lookback_, self.horizon, n_targets,
                                    self._independent())
            n_windows = len(dataset.index)
            starts = dataset.index[:, 1]
            offsets = np.arange(self.horizon)
            truth = scaled[starts[:, None] + self.lookback_ + offsets, :n_targets]
            history = s.values[starts[:, None] + np.arange(self.lookback_), :n_targets]
            truth_original = scaler.inverse_transform(truth, slice(0, n_targets))
            if metric_scalers is not None:
                if s.uid not in metric_scalers:
                    raise ValueError(f"metric_scalers has no scaler for series {s.uid!r} "
                                     f"(it has {sorted(metric_scalers)[:5]}).")
                truth = metric_scalers[s.uid].transform(truth_original, slice(0, n_targets))
            for name, net in nets.items():
                raw = join_outputs(self._predict_outputs(dataset, collate=WindowDataset.collate,
                                                         net=net)).numpy()
                pred = raw.reshape(n_windows, -1, self.horizon, self.n_outputs_)
                pred = pred.transpose(0, 2, 1, 3).reshape(n_windows, self.horizon, n_targets)
                original = scaler.inverse_transform(pred, slice(0, n_targets))
                if metric_scalers is not None:
                    pred = metric_scalers[s.uid].transform(original, slice(0, n_targets))
                scores = {"mse": mse(truth, pred), "mae": mae(truth, pred),
                          **gluonts_scores(history, truth_original, original, s.freq)}
                for key, value in scores.items():
                    totals.setdefault(f"{name}_{key}" if name else key, []).append(value)
            weights.append(n_windows)
        result = {key: float(np.average(vals, weights=weights)) for key, vals in totals.items()}
        for name in nets:
            if name:
                result[f"skill_{name}"] = 1.0 - result["mse"] / result[f"{name}_mse"]
        result["n_windows"] = int(sum(weights))
        return result

    def score(self, df: Any) -> float:
        """Negative MSE on standardized data (higher is better, as scikit-learn expects)."""
        return -self.evaluate(df)["mse"]

    # ---- persistence ----------------------------------------------------------------------
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
        }
        arrays = {
            "scaler_mean": np.stack([self.scalers_[u].mean for u in uids]),
            "scaler_scale": np.stack([self.scalers_[u].scale for u in uids]),
            "context_values": np.stack([c.values for c in self.contexts_.values()]),
            "linear_start_weight": self.linear_start_.skip.weight.detach().numpy(),
            "linear_start_bias": self.linear_start_.skip.bias.detach().numpy(),
        }
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
        if "linear_start_weight" in arrays:  # absent from models saved before the baselines
            self.linear_start_ = RidgeForecast(self.lookback_, self.horizon, self.n_outputs_,
                                               self.instance_norm).eval()
            self.linear_start_.skip.weight.data = torch.as_tensor(arrays["linear_start_weight"])
            self.linear_start_.skip.bias.data = torch.as_tensor(arrays["linear_start_bias"])
        self.contexts_ = {}
        for i, c in enumerate(state["contexts"]):
            ds = pd.DatetimeIndex(pd.to_datetime(c["ds"]))
            self.contexts_[c["uid"]] = Series(c["uid"], ds, arrays["context_values"][i], c["freq"])


def _ridge_start(net: nn.Module, train: DataLoader, validation: DataLoader | None) -> None:
    """Start from the closed-form ridge forecast (`ForecastNet.init_skip_ridge`)."""
    net.init_skip_ridge(train, validation)


def _shared_frequency(series: list[Series]) -> str:
    """The one frequency of all series, which names their calendar features."""
    freqs = sorted({s.freq for s in series})
    if len(freqs) > 1:
        raise ValueError(f"time_features need one frequency for all series, got {freqs}: fit "
                         "series of each frequency separately, or set time_features=False.")
    return freqs[0]


def _data_digest(parts: list[tuple[Series, int]]) -> str:
    """A hash of the training and validation data (each series' id, timestamps, values and
    where its split falls), so that a resumed fit can tell it is given the same data. The
    timestamps count in nanoseconds whatever unit holds them (pandas 3 parses text to
    microseconds), so that a fit begun with another pandas resumes."""
    digest = hashlib.sha256()
    for series, cut in parts:
        digest.update(repr((series.uid, cut, series.values.shape)).encode())
        digest.update(series.ds.as_unit("ns").asi8.tobytes())
        digest.update(np.ascontiguousarray(series.values).tobytes())
    return digest.hexdigest()


def _tail(series: Series, rows: int) -> Series:
    return Series(series.uid, series.ds[-rows:], series.values[-rows:], series.freq)


def _as_frame(data: Any) -> pd.DataFrame:
    return gluonts_to_frame(data) if is_gluonts_dataset(data) else data
