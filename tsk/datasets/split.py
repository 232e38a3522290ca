"""A benchmark dataset with its train/validation/test borders, as the TSLib data loaders cut them."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class ForecastSplit:
    """A wide frame (`ds` + channels) and its row borders.

    Train rows are `[0, train_end)`; validation `[train_end, val_end)`; test `[val_end, test_end)`.
    `validation(lookback)` and `test(lookback)` start `lookback` rows early so that the first
    forecast falls on the border (TSLib's `border1s`), and every stride-1 window is kept.
    """

    name: str
    frame: pd.DataFrame
    train_end: int
    val_end: int
    test_end: int
    protocol: str = "tslib"

    def borders(self, lookback: int) -> tuple[list[int], list[int]]:
        """TSLib's `(border1s, border2s)` for a given lookback."""
        return (
            [0, self.train_end - lookback, self.val_end - lookback],
            [self.train_end, self.val_end, self.test_end],
        )

    def train(self) -> pd.DataFrame:
        return self.frame.iloc[: self.train_end].reset_index(drop=True)

    def validation(self, lookback: int) -> pd.DataFrame:
        return self._part(self.train_end - lookback, self.val_end, lookback)

    def test(self, lookback: int) -> pd.DataFrame:
        return self._part(self.val_end - lookback, self.test_end, lookback)

    def _part(self, start: int, end: int, lookback: int) -> pd.DataFrame:
        if start < 0:
            raise ValueError(
                f"lookback={lookback} reaches before the start of {self.name} ({start} < 0)."
            )
        return self.frame.iloc[start:end].reset_index(drop=True)

    def n_windows(self, part: str, lookback: int, horizon: int) -> int:
        """Stride-1 windows in a part, none dropped."""
        rows = {"validation": self.val_end - self.train_end, "test": self.test_end - self.val_end}
        return rows[part] - horizon + 1

    def univariate(self, column: str = "OT") -> ForecastSplit:
        """The "S" setting: only `column`, same borders."""
        return ForecastSplit(
            self.name, self.frame[["ds", column]], self.train_end, self.val_end, self.test_end,
            self.protocol,
        )
