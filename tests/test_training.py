"""The fit loop's parts that resume an interrupted fit."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import RandomSampler

import tsk
from tsk import training
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
    # on each: Lightning stops "lightning.pytorch" propagating when it is imported before the
    # root logger has a handler, which depends on which tests ran first
    loggers = [logging.getLogger(name) for name in ("lightning", "lightning.pytorch")]
    for log in loggers:
        log.addHandler(handler)
    try:
        tsk.Classifier("s4d", **quiet).fit(X, y)
        assert not records
        assert not [w for w in recwarn.list if "lightning" in str(w.filename).lower()]
        out = capfd.readouterr()
        assert "GPU available" not in out.out + out.err and "Tip" not in out.out + out.err
        tsk.Classifier("s4d", **quiet, verbose=True).fit(X, y)
        assert any("GPU available" in record.getMessage() for record in records)
    finally:
        for log in loggers:
            log.removeHandler(handler)


def _loader(n: int, batch_size: int = 4):
    from torch.utils.data import DataLoader

    return DataLoader(range(n), batch_size=batch_size)


def test_validation_interval_under_a_step_budget():
    from tsk.training import validation_interval

    loader = _loader(400)  # 100 batches an epoch
    assert validation_interval(loader, None, None) is None  # once per epoch, Lightning's way
    assert validation_interval(loader, None, 7) == 7
    assert validation_interval(loader, 30, None) == 3  # a tenth of a budget within one epoch
    assert validation_interval(loader, 155, None) == 16  # across an epoch end
    assert validation_interval(loader, 5000, None) == 100  # long budgets: once per epoch
    long_epoch = torch.utils.data.DataLoader(range(1201))  # cut into three parts of <= 500
    assert validation_interval(long_epoch, None, None) == 401
    assert validation_interval(long_epoch, 300, None) == 30
    assert validation_interval(loader, 30, None, limit_train_batches=2) == 2
    assert validation_interval(loader, 5000, None, limit_train_batches=0.5) == 50
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            validation_interval(loader, bad, None)


class _Record(Callback):
    """The learning rate at every training step and the step of every validation."""

    def __init__(self) -> None:
        self.rates, self.validated = [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.validated.append(trainer.global_step)


def _small_forecaster(**options):
    import tsk

    options = {"ridge_init": False, **options}
    return tsk.Forecaster("s4d", horizon=4, lookback=12, d_model=8, n_layers=1, batch_size=4,
                          enable_progress_bar=False, random_state=0, **options)


@pytest.mark.parametrize("where", ["param", "trainer_kwargs"])
def test_a_step_budget_stops_the_fit_validates_it_and_anneals(where):
    """`max_steps` (or Lightning's own, in trainer_kwargs, which crashed early stopping before)
    ends the fit at that step, mid-epoch; validation ran every tenth of the budget, the last
    step included; the learning rate followed a cosine over the budget, not over the epochs."""
    from tests.conftest import make_long

    budget, record = 30, _Record()
    options = {"max_steps": budget} if where == "param" else {"trainer_kwargs": {"max_steps": budget}}
    options.setdefault("trainer_kwargs", {})["callbacks"] = [record]
    model = _small_forecaster(patience=100, learning_rate=1e-3, **options)
    model.fit(make_long(n_series=2, length=120))  # ~170 training batches an epoch
    steps = [h["step"] for h in model.fit_summary_.history]
    assert steps == record.validated == list(range(3, budget + 1, 3))
    assert {h["epoch"] for h in model.fit_summary_.history} == {0}
    assert len(record.rates) == budget
    expected = [0.5e-3 * (1 + math.cos(math.pi * t / budget)) for t in range(budget)]
    assert record.rates == pytest.approx(expected, rel=1e-6)


class _EpochLosses(Callback):
    """Each step's loss and batch size, and the `train_loss` callbacks see at each epoch's end."""

    def __init__(self) -> None:
        self.steps, self.epochs = [[]], []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.steps[-1].append((float(outputs["loss"]), len(batch["inputs"])))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epochs.append(float(trainer.callback_metrics["train_loss"]))
        self.steps.append([])


def test_train_loss_is_each_epochs_batch_weighted_mean():
    """The logged `train_loss` (updated every step, logged once an epoch) is the mean of that
    epoch's losses weighted by batch size, as a callback reads it at the epoch's end: with a
    short last batch, validation mid-epoch, and a step budget ending the last epoch early."""
    from tests.conftest import make_long

    record = _EpochLosses()
    model = _small_forecaster(max_epochs=4, max_steps=30, val_check_steps=7, patience=100,
                              learning_rate=1e-3, trainer_kwargs={"callbacks": [record]})
    model.fit(make_long(n_series=2, length=40))
    epochs = [steps for steps in record.steps if steps]
    assert len(epochs) == len(record.epochs) >= 2
    assert {size for steps in epochs for _, size in steps} == {4, 2}  # a short last batch
    assert [len(steps) for steps in epochs] == [9, 9, 9, 3]  # the budget ended the last early
    for logged, steps in zip(record.epochs, epochs, strict=True):
        expected = sum(loss * size for loss, size in steps) / sum(size for _, size in steps)
        assert logged == pytest.approx(expected, rel=1e-5)


def test_train_loss_keeps_a_nan_step():
    """A NaN loss makes the epoch's train_loss NaN (as Lightning's own mean did), not dropped
    from it, which torchmetrics' default NaN strategy would do with a warning."""
    module = training.TaskModule(torch.nn.Linear(1, 1), learning_rate=1e-3)
    module.train_loss_mean.update(torch.tensor(float("nan")), weight=4)
    module.train_loss_mean.update(torch.tensor(1.0), weight=4)
    assert math.isnan(float(module.train_loss_mean.compute()))


def test_patience_counts_validations_on_a_step_schedule():
    """With validation every 5 steps and patience 1, a fit whose validation loss cannot improve
    (a learning rate of 1e-12) stops at its second validation, 10 steps in, not after epochs."""
    from tests.conftest import make_long

    record = _Record()
    model = _small_forecaster(val_check_steps=5, patience=1, learning_rate=1e-12, max_epochs=3,
                              trainer_kwargs={"callbacks": [record]})
    model.fit(make_long(n_series=2, length=120))
    assert record.validated == [5, 10]
    assert [h["step"] for h in model.fit_summary_.history] == [5, 10]


def test_an_ssm_learning_rate_is_a_ceiling():
    """S4's SSM parameters step at min(ssm_lr, learning_rate), as its authors' example does: a
    fit with a smaller global step does not move them faster than the rest."""
    model = tsk.backbones.create("s4d", d_model=8, n_layers=1, d_state=8, ssm_lr=1e-3)
    for rate, expected in ((1e-2, 1e-3), (1e-4, 1e-4)):
        groups = training.TaskModule(model, learning_rate=rate).configure_optimizers()
        rates = sorted(g["lr"] for g in groups["optimizer"].param_groups)
        assert rates == sorted([rate, expected]), rate
        assert groups["optimizer"].defaults["fused"]  # one kernel over the groups, not a loop


class _WeightsAfterEachStep(Callback):
    def __init__(self) -> None:
        self.steps = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # on the CPU, where a fitted estimator's network ends (it trains on a GPU when one is there)
        self.steps.append({k: v.detach().cpu().clone() for k, v in pl_module.net.state_dict().items()})


def test_ema_decay_validates_keeps_and_returns_the_moving_average():
    """With `ema_decay`, the weights validated, kept and returned are the moving average of
    every step's weights (the first step's copied, then `decay * average + (1 - decay) *
    weights`), computed here by hand; the kept validation loss is that of the returned
    weights."""
    from tests.conftest import make_long
    from tsk.inference import mean_loss

    data, record = make_long(n_series=2, length=120), _WeightsAfterEachStep()
    model = _small_forecaster(max_steps=40, val_check_steps=40, patience=100, ema_decay=0.9,
                              learning_rate=1e-2, trainer_kwargs={"callbacks": [record]}).fit(data)
    assert len(record.steps) == 40
    average = dict(record.steps[0])
    for weights in record.steps[1:]:
        average = {k: 0.9 * a + 0.1 * weights[k] if a.is_floating_point() else weights[k]
                   for k, a in average.items()}
    returned = model.net_.state_dict()
    for name, value in average.items():
        torch.testing.assert_close(returned[name], value, rtol=1e-4, atol=1e-6)
    assert any(not torch.allclose(returned[k], w, atol=1e-4) for k, w in record.steps[-1].items())
    prepared = model._prepare_fit(data)
    loader = torch.utils.data.DataLoader(prepared.validation, batch_size=64,
                                         collate_fn=prepared.collate)
    assert mean_loss(model.net_, loader) == pytest.approx(model.fit_summary_.best_val_loss, rel=1e-4)


def test_auto_ema_averages_from_the_ridge_start_over_the_steps_between_validations(monkeypatch):
    """`ema_decay="auto"` (the default): from the closed-form start the decay is 1 - 1/n for n
    steps between validations (every `val_check_steps`, else an epoch's steps); from random
    weights no average."""
    import math

    from tests.conftest import make_long
    from tsk import training

    decays = []

    def recording(decay: float):
        decays.append(decay)
        return get_ema_multi_avg_fn(decay)

    get_ema_multi_avg_fn = training.get_ema_multi_avg_fn
    monkeypatch.setattr(training, "get_ema_multi_avg_fn", recording)
    data = make_long(n_series=2, length=120)
    _small_forecaster(ridge_init=None, max_steps=20, val_check_steps=10).fit(data)
    assert decays == [pytest.approx(0.9)]
    model = _small_forecaster(ridge_init=None, max_epochs=1).fit(data)
    steps = math.ceil(len(model._prepare_fit(data).train) / model.batch_size)
    assert steps > 10 and decays[1:] == [pytest.approx(1 - 1 / steps)]
    _small_forecaster(max_steps=20, val_check_steps=10).fit(data)  # random weights
    assert len(decays) == 2


@pytest.mark.parametrize("decay", [0, 1, 1.5, -0.1, True, "0.99", "interval"])
def test_ema_decay_must_be_a_number_in_the_open_unit_interval(decay):
    with pytest.raises(ValueError, match="ema_decay must be a number in"):
        _small_forecaster(ema_decay=decay).fit(None)
