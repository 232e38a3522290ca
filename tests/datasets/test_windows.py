import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tsk.datasets.windows import WindowDataset


def _series(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, 4)).astype(np.float32) for n in (30, 17, 25)]


@pytest.mark.parametrize("channel_independent", [True, False])
def test_batches_are_the_windows_sliced_by_hand(channel_independent):
    """Every sample of a batched fetch is the literal slice of its series, whatever the mix of
    series, starts and channels in the batch (2 targets, 2 exogenous columns)."""
    arrays = _series()
    lookback, horizon, n_targets = 5, 3, 2
    starts = [(2, 20), None, (0, 4)]
    data = WindowDataset(arrays, lookback, horizon, n_targets, channel_independent, starts)
    expected_windows = (20 - 2) + (17 - 8 + 1) + 4
    assert len(data) == expected_windows * (n_targets if channel_independent else 1)
    items = np.random.default_rng(1).permutation(len(data))[:23]
    batch = data.__getitems__(list(items))
    for row, item in enumerate(items):
        series, start, channel = data.window_of(int(item))
        values = arrays[series]
        past = values[start : start + lookback]
        future = values[start + lookback : start + lookback + horizon, :n_targets]
        if channel_independent:
            past = np.concatenate([past[:, [channel]], past[:, n_targets:]], axis=1)
            future = future[:, [channel]]
        np.testing.assert_array_equal(batch["inputs"][row].numpy(), past)
        np.testing.assert_array_equal(batch["targets"][row].numpy(), future)
        single = data[int(item)]
        assert torch.equal(single["inputs"], batch["inputs"][row])


@pytest.mark.parametrize("channel_independent", [True, False])
def test_a_window_step_keeps_every_kth_start_of_each_series_with_all_its_channels(
        channel_independent):
    arrays = _series()
    full = WindowDataset(arrays, 5, 3, 2, channel_independent, [(2, 20), None, (0, 4)])
    every3 = WindowDataset(arrays, 5, 3, 2, channel_independent, [(2, 20), None, (0, 4)],
                           window_step=3)
    kept = [every3.window_of(i) for i in range(len(every3))]
    first, last = {0: 2, 1: 0, 2: 0}, {0: 19, 1: 9, 2: 3}
    expected = [w for w in (full.window_of(i) for i in range(len(full)))
                if (w[1] - first[w[0]]) % 3 == 0 or w[1] == last[w[0]]]
    assert kept == expected  # each series' starts lo, lo + 3, ... and its last, every channel
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="window_step must be a positive integer"):
            WindowDataset(arrays, 5, 3, 2, channel_independent, window_step=bad)


def test_loader_batches_and_prediction_windows():
    arrays = _series()
    data = WindowDataset(arrays, 4, 0, 2, True)  # horizon 0: inputs only
    loader = DataLoader(data, batch_size=7, collate_fn=WindowDataset.collate)
    batches = list(loader)
    assert sum(len(b["inputs"]) for b in batches) == len(data)
    assert batches[0]["inputs"].shape == (7, 4, 3) and batches[0]["targets"].shape == (7, 0, 1)
    first = batches[0]["inputs"][1]  # window 0, channel 1, then the exogenous columns
    np.testing.assert_array_equal(first.numpy(), arrays[0][:4][:, [1, 2, 3]])
