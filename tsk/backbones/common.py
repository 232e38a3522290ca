"""Pieces several backbones share: the pre-norm residual stack and its recurrent `step`, the video
backbones' post-norm frame stack, and per-parameter optimizer hints."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_DROP_BITS = 15  # random bits per element: the drop probability is a multiple of 2**-15


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout, as `F.dropout`, with the random numbers drawn 15 bits per element.

    Why: on a CPU, torch's `bernoulli_` draws one 32-bit Mersenne-Twister number per element and
    took 16% of an S4D forecaster's training step. Here one 64-bit draw serves four elements
    (their 16-bit quarters, each masked to 15 bits): 2.5x faster at [64, 42, 64]. The drop
    probability is `p` rounded to a multiple of 2**-15 (0.1 -> 0.100006) and the kept values are
    scaled by 1 / (1 - that probability), so the output's expectation is exactly `x`. On CUDA
    (Philox, already fast) and in evaluation it is `F.dropout`.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}.")
    if not training or p in (0.0, 1.0) or x.is_cuda:
        return F.dropout(x, p, training)
    levels = 1 << _DROP_BITS
    dropped = round(p * levels)
    if dropped == 0:  # p below half a level: nothing to drop at this resolution
        return x
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_()
    bits = words.view(torch.int16)[:n].view(x.shape) & (levels - 1)  # uniform on [0, 2**15)
    keep = (bits >= dropped).to(x.dtype).mul_(levels / (levels - dropped))
    return x * keep


def causal_depthwise_conv(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """`conv(x)[..., :L]` for a depthwise `conv` (padded by `taps - 1` on both sides),
    `x[B, E, L]` -> `[B, E, L]`: Mamba's and Chimera's causal convolution over a sequence.

    Why: on a CPU, oneDNN's depthwise convolution took 2.0 ms forward + backward at
    [64, 128, 42] with 4 taps; one shifted multiply-add per tap takes 1.3 ms. On CUDA it is
    `conv` itself.
    """
    length = x.shape[-1]
    if x.is_cuda:
        return conv(x)[..., :length]
    taps = conv.weight.shape[-1]
    padded = F.pad(x, (taps - 1, 0))
    weight = conv.weight[:, 0, :, None]  # [E, taps, 1]
    out = weight[:, 0] * padded[..., :length]
    if conv.bias is not None:
        out = out + conv.bias[:, None]
    for tap in range(1, taps):
        out = torch.addcmul(out, weight[:, tap], padded[..., tap:tap + length])
    return out


class Dropout(nn.Module):
    """`nn.Dropout` through `dropout` (faster random numbers on CPU; see there)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}.")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def he_normal(*shape: int, fan_in: int, scale: float = 2.0, dtype: torch.dtype = torch.float32
              ) -> torch.Tensor:
    """JAX's `he_normal` (the ConvSSM authors' SSM kernels): a normal truncated at two standard
    deviations, scaled so the variance is `scale / fan_in` (1: `lecun_normal`, Flax's default)."""
    std = math.sqrt(scale / fan_in) / 0.87962566103423978  # undo the truncation's variance loss
    return nn.init.trunc_normal_(torch.empty(shape, dtype=dtype), std=std, a=-2 * std, b=2 * std)


def init_like_flax(module: nn.Module) -> nn.Module:
    """Re-initialize every convolution and linear layer of `module` as Flax does by default
    (`lecun_normal` weights, zero biases): networks ported from Flax code start as their authors'
    did. Torch's default (uniform, a third of the variance) shrinks activations layer after
    layer."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            fan_in = layer.weight[0].numel()
            with torch.no_grad():
                layer.weight.copy_(he_normal(*layer.weight.shape, fan_in=fan_in, scale=1.0))
                if layer.bias is not None:
                    layer.bias.zero_()
    return module


def optim_hint(param: nn.Parameter, **hint: float) -> nn.Parameter:
    """Attach optimizer settings (e.g. `lr`, `weight_decay`) that the training loop honours.

    SSM parameters (A, dt, ...) want no weight decay and often a smaller learning rate; the
    hint travels with the tensor so the backbone, not the trainer, decides.
    """
    param._optim = hint  # type: ignore[attr-defined]
    return param


class ResidualStack(nn.Module):
    """`x <- x + dropout(block(norm(x)))` for each block, then a final norm.

    Blocks map `[B, L, d_model] -> [B, L, d_model]`; for `step` they also offer
    `initial_state(batch)` and `step(x_t[B, d_model], state) -> (y_t, state)`. `norm` builds
    the normalisation layer from `d_model`: LayerNorm by default (S4, S4D), `nn.RMSNorm` for
    Mamba.
    """

    def __init__(
        self, blocks: Sequence[nn.Module], d_model: int, dropout: float = 0.0,
        norm: Callable[[int], nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.norms = nn.ModuleList(norm(d_model) for _ in blocks)
        self.dropout = Dropout(dropout)
        self.final_norm = norm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for norm, block in zip(self.norms, self.blocks, strict=True):
            x = x + self.dropout(block(norm(x)))
        return self.final_norm(x)

    def initial_state(self, batch: int) -> list[Any]:
        return [block.initial_state(batch) for block in self.blocks]

    def step(self, x: torch.Tensor, state: list[Any]) -> tuple[torch.Tensor, list[Any]]:
        new_state = []
        for norm, block, block_state in zip(self.norms, self.blocks, state, strict=True):
            y, block_state = block.step(norm(x), block_state)
            x = x + self.dropout(y)
            new_state.append(block_state)
        return self.final_norm(x), new_state


class StackedBackbone(nn.Module):
    """A backbone whose body is `self.stack`, a `ResidualStack`; subclasses build it in
    `__init__` (with `self.config`). `step()` is offered unless the config is bidirectional."""

    config: Any
    stack: ResidualStack

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x[B, L, d_model]` -> `[B, L, d_model]`."""
        return self.stack(x)

    @property
    def causal(self) -> bool:
        """Causal unless the config makes it bidirectional."""
        return not getattr(self.config, "bidirectional", False)

    def _check_causal(self) -> None:
        if not self.causal:
            name = type(self).__name__
            raise ValueError(
                f"step() runs a causal recurrence, but this {name} is bidirectional (it reads the "
                "future); build it with bidirectional=False to decode step by step."
            )

    def initial_state(self, batch: int) -> list[Any]:
        self._check_causal()
        return self.stack.initial_state(batch)

    def step(self, x: torch.Tensor, state: list[Any]) -> tuple[torch.Tensor, list[Any]]:
        """`x[B, d_model]`, one state per layer -> `(y[B, d_model], state)`."""
        self._check_causal()
        return self.stack.step(x, state)


def group_count(channels: int, num_groups: int | None = None) -> int:
    """The GroupNorm groups for `channels`: `num_groups`, or the largest divisor of the channels
    up to 32 (Flax's default of 32, where the channels allow it)."""
    groups = math.gcd(channels, 32) if num_groups is None else num_groups
    if groups < 1 or channels % groups:
        raise ValueError(f"num_groups={num_groups} must divide the {channels} channels.")
    return groups


def channel_layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the channels of `x[..., C, H, W]`, each pixel on its own (Flax's LayerNorm
    on channels-last frames, which the video backbones' authors use)."""
    return norm(x.movedim(-3, -1)).movedim(-1, -3)


class FrameStack(nn.Module):
    """The layer stack of the video backbones (ConvSSM's `SequenceLayer` with the settings of its
    Moving-MNIST configs): for each layer `x <- LayerNorm_C(x + dropout(layer(x)))`, a per-layer
    skip and a post-norm over channels.

    Layers map `[B, T, C, H, W] -> [B, T, C, H, W]` and step `x_t[B, C, H, W]` with
    `initial_state(batch, height, width)`.
    """

    def __init__(self, layers: Sequence[nn.Module], d_model: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model, eps=1e-6) for _ in layers)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != self.norms[0].normalized_shape[0]:
            raise ValueError(f"A frames backbone takes [B, T, d_model, H, W] with d_model="
                             f"{self.norms[0].normalized_shape[0]}, got shape {list(x.shape)}.")
        for norm, layer in zip(self.norms, self.layers, strict=True):
            x = channel_layer_norm(norm, x + self.dropout(layer(x)))
        return x

    def initial_state(self, batch: int, height: int, width: int) -> list[Any]:
        return [layer.initial_state(batch, height, width) for layer in self.layers]

    def step(self, x: torch.Tensor, state: list[Any]) -> tuple[torch.Tensor, list[Any]]:
        new_state = []
        for norm, layer, layer_state in zip(self.norms, self.layers, state, strict=True):
            y, layer_state = layer.step(x, layer_state)
            x = channel_layer_norm(norm, x + self.dropout(y))
            new_state.append(layer_state)
        return x, new_state
