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
from sklearn.base import clone, is_classifier

from tsk import backbones
from tsk._extras import require
from tsk._names import unknown_name_error
from tsk.tuning.folds import LabelledData, SeriesData, tuning_data

logger = logging.getLogger(__name__)

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
    """Report the validation metric `monitor` (`val_loss` by default; `mode` says which way is
    better) to the Optuna trial after each validation epoch; when the pruner says so, stop
    training (the tuner then raises `optuna.TrialPruned`).

    `step_offset` shifts the reported step so that the folds of a rolling-origin search report
    distinct steps. Stopping instead of raising inside the loop lets Lightning finish cleanly.
    """

    def __init__(self, trial: optuna.Trial, monitor: str = "val_loss", step_offset: int = 0,
                 mode: str = "min") -> None:
        super().__init__()
        self.trial, self.monitor, self.step_offset, self.mode = trial, monitor, step_offset, mode
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
        """1-based epoch with the best finite validation score."""
        sign = 1.0 if self.mode == "min" else -1.0
        finite = [(sign * v, i) for i, v in enumerate(self.history) if math.isfinite(v)]
        return min(finite)[1] + 1 if finite else None


# ---- search spaces ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Param:
    name: str
    distribution: BaseDistribution
    when: dict[str, tuple[Any, ...]]
    target: str  # "estimator" or "backbone"


def _tunable(estimator: Any) -> set[str]:
    """The names a search space may set: the estimator's parameters (less the fixed ones) and
    its backbone's options."""
    estimator_params = set(estimator.get_params(deep=False)) - _FIXED
    return estimator_params | set(backbones.get_spec(estimator.backbone).config_fields)


def _parse_space(space: Mapping[str, Any], estimator: Any) -> list[_Param]:
    """Check every name and distribution up front, so a typo fails before any trial runs."""
    estimator_params = set(estimator.get_params(deep=False)) - _FIXED
    config_fields = set(backbones.get_spec(estimator.backbone).config_fields)
    known = _tunable(estimator)
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


def _fit_to_data(params: list[_Param], estimator: Any, data: SeriesData | LabelledData,
                 user_space: bool) -> list[_Param]:
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


def _lookback_fits(lookback: int, estimator: Any, data: SeriesData) -> bool:
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
    if "://" not in url:
        raise ValueError(f"storage {url!r} is not a database URL: for a file, say "
                         f"'sqlite:///{url}' (three slashes, then the path); or a PostgreSQL URL "
                         "such as 'postgresql://user@host/db'.")
    if url.startswith("sqlite:///"):
        folder = Path(url[len("sqlite:///"):]).expanduser().parent
        if not folder.is_dir():
            raise ValueError(f"storage {url!r}: the folder {folder} does not exist; create it "
                             "first (SQLite creates the file, not its folders).")
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as err:  # sqlalchemy's errors name its internals, not the fix
        raise ValueError(f"storage {url!r} could not be opened ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200]}). Check the URL, e.g. "
                         "'sqlite:///tuning.db' or 'postgresql://user@host/db'.") from err


class _Objective:
    def __init__(self, estimator: Any, data: SeriesData | LabelledData, params: list[_Param],
                 metric: str, direction: str, n_folds: int, fit_params: Mapping[str, Any]) -> None:
        self.estimator, self.data, self.params = estimator, data, params
        self.fit_params = dict(fit_params)
        self.metric, self.n_folds = metric, n_folds
        # the per-epoch score the pruner sees, which must improve in the study's direction
        self.monitor = estimator._epoch_scores[direction]
        self.mode = "min" if direction == "minimize" else "max"

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
        max_epochs = self.estimator._epochs_when_validated()
        base = configure(self.estimator, values)
        scores, best_epochs = [], []
        for k, fold in enumerate(self.data.folds(base, self.n_folds)):
            callback = PruningCallback(trial, self.monitor, k * max_epochs, self.mode)
            kwargs = dict(base.trainer_kwargs or {})
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), callback]
            model = configure(self.estimator, values, trainer_kwargs=kwargs,
                              enable_progress_bar=False)
            model.fit(*fold.fit_args, **fold.fit_kwargs, **self.fit_params)
            if callback.pruned_at is not None:
                trial.set_user_attr("pruned_at_step", callback.pruned_at)
                raise optuna.TrialPruned(f"pruned at step {callback.pruned_at} (fold {k + 1})")
            if callback.history and callback.best_epoch is None:
                raise FloatingPointError(f"the fit diverged: {self.monitor} per epoch "
                                         f"{callback.history}")
            score = float(model.evaluate(*fold.score_args)[self.metric])
            if not math.isfinite(score):
                raise FloatingPointError(
                    f"validation {self.metric} is {score} (the fit diverged; last {self.monitor} "
                    f"per epoch: {callback.history[-3:]})"
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
    y: Any = None,
    *,
    space: Mapping[str, Any] | None = None,
    n_trials: int | None = 50,
    timeout: float | None = None,
    metric: str | None = None,
    direction: str | None = None,
    storage: Any = None,
    study_name: str | None = None,
    n_jobs: int = 1,
    pruner: Any = "median",
    random_state: int | None = None,
    n_folds: int | None = None,
    refit: bool = True,
    enqueue: Sequence[Mapping[str, Any]] = (),
    show_progress_bar: bool = False,
    fit_params: Mapping[str, Any] | None = None,
) -> TuningResult:
    """Search `estimator`'s hyperparameters with Optuna; returns a `TuningResult`.

    Forecasting (`tune(forecaster, data)`): `data` is a frame (long or wide; each trial
    validates on the last part of each series, as `fit` does, or on `n_folds` rolling-origin
    folds, averaging the scores), a `(train_df, val_df)` pair (val's first `lookback` rows are
    context, as in `fit`), or a `tsk.datasets.ForecastSplit` (its train rows, and validation rows
    with each trial's lookback); `metric` one of `mse` (default), `mae`, `mase`, `smape`.
    Classification (`tune(classifier, X, y)`): each trial trains on stratified folds of the
    labelled series and early-stops on the held-out part (`n_folds` None or 1: one 20% holdout;
    k: k-fold cross-validation, averaging the scores); `metric` one of `accuracy` (default),
    `balanced_accuracy`, `f1_macro`, `log_loss`.
    `direction`: None follows the metric (accuracy up, errors down).
    `space`: name -> Optuna distribution (see the module docstring); None takes the backbone's
    default (names the estimator does not have are left out), with `lookback` limited to the
    choices the data allows.
    `storage`: None (in memory), an Optuna RDB URL or storage; with `study_name` an existing study
    is resumed, and several processes may share it. `pruner`: "median" (default), "hyperband",
    None, or any Optuna pruner; it sees the validation loss of every epoch. `random_state` seeds
    the sampler (give each parallel worker its own). `enqueue`: parameter sets to try first in a
    new study (e.g. the defaults). With `refit`, `best_estimator_` is fit on train + validation
    with the best parameters for the best trial's number of epochs (no held-out data left).
    `n_jobs > 1` runs trials in threads; prefer several processes on one storage.
    `fit_params` go to every fit, as scikit-learn's `params` do (e.g. `{"sample_rate": 8000}` for
    a `SpeechClassifier` tuned on arrays).
    """
    if not hasattr(estimator, "_scores") or not hasattr(estimator, "backbone"):
        raise TypeError(f"tune needs a tsk estimator (e.g. tsk.Forecaster), got {type(estimator).__name__}.")
    if not (is_classifier(estimator) or hasattr(estimator, "resolve_lookback")):
        raise TypeError(f"tune searches forecasters and classifiers; a {type(estimator).__name__} "
                        "is not supported yet.")
    scores = estimator._scores
    metric = next(iter(scores)) if metric is None else metric
    if metric not in scores:
        raise unknown_name_error("metric", metric, scores)
    direction = scores[metric] if direction is None else direction
    if direction not in estimator._epoch_scores:
        raise ValueError(f"direction must be one of {sorted(estimator._epoch_scores)} for a "
                         f"{type(estimator).__name__}, got {direction!r}.")
    if n_trials is None and timeout is None:
        raise ValueError("Give n_trials or timeout (or both): otherwise the search never ends.")
    n_folds = 1 if n_folds is None else n_folds
    if not isinstance(n_folds, int) or n_folds < 1:
        raise ValueError(f"n_folds must be a positive integer, got {n_folds!r}.")
    if is_classifier(estimator) != (y is not None):
        raise TypeError(f"tune({type(estimator).__name__}, ...) takes " + (
            "X and y (labelled series)." if is_classifier(estimator) else "one data argument, no y."))
    data = tuning_data(data, y, getattr(estimator, "_sample_reader", None))
    data.check_folds(n_folds)
    if getattr(estimator, "lookback", 0) is None:  # every fold and trial shares the lookback a fit would pick
        estimator = clone(estimator).set_params(
            lookback=estimator.resolve_lookback(data.folds(estimator, 1)[0].fit_args[0]))
    user_space = space is not None
    space = default_space(estimator.backbone) if space is None else space
    if not space:
        raise ValueError(f"The search space is empty: backbone {estimator.backbone!r} declares "
                         "none; pass space={name: optuna distribution}.")
    if not user_space:  # a backbone's default space may name another task's parameters
        space = {name: entry for name, entry in space.items() if name in _tunable(estimator)}
    params = _fit_to_data(_parse_space(space, estimator), estimator, data, user_space)
    if getattr(data, "pair", None) is not None and any(p.name == "lookback" for p in params):
        raise ValueError("Tuning lookback needs validation context that follows it: pass one frame "
                         "or a tsk.datasets.ForecastSplit instead of a (train_df, val_df) pair.")

    study = optuna.create_study(
        storage=_make_storage(storage), sampler=optuna.samplers.TPESampler(seed=random_state),
        pruner=_make_pruner(pruner, estimator._epochs_when_validated()), study_name=study_name,
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
    objective = _Objective(estimator, data, params, metric, direction, n_folds, fit_params or {})
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
        epochs = int(best.user_attrs.get("best_epoch") or estimator._epochs_when_validated())
        best_estimator = configure(estimator, best.params, validation_size=0.0, max_epochs=epochs)
        logger.info("Refitting trial %d's parameters on train + validation for %d epochs.",
                    best.number, epochs)
        best_estimator.fit(*data.refit_args(), **(fit_params or {}))
    return TuningResult(dict(best.params), float(best.value), best_estimator, study, metric)
