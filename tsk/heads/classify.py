"""The classification network: normalize the inputs, embed each step, run a backbone, pool over
the valid steps, classify.

Batches carry right-padded sequences and their `lengths`; nothing a sample's output depends on
reads the padding: normalization and pooling are masked, a causal backbone never looks ahead (its
outputs at valid steps ignore what follows them), a backbone that does look ahead runs each length
on its own, and the backward direction (`bidirectional`) reads each sequence reversed within its
own length. So a series' prediction does not change with its batch-mates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tsk.backbones import is_causal
from tsk.backbones.common import Dropout
from tsk.heads.channels import ChannelAffine

CLASSIFY_KINDS = ("sequence", "grid")  # the backbone kinds the classification head takes
POOLINGS = ("mean", "last", "attention")
NORMALIZATIONS = ("series", "global", "none")


def valid_mask(lengths: torch.Tensor | None, batch: int, length: int, device: torch.device
               ) -> torch.Tensor:
    """`[B, L]` True at each sequence's valid steps (all of them when `lengths` is None)."""
    if lengths is None:
        return torch.ones(batch, length, dtype=torch.bool, device=device)
    return torch.arange(length, device=device)[None, :] < lengths[:, None]


def normalize_series(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """z-normalize each series and channel over its valid steps (the UCR archive's convention;
    a constant channel becomes zeros); padded steps stay zero. `x[B, L, C]`, `mask[B, L]`."""
    weight = mask[..., None].to(x.dtype)
    count = weight.sum(1, keepdim=True).clamp_min(1.0)
    mean = (x * weight).sum(1, keepdim=True) / count
    centred = (x - mean) * weight
    std = (centred.square().sum(1, keepdim=True) / count).sqrt()
    return centred / torch.where(std > eps, std, torch.ones_like(std))


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Each sequence of `x[B, L, D]` reversed in time within its own length; padding stays put."""
    if lengths is None:
        return x.flip(1)
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    source = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)  # [B, L]
    return x.gather(1, source[..., None].expand_as(x))


def run_masked(backbone: nn.Module, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """`backbone(x)` for right-padded sequences: in one pass when the backbone is causal (valid
    steps never see the padding after them) or no sequence is padded, else one pass per length."""
    length = x.shape[1]
    if lengths is None or is_causal(backbone) or bool((lengths == length).all()):
        return backbone(x)
    out = None
    for size in lengths.unique().tolist():
        rows = (lengths == size).nonzero().squeeze(1)
        part = backbone(x[rows, :size])  # [b, size, D]
        part = F.pad(part, (0, 0, 0, length - size))
        out = (part.new_zeros(x.shape[0], length, part.shape[-1]) if out is None else out)
        out = out.index_copy(0, rows, part)
    return out


def patch_count(length: torch.Tensor | int, patch_len: int, stride: int) -> torch.Tensor | int:
    """Patches of `patch_len` steps every `stride` steps that cover `length` steps (the last one
    runs past the end into zeros when they do not tile it exactly)."""
    if isinstance(length, torch.Tensor):
        return (length - patch_len).clamp_min(0).add(stride - 1).div(stride, rounding_mode="floor") + 1
    return -(-max(length - patch_len, 0) // stride) + 1


class PatchTokens(nn.Module):
    """Steps -> patch tokens: each token a linear map of `patch_len` consecutive steps (all
    channels), one every `stride` steps, as PatchTST tokenizes; a series of L steps gives
    `patch_count(L)` tokens. Steps past a series' end are zeros (the batch's padding, and more
    where the patches overhang), so its tokens do not depend on its batch-mates."""

    def __init__(self, n_in: int, d_model: int, patch_len: int, stride: int) -> None:
        super().__init__()
        if patch_len < 1 or not 1 <= stride <= patch_len:
            raise ValueError(f"need patch_len >= 1 and 1 <= stride <= patch_len, got "
                             f"patch_len={patch_len}, stride={stride}.")
        self.patch_len, self.stride = patch_len, stride
        self.project = nn.Linear(n_in * patch_len, d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`x[B, L, n_in]` (zero past each series' end) -> tokens `[B, T, d_model]`, their
        counts `[B]` (None when `lengths` is)."""
        count = patch_count(x.shape[1], self.patch_len, self.stride)
        cover = (count - 1) * self.stride + self.patch_len
        patches = F.pad(x, (0, 0, 0, cover - x.shape[1])).unfold(1, self.patch_len, self.stride)
        tokens = self.project(patches.flatten(2))  # [B, T, n_in * patch_len] -> [B, T, d]
        if lengths is None:
            return tokens, None
        return tokens, patch_count(lengths, self.patch_len, self.stride)


class Pooling(nn.Module):
    """`[B, L, D]` features and the valid-step mask -> `[B, D]`: their mean, the last valid
    step's, or an attention-weighted sum (one learned score per step, softmax over valid steps)."""

    def __init__(self, kind: str, width: int) -> None:
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {kind!r}.")
        self.kind = kind
        self.score = nn.Linear(width, 1) if kind == "attention" else None

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "last":
            last = mask.sum(1) - 1  # [B]
            return features[torch.arange(len(features), device=features.device), last]
        if self.kind == "mean":
            weight = mask[..., None].to(features.dtype)
            return (features * weight).sum(1) / weight.sum(1).clamp_min(1.0)
        scores = self.score(features).squeeze(-1).masked_fill(~mask, float("-inf"))  # [B, L]
        return torch.einsum("bl,bld->bd", scores.softmax(1), features)


class ClassifyNet(nn.Module):
    """Series `[B, L, n_in]` (right-padded, with `lengths[B]`) -> class logits `[B, n_classes]`.

    `normalize`: "series" z-normalizes each series and channel over its own steps (the UCR
    archive's convention), "global" standardizes each channel with `input_mean`/`input_std`
    (buffers: the training data's), "none" leaves the inputs as they are.

    `backward` (a second backbone of the same kind) reads each sequence reversed within its
    length; the two directions are pooled apart and concatenated. The loss is cross-entropy,
    weighted per class by `class_weights` when given; `metrics` reports the batch accuracy.
    The backbone reads one token per step, or per patch (`patch_len` steps every `patch_len // 2`,
    `PatchTokens`), which cuts its sequence length about `patch_len / 2`-fold, or what `frontend`
    makes of the series: a module `(x, lengths, **options) -> (tokens, token_lengths)` (speech's
    front ends, `tsk.heads.speech`), given the options `forward` receives besides the lengths.
    """

    def __init__(
        self, backbone: nn.Module, n_in: int, n_classes: int, d_model: int, pooling: str = "mean",
        backward: nn.Module | None = None, dropout: float = 0.0, normalize: str = "series",
        class_weights: torch.Tensor | None = None, patch_len: int | None = None,
        frontend: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}.")
        self.normalize = normalize
        # "global": each channel's mean and std over the training data (set by the estimator)
        self.register_buffer("input_mean", torch.zeros(n_in))
        self.register_buffer("input_std", torch.ones(n_in))
        if frontend is not None:
            self.embed = frontend
        elif patch_len is not None:
            self.embed = PatchTokens(n_in, d_model, patch_len, max(patch_len // 2, 1))
        else:
            self.embed = nn.Linear(n_in, d_model)
        self.backbone = backbone
        self.backward_backbone = backward
        directions = 1 if backward is None else 2
        self.pools = nn.ModuleList(Pooling(pooling, d_model) for _ in range(directions))
        self.dropout = Dropout(dropout)
        self.classify = nn.Linear(directions * d_model, n_classes)
        weights = torch.ones(n_classes) if class_weights is None else torch.as_tensor(
            class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None, **options: Any
                ) -> torch.Tensor:
        mask = valid_mask(lengths, inputs.shape[0], inputs.shape[1], inputs.device)
        if self.normalize == "series":
            x = normalize_series(inputs, mask)
        elif self.normalize == "global":
            x = (inputs - self.input_mean) / self.input_std * mask[..., None]
        else:
            x = inputs * mask[..., None]
        if isinstance(self.embed, nn.Linear):
            if options:
                raise TypeError(f"ClassifyNet without a front end takes no options {sorted(options)}.")
            tokens = self.embed(x)
        else:
            tokens, lengths = self.embed(x, lengths, **options)
            mask = valid_mask(lengths, tokens.shape[0], tokens.shape[1], tokens.device)
        pooled = [self.pools[0](run_masked(self.backbone, tokens, lengths), mask)]
        if self.backward_backbone is not None:
            reversed_tokens = reverse_within_lengths(tokens, lengths)
            pooled.append(self.pools[1](run_masked(self.backward_backbone, reversed_tokens, lengths),
                                        mask))
        return self.classify(self.dropout(torch.cat(pooled, dim=-1)))

    def loss(self, output: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(output, batch["targets"], weight=self.class_weights)

    def metrics(self, output: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"accuracy": (output.argmax(-1) == batch["targets"]).float().mean()}


class GridTokens(nn.Module):
    """The front end of a grid backbone: series `[B, L, C]` -> tokens `[B, T, C * d_model]`,
    each channel embedded on its own (its steps, or its patches of `patch_len` steps every
    `patch_len // 2`) by one map shared by the channels. Channels stay apart in the feature axis,
    so masking, pooling and reversal along time treat them as one sequence; `GridAsSequence`
    unfolds them into the backbone's variates. `ChannelAffine` then tells the channels apart."""

    def __init__(self, d_model: int, channels: int, patch_len: int | None = None) -> None:
        super().__init__()
        self.embed = (nn.Linear(1, d_model) if patch_len is None
                      else PatchTokens(1, d_model, patch_len, max(patch_len // 2, 1)))
        self.channels = ChannelAffine(channels, d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, channels = x.shape
        series = x.transpose(1, 2).reshape(batch * channels, length, 1)
        if isinstance(self.embed, nn.Linear):
            tokens = self.embed(series)
        else:
            tokens, _ = self.embed(series, None)
            if lengths is not None:
                lengths = patch_count(lengths, self.embed.patch_len, self.embed.stride)
        tokens = self.channels(tokens.view(batch, channels, tokens.shape[1], -1))
        return tokens.transpose(1, 2).flatten(2), lengths  # [B, T, C * d_model]


class GridAsSequence(nn.Module):
    """A grid backbone where a sequence backbone goes: `[B, T, V * d_model]` (`GridTokens`) ->
    the grid `[B, V, T, d_model]` -> the backbone -> the mean over variates `[B, T, d_model]`."""

    def __init__(self, backbone: nn.Module, d_model: int) -> None:
        super().__init__()
        self.backbone, self.d_model = backbone, d_model

    @property
    def causal(self) -> bool:
        return is_causal(self.backbone)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        grid = x.view(batch, length, -1, self.d_model).transpose(1, 2)
        return self.backbone(grid).mean(1)
