"""Every registered backbone keeps the contract of its kind: shapes, gradients, causality where it
claims it, `step()` == forward."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from tests.backbones.conftest import run_steps
from tsk import backbones
from tsk.backbones import BACKBONE_KINDS, create, is_causal, registry

SMALL = {"d_model": 16, "n_layers": 2, "dropout": 0.0}
CAUSAL = ["lstm", "mamba", "pgn", "s4", "s4d", "spacetime"]
# an example input of each kind, for d_model 16: sequence [B, L, d], grid [B, V, T, d],
# frames [B, T, d, H, W] (odd sizes, so a mixed-up axis shows)
EXAMPLES = {"sequence": (3, 37, 16), "grid": (2, 5, 37, 16), "frames": (2, 7, 16, 9, 11)}


def test_every_kind_has_an_example_input():
    assert set(EXAMPLES) == set(BACKBONE_KINDS)


@pytest.mark.parametrize("name", backbones.available())
def test_shapes_and_gradients(name):
    torch.manual_seed(0)
    model = create(name, **SMALL)
    x = torch.randn(*EXAMPLES[backbones.get_spec(name).kind], requires_grad=True)
    y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_the_backbones_that_say_they_are_causal():
    """Heads batch sequences of different lengths on this claim: it must be right (the test below
    checks each claim) and present where it holds."""
    claims = sorted(name for name in backbones.available("sequence")
                    if is_causal(create(name, **SMALL)))
    assert claims == CAUSAL
    assert not is_causal(create("s4", **SMALL, bidirectional=True))
    assert not is_causal(create("mamba", **SMALL, bidirectional=True))


@dataclasses.dataclass
class _GridConfig:
    d_model: int = 16
    n_layers: int = 1
    dropout: float = 0.0


class _PerCellGrid(nn.Module):
    """A stand-in grid backbone: one linear map per cell."""

    def __init__(self, config: _GridConfig) -> None:
        super().__init__()
        self.config, self.mix = config, nn.Linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(x)


def test_kinds_are_registered_and_listed(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_backbone("toy_grid", _GridConfig, "per-cell linear", kind="grid")(_PerCellGrid)
    assert backbones.available("grid") == ["chimera", "toy_grid"]
    assert "toy_grid" not in backbones.available("sequence")
    assert "toy_grid" in backbones.available()
    with pytest.raises(ValueError, match="Did you mean 'grid'"):
        registry.register_backbone("bad", _GridConfig, "x", kind="gird")
    with pytest.raises(ValueError, match="Unknown backbone kind"):
        backbones.available("video")


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
        full, (steps, _) = model(x), run_steps(model, x)
    torch.testing.assert_close(steps, full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
@pytest.mark.parametrize("init", ["lin", "inv"])
def test_s4d_variants_step_match(discretization, init):
    torch.manual_seed(0)
    model = create("s4d", **SMALL, discretization=discretization, init=init).eval()
    x = torch.randn(1, 25, 16)
    with torch.no_grad():
        full, (steps, _) = model(x), run_steps(model, x)
    torch.testing.assert_close(steps, full, rtol=1e-4, atol=1e-4)


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


def test_the_catalogue_lists_what_the_registry_holds():
    """`tsk backbones` reads the family modules' source (no torch import); it must say what the
    registry itself holds."""
    from tsk import backbones
    from tsk.backbones.catalogue import catalogue

    listed = catalogue()
    assert list(listed) == backbones.available()
    for name, (summary, paper) in listed.items():
        spec = backbones.get_spec(name)
        assert (spec.summary, spec.paper) == (summary, paper)
