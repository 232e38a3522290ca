"""The M4 competition's Hourly and Weekly series (Makridakis, Spiliotis & Assimakopoulos 2020, IJF),
with the official split: each series' training part, and its next `horizon` values as the test.

The files are the competition's own wide CSVs (Mcompetitions/M4-methods, Dataset/Train and
Dataset/Test): all fields quoted, column "V1" the id, then the values, padded with empty fields;
test rows in the order of the train rows. M4 gives no dates (its M4-info.csv has start dates, not
read here), so `ds` is synthetic: a regular hourly (`freq` "h") or weekly ("W-SUN") index on which
every series' training part ends at `TRAIN_END` and its test part continues one step later. A
global Forecaster then infers the frequency and forecasts the test's own timestamps; the dates
carry no calendar meaning (hour of day or day of week are not the real ones: fit with
`time_features=False`).
"""

from __future__ import annotations

import csv
import gzip
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from tsk.datasets.files import find_file

M4_SOURCE = "https://github.com/Mcompetitions/M4-methods/tree/master/Dataset (Train/ and Test/)"
M4_GROUPS = {"Hourly": (48, 24, "h"), "Weekly": (13, 1, "W-SUN")}
"""The groups this loader reads: (horizon, seasonality m for MASE and Naive2, synthetic step)."""
M4_UNSUPPORTED = {"Yearly": (6, 1), "Quarterly": (8, 4), "Monthly": (18, 12), "Daily": (14, 1)}
"""The other M4 groups, (horizon, m) from the M4 guide: not supported here."""
TRAIN_END = pd.Timestamp("2017-12-31")  # a Sunday at midnight: a valid end for both steps


@dataclass(frozen=True, eq=False)
class M4Data:
    """One M4 group: `ids` in file order, `insample` each series' training values (their lengths
    differ), `outsample[n_series, horizon]` the test values; `train` / `test` the same as long
    frames (unique_id, ds, y) with the synthetic `ds` of the module docstring."""

    group: str
    horizon: int
    seasonality: int
    freq: str
    ids: tuple[str, ...] = field(repr=False)
    insample: tuple[np.ndarray, ...] = field(repr=False)
    outsample: np.ndarray = field(repr=False)

    @property
    def n_series(self) -> int:
        return len(self.ids)

    @cached_property
    def train(self) -> pd.DataFrame:
        """Every series' training part: its last row at `TRAIN_END`."""
        return self._frame(self.insample, end=TRAIN_END)

    @cached_property
    def test(self) -> pd.DataFrame:
        """Every series' `horizon` test values, one step after its training part ends."""
        steps = pd.date_range(TRAIN_END, periods=self.horizon + 1, freq=self.freq)
        return self._frame(tuple(self.outsample), end=steps[-1])

    def _frame(self, values: tuple[np.ndarray, ...], end: pd.Timestamp) -> pd.DataFrame:
        longest = max(len(v) for v in values)
        index = pd.date_range(end=end, periods=longest, freq=self.freq)
        return pd.DataFrame({
            "unique_id": np.repeat(np.array(self.ids, dtype=object), [len(v) for v in values]),
            "ds": np.concatenate([index[longest - len(v):] for v in values]),
            "y": np.concatenate(values),
        })


def load_m4(group: str, root: str | os.PathLike | None = None) -> M4Data:
    """Load M4 `group` ("Hourly" or "Weekly") from `root` (or `$TSK_DATA_DIR`): its
    `{group}-train.csv` and `{group}-test.csv` (`.gz` too) under `forecasting/m4/`, `m4/`,
    `Dataset/Train|Test/` or `root` itself."""
    name = str(group).strip().capitalize()
    if name in M4_UNSUPPORTED:
        raise ValueError(
            f"M4 {name} is not supported: tsk loads the M4 groups {', '.join(M4_GROUPS)} only "
            f"(M4 also has {', '.join(M4_UNSUPPORTED)}, which this loader does not read).")
    if name not in M4_GROUPS:
        raise ValueError(
            f"Unknown M4 group {group!r}. Supported: {', '.join(M4_GROUPS)}; M4 also has "
            f"{', '.join(M4_UNSUPPORTED)}, which are not supported.")
    horizon, season, freq = M4_GROUPS[name]
    paths = {}
    for part, folder in (("train", "Train"), ("test", "Test")):
        file = f"{name}-{part}.csv"
        paths[part] = find_file(
            root, [f"forecasting/m4/{file}", f"m4/{file}", f"Dataset/{folder}/{file}", file],
            what=file, source=M4_SOURCE)
    train_ids, train = _read_wide(paths["train"])
    test_ids, test = _read_wide(paths["test"])
    if train_ids != test_ids:
        common = min(len(train_ids), len(test_ids))
        first = next((i for i in range(common) if train_ids[i] != test_ids[i]), common)
        raise ValueError(f"{paths['train'].name} and {paths['test'].name} do not list the same "
                         f"series in the same order ({len(train_ids)} and {len(test_ids)} series; "
                         f"they differ from series {first + 1} on).")
    wrong = [(uid, len(v)) for uid, v in zip(test_ids, test, strict=True) if len(v) != horizon]
    if wrong:
        raise ValueError(f"{paths['test'].name}: every series needs {horizon} test values "
                         f"(M4 {name}'s horizon); {len(wrong)} do not, e.g. {wrong[:3]}.")
    outsample = np.stack(test)
    for values in (*train, outsample):
        values.setflags(write=False)
    return M4Data(name, horizon, season, freq, tuple(train_ids), tuple(train), outsample)


def _read_wide(path: Path) -> tuple[list[str], list[np.ndarray]]:
    """The ids and values of an M4 wide CSV; raises on empty, non-numeric or gapped rows."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2 or not rows[0] or rows[0][0] != "V1":
        raise ValueError(f"{path} is not an M4 file: it needs a header starting with \"V1\" and one "
                         "row per series.")
    ids, series = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not row[0].strip():
            raise ValueError(f"{path}, line {line}: no series id (an empty row?).")
        cells = row[1:]
        n = len(cells)
        while n and not cells[n - 1].strip():
            n -= 1
        if n == 0:
            raise ValueError(f"{path}, line {line}: series {row[0]!r} has no values.")
        try:
            values = np.array([float(v) if v.strip() else math.nan for v in cells[:n]])
        except ValueError as error:
            raise ValueError(f"{path}, line {line}: series {row[0]!r} has a non-numeric value "
                             f"({error}).") from None
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(f"{path}, line {line}: series {row[0]!r} has {bad.size} missing or "
                             f"non-finite value(s) before its end, first at position {bad[0] + 1}.")
        ids.append(row[0])
        series.append(values)
    return ids, series
