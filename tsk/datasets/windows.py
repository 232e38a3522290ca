"""Stride-1 sliding windows over scaled series, as a map-style torch Dataset that also fetches
whole batches at once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class WindowDataset(Dataset):
    """Every window of every series, stride 1 (or every `window_step`-th start of each series
    and its last, so that a step up to the horizon still leaves no row unscored), none dropped:
    items are batch mappings, `{"inputs": x[lookback, F], "targets": y[horizon, C']}`.

    `arrays` are `[T, C + E]` (targets first). With `channel_independent=True` each target
    channel is its own sample: `x` holds that channel and the `n_exog` exogenous columns, `y` that
    channel; otherwise `x` holds all columns and `y` all targets. `starts[i]` limits series `i`'s
    window starts to `[starts[i][0], starts[i][1])` (`None`: all of them). `horizon=0` gives
    inputs only (prediction).

    Missing values (NaN, `Forecaster(missing="mask")`) stay NaN in `x` and `y`: the network's
    window normalization fills the inputs, the loss leaves the targets out. `flags` are columns
    of `x` whose missingness is appended to `x`, one 0/1 channel each (1: missing), so that the
    network can tell a missing value from an observed one. A window whose targets (every target
    channel over its horizon) are all missing is skipped; `n_unobserved` counts them.

    Covariates known ahead (`futr_from`: the first of the trailing columns that are known for
    the future, e.g. a promotion calendar or calendar features) also give each sample their
    values over its horizon, `futr [horizon, width - futr_from]`; `static` (`[series, S]`, one
    row per series) gives each sample its series' row, `static [S]`. `all_windows=True` keeps
    windows whose targets are all missing: a forecast's windows, whose horizon is the unknown
    future (NaN targets) with its known-ahead covariates.

    A DataLoader fetches a batch with `__getitems__`: one gather over the series, stored end to
    end, instead of one `__getitem__` and a stack per sample (which cost ~25 us a window, a
    default ETTh1 epoch ~15 s). Pass `collate_fn=WindowDataset.collate` (the batch is ready).
    """

    def __init__(
        self,
        arrays: Sequence[np.ndarray],
        lookback: int,
        horizon: int,
        n_targets: int,
        channel_independent: bool,
        starts: Sequence[tuple[int, int] | None] | None = None,
        flags: Sequence[int] = (),
        futr_from: int | None = None,
        static: np.ndarray | None = None,
        all_windows: bool = False,
        window_step: int = 1,
    ) -> None:
        if not isinstance(window_step, int) or window_step < 1:
            raise ValueError(f"window_step must be a positive integer, got {window_step!r}.")
        parts = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
        self.lookback, self.horizon, self.n_targets = lookback, horizon, n_targets
        self.channel_independent = channel_independent
        self.flags = torch.as_tensor(list(flags), dtype=torch.long)
        span = lookback + horizon
        index, self.n_unobserved = [], 0
        for i, values in enumerate(parts):
            lo, hi = (0, len(values) - span + 1) if starts is None or starts[i] is None else starts[i]
            hi = min(hi, len(values) - span + 1)
            if hi > lo:
                first = np.unique(np.r_[np.arange(lo, hi, window_step), hi - 1])
                if horizon and not all_windows:  # the windows with an observed target to learn
                    seen = np.r_[0, np.cumsum(~np.isnan(values[:, :n_targets]).all(axis=1))]
                    observed = seen[first + span] > seen[first + lookback]
                    self.n_unobserved += int((~observed).sum())
                    first = first[observed]
                index.append(np.stack([np.full(len(first), i), first], axis=1))
        self.index = np.concatenate(index) if index else np.zeros((0, 2), dtype=np.int64)
        self.channels = n_targets if channel_independent else 1
        # all series end to end: a window of series i starting at s begins at row offsets[i] + s
        width = parts[0].shape[1] if parts else n_targets
        self.values = torch.from_numpy(np.concatenate(parts) if parts else np.zeros((0, width),
                                                                                    np.float32))
        offsets = np.cumsum([0] + [len(p) for p in parts[:-1]]).astype(np.int64)
        self._first_rows = torch.from_numpy(offsets[self.index[:, 0]] + self.index[:, 1]
                                            if len(self.index) else np.zeros(0, np.int64))
        self._steps = torch.arange(span)
        self._exogenous = torch.arange(n_targets, width)
        self.futr_from = futr_from if futr_from is not None and futr_from < width else None
        self._series = torch.from_numpy(self.index[:, 0].astype(np.int64))
        self.static = None if static is None else torch.as_tensor(static, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.index) * self.channels

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        batch = self.__getitems__([item])
        return {key: value[0] for key, value in batch.items()}

    def __getitems__(self, items: Sequence[int]) -> dict[str, torch.Tensor]:
        """The samples `items` as one batch: `inputs [B, lookback, F]`, `targets [B, horizon, C']`."""
        window, channel = np.divmod(np.asarray(items, dtype=np.int64), self.channels)
        rows = self._first_rows[window][:, None] + self._steps  # [B, lookback + horizon]
        past, future = rows[:, : self.lookback], rows[:, self.lookback :]
        if self.channel_independent:
            channel = torch.from_numpy(channel)
            columns = torch.cat([channel[:, None], self._exogenous.expand(len(channel), -1)], 1)
            x = self.values[past[:, :, None], columns[:, None, :]]  # [B, lookback, 1 + E]
            y = self.values[future, channel[:, None]][..., None]  # [B, horizon, 1]
        else:
            x = self.values[past]
            y = self.values[future, : self.n_targets]
        if len(self.flags):
            x = torch.cat([x, x[..., self.flags].isnan().to(x.dtype)], dim=-1)
        batch = {"inputs": x, "targets": y}
        if self.futr_from is not None:
            batch["futr"] = self.values[future, self.futr_from:]  # [B, horizon, known ahead]
        if self.static is not None:
            batch["static"] = self.static[self._series[window]]  # [B, S]
        return batch

    @staticmethod
    def collate(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The DataLoader's `collate_fn` for this dataset: `__getitems__` made the batch."""
        return batch

    def future_values(self) -> np.ndarray:
        """Every window's targets, `[windows, horizon, n_targets]` (all target channels, also when
        each channel is its own sample), in window order: what its forecasts are scored on."""
        rows = self._first_rows[:, None] + self._steps[self.lookback:]
        return self.values[rows, : self.n_targets].numpy()

    def side_by_side(self, outputs: np.ndarray) -> np.ndarray:
        """A network's outputs for every sample, in sample order (`[samples, horizon, n, ...]`),
        as `[windows, horizon, n_targets, ...]`: a channel-independent window's channels, each
        its own sample, put back side by side (trailing axes, e.g. a distribution's
        parameters, kept)."""
        windows = len(self.index)
        per_window = outputs.reshape(windows, -1, *outputs.shape[1:])  # [W, channels, H, n, ...]
        return np.moveaxis(per_window, 1, 2).reshape(windows, outputs.shape[1], -1,
                                                     *outputs.shape[3:])

    def window_of(self, item: int) -> tuple[int, int, int]:
        """`(series, start, channel)` of sample `item`."""
        window, channel = divmod(item, self.channels)
        series, start = self.index[window]
        return int(series), int(start), channel
