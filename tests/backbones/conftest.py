"""Helpers for backbone tests: a tiny Forecaster fit that records the training loss per epoch."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch

import tsk
from tests.conftest import TINY


class LossRecorder(L.Callback):
    """Keeps the epoch-mean training loss after each training epoch."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.losses.append(float(trainer.callback_metrics["train_loss"]))


def run_steps(model: torch.nn.Module, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
    """`model.step` over `x[:, t]` for every t from `state` (default: `model.initial_state` of the
    batch): the outputs stacked along dim 1, as the full forward returns them, and the last state."""
    state = model.initial_state(x.shape[0]) if state is None else state
    outputs = []
    for t in range(x.shape[1]):
        y, state = model.step(x[:, t], state)
        outputs.append(y)
    return torch.stack(outputs, dim=1), state


@pytest.fixture
def fit_losses():
    """fit_losses(df, backbone, **params) -> (fitted Forecaster, training loss per epoch)."""

    def fit(df: Any, backbone: str, **params: Any) -> tuple[tsk.Forecaster, list[float]]:
        recorder = LossRecorder()
        settings = {**TINY, "max_epochs": 4, "learning_rate": 3e-3, **params}
        model = tsk.Forecaster(backbone, trainer_kwargs={"callbacks": [recorder]}, **settings)
        return model.fit(df), recorder.losses

    return fit
