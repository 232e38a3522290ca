"""The backbone registry: `@register_backbone` on a module class, `create(name, **config)` to build.

A backbone is an `nn.Module` built from a config dataclass; `forward(x[B, L, d_model])` returns
`[B, L, d_model]`. Recurrent families also offer `initial_state(batch)` and
`step(x_t[B, d_model], state) -> (y_t[B, d_model], state)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from tsk._names import unknown_name_error


@dataclass(frozen=True)
class BackboneSpec:
    """What the registry knows of one backbone."""

    name: str
    model_cls: type[nn.Module]
    config_cls: type
    summary: str
    paper: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    # the paper's own forecasting network around this backbone (e.g. SpaceTime's closed-loop
    # decoder), used by `Forecaster` instead of the generic flatten head; see `register_backbone`
    forecast_net: Callable[..., nn.Module] | None = None
    # whether the paper's network reads calendar features of the timestamps (TPGN's does);
    # `Forecaster(time_features=None)` follows it
    time_features: bool = False
    # a config field that bounds how many past tokens the backbone reads (PGN's `history`):
    # `Forecaster` sizes it to the tokens it feeds, unless the user set it, so no weights idle
    length_option: str | None = None

    @property
    def config_fields(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.config_cls)]

    @property
    def search_space(self) -> dict[str, Any]:
        """The default `tsk.tune` search space the config declares (`search_space()` classmethod),
        as a fresh dict of name -> Optuna distribution to extend or override; `{}` if none."""
        declare = getattr(self.config_cls, "search_space", None)
        return dict(declare()) if declare is not None else {}


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(
    name: str, config_cls: type, summary: str, paper: str = "", tags: tuple[str, ...] = (),
    forecast_net: Callable[..., nn.Module] | None = None, time_features: bool = False,
    length_option: str | None = None,
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that registers a backbone under `name` with its config dataclass.

    `forecast_net`, when the paper forecasts with its own output layout, builds that network:
    `forecast_net(backbone, lookback=, horizon=, n_in=, n_out=, n_calendar=, instance_norm=)`
    -> a module mapping `[B, lookback, n_in]` to `[B, horizon, n_out]` (the `ForecastNet`
    contract; the last `n_calendar` inputs are calendar features, which window normalization
    must leave alone; `instance_norm` switches window normalization, RevIN).
    `time_features`: the paper feeds calendar features of the timestamps as inputs.
    `length_option`: the config field the estimator sets to the past its tokens have (the
    token count minus one) when the user leaves it unset.
    """
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config_cls for backbone {name!r} must be a dataclass")

    def decorate(model_cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].model_cls is not model_cls:
            raise ValueError(f"A backbone named {name!r} is already registered")
        _REGISTRY[name] = BackboneSpec(
            name, model_cls, config_cls, summary, paper, tuple(tags), forecast_net, time_features,
            length_option,
        )
        return model_cls

    return decorate


def get_spec(name: str) -> BackboneSpec:
    """The spec registered under `name`; an unknown name raises with the closest known one."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name_error("backbone", name, _REGISTRY) from None


def available() -> list[str]:
    """Names of all registered backbones, sorted."""
    return sorted(_REGISTRY)


def make_config(name: str, **config: Any) -> Any:
    """Build the config dataclass of backbone `name`; unknown keys raise with a suggestion."""
    spec = get_spec(name)
    fields = set(spec.config_fields)
    for key in config:
        if key not in fields:
            raise unknown_name_error(f"option of backbone {name!r}", key, fields)
    return spec.config_cls(**config)


def create(name: str, **config: Any) -> nn.Module:
    """Build backbone `name` from keyword config, e.g. `create("s4d", d_model=64, n_layers=2)`."""
    return get_spec(name).model_cls(make_config(name, **config))
