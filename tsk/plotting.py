"""Draw forecasts from frames: each series' recent history, its forecast and the shaded intervals
around it (`plot_forecast`, what `Forecaster.plot` draws), and a backtest's windows
(`plot_cross_validation`).

Frames in, a matplotlib Figure out: no torch and no estimator here, so any frame in the layout of
`predict` (or of `cross_validation`) can be drawn, whichever model made it. Interval columns are
found by name (`tsk.conformal.interval_columns`: `y-lo-80`, `y-hi-80`), so intervals of any
origin draw alike. matplotlib comes with tsk's `plot` extra and is imported only when a plot is
drawn, never by loading or running a model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tsk._extras import require
from tsk.conformal import check_levels, interval_columns, level_name

if TYPE_CHECKING:  # matplotlib loads only when a plot is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# the column names of tsk.datasets.frames and Forecaster.cross_validation, repeated here so that
# this module loads without the datasets package (which imports torch)
ID, TIME, TARGET, CUTOFF = "unique_id", "ds", "y", "cutoff"
INTERVAL = re.compile(r"-(lo|hi)-\d+(\.\d+)?$")
"""The end of an interval column's name (`-lo-80`, `-hi-97.5`)."""

FEATURE = "forecast plots"
BAND_ALPHA = (0.45, 0.15)
"""The opacity of the narrowest and of the widest interval band (the wider, the lighter)."""


@dataclass
class Panel:
    """What one Axes shows: a title, the actual values (history or, in a backtest, the values
    forecast), and forecast segments (one per forecast origin) with their interval bands."""

    title: str
    actual: tuple[np.ndarray, np.ndarray] | None = None
    forecasts: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    # per segment: (level, lower, upper) for each level
    bands: list[list[tuple[float, np.ndarray, np.ndarray]]] = field(default_factory=list)
    cutoffs: list[Any] = field(default_factory=list)


def plot_forecast(forecast: pd.DataFrame, data: pd.DataFrame | None = None, *,
                  targets: Sequence[str] | None = None,
                  level: float | Sequence[float] | None = None, n_series: int = 4,
                  history: int | None = None, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Draw a forecast (a frame in `predict`'s layout) after the data it continues: one panel
    per series, for the first `n_series` series in the order of `forecast` (the long layout,
    `unique_id, ds, y, ...`), or one per target column, the first `n_series` of them (the wide
    layout, `ds` + one column per channel).

    `data` (same layout; optional) is the history: each panel shows its last `history` rows
    (None: all of them). `targets` are the forecast columns (None: every column of `forecast`
    but `unique_id`, `ds` and the interval columns). `level` shades the intervals of those
    levels, which `forecast` must hold (`y-lo-80`, `y-hi-80`; `predict(df, level=[80])` adds
    them): the wider, the lighter. `ax`: an Axes, or a sequence of them, one per panel, to draw
    into (default: a new figure, one row per panel). Returns the Figure.
    """
    _check_frame(forecast, "forecast", [TIME])
    n_series = _check_count("n_series", n_series)
    if history is not None:
        history = _check_count("history", history, minimum=0)
    levels = [] if level is None else check_levels(level)
    long = ID in forecast.columns
    if targets is None:
        targets = [c for c in forecast.columns if c not in (ID, TIME) and not INTERVAL.search(str(c))]
    targets = [str(t) for t in targets]
    forecast = forecast.rename(columns=str)
    _check_columns(forecast, "forecast", [*targets, *(c for t in targets for c in
                                                      interval_columns(t, levels))],
                   hint="predict(df, level=...) adds the interval columns of those levels")
    if data is not None:
        _check_frame(data, "data", [ID, TIME] if long else [TIME])
        data = data.rename(columns=str)
        _check_columns(data, "data", targets, hint="pass the data the forecast continues")
    panels = []
    if long:
        ids = pd.unique(forecast[ID])[:n_series]
        past_ids = None if data is None else data[ID].astype(str)
        for uid in ids:
            rows = forecast[forecast[ID] == uid]
            past = None if data is None else data[(past_ids == str(uid)).to_numpy()]
            for target in targets:
                title = str(uid) if len(targets) == 1 else f"{uid}: {target}"
                panels.append(_forecast_panel(title, rows, past, target, levels, history))
    else:
        for target in targets[:n_series]:
            panels.append(_forecast_panel(target, forecast, data, target, levels, history))
    return _draw(panels, ax, actual_label="history")


def plot_cross_validation(cv: pd.DataFrame, *, model: str | None = None,
                          level: float | Sequence[float] | None = None, n_series: int = 4,
                          ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Draw a backtest (a frame in `Forecaster.cross_validation`'s layout): per panel the actual
    values, each window's forecast from its cutoff (dotted vertical lines) and, for `level`, its
    interval bands. Panels as in `plot_forecast`: the first `n_series` series of the long layout
    (`unique_id, ds, cutoff, y, s4d, ...`) or channels of the wide one (`ds, cutoff, OT, s4d-OT,
    ...`). `model` names the forecast (the backbone, `s4d`; None: the frame's one model).
    Returns the Figure.
    """
    _check_frame(cv, "cv", [TIME, CUTOFF])
    n_series = _check_count("n_series", n_series)
    levels = [] if level is None else check_levels(level)
    cv = cv.rename(columns=str)
    long = ID in cv.columns
    model = _backtest_model(cv, long) if model is None else str(model)
    if long:
        pairs = [(TARGET, model)]
    else:
        pairs = [(c, f"{model}-{c}") for c in cv.columns if f"{model}-{c}" in cv.columns]
        if not pairs:
            raise ValueError(f"cv has no forecast column '{model}-<channel>' beside a channel "
                             f"column (columns: {list(cv.columns)}): pass the model the backtest "
                             "ran (its backbone, e.g. model='s4d').")
    _check_columns(cv, "cv", [c for actual, forecast in pairs
                              for c in (actual, forecast, *interval_columns(forecast, levels))],
                   hint="cross_validation(df, n_windows, level=...) adds the interval columns "
                        "of those levels; model= names the forecast column")
    panels = []
    groups = cv.groupby(ID, sort=False) if long else [(None, cv)]
    for uid, rows in islice(groups, n_series):
        for actual, forecast in pairs[: n_series if uid is None else len(pairs)]:
            title = str(uid) if uid is not None else actual
            seen = rows.drop_duplicates(TIME).sort_values(TIME, kind="stable")  # windows overlap
            panel = Panel(title, actual=(_times(seen[TIME]), seen[actual].to_numpy(np.float64)))
            for cutoff, window in rows.groupby(CUTOFF, sort=True):
                panel.cutoffs.append(cutoff)
                _add_forecast(panel, window, forecast, levels)
            panels.append(panel)
    return _draw(panels, ax, actual_label="actual")


# ---- panels -------------------------------------------------------------------------------
def _forecast_panel(title: str, rows: pd.DataFrame, past: pd.DataFrame | None, target: str,
                    levels: list[float], history: int | None) -> Panel:
    """One panel of `plot_forecast`: the last `history` rows of `past` and the forecast `rows`."""
    panel = Panel(title)
    if past is not None and history != 0:
        past = past.assign(**{TIME: pd.to_datetime(past[TIME])}).sort_values(TIME, kind="stable")
        past = past if history is None else past.tail(history)
        panel.actual = (_times(past[TIME]), past[target].to_numpy(np.float64))
    _add_forecast(panel, rows, target, levels)
    return panel


def _add_forecast(panel: Panel, rows: pd.DataFrame, column: str, levels: list[float]) -> None:
    """Add the forecast `column` of `rows` and its bands at `levels` to `panel`."""
    times = _times(rows[TIME])
    panel.forecasts.append((times, rows[column].to_numpy(np.float64)))
    bands = []
    for lv in levels:
        name = level_name(lv)
        bands.append((lv, rows[f"{column}-lo-{name}"].to_numpy(np.float64),
                      rows[f"{column}-hi-{name}"].to_numpy(np.float64)))
    panel.bands.append(bands)


def _times(ds: pd.Series) -> np.ndarray:
    """Timestamps as matplotlib reads them: datetime64 (time-zone aware ones in UTC, as
    matplotlib draws them by default)."""
    return pd.to_datetime(ds).to_numpy()


# ---- drawing ------------------------------------------------------------------------------
def _draw(panels: list[Panel], ax: Any, actual_label: str) -> Figure:
    """Draw each panel into its own Axes (those of `ax`, or a new figure's); the first one gets
    the legend."""
    mdates = require("matplotlib.dates", "plot", feature=FEATURE)
    axes = _axes(ax, len(panels))
    for i, (panel, axis) in enumerate(zip(panels, axes, strict=False)):
        first = i == 0
        if panel.actual is not None:
            axis.plot(*panel.actual, color="C0", linewidth=1, label=actual_label)
        for j, cutoff in enumerate(panel.cutoffs):
            axis.axvline(cutoff, color="0.5", linestyle=":", linewidth=1,
                         label="cutoff" if j == 0 else None)
        for j, ((times, values), bands) in enumerate(zip(panel.forecasts, panel.bands, strict=True)):
            labelled = j == 0
            ordered = sorted(bands, key=lambda band: -band[0])  # the widest first, underneath
            for k, (lv, lower, upper) in enumerate(ordered):
                share = k / (len(ordered) - 1) if len(ordered) > 1 else 0.5
                alpha = BAND_ALPHA[1] + share * (BAND_ALPHA[0] - BAND_ALPHA[1])
                axis.fill_between(times, lower, upper, color="C1", alpha=alpha, linewidth=0,
                                  label=f"{level_name(lv)}% interval" if labelled else None)
            axis.plot(times, values, color="C1", linewidth=1.5,
                      label="forecast" if labelled else None)
        axis.set_title(panel.title, fontsize="medium", loc="left")
        locator = mdates.AutoDateLocator()
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        if first:
            axis.legend(loc="best", fontsize="small")
    return axes[0].figure


def _axes(ax: Any, n_panels: int) -> list[Axes]:
    """The Axes to draw `n_panels` panels into: those of `ax`, or a new figure's, one row each."""
    if ax is None:
        plt = require("matplotlib.pyplot", "plot", feature=FEATURE)
        _, axes = plt.subplots(n_panels, 1, figsize=(9, 2.6 * n_panels), squeeze=False,
                               layout="constrained")
        return list(axes[:, 0])
    from matplotlib.axes import Axes

    axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
    if not axes or not all(isinstance(a, Axes) for a in axes):
        raise TypeError(f"ax must be a matplotlib Axes or a sequence of them, got {ax!r}.")
    if len(axes) < n_panels:
        raise ValueError(f"ax holds {len(axes)} Axes but there are {n_panels} panels to draw: "
                         f"pass n_series={len(axes)}, or one Axes per panel "
                         "(plt.subplots(n_series)), or no ax for a new figure.")
    return axes


# ---- checks -------------------------------------------------------------------------------
def _check_count(name: str, value: Any, minimum: int = 1) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}.")
    return int(value)


def _check_frame(frame: Any, name: str, needed: list[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}.")
    _check_columns(frame.rename(columns=str), name, needed, hint=None)
    if frame.empty:
        raise ValueError(f"{name} has no rows: there is nothing to draw.")


def _check_columns(frame: pd.DataFrame, name: str, needed: list[str], hint: str | None) -> None:
    absent = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if absent:
        raise ValueError(f"{name} has no column(s) {absent} (its columns: {list(frame.columns)})"
                         + (f": {hint}." if hint else "."))


def _backtest_model(cv: pd.DataFrame, long: bool) -> str:
    """The one model whose forecasts a backtest frame holds (`s4d`, or `s4d-<channel>` columns
    in the wide layout); raises, naming them, when there are several or none."""
    columns = [c for c in cv.columns if c not in (ID, TIME, CUTOFF) and not INTERVAL.search(c)]
    if long:
        models = [c for c in columns if c != TARGET]
    else:
        models = list(dict.fromkeys(c[: -len(d) - 1] for c in columns for d in columns
                                    if c != d and c.endswith(f"-{d}")))
    if len(models) != 1:
        raise ValueError(f"cv holds the forecasts of {len(models)} models {models}: name the one "
                         "to draw, e.g. model='s4d'.")
    return models[0]
