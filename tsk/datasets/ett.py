"""The ETT datasets (Zhou et al., Informer) with the Time-Series-Library borders.

Hourly files: train 12 months, validation 4, test 4, with 30-day months: rows [0, 8640),
[8640, 11520), [11520, 14400); the rest of the file is unused. The 15-minute files use the same
months, so every border is x4. The "ratio" protocol cuts the whole file 60/20/20 instead (TPGN).
"""

from __future__ import annotations

import os

import pandas as pd

from tsk._names import unknown_name_error
from tsk.datasets.files import find_file
from tsk.datasets.split import ForecastSplit

ETT_NAMES = ("ETTh1", "ETTh2", "ETTm1", "ETTm2")
ETT_SOURCE = "https://github.com/zhouhaoyi/ETDataset/tree/main/ETT-small"
HOURS_PER_MONTH = 30 * 24


def read_frame(path: os.PathLike) -> pd.DataFrame:
    """Read a TSLib-style CSV (`date` + value columns, `.csv` or `.csv.gz`) as `ds` + channels."""
    frame = pd.read_csv(path)
    frame = frame.rename(columns={frame.columns[0]: "ds"})
    frame["ds"] = pd.to_datetime(frame["ds"])
    return frame


def load_ett(
    name: str, root: str | os.PathLike | None = None, protocol: str = "tslib"
) -> ForecastSplit:
    """Load ETTh1/ETTh2/ETTm1/ETTm2 from `root` (or `$TSK_DATA_DIR`) with its benchmark borders.

    `protocol="tslib"`: the 12/4/4-month borders above; `"ratio"`: 60/20/20 of the whole file.
    """
    if name not in ETT_NAMES:
        raise unknown_name_error("ETT dataset", name, ETT_NAMES)
    path = find_file(
        root,
        [f"forecasting/ETT-small/{name}.csv", f"ETT-small/{name}.csv", f"{name}.csv"],
        what=f"{name}.csv",
        source=ETT_SOURCE,
    )
    frame = read_frame(path)
    if protocol == "tslib":
        per_month = HOURS_PER_MONTH * (4 if name.startswith("ETTm") else 1)
        borders = (12 * per_month, 16 * per_month, 20 * per_month)
    elif protocol == "ratio":
        n = len(frame)
        borders = (int(0.6 * n), int(0.8 * n), n)
    else:
        raise unknown_name_error("protocol", protocol, ("tslib", "ratio"))
    return ForecastSplit(name, frame, *borders, protocol=protocol)
