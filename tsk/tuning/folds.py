"""The data a search tunes on, and its train/validation folds.

Forecasting data (`SeriesData`): a frame, split by time as `fit` splits it or into rolling-origin
folds; an explicit (train, val) pair; or a benchmark `ForecastSplit`. Labelled series
(`LabelledData`, for `Classifier`): X and y, in stratified folds. Each fold says what `fit` gets
and what `evaluate` scores, so the search itself does not care which task it tunes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from tsk.datasets.frames import ID, TIME, infer_schema
from tsk.datasets.gluonts_data import gluonts_to_frame, is_gluonts_dataset
from tsk.datasets.sequences import Sequences, align_labels, as_sequences
from tsk.datasets.split import ForecastSplit

HOLDOUT = 0.2  # the validation share of a single stratified fold of labelled series


@dataclass(frozen=True)
class Fold:
    """One train/validation split: `fit(*fit_args, **fit_kwargs)`, then
    `evaluate(*score_args)` scores the validation part."""

    fit_args: tuple
    fit_kwargs: dict[str, Any] = field(default_factory=dict)
    score_args: tuple = ()


@dataclass
class SeriesData:
    """Forecasting data in one of three forms: a frame (split per trial like `fit`), an explicit
    (train, val) pair, or a benchmark `ForecastSplit` (validation follows the lookback)."""

    frame: pd.DataFrame | None = None
    pair: tuple[pd.DataFrame, pd.DataFrame] | None = None
    split: ForecastSplit | None = None

    @classmethod
    def of(cls, data: Any) -> SeriesData:
        if isinstance(data, ForecastSplit):
            return cls(split=data)
        if isinstance(data, tuple | list):
            if len(data) != 2:
                raise ValueError(f"data as a sequence must be a (train_df, val_df) pair, got "
                                 f"{len(data)} items.")
            return cls(pair=(_as_frame(data[0]), _as_frame(data[1])))
        return cls(frame=_as_frame(data))

    def check_folds(self, n_folds: int) -> None:
        if n_folds > 1 and self.frame is None:
            raise ValueError("n_folds > 1 needs data as one frame: rolling-origin folds are cut "
                             "from it.")

    def frames(self, estimator: Any, n_folds: int) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
        """(train, val) frames for a configured estimator; val's first `lookback` rows are context."""
        if self.split is not None:
            train = self.split.train()
            return [(train, self.split.validation(estimator.resolve_lookback(train)))]
        if self.pair is not None:
            return [self.pair]
        return time_folds(self.frame, estimator, n_folds)

    def folds(self, estimator: Any, n_folds: int) -> list[Fold]:
        return [Fold((train,), {"val_df": val}, (val,))
                for train, val in self.frames(estimator, n_folds)]

    def refit_args(self) -> tuple:
        """Train and validation rows together, for the final refit."""
        if self.split is not None:
            return (self.split.frame.iloc[: self.split.val_end].reset_index(drop=True),)
        if self.pair is not None:
            train, val = self.pair
            keys = [ID, TIME] if ID in train.columns else [TIME]
            both = pd.concat([train, val], ignore_index=True)
            return (both.drop_duplicates(subset=keys, keep="first").reset_index(drop=True),)
        return (self.frame,)


@dataclass
class LabelledData:
    """Labelled series (X as `Classifier.fit` takes it, one label per series), split into
    stratified folds: one holdout of 20% (`n_folds=1`) or k-fold cross-validation."""

    X: list[np.ndarray]  # one sample each, as the estimator's fit takes it
    y: np.ndarray

    @classmethod
    def of(cls, X: Any, y: Any, read: Callable[[Any], Sequences] | None = None) -> LabelledData:
        """`read`: the estimator's own reader of samples, which must take back the arrays it
        returns (a point-set reader does); None: series, handed back as `[C, L_i]` arrays."""
        if read is not None:
            samples = read(X)
            return cls(list(samples.values), align_labels(y, samples))
        sequences = as_sequences(X)
        return cls([v.T for v in sequences.values], align_labels(y, sequences))

    def check_folds(self, n_folds: int) -> None:
        counts = np.unique(self.y, return_counts=True)[1]
        if n_folds > 1 and counts.min() < n_folds:
            raise ValueError(f"The rarest class has {counts.min()} series: too few for "
                             f"{n_folds} stratified folds. Use fewer folds.")

    def folds(self, estimator: Any, n_folds: int) -> list[Fold]:
        rows, seed = np.arange(len(self.y)), estimator.random_state or 0
        counts = np.unique(self.y, return_counts=True)[1]
        if n_folds == 1:
            stratify = self.y if counts.min() >= 2 else None
            splits = [train_test_split(rows, test_size=HOLDOUT, stratify=stratify, random_state=seed)]
        else:
            splits = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(rows, self.y)
        folds = []
        for train, val in splits:
            train, val = np.sort(train), np.sort(val)
            X_val, y_val = [self.X[i] for i in val], self.y[val]
            folds.append(Fold(([self.X[i] for i in train], self.y[train]),
                              {"validation_data": (X_val, y_val)}, (X_val, y_val)))
        return folds

    def refit_args(self) -> tuple:
        return (self.X, self.y)


def tuning_data(data: Any, y: Any = None, read: Callable[[Any], Sequences] | None = None
                ) -> SeriesData | LabelledData:
    """The data a search tunes on: labelled samples when `y` is given (read by `read`, see
    `LabelledData.of`), else forecasting data."""
    return SeriesData.of(data) if y is None else LabelledData.of(data, y, read)


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
    schema = infer_schema(df, estimator.exogenous, estimator.futr_exog)
    if schema.layout == "long":
        df = df.sort_values([ID, TIME], kind="stable").reset_index(drop=True)
        groups = df.groupby(ID, sort=False, observed=True)
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
