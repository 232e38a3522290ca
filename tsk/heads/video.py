"""Video prediction around a frames backbone, as the ConvSSM authors build it for Moving MNIST
(their `noVQ` models): a ResNet encoder takes each frame to a smaller latent grid, the backbone
runs over the latent frames, a mirrored ResNet decoder maps each output back to a frame (tanh,
frames scaled to [-1, 1]).

Training is teacher-forced: from frames `0..T-2` the network predicts frames `1..T-1` in one pass
(the backbone's parallel scan). The loss is the authors': the mean over frames of
`0.5 * sum((pred - true)^2) + 0.5 * sum(|pred - true|)`, sums over a frame's pixels and channels.
Generation conditions on the context frames step by step, then feeds each predicted frame back
(`VideoNet.generate`), one backbone `step` per frame.

The encoder's stages: a 3x3 convolution and a residual block at full size, then per halving an
average pool and a residual block, `log2(latent_stride)` halvings; the widths double per stage
and end at `d_model` (the authors' 64, 128, 256 for d_model 256 and stride 4, 64x64 -> 16x16).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from tsk.backbones.common import channel_layer_norm, group_count, init_like_flax

VIDEO_KINDS = ("frames",)  # the backbone kinds the video head takes


def stage_widths(d_model: int, latent_stride: int) -> list[int]:
    """The encoder's channels per stage, full size first, ending at `d_model`."""
    stages = latent_stride.bit_length() - 1
    if latent_stride < 1 or 1 << stages != latent_stride:
        raise ValueError(f"latent_stride must be a power of two (1, 2, 4, ...), got {latent_stride}.")
    if d_model % latent_stride:
        raise ValueError(f"d_model={d_model} must be a multiple of latent_stride={latent_stride}: "
                         "the encoder's widths halve per stage from d_model.")
    return [d_model >> (stages - i) for i in range(stages + 1)]


class ResNetBlock(nn.Module):
    """The authors' encoder/decoder block: `skip + 0.1 * conv(elu(GN(conv(elu(GN(x))))))`, the
    skip a bias-free 1x1 convolution where the width changes."""

    def __init__(self, channels_in: int, channels: int) -> None:
        super().__init__()
        self.skip = (nn.Conv2d(channels_in, channels, 1, bias=False)
                     if channels_in != channels else nn.Identity())
        self.norm1 = nn.GroupNorm(group_count(channels_in), channels_in, eps=1e-6)
        self.conv1 = nn.Conv2d(channels_in, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(group_count(channels), channels, eps=1e-6)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.elu(self.norm1(x)))
        h = self.conv2(F.elu(self.norm2(h)))
        return self.skip(x) + 0.1 * h


class FrameEncoder(nn.Module):
    """Frames `[N, C, H, W]` -> latent frames `[N, d_model, H / s, W / s]`."""

    def __init__(self, channels: int, widths: list[int]) -> None:
        super().__init__()
        self.stem = nn.Conv2d(channels, widths[0], 3, padding=1)
        self.blocks = nn.ModuleList(ResNetBlock(a, b) for a, b in zip([widths[0], *widths[:-1]],
                                                                      widths, strict=True))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.stem(frames)
        for i, block in enumerate(self.blocks):
            x = block(F.avg_pool2d(x, 2) if i else x)
        return x


class FrameDecoder(nn.Module):
    """Latent frames `[N, d_model, h, w]` -> frames `[N, C, h s, w s]` (before the tanh)."""

    def __init__(self, channels: int, widths: list[int]) -> None:
        super().__init__()
        self.stem = nn.Conv2d(widths[-1], widths[0], 3, padding=1)
        path = [*reversed(widths)]  # d_model ... widths[0], one upsampling after each but the last
        self.blocks = nn.ModuleList(ResNetBlock(a, b) for a, b in zip([widths[0], *path[:-1]], path,
                                                                      strict=True))
        self.norm = nn.LayerNorm(widths[0], eps=1e-6)
        self.out = nn.Conv2d(widths[0], channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < len(self.blocks) - 1:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.out(channel_layer_norm(self.norm, x))


class VideoNet(nn.Module):
    """Frames in [-1, 1] `[B, T, C, H, W]` -> the frame after each `[B, T, C, H, W]`, or with
    `n_frames` the `n_frames` frames after the last (closed loop; module docstring)."""

    def __init__(self, backbone: nn.Module, channels: int, latent_stride: int) -> None:
        super().__init__()
        d_model = backbone.config.d_model
        widths = stage_widths(d_model, latent_stride)
        self.backbone = backbone
        self.encoder = init_like_flax(FrameEncoder(channels, widths))
        self.decoder = init_like_flax(FrameDecoder(channels, widths))

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        """`[B, T, C, H, W]` -> latent `[B, T, d_model, h, w]`, every frame at once."""
        latent = self.encoder(frames.flatten(0, 1))
        return latent.reshape(*frames.shape[:2], *latent.shape[1:])

    def _decode(self, latent: torch.Tensor) -> torch.Tensor:
        """`[N, d_model, h, w]` -> frames `[N, C, H, W]` in [-1, 1]."""
        return torch.tanh(self.decoder(latent))

    def forward(self, inputs: torch.Tensor, n_frames: torch.Tensor | int | None = None
                ) -> torch.Tensor:
        if n_frames is not None:
            count = int(n_frames.flatten()[0]) if isinstance(n_frames, torch.Tensor) else n_frames
            return self.generate(inputs, count)
        features = self.backbone(self._encode(inputs))
        return self._decode(features.flatten(0, 1)).reshape(inputs.shape)

    def generate(self, context: torch.Tensor, n_frames: int) -> torch.Tensor:
        """The `n_frames` frames after `context[B, T, C, H, W]`: the backbone steps through the
        context, then each predicted frame is encoded and fed back."""
        latent = self._encode(context)
        state = self.backbone.initial_state(context.shape[0], *latent.shape[-2:])
        for t in range(context.shape[1]):
            features, state = self.backbone.step(latent[:, t], state)
        frames = []
        for i in range(n_frames):
            frame = self._decode(features)
            frames.append(frame)
            if i < n_frames - 1:
                features, state = self.backbone.step(self.encoder(frame), state)
        return torch.stack(frames, dim=1)

    def loss(self, output: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        error = output - batch["targets"].to(output.dtype)
        per_frame = 0.5 * error.square().flatten(2).sum(-1) + 0.5 * error.abs().flatten(2).sum(-1)
        return per_frame.mean()
