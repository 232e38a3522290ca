"""Every backbone of the generic forecasting head learns what a linear map cannot.

The fit starts from the closed-form ridge forecast (frozen) and a deep part at zero, so the loss
falls even when the deep part learns nothing useful only if the backbone works: on a noisy
logistic map (chaotic, so no linear map forecasts it) each backbone must beat that start on
held-out windows by a clear margin, and a backbone that outputs nothing must not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import tsk
from tsk import backbones
from tsk.heads.forecast import GRID_KINDS, SEQUENCE_KINDS
from tsk.heads.registry import get_task_net

GENERIC_HEAD = [name for name in backbones.available()
                if backbones.get_spec(name).kind in (*SEQUENCE_KINDS, *GRID_KINDS)
                and get_task_net("forecast", name) is None]
MARGIN = 0.1  # skill over the linear start, 1 - MSE / MSE_linear: measured 0.18 (lstm) to 0.58


def logistic_map(n: int, seed: int = 0) -> np.ndarray:
    """x' = 3.8 x (1 - x) plus a little noise: chaotic, nonlinear one step ahead."""
    rng = np.random.default_rng(seed)
    x = np.empty(n)
    x[0] = 0.4
    for t in range(1, n):
        x[t] = np.clip(3.8 * x[t - 1] * (1 - x[t - 1]) + 0.01 * rng.normal(), 0.001, 0.999)
    return x


@pytest.fixture(scope="module")
def chaos() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=2000, freq="h"),
                          "value": logistic_map(2000)})
    return frame.iloc[:1500], frame.iloc[1500 - 16:]  # the test windows' context overlaps


def skill(backbone: str, train: pd.DataFrame, test: pd.DataFrame) -> tuple[float, tsk.Forecaster]:
    model = tsk.Forecaster(backbone, horizon=2, lookback=16, d_model=16, n_layers=1, max_epochs=5,
                           batch_size=32, enable_progress_bar=False, random_state=0).fit(train)
    return model.evaluate(test, baselines=True)["skill_linear_start"], model


def test_the_generic_head_backbones_are_all_here():
    assert {"s4d", "s4", "mamba", "lstm", "pgn", "chimera"} <= set(GENERIC_HEAD)


@pytest.mark.parametrize("backbone", GENERIC_HEAD)
def test_each_backbone_beats_the_linear_start_where_no_linear_map_can_forecast(backbone, chaos):
    score, model = skill(backbone, *chaos)
    assert not model.fit_summary_.start_kept
    assert score > MARGIN, f"{backbone}: skill {score:.3f} over the linear start"


def test_a_backbone_that_outputs_nothing_does_not_pass(chaos, monkeypatch):
    """The test above can fail: with the backbone's features zeroed the deep part has nothing
    to learn from, and the model stays at the linear start."""
    original = backbones.create

    def silent(*args, **kwargs):
        backbone = original(*args, **kwargs)
        backbone.register_forward_hook(lambda module, inputs, output: torch.zeros_like(output))
        return backbone

    monkeypatch.setattr(backbones, "create", silent)
    score, _ = skill("s4d", *chaos)
    assert abs(score) < 0.02
