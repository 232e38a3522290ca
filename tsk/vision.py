"""tsk's image classifiers in timm's model registry: `import tsk.vision`, then
`timm.create_model("tsk_s4d_tiny", num_classes=10)`, and timm's training tools (optimizers,
schedulers, data configs, checkpoints) take them like any timm model.

The network (`tsk.heads.vision.CrossScanNet`) reads the patch grid in VMamba's four scan orders,
each with its own tsk sequence backbone. Registered names, all at 224 x 224, patch 16 (a 14 x 14
grid), embed_dim 192, depth 6, mlp_ratio 2, a 3 x 3 depthwise convolution before the scans, the
four orders averaged; they differ only in the scanner:

| name | scanner | parameters (1000 classes) |
|---|---|---|
| `tsk_s4d_tiny` | S4D (d_state 64) | 4.20 M |
| `tsk_s4_tiny` | S4 (HiPPO-LegS, d_state 64) | 4.49 M |
| `tsk_mamba_tiny` | Mamba (d_state 16, expand 2) | 7.55 M |
| `tsk_lstm_tiny` | LSTM | 8.62 M |

No weights are published: `pretrained=True` raises. Any keyword of `CrossScanNet` overrides the
preset (`img_size`, `patch_size`, `in_chans`, `embed_dim`, `depth`, `scan_orders`, ...).
Importing this module needs timm (tsk's `vision` extra); `import tsk` does not import it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from torch import nn

from tsk._extras import require
from tsk.heads.vision import MERGES, SCAN_ORDERS, SCAN_PRESETS, CrossScanNet

timm = require("timm", "vision", feature="tsk's timm image models")
from timm.models import (  # noqa: E402  (after the check that timm is installed)
    PretrainedCfg,
    generate_default_cfgs,
    get_pretrained_cfg,
    is_model,
    model_entrypoint,
    register_model,
)

__all__ = ["MERGES", "MODELS", "SCAN_ORDERS", "SCAN_PRESETS", "CrossScanNet", "tsk_lstm_tiny",
           "tsk_mamba_tiny", "tsk_s4_tiny", "tsk_s4d_tiny"]

TINY = dict(img_size=224, patch_size=16, embed_dim=192, depth=6, mlp_ratio=2.0, scan_orders="cross",
            merge="mean", conv_size=3)
MODELS: dict[str, dict[str, Any]] = {
    "tsk_s4d_tiny": dict(backbone="s4d", **TINY),
    "tsk_s4_tiny": dict(backbone="s4", **TINY),
    "tsk_mamba_tiny": dict(backbone="mamba", **TINY),
    "tsk_lstm_tiny": dict(backbone="lstm", **TINY),
}
"""Each registered name and the `CrossScanNet` arguments it stands for."""

# what timm's registry records for each name (read by `register_model` from this module): no
# weights (no url, no hub id), so `timm.list_models(pretrained=True)` leaves them out
default_cfgs = generate_default_cfgs({
    name: dict(num_classes=1000, input_size=(3, 224, 224), interpolation="bicubic", crop_pct=0.875,
               mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), first_conv="patch_embed",
               classifier="head", license="apache-2.0", paper_ids="arXiv:2401.10166")
    for name in MODELS
})


def _register(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """`timm.models.register_model`, silent when the name is already ours (a module reload);
    timm's overwrite warning still speaks when another module took the name."""
    name = fn.__name__
    ours = is_model(name) and getattr(model_entrypoint(name), "__module__", None) == __name__
    with warnings.catch_warnings():
        if ours:
            warnings.filterwarnings("ignore", message=f"Overwriting {name} in registry")
        return register_model(fn)


def _as_dict(cfg: Any) -> dict[str, Any]:
    if cfg is None:
        return {}
    if isinstance(cfg, PretrainedCfg):
        return cfg.to_dict()
    if isinstance(cfg, dict):
        return dict(cfg)
    raise TypeError(f"pretrained_cfg must be a dict or timm PretrainedCfg for tsk models (they have "
                    f"no tagged weights to name), got {cfg!r}.")


def _create(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> CrossScanNet:
    """Build `variant` from its preset and the caller's keywords; set the data config timm reads.

    `timm.create_model` also passes `pretrained_cfg`, `pretrained_cfg_overlay` and `cache_dir`;
    the first two overlay the config derived from the model's actual input size and channels.
    """
    if pretrained:
        raise ValueError(f"{variant} has no pretrained weights (tsk publishes none): build it with "
                         f"pretrained=False and train it, or load your own weights with "
                         f"timm.create_model({variant!r}, checkpoint_path=...).")
    user_cfg = _as_dict(kwargs.pop("pretrained_cfg", None))
    overlay = _as_dict(kwargs.pop("pretrained_cfg_overlay", None))
    kwargs.pop("cache_dir", None)
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    model = CrossScanNet(**{**MODELS[variant], **kwargs})
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    registered = get_pretrained_cfg(variant)
    base = registered.to_dict() if registered is not None else {}
    model.pretrained_cfg = {**base, "architecture": variant, **model.pretrained_cfg, **user_cfg,
                            **overlay}
    return model


@_register
def tsk_s4d_tiny(pretrained: bool = False, **kwargs: Any) -> CrossScanNet:
    """Cross-scan with S4D scanners (4.20 M parameters at 1000 classes)."""
    return _create("tsk_s4d_tiny", pretrained, kwargs)


@_register
def tsk_s4_tiny(pretrained: bool = False, **kwargs: Any) -> CrossScanNet:
    """Cross-scan with S4 (HiPPO-LegS NPLR) scanners (4.49 M parameters at 1000 classes)."""
    return _create("tsk_s4_tiny", pretrained, kwargs)


@_register
def tsk_mamba_tiny(pretrained: bool = False, **kwargs: Any) -> CrossScanNet:
    """Cross-scan with Mamba scanners, VMamba's mechanism (7.55 M parameters at 1000 classes)."""
    return _create("tsk_mamba_tiny", pretrained, kwargs)


@_register
def tsk_lstm_tiny(pretrained: bool = False, **kwargs: Any) -> CrossScanNet:
    """Cross-scan with LSTM scanners, a non-SSM baseline (8.62 M parameters at 1000 classes)."""
    return _create("tsk_lstm_tiny", pretrained, kwargs)
