"""Point-cloud classification networks: LION's linear group RNN over serialized voxels, with any
registered sequence backbone as its group operator, and the PointNet baseline.

Both read a batch of clouds right-padded to `[B, N_max, D + F]` with `lengths[B]` (coordinates
first, then per-point features), normalize each cloud into a ball (centroid at the origin,
farthest point at `RADIUS`), augment it while training (`PointAugment`) and classify.

LION (Liu et al., NeurIPS 2024, "LION: Linear Group RNN for 3D Object Detection in Point Clouds";
authors' code happinesslz/LION), for classification:

- voxelize, and encode each voxel from its points (the dynamic voxel feature encoder LION's
  configs use: each point's coordinates, offsets to its voxel's mean and centre, and features,
  through two PointNet layers pooled by max per voxel);
- stages of LION layers; each layer serializes the voxels (x-major then y-major windows, shifted
  by half a window every second layer; or Hilbert / Z-order curves, `tsk.heads.voxels.ORDERS`),
  cuts the sequence into groups of `group_size` voxels, runs a bidirectional sequence model over
  every group (`GroupOperator`) and writes the outputs back; a learned position embedding of the
  voxel coordinates is added before each layer, as LION does;
- between stages, a 3x3(x3) submanifold convolution (LION's spatial descriptor) and merging to a
  grid of half the resolution (`tsk.heads.voxels.VoxelMerging`);
- then LayerNorm, max and mean pooling over each cloud's voxels, and an MLP classifier.

What differs from the detector, and why: LION's blocks are U-shaped (down and back up) because
a detector needs dense features at full resolution; a classifier needs one vector per cloud, so
stages only go down (group sizes halving with the voxel count, as LION's do between its
blocks). Foreground "voxel generation" serves box regression and is left out. The group
operator is two tsk backbones (forward and reversed, outputs averaged) where LION's vendored
Mamba sums both directions inside one block: any tsk backbone then serves unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from tsk.backbones.common import Dropout
from tsk.heads.classify import valid_mask
from tsk.heads.voxels import (
    ORDERS,
    VoxelMerging,
    Voxels,
    group_layout,
    neighbour_table,
    scatter_max,
    scatter_mean,
    serial_order,
    voxelize,
)

NETWORKS = ("lion", "pointnet")
RADIUS = 0.8
"""Clouds are scaled into a ball of this radius, so the augmentation's largest scaling (1.25)
keeps them inside the voxel grid's [-1, 1] box."""


class PointAugment(nn.Module):
    """Training-time augmentation of normalized clouds (identity in evaluation): a random
    isotropic scaling in [0.8, 1.25] per cloud, a random rotation about `up_axis` (3-D clouds
    only; None: none) and per-point Gaussian jitter (std 0.01, clipped at 0.05): PointNet's
    and PointNet++'s recipe."""

    def __init__(self, dims: int, up_axis: int | None = None, enabled: bool = True) -> None:
        super().__init__()
        self.dims, self.up_axis, self.enabled = dims, up_axis, enabled

    def forward(self, coords: torch.Tensor, batch: torch.Tensor, batch_size: int) -> torch.Tensor:
        if not (self.training and self.enabled):
            return coords
        scale = torch.empty(batch_size, device=coords.device).uniform_(0.8, 1.25)
        coords = coords * scale[batch, None]
        if self.dims == 3 and self.up_axis is not None:
            angle = torch.rand(batch_size, device=coords.device) * (2 * math.pi)
            a, b = [axis for axis in range(3) if axis != self.up_axis]
            cos, sin = angle.cos()[batch], angle.sin()[batch]
            first, second = coords[:, a], coords[:, b]
            coords = coords.clone()
            coords[:, a], coords[:, b] = cos * first - sin * second, sin * first + cos * second
        jitter = (torch.randn_like(coords) * 0.01).clamp_(-0.05, 0.05)
        return coords + jitter


class PointClassifierNet(nn.Module):
    """What both networks share: flatten the padded batch, normalize (and augment) each cloud,
    encode (`encode`, the subclass's), classify; cross-entropy loss and accuracy."""

    def __init__(self, dims: int, n_features: int, n_classes: int, *, up_axis: int | None,
                 augment: bool, class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.dims, self.n_features = dims, n_features
        self.augment = PointAugment(dims, up_axis, augment)
        weights = torch.ones(n_classes) if class_weights is None else torch.as_tensor(
            class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", weights)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        batch_size = inputs.shape[0]
        mask = valid_mask(lengths, batch_size, inputs.shape[1], inputs.device)
        points = inputs[mask]  # [P, D + F], cloud by cloud
        batch = torch.arange(batch_size, device=inputs.device).repeat_interleave(mask.sum(1))
        coords = normalize_clouds(points[:, : self.dims], batch, batch_size)
        coords = self.augment(coords, batch, batch_size)
        return self.encode(coords, points[:, self.dims:], batch, batch_size)

    def encode(self, coords: torch.Tensor, features: torch.Tensor, batch: torch.Tensor,
               batch_size: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, output: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(output, batch["targets"], weight=self.class_weights)

    def metrics(self, output: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"accuracy": (output.argmax(-1) == batch["targets"]).float().mean()}


def normalize_clouds(coords: torch.Tensor, batch: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Each cloud moved to its centroid and scaled so its farthest point lies at `RADIUS` (a
    single point, or points all in one place, stay at the origin)."""
    centred = coords - scatter_mean(coords, batch, batch_size)[batch]
    reach = scatter_max(centred.norm(dim=1, keepdim=True), batch, batch_size)
    return centred * (RADIUS / reach.clamp_min(1e-12))[batch]


def _mlp(widths: list[int], norm: Callable[[int], nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width_in, width_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(width_in, width_out, bias=False), norm(width_out), nn.ReLU()]
    return nn.Sequential(*layers)


class ClassifierHead(nn.Module):
    """Pooled features -> logits: Linear + BatchNorm + ReLU + dropout, then a Linear."""

    def __init__(self, width: int, hidden: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(width, hidden, bias=False), nn.BatchNorm1d(hidden),
                                    nn.ReLU(), Dropout(dropout))
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))


class PointNet(PointClassifierNet):
    """PointNet (Qi et al., CVPR 2017) without its T-Nets (the paper's "vanilla" variant): a
    shared MLP (64, 64, 64, 128, 1024, BatchNorm + ReLU) on every point, max-pooled per cloud,
    then fully connected layers (512, 256) with dropout 0.3 (the paper keeps 70%)."""

    def __init__(self, dims: int, n_features: int, n_classes: int, *, up_axis: int | None = None,
                 augment: bool = True, class_weights: torch.Tensor | None = None,
                 widths: tuple[int, ...] = (64, 64, 64, 128, 1024), dropout: float = 0.3) -> None:
        super().__init__(dims, n_features, n_classes, up_axis=up_axis, augment=augment,
                         class_weights=class_weights)
        self.shared = _mlp([dims + n_features, *widths], nn.BatchNorm1d)
        self.head = nn.Sequential(
            nn.Linear(widths[-1], 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(),
            ClassifierHead(512, 256, n_classes, dropout))

    def encode(self, coords: torch.Tensor, features: torch.Tensor, batch: torch.Tensor,
               batch_size: int) -> torch.Tensor:
        per_point = self.shared(torch.cat([coords, features], dim=1))
        return self.head(scatter_max(per_point, batch, batch_size))


class VoxelEncoder(nn.Module):
    """LION's voxel feature encoder (OpenPCDet's DynamicVoxelVFE with `USE_NORM`): each point's
    coordinates, its offsets to its voxel's point mean and to the voxel's centre, and its
    features -> Linear + BatchNorm + ReLU; that concatenated with its voxel's max -> a second such
    layer; the voxel's max over its points is the voxel's feature."""

    def __init__(self, dims: int, n_features: int, d_model: int) -> None:
        super().__init__()
        self.first = _mlp([3 * dims + n_features, d_model // 2], nn.BatchNorm1d)
        self.second = _mlp([d_model, d_model], nn.BatchNorm1d)

    def forward(self, coords: torch.Tensor, features: torch.Tensor, voxels: Voxels,
                inverse: torch.Tensor) -> torch.Tensor:
        n = len(voxels.coords)
        mean = scatter_mean(coords, inverse, n)[inverse]
        centre = (voxels.coords[inverse].to(coords.dtype) + 0.5) * (2 / voxels.size) - 1
        x = self.first(torch.cat([coords, coords - mean, coords - centre, features], dim=1))
        x = self.second(torch.cat([x, scatter_max(x, inverse, n)[inverse]], dim=1))
        return scatter_max(x, inverse, n)


class PositionEmbedding(nn.Module):
    """LION's learned position embedding: the voxel's grid position scaled to [-pi, pi] ->
    Linear + BatchNorm + ReLU + Linear."""

    def __init__(self, dims: int, d_model: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dims, d_model), nn.BatchNorm1d(d_model), nn.ReLU(),
                                 nn.Linear(d_model, d_model))

    def forward(self, voxels: Voxels) -> torch.Tensor:
        place = (voxels.coords.to(voxels.features.dtype) - voxels.size / 2) * (2 * math.pi /
                                                                              voxels.size)
        return self.net(place)


class GroupOperator(nn.Module):
    """A bidirectional sequence model over groups `[G, K, d]`: one backbone reads each group
    forward, another reads it reversed; their outputs (each a residual stack's) are averaged."""

    def __init__(self, make_backbone: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.forward_backbone = make_backbone()
        self.backward_backbone = make_backbone()

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        backward = self.backward_backbone(groups.flip(1)).flip(1)
        return (self.forward_backbone(groups) + backward) / 2


class LIONLayer(nn.Module):
    """One LION layer: for each of its two serializations, the voxels in that order, cut into
    groups of `group_size` (`group_layout`), through a `GroupOperator`, and written back."""

    def __init__(self, make_backbone: Callable[[], nn.Module], index: int, order: str,
                 group_size: int, window: int) -> None:
        super().__init__()
        self.operators = nn.ModuleList(GroupOperator(make_backbone) for _ in range(2))
        self.index, self.order = index, order
        self.group_size, self.window = group_size, window

    def forward(self, voxels: Voxels) -> Voxels:
        x = voxels.features
        for turn, operator in enumerate(self.operators):
            order = serial_order(voxels, self.order, 2 * self.index + turn, self.window)
            gather, scatter = group_layout(voxels.batch[order], voxels.batch_size, self.group_size)
            groups = x[order][gather].view(-1, self.group_size, x.shape[1])
            out = operator(groups).reshape(-1, x.shape[1])[scatter]
            x = torch.empty_like(x).index_copy(0, order, out)
        return voxels.with_features(x)


class LIONNet(PointClassifierNet):
    """LION for point-cloud classification (module docstring). `make_backbone()` builds one tsk
    sequence backbone `[B, L, d_model] -> [B, L, d_model]`; every group operator holds two.

    `grid_size`: voxels per axis of the first stage; `stages` of `depth` LION layers each, the
    grid halving between stages; `group_size` voxels per group in the first stage, halving per
    stage (never below `MIN_GROUP`); `window`: LION's window (cells per axis) for the "xy" order.
    """

    MIN_GROUP = 8

    def __init__(self, make_backbone: Callable[[], nn.Module], dims: int, n_features: int,
                 n_classes: int, d_model: int, *, grid_size: int = 32, stages: int = 3,
                 depth: int = 1, group_size: int = 64, window: int = 8, order: str = "xy",
                 dropout: float = 0.1, up_axis: int | None = None, augment: bool = True,
                 class_weights: torch.Tensor | None = None) -> None:
        super().__init__(dims, n_features, n_classes, up_axis=up_axis, augment=augment,
                         class_weights=class_weights)
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}.")
        self.grid_size = grid_size
        self.encoder = VoxelEncoder(dims, n_features, d_model)
        # per stage, its layers and the position embedding added before each
        self.positions = nn.ModuleList(
            nn.ModuleList(PositionEmbedding(dims, d_model) for _ in range(depth))
            for _ in range(stages))
        self.layers = nn.ModuleList(
            nn.ModuleList(LIONLayer(make_backbone, index, order,
                                    max(group_size >> stage, self.MIN_GROUP), window)
                          for index in range(depth))
            for stage in range(stages))
        self.merges = nn.ModuleList(VoxelMerging(d_model, dims) for _ in range(stages - 1))
        self.norm = nn.LayerNorm(d_model)
        self.head = ClassifierHead(2 * d_model, d_model, n_classes, dropout)

    def encode(self, coords: torch.Tensor, features: torch.Tensor, batch: torch.Tensor,
               batch_size: int) -> torch.Tensor:
        voxels, inverse = voxelize(coords, batch, self.grid_size, batch_size)
        voxels = voxels.with_features(self.encoder(coords, features, voxels, inverse))
        for stage, (positions, layers) in enumerate(zip(self.positions, self.layers, strict=True)):
            if stage:  # to the grid at half the resolution
                voxels = self.merges[stage - 1](voxels, neighbour_table(voxels))
            for position, layer in zip(positions, layers, strict=True):
                voxels = layer(voxels.with_features(voxels.features + position(voxels)))
        x = self.norm(voxels.features)
        pooled = torch.cat([scatter_max(x, voxels.batch, batch_size),
                            scatter_mean(x, voxels.batch, batch_size)], dim=1)
        return self.head(pooled)
