"""Helpers for backbone tests: a tiny Forecaster fit that records the training loss per epoch."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest

import tsk
from tests.conftest import TINY


class LossRecorder(L.Callback):
    """Keeps the epoch-mean training loss after each training epoch."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.losses.append(float(trainer.callback_metrics["train_loss"]))


@pytest.fixture
def fit_losses():
    """fit_losses(df, backbone, **params) -> (fitted Forecaster, training loss per epoch)."""

    def fit(df: Any, backbone: str, **params: Any) -> tuple[tsk.Forecaster, list[float]]:
        recorder = LossRecorder()
        settings = {**TINY, "max_epochs": 4, "learning_rate": 3e-3, **params}
        model = tsk.Forecaster(backbone, trainer_kwargs={"callbacks": [recorder]}, **settings)
        return model.fit(df), recorder.losses

    return fit
