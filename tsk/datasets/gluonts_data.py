"""Bring GluonTS datasets (`PandasDataset`, `ListDataset`, any iterable of entries) to tsk frames."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd


def is_gluonts_dataset(data: object) -> bool:
    """True for an iterable of GluonTS entries (dicts with `start` and `target`)."""
    if isinstance(data, pd.DataFrame | str | bytes | dict) or not isinstance(data, Iterable):
        return False
    try:
        first = next(iter(data))
    except (StopIteration, TypeError):
        return False
    return isinstance(first, dict) and "start" in first and "target" in first


def gluonts_to_frame(data: Iterable[dict]) -> pd.DataFrame:
    """Entries -> a long frame (`unique_id`, `ds`, `y`); one multivariate entry -> a wide frame.

    `feat_dynamic_real` rows become columns `feat_dynamic_real_<i>` (declare them as
    `exogenous` to use them).
    """
    frames, multivariate = [], []
    for i, entry in enumerate(data):
        target = np.asarray(entry["target"], dtype=np.float64)
        start = pd.Period(entry["start"]) if not isinstance(entry["start"], pd.Period) else entry["start"]
        length = target.shape[-1]
        ds = pd.period_range(start, periods=length, freq=start.freq).to_timestamp()
        columns = {"ds": ds}
        if target.ndim == 1:
            columns = {"unique_id": str(entry.get("item_id", i)), **columns, "y": target}
        else:
            columns.update({str(c): target[c] for c in range(target.shape[0])})
        multivariate.append(target.ndim > 1)
        dynamic = entry.get("feat_dynamic_real")
        if dynamic is not None:
            dynamic = np.asarray(dynamic, dtype=np.float64)
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
