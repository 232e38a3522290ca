"""Covariates beyond the series' own past: values known ahead over the forecast horizon
(`futr_df`, checked here) and static features of each series (`static_df`, encoded here).

Nothing is filled or dropped unasked: a series or timestamp the forecast needs and `futr_df`
lacks, a series `static_df` lacks, a missing static value or a category the fit never saw
raises, naming what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tsk.datasets.frames import ID, LISTED_SERIES, TIME, WIDE_SERIES_ID, Series, future_index


def known_future(futr_df: Any, contexts: Sequence[Series], columns: Sequence[str], horizon: int,
                 layout: str, missing: str = "raise") -> list[np.ndarray]:
    """The values of `columns` over each context's next `horizon` timestamps, read from
    `futr_df` (long: `unique_id`, `ds` and the columns; wide: `ds` and the columns), as
    `[horizon, len(columns)]` arrays in the order of `contexts`. Rows of other series or times
    are not read. Missing columns, series or timestamps raise, naming them; NaN values raise
    unless `missing` lets the model read them as missing ("mask"; "interpolate" cannot fill
    the future from itself, so it raises as well)."""
    if not isinstance(futr_df, pd.DataFrame):
        raise TypeError(f"futr_df must be a pandas DataFrame of the covariates known ahead, got "
                        f"{type(futr_df).__name__}.")
    keys = [ID, TIME] if layout == "long" else [TIME]
    absent = [c for c in [*keys, *columns] if c not in futr_df.columns]
    if absent:
        raise ValueError(f"futr_df lacks column(s) {absent}: it needs {keys + list(columns)} "
                         f"(the covariates known ahead, futr_exog, over the {horizon} steps after "
                         "each series' end).")
    frame = futr_df[[*keys, *columns]]
    if not pd.api.types.is_datetime64_any_dtype(frame[TIME]):
        raise TypeError(f"futr_df's {TIME!r} column must hold datetimes, got dtype "
                        f"{frame[TIME].dtype}: convert it with pd.to_datetime.")
    for column in columns:
        if not (pd.api.types.is_numeric_dtype(frame[column])
                or pd.api.types.is_bool_dtype(frame[column])):
            raise TypeError(f"futr_df's column {column!r} must be numeric, got dtype "
                            f"{frame[column].dtype}.")
    ids = frame[ID].astype(str) if layout == "long" else pd.Series(WIDE_SERIES_ID, frame.index)
    index = pd.MultiIndex.from_arrays([ids, pd.DatetimeIndex(frame[TIME])])
    if index.has_duplicates:
        uid, stamp = index[index.duplicated()][0]
        raise ValueError(f"futr_df has more than one row for series {uid!r} at {stamp}: give one "
                         "row per series and timestamp.")
    table = pd.DataFrame(frame[list(columns)].to_numpy(dtype=np.float64), index=index,
                         columns=list(columns))
    values, lacking = [], {}
    for context in contexts:
        wanted = pd.MultiIndex.from_arrays([np.full(horizon, context.uid, dtype=object),
                                            future_index(context, horizon)])
        found = table.reindex(wanted)
        gone = ~wanted.isin(table.index)
        if gone.any():
            lacking[context.uid] = (int(gone.sum()), wanted[gone][0][1])
        values.append(found.to_numpy())
    if lacking:
        listed = ", ".join(f"{uid!r}: {n} step(s) from {first}"
                           for uid, (n, first) in list(lacking.items())[:LISTED_SERIES])
        more = f" and {len(lacking) - LISTED_SERIES} more series" if len(lacking) > LISTED_SERIES else ""
        raise ValueError(f"futr_df lacks the covariates known ahead ({list(columns)}) of "
                         f"{len(lacking)} series over the {horizon} steps after their end: "
                         f"{listed}{more}. Give futr_df a row for every series and each of those "
                         "timestamps.")
    stacked = np.stack(values) if values else np.zeros((0, horizon, len(columns)))
    if np.isinf(stacked).any() or (missing != "mask" and np.isnan(stacked).any()):
        w, step, c = (int(i[0]) for i in np.nonzero(~np.isfinite(stacked)))
        raise ValueError(f"futr_df has {int((~np.isfinite(stacked)).sum())} missing or infinite "
                         f"value(s), e.g. series {contexts[w].uid!r} column {columns[c]!r} at "
                         f"{future_index(contexts[w], horizon)[step]}. Values known ahead must be "
                         "given (under missing='mask' a NaN is read as missing).")
    return values


def future_covariates(futr_df: Any, contexts: Sequence[Series], futr_exog: Sequence[str],
                      horizon: int, layout: str, missing: str = "raise") -> list[np.ndarray] | None:
    """What a model with covariates known ahead (`futr_exog`) reads over each context's horizon
    (`known_future`); None for a model without them. Raises where such a model is given no
    `futr_df`, or another model is given one (it would be ignored)."""
    if not futr_exog:
        if futr_df is not None:
            raise ValueError("futr_df was given, but this model reads no covariates known ahead: "
                             "fit it with futr_exog=[...] to use them.")
        return None
    if futr_df is None:
        raise ValueError(f"This model reads covariates known ahead (futr_exog={list(futr_exog)}): "
                         f"pass futr_df with their values over the {horizon} steps after each "
                         "series' end.")
    return known_future(futr_df, contexts, futr_exog, horizon, layout, missing)


def with_horizon(inputs: Sequence[np.ndarray], contexts: Sequence[Series], scalers: Sequence[Any],
                 horizon: int, n_columns: int, futures: Sequence[np.ndarray] | None,
                 time_freq: str | None) -> list[np.ndarray]:
    """Each context's scaled rows (`inputs`) followed by the `horizon` rows after it
    (`horizon_rows`: `futures`' known-ahead values, the calendar), scaled by its scaler: the
    windows of a forecast whose network reads covariates known ahead."""
    futures = [None] * len(contexts) if futures is None else futures
    return [np.concatenate([x, scaler.transform(horizon_rows(c, horizon, n_columns, known,
                                                             time_freq))])
            for x, scaler, c, known in zip(inputs, scalers, contexts, futures, strict=True)]


def horizon_rows(context: Series, horizon: int, n_columns: int, futr_values: np.ndarray | None,
                 time_freq: str | None = None) -> np.ndarray:
    """The `horizon` rows after `context` in a series' columns (`n_columns`: targets, past
    covariates, then known-ahead ones): the unknown ones NaN, the last columns `futr_values`
    (`[horizon, k]`, None: none), and with `time_freq` the calendar features of those
    timestamps appended, as the fit appends them to every row."""
    rows = np.full((horizon, n_columns), np.nan)
    if futr_values is not None and futr_values.shape[1]:
        rows[:, n_columns - futr_values.shape[1]:] = futr_values
    if time_freq is None:
        return rows
    from tsk.datasets.calendar import time_features  # GluonTS: only when the model uses it

    return np.concatenate([rows, time_features(future_index(context, horizon), time_freq)], axis=1)


@dataclass
class StaticCovariates:
    """How a fit encodes `static_df` (one row per series: `unique_id` and its features): numeric
    columns standardized with the fit's mean and std over series, the others (strings,
    categories) one-hot over the categories the fit saw. Booleans are numbers (0/1); integer
    codes are numbers too: make them `category` to one-hot them."""

    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, static_df: Any, uids: Sequence[str]) -> StaticCovariates:
        """The encoding of `static_df`'s rows of series `uids` (each must have one)."""
        rows = _static_rows(static_df, uids)
        numeric, categories = {}, {}
        for column in rows.columns:
            values = rows[column]
            if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
                numbers = values.to_numpy(dtype=np.float64)
                std = float(numbers.std())
                numeric[column] = (float(numbers.mean()), std if std > 0 else 1.0)
            else:
                categories[column] = sorted(values.astype(str).unique().tolist())
        return cls(numeric, categories)

    @property
    def names(self) -> list[str]:
        """The encoded features: numeric columns, then `column=category` indicators."""
        return [*self.numeric, *(f"{c}={v}" for c, cats in self.categories.items() for v in cats)]

    def encode(self, static_df: Any, uids: Sequence[str]) -> np.ndarray:
        """`[len(uids), len(names)]` float32 features of series `uids` from `static_df`."""
        rows = _static_rows(static_df, uids)
        expected = [*self.numeric, *self.categories]
        absent = [c for c in expected if c not in rows.columns]
        extra = [c for c in rows.columns if c not in expected]
        if absent or extra:
            raise ValueError(f"static_df has columns {list(rows.columns)}; the model was fit on "
                             f"{expected} (besides {ID!r}).")
        parts = [((rows[c].to_numpy(dtype=np.float64) - mean) / std)[:, None]
                 for c, (mean, std) in self.numeric.items()]
        for column, known in self.categories.items():
            values = rows[column].astype(str).to_numpy()
            unseen = sorted(set(values) - set(known))
            if unseen:
                raise ValueError(f"static_df's column {column!r} has categories the fit never saw: "
                                 f"{unseen[:LISTED_SERIES]} (it knows {known[:LISTED_SERIES]}). "
                                 "Refit with series of those categories, or map them to known ones.")
            parts.append((values[:, None] == np.asarray(known)[None, :]).astype(np.float64))
        encoded = np.concatenate(parts, axis=1) if parts else np.zeros((len(uids), 0))
        return encoded.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": {c: list(v) for c, v in self.numeric.items()},
                "categories": self.categories}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StaticCovariates:
        return cls({c: (float(v[0]), float(v[1])) for c, v in d["numeric"].items()},
                   {c: list(v) for c, v in d["categories"].items()})


def static_features(encoding: StaticCovariates | None, fitted: dict[str, np.ndarray],
                    uids: Sequence[str], static_df: Any = None) -> np.ndarray | None:
    """The static covariates of series `uids`, `[len(uids), S]`, as a fitted model reads them:
    encoded from `static_df` when given, else the fit's own (`fitted`: uid -> features); None
    for a model fit without them (`encoding` None), which refuses a `static_df`."""
    if encoding is None:
        if static_df is not None:
            raise ValueError("static_df was given, but this model was fit without static "
                             "covariates: fit it with static_df to use them.")
        return None
    if static_df is not None:
        return encoding.encode(static_df, uids)
    unseen = [uid for uid in uids if uid not in fitted]
    if unseen:
        raise ValueError(f"Series {unseen[:LISTED_SERIES]} were not in the fit, so their static "
                         "covariates are unknown: pass static_df with a row for each.")
    return np.stack([fitted[uid] for uid in uids])


def _static_rows(static_df: Any, uids: Sequence[str]) -> pd.DataFrame:
    """`static_df`'s feature columns, one row per series of `uids` in that order."""
    if not isinstance(static_df, pd.DataFrame):
        raise TypeError(f"static_df must be a pandas DataFrame with {ID!r} and one column per "
                        f"static feature, got {type(static_df).__name__}.")
    if ID not in static_df.columns:
        raise ValueError(f"static_df needs a {ID!r} column naming each row's series (columns: "
                         f"{list(static_df.columns)}).")
    features = [c for c in static_df.columns if c != ID]
    if not features:
        raise ValueError(f"static_df has no feature column besides {ID!r}.")
    ids = static_df[ID].astype(str)
    if ids.duplicated().any():
        raise ValueError(f"static_df has more than one row for series "
                         f"{sorted(set(ids[ids.duplicated()]))[:LISTED_SERIES]}: static features "
                         "take one row per series.")
    table = static_df[features].set_axis(ids.to_numpy(), axis=0)
    lacking = [uid for uid in uids if uid not in table.index]
    if lacking:
        raise ValueError(f"static_df has no row for {len(lacking)} series: "
                         f"{lacking[:LISTED_SERIES]}. Give it one row per series.")
    rows = table.loc[list(uids)]
    if rows.isna().any().any():
        column = rows.columns[rows.isna().any()][0]
        uid = rows.index[rows[column].isna()][0]
        raise ValueError(f"static_df has missing values, e.g. series {uid!r} column {column!r}: "
                         "fill them (static features are never masked or filled unasked).")
    return rows
