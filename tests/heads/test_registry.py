"""The heads' registry: the papers' own task networks per (task, backbone), and heads refusing
backbone kinds they do not take with an error that says which kinds they do."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import tsk
from tests.conftest import make_long
from tsk.backbones import registry
from tsk.heads import check_backbone_kind, get_task_net, register_task_net
from tsk.heads import registry as heads_registry


def test_the_papers_forecasting_networks_are_registered_with_the_heads():
    assert get_task_net("forecast", "spacetime").build.__module__ == "tsk.heads.spacetime"
    tpgn = get_task_net("forecast", "tpgn")
    assert tpgn.build.__module__ == "tsk.heads.tpgn" and tpgn.time_features
    assert get_task_net("forecast", "s4d") is None  # the generic head
    assert get_task_net("classify", "spacetime") is None  # its encoder, through the generic head


def test_a_task_network_registers_once(monkeypatch):
    monkeypatch.setattr(heads_registry, "_TASK_NETS", dict(heads_registry._TASK_NETS))

    @register_task_net("forecast", "s4d")
    def build(backbone: nn.Module, **shape: int) -> nn.Module:
        return backbone

    assert get_task_net("forecast", "s4d").build is build
    with pytest.raises(ValueError, match="already registered"):
        register_task_net("forecast", "s4d")(lambda backbone, **shape: backbone)


@dataclasses.dataclass
class _GridConfig:
    d_model: int = 8
    n_layers: int = 1
    dropout: float = 0.0


class _Grid(nn.Module):
    def __init__(self, config: _GridConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_heads_refuse_backbone_kinds_they_do_not_take(monkeypatch):
    # a copy of the whole registry (every family imported first), so that nothing registered
    # while the copy stands in is lost when it is undone
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._registered()))
    registry.register_backbone("toy_grid", _GridConfig, "identity on a grid", kind="grid")(_Grid)
    with pytest.raises(ValueError, match=r"'toy_grid' is a grid backbone .*takes sequence "
                                         r"\(\[B, L, d_model\].*Backbones it takes: .*s4d"):
        check_backbone_kind("toy_grid", ("sequence",), "classification head")
    assert check_backbone_kind("toy_grid", ("sequence", "grid"), "head").kind == "grid"
    # the estimators' heads take sequence and grid backbones (Chimera), not video frames
    registry.register_backbone("toy_frames", _GridConfig, "identity on frames", kind="frames")(_Grid)
    X, y = np.random.default_rng(0).normal(size=(8, 1, 12)), np.arange(8) % 2
    with pytest.raises(ValueError, match=r"'toy_frames' is a frames backbone .*the classification "
                                         r"head takes sequence .*grid"):
        tsk.Classifier("toy_frames", max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="the forecasting head takes sequence .*grid"):
        tsk.Forecaster("toy_frames", horizon=4, lookback=16, max_epochs=1).fit(make_long())
