"""Split-conformal prediction intervals around any point forecast (Vovk, Gammerman and Shafer
2005; Lei et al. 2018, "Distribution-free predictive inference for regression"): the absolute
errors a fitted model makes on held-out windows (its calibration scores) set the half-width of
its intervals, with no assumption on the model or the error distribution.

The guarantee: with `n` calibration scores exchangeable with a new one, the `k`-th smallest,
`k = ceil((n + 1) a)`, bounds the new score with probability at least `a`
(`conformal_quantile`). Windows of one time series overlap and depend on each other, so they
are not exchangeable: for forecasts the coverage is approximate (`tsk.Forecaster`'s docstring
says how it applies there).

Levels are percentages (80 for an 80% interval), and interval columns are named as Nixtla's
libraries name them: `y-lo-95, y-lo-80, y-hi-80, y-hi-95` around a forecast column `y`. A
model's quantiles (`Forecaster.predict(quantiles=[0.1, 0.5])`) are named by their percentage,
`y-q-10, y-q-50`, as TimeCopilot names the quantiles of Nixtla's models (`quantile_columns`).
The column helpers serve learned intervals (`Forecaster(quantiles=...)` or `distribution=`)
as well as conformal ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd


def check_levels(level: Any) -> list[float]:
    """`level` (a percentage, or a sequence of them) as a sorted list without repeats; raises
    unless each is a number strictly between 0 and 100."""
    if isinstance(level, str) or not isinstance(level, Sequence | np.ndarray | int | float | np.number):
        raise TypeError(f"level must be a percentage or a list of them, e.g. [80, 95], got "
                        f"{level!r} ({type(level).__name__}).")
    values = list(np.ravel(level)) if isinstance(level, Sequence | np.ndarray) else [level]
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float | np.number)
           or not 0 < float(v) < 100]
    if bad or not values:
        raise ValueError(f"level must hold percentages strictly between 0 and 100 (e.g. [80, 95] "
                         f"for 80% and 95% intervals), got {level!r}.")
    return sorted({float(v) for v in values})


def level_name(level: float) -> str:
    """How a level reads in a column name: `80` for 80.0, `97.5` for 97.5."""
    level = float(level)
    return str(int(level)) if level.is_integer() else repr(level)


def interval_columns(column: str, levels: Sequence[float]) -> list[str]:
    """The interval columns around forecast column `column`, in quantile order: the lower bounds
    from the widest level in, then the upper bounds out (`y-lo-95, y-lo-80, y-hi-80, y-hi-95`)."""
    levels = sorted(levels)
    return ([f"{column}-lo-{level_name(level)}" for level in reversed(levels)]
            + [f"{column}-hi-{level_name(level)}" for level in levels])


def quantile_name(quantile: float) -> str:
    """How a quantile reads in a column name: its percentage, `10` for 0.1, `2.5` for 0.025."""
    percent = round(float(quantile) * 100.0, 10)
    return str(int(percent)) if percent.is_integer() else repr(percent)


def quantile_columns(column: str, quantiles: Sequence[float]) -> list[str]:
    """The quantile columns of forecast column `column`, in the order given (`y-q-10, y-q-50`)."""
    return [f"{column}-q-{quantile_name(q)}" for q in quantiles]


def with_intervals(point: pd.DataFrame, widths: Mapping[float, np.ndarray]) -> pd.DataFrame:
    """`point` (one forecast column per channel) followed by each channel's interval columns
    (`interval_columns`), `point -/+ widths[level]`: half-widths `[rows, channels]` in the
    units of `point`, one array per level."""
    values = point.to_numpy(dtype=np.float64)
    return with_bounds(point, {level: (values - width, values + width)
                               for level, width in widths.items()})


def with_bounds(point: pd.DataFrame,
                bounds: Mapping[float, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """`point` (one forecast column per channel) followed by each channel's interval columns
    (`interval_columns`): `bounds[level]` is the lower and upper bound, `[rows, channels]` each
    in the units of `point`."""
    if not bounds:
        return point
    named = {}
    for j, column in enumerate(point.columns):
        for level, (lower, upper) in bounds.items():
            named[f"{column}-lo-{level_name(level)}"] = lower[:, j]
            named[f"{column}-hi-{level_name(level)}"] = upper[:, j]
    ordered = [name for column in point.columns for name in interval_columns(column, list(bounds))]
    return pd.concat([point, pd.DataFrame({name: named[name] for name in ordered},
                                          index=point.index)], axis=1)


def with_quantiles(frame: pd.DataFrame, columns: Sequence[str],
                   values: np.ndarray, quantiles: Sequence[float]) -> pd.DataFrame:
    """`frame` followed by the quantile columns of its forecast `columns` (`quantile_columns`):
    `values[rows, len(columns), len(quantiles)]`."""
    if not len(quantiles):
        return frame
    named = {name: values[:, j, i] for j, column in enumerate(columns)
             for i, name in enumerate(quantile_columns(column, quantiles))}
    return pd.concat([frame, pd.DataFrame(named, index=frame.index)], axis=1)


def conformal_rank(n: int, level: float) -> int:
    """Which of `n` sorted scores is the half-width at `level` percent: `k = ceil((n + 1) a)`
    with `a = level / 100`, computed exactly (in decimal fractions, so 80% of 10 is 8, not 9)."""
    return math.ceil((n + 1) * Fraction(str(level)) / 100)


def conformal_quantile(scores: np.ndarray, level: float) -> np.ndarray:
    """The split-conformal half-width at `level` percent of each position of `scores[n, ...]`:
    the `k`-th smallest of its observed scores (`conformal_rank`; NaN, a missing value, is left
    out and `n` counts the others).

    If the `n` scores and a new one are exchangeable, the new one is at most this value with
    probability at least `level / 100` (and, without ties, below `level / 100 + 1 / (n + 1)`).
    A level that needs more scores than there are (`k > n`: the interval would be unbounded)
    raises, saying how many it needs.
    """
    scores = np.asarray(scores, dtype=np.float64)
    counts = (~np.isnan(scores)).sum(axis=0)
    ranks = np.array([conformal_rank(int(n), level) for n in counts.ravel()],
                     dtype=np.int64).reshape(counts.shape)
    if (ranks > counts).any():
        share = Fraction(str(level)) / 100
        needed = math.ceil(share / (1 - share))
        raise ValueError(
            f"A {level_name(level)}% conformal interval needs at least {needed} calibration "
            f"scores (the ceil((n + 1) * {float(share):g})-th smallest of n must exist), but "
            f"only {int(counts.min())} were scored at some horizon step: lower the level, or "
            "calibrate on more windows (a larger validation_size, longer series, or a val_df).")
    ordered = np.sort(scores, axis=0)  # NaN sort last, after every observed score
    return np.take_along_axis(ordered, (ranks - 1)[None], axis=0)[0]
