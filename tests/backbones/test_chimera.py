"""Chimera: a grid backbone over variates x time, causal along time, `step()` == forward."""

from __future__ import annotations

import pytest
import torch

from tsk import backbones
from tsk.backbones import create, is_causal
from tsk.backbones.chimera import Selective2D

SMALL = {"d_model": 16, "n_layers": 2, "d_state": 4}


def _model(**options):
    torch.manual_seed(0)
    return create("chimera", **{**SMALL, **options}).double().eval()


def test_registered_as_the_grid_backbone():
    spec = backbones.get_spec("chimera")
    assert spec.kind == "grid" and "chimera" in backbones.available("grid")
    assert "chimera" not in backbones.available("sequence")
    assert is_causal(_model())  # along time: heads batch right-padded series on it


def test_a_sequence_is_not_a_grid():
    with pytest.raises(ValueError, match=r"grid backbone: it takes \[B, V, T, d_model\]"):
        _model()(torch.randn(2, 9, 16, dtype=torch.double))


@pytest.mark.parametrize("bidirectional", [True, False])
def test_causal_along_time(bidirectional):
    model = _model(bidirectional=bidirectional)
    x = torch.randn(2, 4, 23, 16, dtype=torch.double)
    bumped = x.clone()
    bumped[:, :, 15:] += torch.randn_like(bumped[:, :, 15:])
    with torch.no_grad():
        a, b = model(x), model(bumped)
    torch.testing.assert_close(a[:, :, :15], b[:, :, :15])
    assert (a[:, :, 15:] - b[:, :, 15:]).abs().max() > 1e-3


@pytest.mark.parametrize("bidirectional", [True, False])
def test_variates_are_read_both_ways_only_when_bidirectional(bidirectional):
    """A change to the last variate reaches the first only through the reversed heads."""
    model = _model(bidirectional=bidirectional)
    x = torch.randn(1, 5, 11, 16, dtype=torch.double)
    bumped = x.clone()
    bumped[:, -1] += 1.0
    with torch.no_grad():
        change = (model(bumped) - model(x)).abs().amax((0, 2, 3))  # per variate
    assert (change[0] > 1e-6) == bidirectional
    assert change[-1] > 1e-6


@pytest.mark.parametrize("bidirectional", [True, False])
def test_step_matches_forward(bidirectional):
    model = _model(bidirectional=bidirectional)
    x = torch.randn(2, 3, 17, 16, dtype=torch.double)
    with torch.no_grad():
        full = model(x)
        state, steps = model.initial_state(2), []
        for t in range(x.shape[2]):
            y, state = model.step(x[:, :, t], state)
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps, dim=2), full)


def test_the_fast_scan_gives_the_reference_model():
    model = _model()
    x = torch.randn(2, 3, 12, 16, dtype=torch.double, requires_grad=True)
    fast = model(x)
    (grad_fast,) = torch.autograd.grad(fast.square().sum(), x)
    for head in model.modules():
        if isinstance(head, Selective2D):
            head.scan_backend = "reference"
    slow = model(x)
    (grad_slow,) = torch.autograd.grad(slow.square().sum(), x)
    torch.testing.assert_close(fast, slow)
    torch.testing.assert_close(grad_fast, grad_slow)


def test_transitions_decay_and_couplings_stay_below_them():
    """What `scan2d` needs for a stable grid at any step: A1, A4 < 0, |A2| < |A1|,
    |A3| < |A4|, whatever the raw parameters become."""
    head = next(m for m in _model().modules() if isinstance(m, Selective2D))
    with torch.no_grad():
        head.A2_raw.fill_(50.0)
        head.A3_raw.fill_(-50.0)
    A1, A2, A3, A4 = head.transitions()  # noqa: N806
    assert (A1 < 0).all() and (A4 < 0).all()
    assert (A2.abs() <= A1.abs()).all() and (A3.abs() <= A4.abs()).all()


def test_trend_and_seasonal_heads_start_at_their_own_time_steps():
    """The two heads differ in their time discretization: small steps (trend) and large
    steps (seasonal) when the input term is zero."""
    mixer = _model().stack.blocks[0]
    trend = torch.nn.functional.softplus(mixer.heads["trend_forward"].dt_proj.bias)
    seasonal = torch.nn.functional.softplus(mixer.heads["seasonal_forward"].dt_proj.bias)
    assert trend.max() <= 0.1 + 1e-6 and seasonal.min() >= 0.1 - 1e-6
    assert set(mixer.heads) == {"trend_forward", "trend_backward", "seasonal_forward",
                                "seasonal_backward"}
    assert set(_model(bidirectional=False).stack.blocks[0].heads) == {"trend_forward",
                                                                       "seasonal_forward"}
