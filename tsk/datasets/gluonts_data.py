"""Bring GluonTS datasets (`PandasDataset`, `ListDataset`, any iterable of entries) to tsk frames."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd


def is_gluonts_dataset(data: object) -> bool:
    """True for an iterable of GluonTS entries (dicts with `start` and `target`); an empty one
    raises (GluonTS's `ListDataset` is a plain list: empty, it holds no series to read)."""
    if isinstance(data, pd.DataFrame | str | bytes | dict) or not isinstance(data, Iterable):
        return False
    try:
        first = next(iter(data))
    except StopIteration:
        raise ValueError(f"The data ({type(data).__name__}) is empty: no series to read (an empty "
                         "GluonTS ListDataset is an empty list).") from None
    except TypeError:
        return False
    return isinstance(first, dict) and "start" in first and "target" in first


def gluonts_to_frame(data: Iterable[dict]) -> pd.DataFrame:
    """Entries -> a long frame (`unique_id`, `ds`, `y`); one multivariate entry -> a wide frame.

    `feat_dynamic_real` rows become columns `feat_dynamic_real_<i>` (declare them as
    `exogenous` to use them).
    """
    frames, multivariate, seen = [], [], {}
    for i, entry in enumerate(data):
        target = np.asarray(entry["target"], dtype=np.float64)
        start = entry["start"]
        if not isinstance(start, pd.Period):
            raise TypeError(f"Entry {i}'s start is {start!r} ({type(start).__name__}), which has "
                            "no frequency: give a pd.Period (e.g. pd.Period('2024-01-01', freq='h'),"
                            " as GluonTS's datasets hold) rather than a guess being made.")
        item = str(entry.get("item_id", i))
        if item in seen:
            raise ValueError(f"Entries {seen[item]} and {i} share item_id {item!r}: each series "
                             "needs its own id (they would be merged into one series).")
        seen[item] = i
        length = target.shape[-1]
        ds = pd.period_range(start, periods=length, freq=start.freq).to_timestamp()
        columns = {"ds": ds}
        if target.ndim == 1:
            columns = {"unique_id": item, **columns, "y": target}
        else:
            columns.update({str(c): target[c] for c in range(target.shape[0])})
        multivariate.append(target.ndim > 1)
        dynamic = entry.get("feat_dynamic_real")
        if dynamic is not None:
            dynamic = np.atleast_2d(np.asarray(dynamic, dtype=np.float64))
            if dynamic.shape[-1] < length:
                raise ValueError(f"Entry {i} ({item!r}): feat_dynamic_real has {dynamic.shape[-1]} "
                                 f"steps, its target {length}; each covariate needs a value at "
                                 "every target step.")
            for j, row in enumerate(dynamic):
                columns[f"feat_dynamic_real_{j}"] = row[:length]
        frames.append(pd.DataFrame(columns))
    if not frames:
        raise ValueError("The GluonTS dataset is empty.")
    if any(multivariate):
        if len(frames) > 1:
            raise ValueError(
                "A GluonTS dataset with several multivariate entries is not supported: pass one "
                "multivariate entry, or univariate entries (one per series)."
            )
        return frames[0]
    return pd.concat(frames, ignore_index=True)
