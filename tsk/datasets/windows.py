"""Stride-1 sliding windows over scaled series, as a map-style torch Dataset."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class WindowDataset(Dataset):
    """Every window of every series, stride 1, none dropped: items are batch mappings,
    `{"inputs": x[lookback, F], "targets": y[horizon, C']}`.

    `arrays` are `[T, C + E]` (targets first). With `channel_independent=True` each target
    channel is its own sample: `x` holds that channel and the `n_exog` exogenous columns, `y` that
    channel; otherwise `x` holds all columns and `y` all targets. `starts[i]` limits series `i`'s
    window starts to `[starts[i][0], starts[i][1])` (`None`: all of them). `horizon=0` gives
    inputs only (prediction).
    """

    def __init__(
        self,
        arrays: Sequence[np.ndarray],
        lookback: int,
        horizon: int,
        n_targets: int,
        channel_independent: bool,
        starts: Sequence[tuple[int, int] | None] | None = None,
    ) -> None:
        self.data = [torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32)) for a in arrays]
        self.lookback, self.horizon, self.n_targets = lookback, horizon, n_targets
        self.channel_independent = channel_independent
        span = lookback + horizon
        index = []
        for i, values in enumerate(self.data):
            lo, hi = (0, len(values) - span + 1) if starts is None or starts[i] is None else starts[i]
            hi = min(hi, len(values) - span + 1)
            if hi > lo:
                index.append(np.stack([np.full(hi - lo, i), np.arange(lo, hi)], axis=1))
        self.index = np.concatenate(index) if index else np.zeros((0, 2), dtype=np.int64)
        self.channels = n_targets if channel_independent else 1

    def __len__(self) -> int:
        return len(self.index) * self.channels

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        window, channel = divmod(item, self.channels)
        series, start = self.index[window]
        values = self.data[series]
        x = values[start : start + self.lookback]
        y = values[start + self.lookback : start + self.lookback + self.horizon, : self.n_targets]
        if self.channel_independent:
            x = torch.cat([x[:, channel : channel + 1], x[:, self.n_targets :]], dim=1)
            y = y[:, channel : channel + 1]
        return {"inputs": x, "targets": y}

    def window_of(self, item: int) -> tuple[int, int, int]:
        """`(series, start, channel)` of sample `item`."""
        window, channel = divmod(item, self.channels)
        series, start = self.index[window]
        return int(series), int(start), channel
