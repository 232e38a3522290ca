"""Which network a task builds around which backbone.

A paper's own task network (SpaceTime's closed-loop forecaster, TPGN's period-grid forecaster)
registers itself here for its (task, backbone) where it is defined, as timm's models register
where they live; a backbone without one gets the task's generic head. Heads also say which
backbone kinds (`tsk.backbones.BACKBONE_KINDS`) they take, through `check_backbone_kind`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from torch import nn

from tsk import backbones


@dataclass(frozen=True)
class TaskNetSpec:
    """A paper's own network for one task and backbone.

    `build(backbone, **shape)` returns the network; for `"forecast"`: `build(backbone, lookback=,
    horizon=, n_in=, n_out=, n_calendar=, instance_norm=)` mapping `[B, lookback, n_in]` to
    `[B, horizon, n_out]` (the `ForecastNet` contract; the last `n_calendar` inputs are calendar
    features, which window normalization must leave alone).
    `time_features`: the paper feeds calendar features of the timestamps as inputs;
    `Forecaster(time_features=None)` follows it.
    """

    task: str
    backbone: str
    build: Callable[..., nn.Module]
    time_features: bool = False


_TASK_NETS: dict[tuple[str, str], TaskNetSpec] = {}


def register_task_net(task: str, backbone: str, *, time_features: bool = False
                      ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator on a network builder: the network `task` builds around `backbone`."""

    def decorate(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = (task, backbone)
        if key in _TASK_NETS and _TASK_NETS[key].build is not build:
            raise ValueError(f"A {task} network for backbone {backbone!r} is already registered.")
        _TASK_NETS[key] = TaskNetSpec(task, backbone, build, time_features)
        return build

    return decorate


def get_task_net(task: str, backbone: str) -> TaskNetSpec | None:
    """The paper's own network for `task` around `backbone`, or None (the generic head)."""
    return _TASK_NETS.get((task, backbone))


def check_backbone_kind(backbone: str, accepts: Iterable[str], head: str) -> backbones.BackboneSpec:
    """The spec of `backbone`; a ValueError when `head` does not take its kind."""
    spec = backbones.get_spec(backbone)
    accepts = tuple(accepts)
    if spec.kind not in accepts:
        takes = ", ".join(f"{kind} ({backbones.BACKBONE_KINDS[kind]})" for kind in accepts)
        fitting = [name for kind in accepts for name in backbones.available(kind)]
        raise ValueError(
            f"Backbone {backbone!r} is a {spec.kind} backbone "
            f"({backbones.BACKBONE_KINDS[spec.kind]}); the {head} takes {takes}. "
            f"Backbones it takes: {', '.join(sorted(fitting))}."
        )
    return spec
