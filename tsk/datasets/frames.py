"""Validate forecasting data frames and turn them into series arrays, losing nothing.

Two layouts are accepted (docs/data.md):
- long: `unique_id`, `ds`, `y` and optional exogenous columns, one row per series and time;
- wide: `ds` and one column per channel (as the ETT/TSLib CSVs), one multivariate series.

Policy: timestamps must be datetimes; unsorted rows are sorted; nothing is dropped, merged or
filled unless a policy asks for it, and then a warning counts what was done, per series:
- `missing` (NaN values, and the steps a regular grid inserts into gaps): "raise" (default: an
  error that says where they are), "mask" (kept as NaN: the model leaves them out of its loss,
  its scaling and its window normalization, and flags them in its inputs) or "interpolate"
  (linear in time within each series, the edges repeat the nearest observed value);
- `duplicates` (rows of one series at one timestamp): "raise" (default), "drop_exact" (drop rows
  identical in every column; rows that differ still raise) or "mean" (average them);
- `freq`: None infers each series' frequency (irregular steps warn and the windows run over the
  gaps as if they were not there); a pandas frequency puts each series on that grid, anchored at
  its first timestamp: a gap becomes missing steps (under `missing="raise"` an error naming the
  gap), a timestamp off the grid is an error.
Infinite values are never "missing": they raise under every policy. Boolean columns are numbers
(False 0, True 1); values beyond 1e150 in size are refused (their squares overflow the scaling).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tsk._names import unknown_name_error

logger = logging.getLogger(__name__)

ID, TIME, TARGET = "unique_id", "ds", "y"
MAX_ABS_VALUE = 1e150  # larger values overflow float64 when squared (the scaler's variance)
WIDE_SERIES_ID = "series"
MISSING_POLICIES = ("raise", "mask", "interpolate")
DUPLICATE_POLICIES = ("raise", "drop_exact", "mean")
LISTED_SERIES = 10  # a warning or error names this many series, then counts the rest


@dataclass(frozen=True)
class Schema:
    """The shape of the user's data, remembered at fit and enforced at predict."""

    layout: str  # "long" or "wide"
    targets: tuple[str, ...]
    exogenous: tuple[str, ...]  # past covariates
    futr_exog: tuple[str, ...] = ()  # covariates also known over the horizon

    @property
    def columns(self) -> tuple[str, ...]:
        """A series' value columns: targets, past covariates, covariates known ahead."""
        return self.targets + self.exogenous + self.futr_exog

    def to_dict(self) -> dict:
        return {"layout": self.layout, "targets": list(self.targets),
                "exogenous": list(self.exogenous), "futr_exog": list(self.futr_exog)}

    @classmethod
    def from_dict(cls, d: dict) -> Schema:
        return cls(d["layout"], tuple(d["targets"]), tuple(d["exogenous"]),
                   tuple(d.get("futr_exog", ())))


@dataclass
class Series:
    """One series: timestamps `[T]`, values `[T, C + E]` (targets first, then exogenous)."""

    uid: str
    ds: pd.DatetimeIndex
    values: np.ndarray
    freq: str

    def __len__(self) -> int:
        return len(self.ds)


def infer_schema(df: pd.DataFrame, exogenous: Sequence[str] | None = None,
                 futr_exog: Sequence[str] | None = None) -> Schema:
    """Tell long from wide format and check the columns; extra or missing ones raise.
    `exogenous` are past covariates, `futr_exog` covariates known ahead too."""
    _check_frame(df)
    for name, given in (("exogenous", exogenous), ("futr_exog", futr_exog)):
        if isinstance(given, str):
            raise TypeError(f"{name} must be a list of column names, e.g. [{given!r}], not the "
                            "string itself (read as one name per character).")
    futr = tuple(futr_exog or ())
    both = sorted(set(exogenous or ()) & set(futr))
    if both:
        raise ValueError(f"Column(s) {both} are in both exogenous (past covariates) and futr_exog "
                         "(known ahead): name each in one of them (futr_exog if its future "
                         "values are known when forecasting).")
    exogenous = tuple(exogenous or ()) + futr  # checked as one list, then split again
    cols = [str(c) for c in df.columns]
    if TIME not in cols:
        raise ValueError(
            f"No {TIME!r} column; got columns {cols}. tsk expects the timestamp in {TIME!r}"
            + _rename_hint(cols, TIME)
        )
    missing = [c for c in exogenous if c not in cols]
    if missing:
        raise ValueError(f"Exogenous column(s) {missing} are not in the data (columns: {cols}).")
    past = exogenous[: len(exogenous) - len(futr)]
    if ID in cols or TARGET in cols:
        for col in (ID, TARGET):
            if col not in cols:
                raise ValueError(
                    f"Long format needs columns {ID!r}, {TIME!r}, {TARGET!r}; {col!r} is missing "
                    f"(columns: {cols}).{_rename_hint(cols, col)}"
                )
        extra = [c for c in cols if c not in (ID, TIME, TARGET, *exogenous)]
        if extra:
            raise ValueError(
                f"Unexpected column(s) {extra}. Pass exogenous={extra} to use them as past "
                f"covariates (futr_exog={extra} if their future values are known when "
                "forecasting), or drop them."
            )
        return Schema("long", (TARGET,), past, futr)
    targets = tuple(c for c in cols if c not in (TIME, *exogenous))
    if not targets:
        raise ValueError(f"Wide format needs at least one value column besides {TIME!r}.")
    named = dict(zip(cols, df.columns, strict=True))
    labels = [c for c in targets if not (pd.api.types.is_numeric_dtype(df[named[c]])
                                         or pd.api.types.is_bool_dtype(df[named[c]]))]
    if labels:  # e.g. `id, ds, value`: a long frame with other names, read as wide
        renames = {c: ID for c in labels[:1]}
        renames.update({c: TARGET for c in targets if c not in labels and
                        c.lower() in ("target", "value", "values", "y_true")})
        raise ValueError(
            f"Column(s) {labels} are not numbers, so this is not a wide frame (ds plus one numeric "
            f"column per channel). A long frame needs columns {ID!r}, {TIME!r}, {TARGET!r}: "
            f"rename them, e.g. df.rename(columns={renames})."
        )
    return Schema("wide", targets, past, futr)


def to_series(df: pd.DataFrame, schema: Schema, *, min_length: int = 1, missing: str = "raise",
              duplicates: str = "raise", freq: str | None = None) -> list[Series]:
    """Validate `df` against `schema` and return its series, sorted by time.

    `min_length` is the fewest rows each series needs (on the `freq` grid); shorter ones raise,
    listing them all. `missing`, `duplicates` and `freq` are the policies of the module
    docstring: under "mask" the returned values keep NaN where values are missing.
    """
    check_policies(missing, duplicates, freq)
    _check_frame(df)
    cols = [str(c) for c in df.columns]
    needed = ([ID, TIME] if schema.layout == "long" else [TIME]) + list(schema.columns)
    absent = [c for c in needed if c not in cols]
    if absent:
        raise ValueError(f"Column(s) {absent} are missing; the model was fit on {needed}.")
    extra = [c for c in cols if c not in needed]
    if extra:
        raise ValueError(f"Unexpected column(s) {extra}; the model was fit on {needed}.")
    df = df.copy(deep=False)
    df.columns = cols
    ds = df[TIME]
    if isinstance(ds.dtype, pd.ArrowDtype) and ds.dtype.kind == "M":  # pyarrow-backed timestamps
        tz = ds.dt.tz
        ds = df[TIME] = ds.astype("datetime64[ns]" if tz is None else pd.DatetimeTZDtype("ns", tz))
    if not pd.api.types.is_datetime64_any_dtype(ds):
        hint = f"pd.to_datetime(df[{TIME!r}])"
        if pd.api.types.is_integer_dtype(ds) or pd.api.types.is_float_dtype(ds):
            unit = "s" if ds.abs().max() < 1e11 else "ms"  # seconds since 1970 are about 1.7e9
            hint = (f"pd.to_datetime(df[{TIME!r}], unit={unit!r}) (numbers: say their unit; "
                    "without it pandas reads them as nanoseconds)")
        raise TypeError(
            f"Column {TIME!r} must hold datetimes, got dtype {ds.dtype}. "
            f"Convert it first: df[{TIME!r}] = {hint}."
        )
    if ds.isna().any():
        rows = list(np.flatnonzero(ds.isna().to_numpy())[:5])
        raise ValueError(f"Column {TIME!r} has {int(ds.isna().sum())} missing timestamps (rows {rows}).")
    for col in schema.columns:
        if not (pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col])):
            raise TypeError(f"Column {col!r} must be numeric, got dtype {df[col].dtype}.")
    values = df[list(schema.columns)].to_numpy(dtype=np.float64)
    _check_values(values, df[TIME], schema.columns, missing)
    if schema.layout == "long":
        missing_ids = df[ID].isna().to_numpy()
        if missing_ids.any():
            rows = list(np.flatnonzero(missing_ids)[:5])
            raise ValueError(f"Column {ID!r} has {int(missing_ids.sum())} missing id(s) (rows "
                             f"{rows}): every row needs the id of its series; fill or drop them.")
        ids = df[ID].astype(str).to_numpy()
        order = np.lexsort((df[TIME].to_numpy(), ids))
    else:
        ids = np.full(len(df), WIDE_SERIES_ID, dtype=object)
        order = np.argsort(df[TIME].to_numpy(), kind="stable")
    if not np.array_equal(order, np.arange(len(df))):
        logger.info("Rows were not sorted by (series, time); sorting them.")
    ids, times, values = ids[order], df[TIME].to_numpy()[order], values[order]
    ids, times, values = _deduplicate(ids, times, values, duplicates, schema.columns)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    tz = getattr(ds.dt, "tz", None)
    offset = _offset(freq)
    series, inserted, interpolated = [], {}, {}
    for a, b in zip(starts, ends, strict=True):
        uid, index, block = str(ids[a]), pd.DatetimeIndex(times[a:b]), values[a:b]
        if tz is not None and index.tz is None:
            index = index.tz_localize("UTC").tz_convert(tz)
        if offset is None:
            step = infer_frequency(index, uid)
        else:
            step = offset.freqstr
            index, block, gaps = _on_grid(uid, index, block, offset, missing)
            if gaps:
                inserted[uid] = gaps
        if missing != "raise" and np.isnan(block).any():
            empty = [schema.columns[c] for c in np.flatnonzero(np.isnan(block).all(axis=0))]
            if empty:
                raise ValueError(
                    f"Series {uid!r} has no observed value in column(s) {empty}: there is nothing "
                    f"to {'interpolate' if missing == 'interpolate' else 'scale or learn'} them "
                    "from. Drop those columns or that series, or fill them first.")
            if missing == "interpolate":
                interpolated[uid] = int(np.isnan(block).sum())
                block = interpolate_missing(index, block)
        series.append(Series(uid, index, block, step))
    if inserted:
        warnings.warn(
            f"Put the series on the {offset.freqstr!r} grid (freq=) by inserting "
            f"{sum(n for n, _ in inserted.values())} missing step(s) into their gaps, handled "
            f"as missing={missing!r}; per series: "
            + _listed({uid: f"{n} (first gap after {after})" for uid, (n, after) in inserted.items()}),
            stacklevel=3,
        )
    if interpolated:
        warnings.warn(
            f"Filled {sum(interpolated.values())} missing value(s) by linear interpolation in time "
            "(missing='interpolate'; before a series' first or after its last observed value, "
            "that value is repeated); per series: " + _listed(interpolated),
            stacklevel=3,
        )
    short = [(s.uid, len(s)) for s in series if len(s) < min_length]
    if short:
        listed = ", ".join(f"{uid!r} ({n} rows)" for uid, n in short[:LISTED_SERIES])
        more = f" and {len(short) - LISTED_SERIES} more" if len(short) > LISTED_SERIES else ""
        raise ValueError(
            f"{len(short)} series are shorter than the {min_length} rows needed "
            f"(lookback + horizon at fit, lookback at predict): {listed}{more}. "
            "Lower lookback/horizon or remove those series."
        )
    return series


def check_policies(missing: str, duplicates: str, freq: str | None) -> None:
    """Raise for an unknown `missing` or `duplicates` policy or a `freq` pandas cannot read, when
    the estimator is configured rather than when its data is first read."""
    if missing not in MISSING_POLICIES:
        raise unknown_name_error("missing-value policy (missing=)", missing, MISSING_POLICIES)
    if duplicates not in DUPLICATE_POLICIES:
        raise unknown_name_error("duplicates policy (duplicates=)", duplicates, DUPLICATE_POLICIES)
    _offset(freq)


def _offset(freq: str | None) -> pd.DateOffset | None:
    """`freq` as a pandas offset (None stays None), or an error saying what a frequency is."""
    if freq is None:
        return None
    if not isinstance(freq, str):
        raise TypeError(f"freq must be a pandas frequency string such as '10min', 'h' or 'D' "
                        f"(or None to infer it), got {freq!r} ({type(freq).__name__}).")
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        offset = None
    if offset is None or getattr(offset, "n", 1) <= 0:
        raise ValueError(f"freq={freq!r} is not a positive pandas frequency; use an alias such as "
                         "'10min', 'h', 'D', 'W-SUN' or 'MS' (or None to infer it).")
    return offset


def _check_values(values: np.ndarray, times: pd.Series, columns: Sequence[str],
                  missing: str) -> None:
    """Infinite values always raise, NaN ones under `missing="raise"`, saying where they are;
    sizes that would overflow the scaling raise."""
    bad = np.isinf(values) | (np.isnan(values) if missing == "raise" else False)
    if bad.any():
        rows, chans = np.nonzero(bad)
        where = ", ".join(
            f"row {r} ({TIME}={times.iloc[r]}) column {columns[c]!r}"
            for r, c in zip(rows[:3], chans[:3], strict=True)
        )
        if missing == "raise":
            raise ValueError(
                f"{int(bad.sum())} missing or infinite value(s), e.g. {where}. tsk does not fill "
                "them unasked: pass missing='mask' (the model leaves them out of its loss and "
                "scaling and flags them in its inputs) or missing='interpolate' (linear in time "
                "within each series), or fill them yourself (e.g. "
                "df.interpolate(limit_direction='both')). Infinite values raise under every policy."
            )
        raise ValueError(
            f"{int(bad.sum())} infinite value(s), e.g. {where}. Only NaN counts as missing "
            f"(missing={missing!r}): if they mean missing, make them NaN first "
            "(df.replace([np.inf, -np.inf], np.nan)); else rescale the data."
        )
    finite = np.abs(values[np.isfinite(values)])
    biggest = float(finite.max()) if finite.size else 0.0
    if biggest > MAX_ABS_VALUE:
        raise ValueError(
            f"Values reach {biggest:.3g}; beyond {MAX_ABS_VALUE:.0e} their squares overflow in the "
            "scaling (the forecasts would be NaN). Rescale the data first (e.g. divide by a "
            "power of ten, or take logs)."
        )


def _deduplicate(ids: np.ndarray, times: np.ndarray, values: np.ndarray, duplicates: str,
                 columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by (series, time) with one row per timestamp, as `duplicates` says: "raise",
    "drop_exact" (keep one of rows identical in every column; rows that differ raise) or "mean"
    (average each column's observed values over the rows of one timestamp)."""
    same = (ids[1:] == ids[:-1]) & (times[1:] == times[:-1])
    if not same.any():
        return ids, times, values
    first = np.r_[True, ~same]  # the first row of each (series, time) group
    heads = np.flatnonzero(first)
    head_of = heads[np.cumsum(first) - 1]  # each row's group's first row
    if duplicates == "raise":
        i = int(np.flatnonzero(same)[0])
        raise ValueError(
            f"{int(same.sum())} duplicate timestamp(s), e.g. series {ids[i]!r} at "
            f"{pd.Timestamp(times[i])}. "
            "Each series may have one row per timestamp: pass duplicates='drop_exact' (drop rows "
            "identical in every column) or duplicates='mean' (average the rows of one timestamp), "
            "or aggregate or drop them first."
        )
    extra = ~first
    counts = dict(zip(*np.unique(ids[extra], return_counts=True), strict=True))
    counts = {str(uid): int(n) for uid, n in counts.items()}
    if duplicates == "drop_exact":
        other = values[head_of]
        equal = ((values == other) | (np.isnan(values) & np.isnan(other))).all(axis=1)
        if not equal.all():
            i = int(np.flatnonzero(~equal)[0])
            conflicts = np.unique(head_of[~equal]).size
            kept, other_row = (dict(zip(columns, row.tolist(), strict=True))
                               for row in (values[head_of[i]], values[i]))
            raise ValueError(
                f"{conflicts} timestamp(s) have rows with different values, e.g. series "
                f"{ids[i]!r} at {pd.Timestamp(times[i])}: {kept} and {other_row}. "
                "duplicates='drop_exact' drops only rows identical in every column: pass "
                "duplicates='mean' to average them, or keep the right row first."
            )
        warnings.warn(f"Dropped {sum(counts.values())} exact duplicate row(s) "
                      "(duplicates='drop_exact'); per series: " + _listed(counts), stacklevel=4)
        return ids[first], times[first], values[first]
    observed = ~np.isnan(values)
    sums = np.add.reduceat(np.where(observed, values, 0.0), heads, axis=0)
    n_observed = np.add.reduceat(observed.astype(np.int64), heads, axis=0)
    means = np.divide(sums, n_observed, out=np.full_like(sums, np.nan), where=n_observed > 0)
    warnings.warn(f"Averaged {len(values)} rows into {len(heads)} (duplicates='mean': the rows of "
                  "one timestamp become their mean, missing values left out); rows merged away "
                  "per series: " + _listed(counts), stacklevel=4)
    return ids[first], times[first], means


def _on_grid(uid: str, index: pd.DatetimeIndex, block: np.ndarray, offset: pd.DateOffset,
             missing: str) -> tuple[pd.DatetimeIndex, np.ndarray, tuple[int, object] | None]:
    """The series on the grid of `offset` from its first timestamp, gaps filled with NaN rows,
    and (steps inserted, the timestamp before the first gap), None without gaps. Timestamps off
    the grid raise, and gaps do under `missing="raise"`."""
    grid = pd.date_range(index[0], index[-1], freq=offset)
    if len(grid) == len(index) and grid.equals(index):
        return index, block, None
    off = ~index.isin(grid)
    if off.any():
        raise ValueError(
            f"Series {uid!r} has {int(off.sum())} timestamp(s) off its {offset.freqstr!r} grid "
            f"(freq=; the grid starts at its first timestamp, {index[0]}), e.g. {index[off][0]}. "
            f"Resample the data onto the grid first (e.g. df.set_index('ds').resample("
            f"{offset.freqstr!r}).mean()), or pass the frequency the data steps at."
        )
    positions = grid.get_indexer(index)
    jumps = np.diff(positions)
    gaps = np.flatnonzero(jumps > 1)
    n_missing = len(grid) - len(index)
    g = int(gaps[0])
    if missing == "raise":
        raise ValueError(
            f"Series {uid!r} has {len(gaps)} gap(s) in its {offset.freqstr!r} grid, "
            f"{n_missing} missing step(s) in all, e.g. {int(jumps[g]) - 1} step(s) missing "
            f"between {index[g]} and {index[g + 1]}. Pass missing='mask' (the model leaves "
            "missing steps out) or missing='interpolate' (linear in time), or fill the gaps "
            "yourself."
        )
    full = np.full((len(grid), block.shape[1]), np.nan)
    full[positions] = block
    return grid, full, (n_missing, index[g])


def interpolate_missing(index: pd.DatetimeIndex, block: np.ndarray) -> np.ndarray:
    """Each column's NaNs linear in time between its observed neighbours, and its first or
    last observed value repeated before or after them (pandas' `interpolate(method="time")`)."""
    frame = pd.DataFrame(block, index=index)
    return frame.interpolate(method="time", limit_area="inside").ffill().bfill().to_numpy()


def _listed(counts: dict[str, object]) -> str:
    """`'s0': 9, 's1': 2, ...`: the first `LISTED_SERIES` series, then how many more."""
    items = list(counts.items())
    text = ", ".join(f"{uid!r}: {value}" for uid, value in items[:LISTED_SERIES])
    return text + (f" and {len(items) - LISTED_SERIES} more series" if len(items) > LISTED_SERIES
                   else "") + "."


def infer_frequency(index: pd.DatetimeIndex, uid: str = "") -> str:
    """The series' frequency as a pandas offset alias; irregular steps warn and use the commonest."""
    if len(index) < 2:
        raise ValueError(f"Series {uid!r} has {len(index)} row(s): cannot infer its frequency.")
    if len(index) >= 3:
        freq = pd.infer_freq(index)
        if freq is not None:
            return freq
    steps = pd.Series(np.diff(index.as_unit("ns").asi8))  # pd.Timedelta(int) counts ns
    step = pd.Timedelta(int(steps.mode().iloc[0]))
    alias = pd.tseries.frequencies.to_offset(step).freqstr
    if len(index) >= 3:
        warnings.warn(
            f"Series {uid!r} has irregular time steps; forecasting at its most common step {step}, "
            "with windows that run over its gaps as if they were not there. Pass "
            f"freq={alias!r} to put it on that grid (the gaps become missing steps, handled as "
            "missing= says) or resample it first.",
            stacklevel=3,
        )
    return alias


def check_fitted_frequency(series: Sequence[Series], fitted: Sequence[str]) -> None:
    """Raise if a series steps at a rate no fitted series did: a model's forecast steps at the
    rate it was fit on, so new data at another rate would get wrong timestamps."""
    fitted = sorted(fitted)
    other = [s for s in series if s.freq not in fitted]
    if other:
        raise ValueError(
            f"Series {other[0].uid!r} steps at {other[0].freq!r}; the model was fit on data at "
            f"{' / '.join(map(repr, fitted))}, and its forecast would step at that rate. "
            "Resample the data to the fitted frequency (df.resample) or fit a model on it.")


def with_forecast_index(frame: pd.DataFrame, contexts: Sequence[Series], horizon: int,
                        layout: str) -> pd.DataFrame:
    """`frame` (a block of `horizon` rows per context, in their order) with each block's future
    timestamps in front, and in the long layout its series id: the frame `predict` returns."""
    stamps = [future_index(context, horizon) for context in contexts]
    frame.insert(0, TIME, stamps[0].append(stamps[1:]))
    if layout == "long":
        frame.insert(0, ID, np.repeat([context.uid for context in contexts], horizon))
    return frame


def future_index(series: Series, horizon: int) -> pd.DatetimeIndex:
    """The `horizon` timestamps after the series' last one, at its frequency."""
    return pd.date_range(series.ds[-1], periods=horizon + 1, freq=series.freq)[1:]


def _check_frame(df: object) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"Expected a pandas DataFrame (or a GluonTS dataset), got {type(df).__name__}."
        )
    if df.empty:
        raise ValueError("The data frame is empty.")
    repeated = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if repeated:
        raise ValueError(f"Column name(s) {repeated} appear more than once: give every column its "
                         "own name.")


def _rename_hint(cols: list[str], wanted: str) -> str:
    synonyms = {TIME: ("date", "time", "timestamp", "datetime"), ID: ("id", "series", "item_id"),
                TARGET: ("target", "value", "OT")}
    for col in cols:
        if col.lower() in synonyms.get(wanted, ()):
            return f"; rename it: df.rename(columns={{{col!r}: {wanted!r}}})."
    return "."
