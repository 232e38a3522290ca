"""Every registered backbone keeps the contract: shapes, causality, `step()` == forward."""

from __future__ import annotations

import pytest
import torch

from tsk import backbones
from tsk.backbones import create

SMALL = {"d_model": 16, "n_layers": 2, "dropout": 0.0}
CAUSAL = ["lstm", "mamba", "pgn", "s4", "s4d", "spacetime"]


@pytest.mark.parametrize("name", backbones.available())
def test_shapes_and_gradients(name):
    torch.manual_seed(0)
    model = create(name, **SMALL)
    x = torch.randn(3, 37, 16, requires_grad=True)
    y = model(x)
    assert y.shape == (3, 37, 16) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", CAUSAL)
def test_causal(name):
    """Output at t must not change when inputs after t change."""
    torch.manual_seed(0)
    model = create(name, **SMALL).eval()
    x = torch.randn(2, 50, 16)
    t = 31
    perturbed = x.clone()
    perturbed[:, t + 1 :] += torch.randn_like(perturbed[:, t + 1 :])
    with torch.no_grad():
        a, b = model(x), model(perturbed)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=1e-5, atol=1e-5)
    assert (a[:, t + 1 :] - b[:, t + 1 :]).abs().max() > 1e-3


@pytest.mark.parametrize("name", CAUSAL)
def test_step_matches_forward(name):
    torch.manual_seed(0)
    model = create(name, **SMALL).eval()
    x = torch.randn(2, 40, 16)
    with torch.no_grad():
        full = model(x)
        state = model.initial_state(2)
        steps = []
        for t in range(x.shape[1]):
            y, state = model.step(x[:, t], state)
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
@pytest.mark.parametrize("init", ["lin", "inv"])
def test_s4d_variants_step_match(discretization, init):
    torch.manual_seed(0)
    model = create("s4d", **SMALL, discretization=discretization, init=init).eval()
    x = torch.randn(1, 25, 16)
    with torch.no_grad():
        full, state, outs = model(x), model.initial_state(1), []
        for t in range(25):
            y, state = model.step(x[:, t], state)
            outs.append(y)
    torch.testing.assert_close(torch.stack(outs, 1), full, rtol=1e-4, atol=1e-4)


def test_s4d_init_follows_the_paper():
    from tsk.backbones.s4 import s4d_init

    lin = s4d_init(8, "lin")
    torch.testing.assert_close(lin.real, torch.full((4,), -0.5))
    torch.testing.assert_close(lin.imag, torch.pi * torch.arange(4.0))
    inv = s4d_init(8, "inv")
    n = torch.arange(4.0)
    torch.testing.assert_close(inv.imag, 8 / torch.pi * (8 / (2 * n + 1) - 1))


def test_registry_errors():
    with pytest.raises(ValueError, match="Did you mean 's4d'"):
        create("s4dd")
    with pytest.raises(ValueError, match="Did you mean 'd_state'"):
        create("s4d", d_sate=3)
    assert {"lstm", "mamba", "s4", "s4d"} <= set(backbones.available())
