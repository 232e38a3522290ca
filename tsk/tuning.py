"""Hyperparameter search with Optuna: `tsk.tune(estimator, data)`.

Each trial clones the estimator, sets the sampled parameters, fits on a time split of the data
(the same split as `fit`, or rolling-origin folds) and scores the held-out part with
`estimator.evaluate(...)[metric]`. A small Lightning callback reports the validation loss of every
epoch to Optuna so that a pruner can stop unpromising trials early (they are recorded as
PRUNED); a trial that raises or whose score is not finite is recorded as FAIL with the reason in
`trial.user_attrs["error"]`, and the study goes on. Studies live in memory by default, or in any
Optuna RDB URL (`sqlite:///tsk-tuning.db`, PostgreSQL), where the same `study_name` resumes a
study and several processes or machines can work on it at once.

Search spaces are plain data: name -> Optuna distribution (`IntDistribution`,
`FloatDistribution`, `CategoricalDistribution`). Every backbone declares a default one next to
its config (`tsk.backbones.get_spec("s4d").search_space`); `default_space(name)` returns a copy to
extend or override. A parameter can be conditional: instead of a distribution give
`{"distribution": dist, "when": {"n_layers": [2, 3]}}`, and it is only sampled (and set) when the
named parameters, sampled earlier in the space or fixed on the estimator, take one of those values.
A name that is a parameter of the estimator (`lookback`, `learning_rate`, `batch_size`,
`dropout`, ...) sets it; any other name must be an option of the backbone's config and goes into
`backbone_kwargs`.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState
from sklearn.base import clone

from tsk import backbones
from tsk._extras import require
from tsk._names import unknown_name_error
from tsk.datasets.frames import ID, TIME, infer_schema
from tsk.datasets.gluonts_data import gluonts_to_frame, is_gluonts_dataset
from tsk.datasets.split import ForecastSplit

logger = logging.getLogger(__name__)

METRICS = ("mse", "mae", "mase", "smape")
# Estimator parameters a search space may not set: they define the task or the machinery.
_FIXED = {"backbone", "horizon", "backbone_kwargs", "exogenous", "trainer_kwargs", "accelerator",
          "devices", "enable_progress_bar", "num_workers", "random_state", "validation_size"}


def default_space(backbone: str) -> dict[str, Any]:
    """A fresh copy of backbone `backbone`'s default search space, to extend or override."""
    return backbones.get_spec(backbone).search_space


def space_from_json(entries: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A search space from JSON data: name -> Optuna's distribution JSON (`{"name":
    "IntDistribution", "attributes": {"low": 8, "high": 64}}`), optionally wrapped as
    `{"distribution": ..., "when": {...}}`; `null` removes a name. Entries override `base`."""
    from optuna.distributions import json_to_distribution

    space = dict(base or {})
    for name, entry in entries.items():
        if entry is None:
            space.pop(name, None)
            continue
        if isinstance(entry, Mapping) and "distribution" in entry:
            space[name] = {"distribution": json_to_distribution(_json_text(entry["distribution"])),
                           "when": dict(entry.get("when") or {})}
        else:
            space[name] = json_to_distribution(_json_text(entry))
    return space


def _json_text(entry: Any) -> str:
    import json

    return entry if isinstance(entry, str) else json.dumps(entry)


# ---- results ------------------------------------------------------------------------------
@dataclass
class TuningResult:
    """What `tune` found: the best parameters and score, the refit estimator, the study.

    `best_estimator_` is None when `refit=False`. Counts are over the whole study (a resumed or
    shared study counts every worker's trials).
    """

    best_params_: dict[str, Any]
    best_score_: float
    best_estimator_: Any
    study_: optuna.Study
    metric: str = "mse"

    @property
    def n_trials_(self) -> int:
        return len(self.study_.trials)

    def count(self, state: TrialState) -> int:
        """Trials of the study in `state` (e.g. `TrialState.PRUNED`)."""
        return sum(t.state == state for t in self.study_.trials)

    def trials_dataframe(self) -> pd.DataFrame:
        """One row per trial: number, state, value, parameters, user attributes (errors...)."""
        return self.study_.trials_dataframe()

    def top_trials(self, k: int = 10) -> pd.DataFrame:
        """The `k` best completed trials, best first, with their parameters."""
        frame = self.trials_dataframe()
        frame = frame[frame["state"] == "COMPLETE"]
        ascending = self.study_.direction == optuna.study.StudyDirection.MINIMIZE
        frame = frame.sort_values("value", ascending=ascending).head(k)
        columns = ["number", "value"] + [c for c in frame.columns if c.startswith("params_")]
        frame = frame[columns].rename(columns=lambda c: c.removeprefix("params_"))
        return frame.rename(columns={"value": self.metric}).reset_index(drop=True)

    def plot_history(self, path: str | os.PathLike | None = None) -> Any:
        """Objective value per trial and the best so far (matplotlib); saved to `path` if given.
        Returns the matplotlib Figure."""
        require("matplotlib", "plot", feature="tuning plots")
        from optuna.visualization.matplotlib import plot_optimization_history

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            axes = plot_optimization_history(self.study_, target_name=self.metric)
        return _finish_figure(axes, path)

    def plot_importances(self, path: str | os.PathLike | None = None) -> Any:
        """Parameter importances (fANOVA) as a matplotlib Figure; saved to `path` if given.

        Needs at least two completed trials whose scores differ; raises ValueError otherwise.
        """
        require("matplotlib", "plot", feature="tuning plots")
        from optuna.visualization.matplotlib import plot_param_importances

        complete = [t for t in self.study_.trials if t.state == TrialState.COMPLETE]
        if len(complete) < 2 or len({t.value for t in complete}) < 2:
            raise ValueError(
                f"Parameter importances need at least 2 completed trials with different scores; "
                f"this study has {len(complete)} completed trial(s)."
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = plot_param_importances(self.study_)
        except (RuntimeError, ValueError) as err:  # e.g. zero total variance, no shared params
            raise ValueError(f"Parameter importances could not be computed: {err}") from err
        return _finish_figure(axes, path)


def _finish_figure(axes: Any, path: str | os.PathLike | None) -> Any:
    plt = require("matplotlib.pyplot", "plot", feature="tuning plots")

    axes = axes.flat[0] if isinstance(axes, np.ndarray) else axes
    figure = axes.figure
    figure.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120)
        plt.close(figure)
    return figure


# ---- pruning ------------------------------------------------------------------------------
class PruningCallback(Callback):
    """Report `val_loss` to the Optuna trial after each validation epoch; when the pruner says
    so, stop training (the tuner then raises `optuna.TrialPruned`).

    `step_offset` shifts the reported step so that the folds of a rolling-origin search report
    distinct steps. Stopping instead of raising inside the loop lets Lightning finish cleanly.
    """

    def __init__(self, trial: optuna.Trial, monitor: str = "val_loss", step_offset: int = 0) -> None:
        super().__init__()
        self.trial, self.monitor, self.step_offset = trial, monitor, step_offset
        self.history: list[float] = []
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return  # not an epoch: the sanity check, or the start validated before fitting
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value = float(value)
        self.history.append(value)
        if not math.isfinite(value):
            trainer.should_stop = True  # diverged; the score check marks the trial failed
            return
        step = self.step_offset + trainer.current_epoch
        self.trial.report(value, step)
        if self.trial.should_prune():
            self.pruned_at = step
            trainer.should_stop = True

    @property
    def best_epoch(self) -> int | None:
        """1-based epoch with the lowest finite validation loss."""
        finite = [(v, i) for i, v in enumerate(self.history) if math.isfinite(v)]
        return min(finite)[1] + 1 if finite else None


# ---- data ---------------------------------------------------------------------------------
@dataclass
class _Data:
    """The user's data in one of three forms: a frame (split per trial like `fit`), an explicit
    (train, val) pair, or a benchmark `ForecastSplit` (validation follows the lookback)."""

    frame: pd.DataFrame | None = None
    pair: tuple[pd.DataFrame, pd.DataFrame] | None = None
    split: ForecastSplit | None = None

    @classmethod
    def of(cls, data: Any) -> _Data:
        if isinstance(data, ForecastSplit):
            return cls(split=data)
        if isinstance(data, tuple | list):
            if len(data) != 2:
                raise ValueError(f"data as a sequence must be a (train_df, val_df) pair, got "
                                 f"{len(data)} items.")
            return cls(pair=(_as_frame(data[0]), _as_frame(data[1])))
        return cls(frame=_as_frame(data))

    def folds(self, estimator: Any, n_folds: int) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
        """(train, val) frames for a configured estimator; val's first `lookback` rows are context."""
        if self.split is not None:
            train = self.split.train()
            return [(train, self.split.validation(estimator.resolve_lookback(train)))]
        if self.pair is not None:
            return [self.pair]
        return time_folds(self.frame, estimator, n_folds)

    def refit_frame(self) -> pd.DataFrame:
        """Train and validation rows together, for the final refit."""
        if self.split is not None:
            return self.split.frame.iloc[: self.split.val_end].reset_index(drop=True)
        if self.pair is not None:
            train, val = self.pair
            keys = [ID, TIME] if ID in train.columns else [TIME]
            both = pd.concat([train, val], ignore_index=True)
            return both.drop_duplicates(subset=keys, keep="first").reset_index(drop=True)
        return self.frame


def _as_frame(data: Any) -> pd.DataFrame:
    if is_gluonts_dataset(data):
        return gluonts_to_frame(data)
    if not isinstance(data, pd.DataFrame):
        raise TypeError(
            f"data must be a DataFrame, a GluonTS dataset, a (train_df, val_df) pair or a "
            f"tsk.datasets.ForecastSplit, got {type(data).__name__}."
        )
    return data


def time_folds(
    df: pd.DataFrame, estimator: Any, n_folds: int = 1
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Split `df` by time into `(train, val)` frames as `estimator.fit(df)` would, or into
    `n_folds` rolling-origin folds.

    Each series holds out its last `n_val` rows (the estimator's validation size, at least
    `horizon`); fold `k` of `n_folds` validates the k-th of the last `n_folds` such blocks and
    trains on everything before it, so the last fold is exactly `fit`'s split. Each val frame
    starts `lookback` rows early (context), as `fit(train, val_df=val)` expects. A series too
    short to validate in a fold only trains; one too short to train is left out of that fold.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be a positive integer, got {n_folds!r}.")
    schema = infer_schema(df, estimator.exogenous)
    if schema.layout == "long":
        df = df.sort_values([ID, TIME], kind="stable").reset_index(drop=True)
        groups = df.groupby(ID, sort=False)
        position = groups.cumcount().to_numpy()
        length = groups[TIME].transform("size").to_numpy()
    else:
        df = df.sort_values(TIME, kind="stable").reset_index(drop=True)
        position, length = np.arange(len(df)), np.full(len(df), len(df))
    lookback, horizon = estimator.resolve_lookback(df), estimator.horizon
    cut = {n: estimator._train_rows(n, lookback) for n in np.unique(length)}  # fit's own rule
    n_val = np.array([n - cut[n] for n in length])
    folds = []
    for k in range(n_folds):
        end = length - (n_folds - 1 - k) * n_val
        start_val = end - n_val
        has_val = (n_val > 0) & (start_val >= lookback + horizon)
        train_end = np.where(has_val, start_val, end)
        usable = train_end >= lookback + horizon
        train = df[usable & (position < train_end)]
        val = df[has_val & (position >= start_val - lookback) & (position < end)]
        if val.empty:
            raise ValueError(
                f"No series is long enough for fold {k + 1} of {n_folds}: each needs at least "
                f"lookback + horizon = {lookback + horizon} training rows before "
                f"{n_folds} validation block(s) of {int(n_val.max())} rows. Use fewer folds, a "
                "shorter lookback or longer series."
            )
        folds.append((train.reset_index(drop=True), val.reset_index(drop=True)))
    return folds


# ---- search spaces ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Param:
    name: str
    distribution: BaseDistribution
    when: dict[str, tuple[Any, ...]]
    target: str  # "estimator" or "backbone"


def _parse_space(space: Mapping[str, Any], estimator: Any) -> list[_Param]:
    """Check every name and distribution up front, so a typo fails before any trial runs."""
    estimator_params = set(estimator.get_params(deep=False)) - _FIXED
    config_fields = set(backbones.get_spec(estimator.backbone).config_fields)
    known = estimator_params | config_fields
    params = []
    for name, entry in space.items():
        when: dict[str, tuple[Any, ...]] = {}
        distribution = entry
        if isinstance(entry, Mapping):
            extra = set(entry) - {"distribution", "when"}
            if "distribution" not in entry or extra:
                raise ValueError(f"Conditional parameter {name!r} must be {{'distribution': ..., "
                                 f"'when': {{name: values}}}}, got keys {sorted(entry)}.")
            distribution = entry["distribution"]
            for other, values in dict(entry.get("when") or {}).items():
                if other not in known:
                    raise unknown_name_error(f"parameter in the condition of {name!r}", other, known)
                values = values if isinstance(values, list | tuple | set) else [values]
                when[other] = tuple(values)
        if not isinstance(distribution, BaseDistribution):
            raise TypeError(f"Search space entry {name!r} must be an optuna distribution "
                            f"(IntDistribution, FloatDistribution, CategoricalDistribution), got "
                            f"{type(distribution).__name__}.")
        if name in estimator_params:
            target = "estimator"
        elif name in config_fields:
            target = "backbone"
        else:
            raise unknown_name_error("tunable parameter", name, known)
        params.append(_Param(name, distribution, when, target))
    return params


def _fixed_value(name: str, estimator: Any) -> Any:
    """A parameter's value when it is not sampled: the estimator's, else the backbone default."""
    params = estimator.get_params(deep=False)
    if params.get(name) is not None:
        return params[name]
    config = dict(params.get("backbone_kwargs") or {})
    if name in config:
        return config[name]
    return getattr(backbones.make_config(estimator.backbone), name, None)


def _suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step,
                                 log=distribution.log)
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(name, distribution.low, distribution.high,
                                   step=distribution.step, log=distribution.log)
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    raise TypeError(f"Unsupported distribution for {name!r}: {type(distribution).__name__}.")


def _sample(trial: optuna.Trial, params: list[_Param], estimator: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for param in params:
        active = all(
            (values[other] if other in values else _fixed_value(other, estimator)) in allowed
            for other, allowed in param.when.items()
        )
        if active:
            values[param.name] = _suggest(trial, param.name, param.distribution)
    return values


def configure(estimator: Any, values: Mapping[str, Any], **overrides: Any) -> Any:
    """A clone of `estimator` with tuned `values` set: estimator parameters directly, backbone
    options merged into `backbone_kwargs`."""
    estimator_params = set(estimator.get_params(deep=False))
    config = dict(estimator.get_params(deep=False).get("backbone_kwargs") or {})
    direct = {}
    for name, value in values.items():
        if name in estimator_params:
            direct[name] = value
        else:
            config[name] = value
    if config:
        direct["backbone_kwargs"] = config
    return clone(estimator).set_params(**{**direct, **overrides})


def _fit_to_data(params: list[_Param], estimator: Any, data: _Data, user_space: bool) -> list[_Param]:
    """Adapt the default space's `lookback` to the data: keep the choices every trial can use."""
    if user_space:
        return params
    out = []
    for param in params:
        if param.name == "lookback" and data.pair is not None:
            logger.info("Not tuning lookback: an explicit (train, val) pair fixes the validation "
                        "context. Pass one frame or a ForecastSplit to tune it.")
            continue
        if param.name == "lookback" and isinstance(param.distribution, CategoricalDistribution):
            fits = [lb for lb in param.distribution.choices if _lookback_fits(lb, estimator, data)]
            if not fits:
                logger.info("Not tuning lookback: no choice of %s fits the data.",
                            param.distribution.choices)
                continue
            param = _Param(param.name, CategoricalDistribution(fits), param.when, param.target)
        out.append(param)
    return out


def _lookback_fits(lookback: int, estimator: Any, data: _Data) -> bool:
    candidate = clone(estimator).set_params(lookback=lookback)
    try:
        data.folds(candidate, 1)
    except ValueError:
        return False
    return True


# ---- the search ---------------------------------------------------------------------------
def _make_pruner(pruner: Any, max_epochs: int) -> optuna.pruners.BasePruner:
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    if pruner is None or pruner == "none":
        return optuna.pruners.NopPruner()
    if pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_epochs, 1))
    raise ValueError(f"pruner must be 'median', 'hyperband', 'none'/None or an optuna pruner, "
                     f"got {pruner!r}.")


def _make_storage(storage: Any) -> Any:
    """Optuna storage: None (in memory), an RDB URL, or a storage object used as is. SQLite
    waits for locks instead of failing when several processes share one file."""
    if storage is None or isinstance(storage, optuna.storages.BaseStorage):
        return storage
    url = str(storage)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


class _Objective:
    def __init__(self, estimator: Any, data: _Data, params: list[_Param], metric: str,
                 n_folds: int) -> None:
        self.estimator, self.data, self.params = estimator, data, params
        self.metric, self.n_folds = metric, n_folds

    def __call__(self, trial: optuna.Trial) -> float:
        values = _sample(trial, self.params, self.estimator)
        trial.set_user_attr("pid", os.getpid())
        start = time.perf_counter()
        try:
            return self._evaluate(trial, values)
        except optuna.TrialPruned:
            raise
        except Exception as err:  # any config may fail (OOM, invalid option): record, go on
            reason = f"{type(err).__name__}: {err}".strip()
            trial.set_user_attr("error", reason[:2000])
            logger.info("Trial %d failed: %s", trial.number, reason.splitlines()[0])
            raise TrialFailed(reason) from err
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _evaluate(self, trial: optuna.Trial, values: dict[str, Any]) -> float:
        max_epochs = self.estimator.max_epochs
        base = configure(self.estimator, values)
        scores, best_epochs = [], []
        for k, (train, val) in enumerate(self.data.folds(base, self.n_folds)):
            callback = PruningCallback(trial, "val_loss", step_offset=k * max_epochs)
            kwargs = dict(base.trainer_kwargs or {})
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), callback]
            model = configure(self.estimator, values, trainer_kwargs=kwargs,
                              enable_progress_bar=False)
            model.fit(train, val_df=val)
            if callback.pruned_at is not None:
                trial.set_user_attr("pruned_at_step", callback.pruned_at)
                raise optuna.TrialPruned(f"pruned at step {callback.pruned_at} (fold {k + 1})")
            if callback.history and callback.best_epoch is None:
                raise FloatingPointError(f"the fit diverged: validation loss per epoch {callback.history}")
            score = float(model.evaluate(val)[self.metric])
            if not math.isfinite(score):
                raise FloatingPointError(
                    f"validation {self.metric} is {score} (the fit diverged; last val_loss per "
                    f"epoch: {callback.history[-3:]})"
                )
            scores.append(score)
            best_epochs.append(callback.best_epoch or model.fit_summary_.epochs)
        trial.set_user_attr("fold_scores", scores)
        trial.set_user_attr("best_epoch", int(round(float(np.mean(best_epochs)))))
        return float(np.mean(scores))


class TrialFailed(RuntimeError):
    """A trial's fit or score failed; Optuna records the trial as FAIL and the study goes on."""


def tune(
    estimator: Any,
    data: Any,
    *,
    space: Mapping[str, Any] | None = None,
    n_trials: int | None = 50,
    timeout: float | None = None,
    metric: str = "mse",
    direction: str = "minimize",
    storage: Any = None,
    study_name: str | None = None,
    n_jobs: int = 1,
    pruner: Any = "median",
    random_state: int | None = None,
    n_folds: int = 1,
    refit: bool = True,
    enqueue: Sequence[Mapping[str, Any]] = (),
    show_progress_bar: bool = False,
) -> TuningResult:
    """Search `estimator`'s hyperparameters with Optuna; returns a `TuningResult`.

    `data`: a frame (long or wide; each trial validates on the last part of each series, as
    `fit` does, or on `n_folds` rolling-origin folds, averaging the scores), a `(train_df,
    val_df)` pair (val's first `lookback` rows are context, as in `fit`), or a
    `tsk.datasets.ForecastSplit` (its train rows, and validation rows with each trial's lookback).
    `space`: name -> Optuna distribution (see the module docstring); None takes the backbone's
    default, with `lookback` limited to the choices the data allows. `metric`: a key of
    `estimator.evaluate` (`mse`, `mae`, `mase`, `smape`) on the validation windows.
    `storage`: None (in memory), an Optuna RDB URL or storage; with `study_name` an existing study
    is resumed, and several processes may share it. `pruner`: "median" (default), "hyperband",
    None, or any Optuna pruner; it sees the validation loss of every epoch. `random_state` seeds
    the sampler (give each parallel worker its own). `enqueue`: parameter sets to try first in a
    new study (e.g. the defaults). With `refit`, `best_estimator_` is fit on train + validation
    with the best parameters for the best trial's number of epochs (no held-out data left).
    `n_jobs > 1` runs trials in threads; prefer several processes on one storage.
    """
    if metric not in METRICS:
        raise unknown_name_error("metric", metric, METRICS)
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}.")
    if n_trials is None and timeout is None:
        raise ValueError("Give n_trials or timeout (or both): otherwise the search never ends.")
    if not isinstance(n_folds, int) or n_folds < 1:
        raise ValueError(f"n_folds must be a positive integer, got {n_folds!r}.")
    if not hasattr(estimator, "backbone") or not hasattr(estimator, "evaluate"):
        raise TypeError(f"tune needs a tsk estimator (e.g. tsk.Forecaster), got {type(estimator).__name__}.")
    tuning_data = _Data.of(data)
    if getattr(estimator, "lookback", 0) is None:  # every fold and trial shares the lookback a fit would pick
        estimator = clone(estimator).set_params(
            lookback=estimator.resolve_lookback(tuning_data.folds(estimator, 1)[0][0]))
    if n_folds > 1 and tuning_data.frame is None:
        raise ValueError("n_folds > 1 needs data as one frame: rolling-origin folds are cut from it.")
    user_space = space is not None
    space = default_space(estimator.backbone) if space is None else space
    if not space:
        raise ValueError(f"The search space is empty: backbone {estimator.backbone!r} declares "
                         "none; pass space={name: optuna distribution}.")
    params = _fit_to_data(_parse_space(space, estimator), estimator, tuning_data, user_space)
    if tuning_data.pair is not None and any(p.name == "lookback" for p in params):
        raise ValueError("Tuning lookback needs validation context that follows it: pass one frame "
                         "or a tsk.datasets.ForecastSplit instead of a (train_df, val_df) pair.")

    study = optuna.create_study(
        storage=_make_storage(storage), sampler=optuna.samplers.TPESampler(seed=random_state),
        pruner=_make_pruner(pruner, estimator.max_epochs), study_name=study_name,
        direction=direction, load_if_exists=True,
    )
    if study.direction.name.lower() != direction:
        raise ValueError(f"Study {study.study_name!r} exists with direction "
                         f"{study.direction.name.lower()}, not {direction}.")
    if study.trials:
        logger.info("Resuming study %r with %d trials.", study.study_name, len(study.trials))
    else:
        for values in enqueue:
            study.enqueue_trial(dict(values), skip_if_exists=True)
    objective = _Objective(estimator, tuning_data, params, metric, n_folds)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        study.optimize(objective, n_trials=n_trials, timeout=timeout, n_jobs=n_jobs,
                       catch=(TrialFailed,), show_progress_bar=show_progress_bar)

    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not complete:
        reasons = sorted({t.user_attrs.get("error", t.state.name) for t in study.trials})
        raise RuntimeError(f"No trial of study {study.study_name!r} completed "
                           f"({len(study.trials)} trials). Reasons: {'; '.join(reasons)[:1000]}")
    best = study.best_trial
    best_estimator = None
    if refit:
        epochs = int(best.user_attrs.get("best_epoch") or estimator.max_epochs)
        best_estimator = configure(estimator, best.params, validation_size=0.0, max_epochs=epochs)
        logger.info("Refitting trial %d's parameters on train + validation for %d epochs.",
                    best.number, epochs)
        best_estimator.fit(tuning_data.refit_frame())
    return TuningResult(dict(best.params), float(best.value), best_estimator, study, metric)


__all__ = ["PruningCallback", "TrialFailed", "TuningResult", "configure", "default_space",
           "space_from_json", "time_folds", "tune"]
