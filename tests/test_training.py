"""The fit loop's parts that resume an interrupted fit."""

from __future__ import annotations

import torch
from torch.utils.data import RandomSampler

from tsk.training import ReplayableSampler


def test_replayable_sampler_shuffles_as_random_sampler_and_replays_an_epoch():
    data = range(11)
    plain = RandomSampler(data, generator=torch.Generator().manual_seed(3))
    sampler = ReplayableSampler(data, torch.Generator().manual_seed(3))
    epochs = [list(sampler) for _ in range(3)]
    assert epochs == [list(plain) for _ in range(3)]  # the same orders: old fits reproduce
    assert all(sorted(epoch) == list(data) for epoch in epochs) and epochs[0] != epochs[1]
    second = ReplayableSampler(data, torch.Generator().manual_seed(3))
    started = iter(second)
    next(started)
    state = second.epoch_state  # kept before this epoch's permutation
    list(sampler)  # the generator moves on
    sampler.replay(state, skip=4)
    assert list(sampler) == epochs[0][4:]
    assert list(sampler) == epochs[1]  # and the epochs after it follow as before
    unseeded = ReplayableSampler(data)
    assert sorted(unseeded) == list(data)
