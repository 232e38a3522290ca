"""Sparse voxel grids in plain torch: the occupied cells of a batch of point clouds, the
submanifold convolution over them, merging to a coarser grid, and the serialization of voxels
into fixed-size groups that a sequence model reads (LION's "linear group RNN" layout).

A batch is a flat list of occupied voxels (`Voxels`): features `[N, C]`, integer coordinates
`[N, D]` (D = 2 or 3) on a grid of `size` cells per axis, and each voxel's cloud. Nothing is
dense, so a cloud costs what it occupies; lookups go through sorted integer keys
(`torch.searchsorted`), which needs no compiled sparse-convolution library (spconv, which LION
uses, builds only against CUDA).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from tsk.heads.curves import bits_for, hilbert_code, morton_code, window_code

ORDERS = ("xy", "hilbert", "z")
"""How voxels are serialized, each alternating between two orders layer by layer: "xy" (LION's
choice: windows read x-major, then y-major), "hilbert" and "z" (Point Transformer V3's curves,
on the grid and on the grid with its first two axes swapped)."""


@dataclass(frozen=True)
class Voxels:
    """The occupied voxels of a batch of clouds (see the module docstring)."""

    features: torch.Tensor  # [N, C]
    coords: torch.Tensor  # [N, D] int64 in [0, size)
    batch: torch.Tensor  # [N] int64: the cloud each voxel belongs to
    size: int
    batch_size: int

    def keys(self, coords: torch.Tensor | None = None, batch: torch.Tensor | None = None
             ) -> torch.Tensor:
        """One int64 key per voxel, cloud-major then row-major over the grid (sorting by it
        sorts by cloud)."""
        coords = self.coords if coords is None else coords
        key = self.batch if batch is None else batch
        for axis in range(coords.shape[1]):
            key = key * self.size + coords[:, axis]
        return key

    def with_features(self, features: torch.Tensor) -> Voxels:
        return replace(self, features=features)


def voxelize(points: torch.Tensor, batch: torch.Tensor, size: int, batch_size: int
             ) -> tuple[Voxels, torch.Tensor]:
    """Points `[P, D]` in [-1, 1] (of clouds `batch[P]`) -> the occupied voxels of a grid of
    `size` cells per axis (features empty, `[N, 0]`), sorted by key, and each point's voxel `[P]`.
    Points outside [-1, 1] fall in the border cells."""
    cells = ((points + 1) * (size / 2)).floor().long().clamp_(0, size - 1)
    grid = Voxels(points.new_zeros(0, 0), cells, batch, size, batch_size)
    keys, inverse = torch.unique(grid.keys(), return_inverse=True)
    return _decode(keys, size, points.shape[1], batch_size, points.new_zeros(len(keys), 0)), inverse


def _decode(keys: torch.Tensor, size: int, dims: int, batch_size: int, features: torch.Tensor
            ) -> Voxels:
    coords = []
    for _ in range(dims):
        coords.append(keys % size)
        keys = keys // size
    return Voxels(features, torch.stack(coords[::-1], dim=1), keys, size, batch_size)


def scatter_max(values: torch.Tensor, index: torch.Tensor, count: int) -> torch.Tensor:
    """`[count, C]`: the largest of the rows of `values[P, C]` that `index[P]` sends to each row
    (every row must receive one)."""
    out = values.new_zeros(count, values.shape[1])
    return out.scatter_reduce(0, index[:, None].expand_as(values), values, "amax",
                              include_self=False)


def scatter_mean(values: torch.Tensor, index: torch.Tensor, count: int) -> torch.Tensor:
    """`[count, C]`: the mean of the rows of `values[P, C]` that `index[P]` sends to each row."""
    total = values.new_zeros(count, values.shape[1]).index_add(0, index, values)
    hits = torch.bincount(index, minlength=count).clamp_min(1).to(values.dtype)
    return total / hits[:, None]


def kernel_offsets(dims: int, kernel: int = 3) -> torch.Tensor:
    """The `kernel**dims` offsets of a cubic kernel, `[K, dims]` (the centre in the middle)."""
    radius = kernel // 2
    return torch.tensor(list(itertools.product(range(-radius, radius + 1), repeat=dims)))


def neighbour_table(voxels: Voxels, kernel: int = 3) -> torch.Tensor:
    """`[N, kernel**D]`: for each voxel and kernel offset, the index of the occupied voxel there,
    or N (a row of zeros appended by `SubmanifoldConv`) where that cell is empty or off the
    grid."""
    keys = voxels.keys()
    order = torch.argsort(keys)
    sorted_keys = keys[order]
    offsets = kernel_offsets(voxels.coords.shape[1], kernel).to(voxels.coords.device)
    cells = voxels.coords[:, None, :] + offsets[None]  # [N, K, D]
    inside = ((cells >= 0) & (cells < voxels.size)).all(-1)
    cell_keys = voxels.keys(cells.clamp(0, voxels.size - 1).flatten(0, 1),
                            voxels.batch.repeat_interleave(len(offsets))).view(inside.shape)
    n = len(keys)
    found = torch.searchsorted(sorted_keys, cell_keys).clamp_(max=max(n - 1, 0))
    hit = inside & (sorted_keys[found] == cell_keys)
    return torch.where(hit, order[found], torch.full_like(found, n))


class SubmanifoldConv(nn.Module):
    """A submanifold sparse convolution (Graham et al. 2018): each occupied voxel sums a
    `kernel**D` stencil of its occupied neighbours' features, each offset with its own weight
    `[C_in, C_out]`; empty cells count as zero and no new voxel is made (the sparsity pattern is
    kept). What spconv's `SubMConv3d` computes, gathered through `neighbour_table`."""

    def __init__(self, in_channels: int, out_channels: int, dims: int, kernel: int = 3,
                 bias: bool = False) -> None:
        super().__init__()
        self.kernel = kernel
        taps = kernel**dims
        self.weight = nn.Parameter(torch.empty(taps * in_channels, out_channels))
        bound = 1 / math.sqrt(taps * in_channels)  # torch's default for a convolution
        nn.init.uniform_(self.weight, -bound, bound)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, features: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """`features[N, C_in]`, `table[N, K]` (`neighbour_table`) -> `[N, C_out]`."""
        padded = torch.cat([features, features.new_zeros(1, features.shape[1])])
        out = padded[table].flatten(1) @ self.weight  # [N, K * C_in] @ [K * C_in, C_out]
        return out if self.bias is None else out + self.bias


class VoxelMerging(nn.Module):
    """LION's downsampling (its `PatchMerging3D`, without the foreground "voxel diffusion" that
    detection adds): a 3x3(x3) submanifold convolution + LayerNorm + GELU restores the local
    neighbourhood that serialization loses (LION's 3-D spatial feature descriptor), then the
    voxels falling in one cell of the grid at half the resolution are summed and normalized."""

    def __init__(self, d_model: int, dims: int) -> None:
        super().__init__()
        self.conv = SubmanifoldConv(d_model, d_model, dims)
        self.conv_norm = nn.LayerNorm(d_model)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, voxels: Voxels, table: torch.Tensor) -> Voxels:
        x = F.gelu(self.conv_norm(self.conv(voxels.features, table)))
        half = -(-voxels.size // 2)
        coarse = replace(voxels, coords=voxels.coords // 2, size=half)
        keys, inverse = torch.unique(coarse.keys(), return_inverse=True)
        merged = x.new_zeros(len(keys), x.shape[1]).index_add(0, inverse, x)
        return _decode(keys, half, voxels.coords.shape[1], voxels.batch_size, self.norm(merged))


def serial_order(voxels: Voxels, order: str, layer: int, window: int) -> torch.Tensor:
    """The permutation that reads the voxels cloud by cloud in `order` ("xy", "hilbert", "z"),
    in its first variant on even `layer`s and its second on odd ones; "xy" also shifts its
    windows by half on every second pair of layers, as LION's second layer of a block does."""
    coords = voxels.coords
    dims = coords.shape[1]
    swapped = layer % 2 == 1
    if order == "xy":
        axes = (1, 0, *range(2, dims)) if swapped else tuple(range(dims))
        code = window_code(coords, voxels.size, window, axes, shift=(layer // 2) % 2 == 1)
    elif order in ("hilbert", "z"):
        if swapped:
            coords = coords[:, [1, 0, *range(2, dims)]]
        bits = bits_for(voxels.size)
        code = (hilbert_code if order == "hilbert" else morton_code)(coords, bits)
    else:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}.")
    span = int(code.max()) + 1 if len(code) else 1  # any bound above every code keeps clouds apart
    return torch.argsort(voxels.batch * span + code)


def group_layout(batch: torch.Tensor, batch_size: int, group_size: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each cloud's serialized voxels into groups of `group_size`, as LION does.

    `batch[N]`: the cloud of each voxel in serialized order (clouds contiguous, in order).
    Each cloud's count is padded up to a multiple of `group_size` so no group mixes clouds: a
    padded slot repeats the voxel one group earlier at the same place in its group (or, for a
    cloud smaller than one group, its voxels again from the start). Returns `gather[P]`, the
    serialized position each of the P slots reads (`x[gather].view(-1, group_size, C)` are the
    groups), and `scatter[N]`, the slot whose output each voxel keeps (the copies' are dropped).
    """
    counts = torch.bincount(batch, minlength=batch_size)
    padded = (counts + group_size - 1) // group_size * group_size
    starts = torch.cumsum(counts, 0) - counts
    slot_starts = torch.cumsum(padded, 0) - padded
    clouds = torch.repeat_interleave(torch.arange(batch_size, device=batch.device), padded)
    local = torch.arange(int(padded.sum()), device=batch.device) - slot_starts[clouds]
    n = counts[clouds]
    source = torch.where(local < n, local,
                         torch.where(padded[clouds] > group_size, local - group_size,
                                     local % n.clamp_min(1)))
    gather = starts[clouds] + source
    scatter = slot_starts[batch] + torch.arange(len(batch), device=batch.device) - starts[batch]
    return gather, scatter
