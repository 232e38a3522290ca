"""The backbone registry: `@register_backbone` on a module class, `create(name, **config)` to build.

A backbone is an `nn.Module` built from a config dataclass. Its `kind` says what it maps:

- `"sequence"`: `x[B, L, d_model] -> [B, L, d_model]` (S4, S4D, Mamba, LSTM, PGN, ...);
- `"grid"`: `x[B, V, T, d_model] -> [B, V, T, d_model]`, variates x time (a 2-D SSM);
- `"frames"`: `x[B, T, d_model, H, W] -> [B, T, d_model, H, W]`, a video's frames.

Recurrent families also offer `initial_state(batch)` and `step(x_t, state) -> (y_t, state)`.
A backbone whose output at step t reads no input after t sets `causal = True` (`is_causal`); a
task head relies on it to run right-padded sequences of different lengths in one batch.
A backbone that must know the longest input it will see declares a `max_length` config field;
estimators set it to the longest input they feed unless the user did.
Backbones know nothing of tasks: a paper's own task network registers with `tsk.heads`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any

from tsk._names import unknown_name_error
from tsk.backbones.catalogue import FAMILIES

if TYPE_CHECKING:  # the registry itself needs no torch: the families bring it when loaded
    from torch import nn

BACKBONE_KINDS = {
    "sequence": "[B, L, d_model] -> [B, L, d_model]",
    "grid": "[B, V, T, d_model] -> [B, V, T, d_model] (variates x time)",
    "frames": "[B, T, d_model, H, W] -> [B, T, d_model, H, W] (video frames)",
}


@dataclass(frozen=True)
class BackboneSpec:
    """What the registry knows of one backbone."""

    name: str
    model_cls: type[nn.Module]
    config_cls: type
    summary: str
    paper: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    # what it maps: a key of BACKBONE_KINDS
    kind: str = "sequence"
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


def _registered() -> dict[str, BackboneSpec]:
    """The registry, with every family module imported (each registers its backbones on import;
    the first lookup loads them, so importing `tsk.backbones` alone costs no torch)."""
    for family in FAMILIES:
        import_module(f"tsk.backbones.{family}")
    return _REGISTRY


def register_backbone(
    name: str, config_cls: type, summary: str, paper: str = "", tags: tuple[str, ...] = (),
    kind: str = "sequence", length_option: str | None = None,
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that registers a backbone under `name` with its config dataclass.

    `kind`: what the backbone maps (`BACKBONE_KINDS`); task heads say which kinds they take.
    `length_option`: the config field the estimator sets to the past its tokens have (the
    token count minus one) when the user leaves it unset.
    """
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config_cls for backbone {name!r} must be a dataclass")
    if kind not in BACKBONE_KINDS:
        raise unknown_name_error("backbone kind", kind, BACKBONE_KINDS)

    def decorate(model_cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].model_cls is not model_cls:
            raise ValueError(f"A backbone named {name!r} is already registered")
        _REGISTRY[name] = BackboneSpec(name, model_cls, config_cls, summary, paper, tuple(tags),
                                       kind, length_option)
        return model_cls

    return decorate


def get_spec(name: str) -> BackboneSpec:
    """The spec registered under `name`; an unknown name raises with the closest known one."""
    registry = _registered()
    try:
        return registry[name]
    except KeyError:
        raise unknown_name_error("backbone", name, registry) from None


def available(kind: str | None = None) -> list[str]:
    """Names of the registered backbones (of one `kind`, if given), sorted."""
    if kind is not None and kind not in BACKBONE_KINDS:
        raise unknown_name_error("backbone kind", kind, BACKBONE_KINDS)
    return sorted(name for name, spec in _registered().items() if kind in (None, spec.kind))


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


def is_causal(backbone: nn.Module) -> bool:
    """Whether `backbone`'s output at step t depends on no input after t (its `causal`
    attribute; False when it does not say)."""
    return bool(getattr(backbone, "causal", False))
