"""Other long-horizon CSVs (Exchange, ILI, or any `date` + values file), TSLib's `Dataset_Custom`.

Chronological 70/10/20 split: `n_train = int(0.7 N)`, `n_test = int(0.2 N)`, the rest validation;
columns are ordered `[ds, other..., target]`.
"""

from __future__ import annotations

import os
from pathlib import Path

from tsk.datasets.ett import read_frame
from tsk.datasets.files import find_file
from tsk.datasets.split import ForecastSplit

TSLIB_SOURCE = "the Time-Series-Library data bundle (https://github.com/thuml/Time-Series-Library)"
KNOWN_FILES = {
    "exchange_rate": "forecasting/exchange_rate/exchange_rate.csv",
    "national_illness": "forecasting/illness/national_illness.csv",
}
ALIASES = {"exchange": "exchange_rate", "ili": "national_illness", "illness": "national_illness"}


def load_csv(
    name_or_path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    target: str = "OT",
    ratios: tuple[float, float] = (0.7, 0.2),
) -> ForecastSplit:
    """Load a known dataset by name (`"exchange_rate"`, `"national_illness"`) or any CSV path.

    `ratios` are the (train, test) fractions; validation is what lies between.
    """
    key = ALIASES.get(str(name_or_path), str(name_or_path))
    if key in KNOWN_FILES:
        rel = KNOWN_FILES[key]
        path = find_file(
            root, [rel, rel.split("/", 1)[1], Path(rel).name], what=Path(rel).name,
            source=TSLIB_SOURCE,
        )
        name = key
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"No such file: {path}. Known dataset names: {', '.join(sorted(KNOWN_FILES))}."
            )
        name = path.name.split(".")[0]
    frame = read_frame(path)
    if target in frame.columns:
        frame = frame[[c for c in frame.columns if c != target] + [target]]
    n = len(frame)
    n_train, n_test = int(ratios[0] * n), int(ratios[1] * n)
    return ForecastSplit(name, frame, n_train, n - n_test, n, protocol="ratio")
