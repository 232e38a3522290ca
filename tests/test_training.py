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


def test_a_fit_is_quiet_unless_verbose(capfd, recwarn):
    """No Lightning banner, tip or deprecation reaches a library user by default; `verbose=True`
    lets them through."""
    import logging

    import tsk
    from tests.estimators.test_classifier import waves

    X, y = waves(12)
    quiet = dict(d_model=8, n_layers=1, max_epochs=1, enable_progress_bar=False, random_state=0)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("lightning").addHandler(handler)
    try:
        tsk.Classifier("s4d", **quiet).fit(X, y)
        assert not records
        assert not [w for w in recwarn.list if "lightning" in str(w.filename).lower()]
        out = capfd.readouterr()
        assert "GPU available" not in out.out + out.err and "Tip" not in out.out + out.err
        tsk.Classifier("s4d", **quiet, verbose=True).fit(X, y)
        assert any("GPU available" in record.getMessage() for record in records)
    finally:
        logging.getLogger("lightning").removeHandler(handler)
