"""Validate forecasting data frames and turn them into series arrays, losing nothing.

Two layouts are accepted (docs/data.md):
- long: `unique_id`, `ds`, `y` and optional exogenous columns, one row per series and time;
- wide: `ds` and one column per channel (as the ETT/TSLib CSVs), one multivariate series.

Policy: timestamps must be datetimes without duplicates; unsorted rows are sorted; missing
values (NaN/inf) are an error that says where they are, because filling them is a modelling
choice the user should make (e.g. `df.interpolate()`); nothing is ever dropped silently.
Boolean columns are numbers (False 0, True 1); values beyond 1e150 in size are refused (their
squares overflow the scaling).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

ID, TIME, TARGET = "unique_id", "ds", "y"
MAX_ABS_VALUE = 1e150  # larger values overflow float64 when squared (the scaler's variance)
WIDE_SERIES_ID = "series"


@dataclass(frozen=True)
class Schema:
    """The shape of the user's data, remembered at fit and enforced at predict."""

    layout: str  # "long" or "wide"
    targets: tuple[str, ...]
    exogenous: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.targets + self.exogenous

    def to_dict(self) -> dict:
        return {"layout": self.layout, "targets": list(self.targets), "exogenous": list(self.exogenous)}

    @classmethod
    def from_dict(cls, d: dict) -> Schema:
        return cls(d["layout"], tuple(d["targets"]), tuple(d["exogenous"]))


@dataclass
class Series:
    """One series: timestamps `[T]`, values `[T, C + E]` (targets first, then exogenous)."""

    uid: str
    ds: pd.DatetimeIndex
    values: np.ndarray
    freq: str

    def __len__(self) -> int:
        return len(self.ds)


def infer_schema(df: pd.DataFrame, exogenous: Sequence[str] | None = None) -> Schema:
    """Tell long from wide format and check the columns; extra or missing ones raise."""
    _check_frame(df)
    if isinstance(exogenous, str):
        raise TypeError(f"exogenous must be a list of column names, e.g. [{exogenous!r}], not the "
                        "string itself (read as one name per character).")
    exogenous = tuple(exogenous or ())
    cols = [str(c) for c in df.columns]
    if TIME not in cols:
        raise ValueError(
            f"No {TIME!r} column; got columns {cols}. tsk expects the timestamp in {TIME!r}"
            + _rename_hint(cols, TIME)
        )
    missing = [c for c in exogenous if c not in cols]
    if missing:
        raise ValueError(f"Exogenous column(s) {missing} are not in the data (columns: {cols}).")
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
                "covariates, or drop them."
            )
        return Schema("long", (TARGET,), exogenous)
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
    return Schema("wide", targets, exogenous)


def to_series(df: pd.DataFrame, schema: Schema, *, min_length: int = 1) -> list[Series]:
    """Validate `df` against `schema` and return its series, sorted by time.

    `min_length` is the fewest rows each series needs; shorter ones raise, listing them all.
    """
    _check_frame(df)
    cols = [str(c) for c in df.columns]
    needed = ([ID, TIME] if schema.layout == "long" else [TIME]) + list(schema.columns)
    missing = [c for c in needed if c not in cols]
    if missing:
        raise ValueError(f"Column(s) {missing} are missing; the model was fit on {needed}.")
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
    bad = ~np.isfinite(values)
    if bad.any():
        rows, chans = np.nonzero(bad)
        where = ", ".join(
            f"row {r} ({TIME}={df[TIME].iloc[r]}) column {schema.columns[c]!r}"
            for r, c in zip(rows[:3], chans[:3], strict=True)
        )
        raise ValueError(
            f"{int(bad.sum())} missing or infinite value(s), e.g. {where}. tsk does not guess "
            "missing values: fill them first (e.g. df.interpolate(limit_direction='both') or "
            "df.ffill()) or drop the affected series."
        )
    biggest = float(np.abs(values).max()) if values.size else 0.0
    if biggest > MAX_ABS_VALUE:
        raise ValueError(
            f"Values reach {biggest:.3g}; beyond {MAX_ABS_VALUE:.0e} their squares overflow in the "
            "scaling (the forecasts would be NaN). Rescale the data first (e.g. divide by a "
            "power of ten, or take logs)."
        )
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
    dup = (ids[1:] == ids[:-1]) & (times[1:] == times[:-1])
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise ValueError(
            f"{int(dup.sum())} duplicate timestamp(s), e.g. series {ids[i]!r} at {times[i]}. "
            "Each series may have one row per timestamp: aggregate or drop duplicates first."
        )
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    tz = getattr(ds.dt, "tz", None)
    series = []
    for a, b in zip(starts, ends, strict=True):
        index = pd.DatetimeIndex(times[a:b])
        if tz is not None and index.tz is None:
            index = index.tz_localize("UTC").tz_convert(tz)
        series.append(Series(str(ids[a]), index, values[a:b], infer_frequency(index, str(ids[a]))))
    short = [(s.uid, len(s)) for s in series if len(s) < min_length]
    if short:
        listed = ", ".join(f"{uid!r} ({n} rows)" for uid, n in short[:10])
        more = f" and {len(short) - 10} more" if len(short) > 10 else ""
        raise ValueError(
            f"{len(short)} series are shorter than the {min_length} rows needed "
            f"(lookback + horizon at fit, lookback at predict): {listed}{more}. "
            "Lower lookback/horizon or remove those series."
        )
    return series


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
    if len(index) >= 3:
        warnings.warn(
            f"Series {uid!r} has irregular time steps; forecasting at its most common step {step}.",
            stacklevel=3,
        )
    return pd.tseries.frequencies.to_offset(step).freqstr


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
