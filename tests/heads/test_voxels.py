"""Space-filling curves and the sparse voxel operations, each against a plain loop or a dense
computation that is obviously right."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from tsk.heads.curves import hilbert_code, morton_code, window_code
from tsk.heads.voxels import (
    SubmanifoldConv,
    VoxelMerging,
    Voxels,
    group_layout,
    neighbour_table,
    scatter_max,
    serial_order,
    voxelize,
)


def grid(dims: int, bits: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(1 << bits), repeat=dims)))


@pytest.mark.parametrize(("dims", "bits"), [(2, 1), (2, 3), (2, 5), (3, 1), (3, 2), (3, 4)])
def test_hilbert_curve_is_a_path_through_every_cell(dims, bits):
    cells = grid(dims, bits)
    codes = hilbert_code(cells, bits)
    assert sorted(codes.tolist()) == list(range(len(cells)))  # a bijection onto 0..n-1
    path = cells[codes.argsort()]
    steps = (path[1:] - path[:-1]).abs().sum(1)
    assert steps.eq(1).all()  # consecutive codes share a face: the property that defines it
    assert path[0].eq(0).all()


@pytest.mark.parametrize(("dims", "bits"), [(2, 3), (3, 2)])
def test_morton_code_interleaves_bits(dims, bits):
    cells = grid(dims, bits)
    expected = []
    for cell in cells.tolist():  # read the bits by hand, most significant first
        code = 0
        for bit in reversed(range(bits)):
            for axis in range(dims):
                code = code * 2 + ((cell[axis] >> bit) & 1)
        expected.append(code)
    assert morton_code(cells, bits).tolist() == expected


def test_curves_refuse_coordinates_off_the_grid():
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        hilbert_code(torch.tensor([[8, 0]]), 3)
    with pytest.raises(ValueError, match="shape"):
        morton_code(torch.zeros(4, 4, dtype=torch.long), 2)


def test_window_code_reads_windows_then_cells_x_major():
    cells = grid(2, 2)  # 4 x 4, windows of 2
    order = cells[window_code(cells, 4, 2, (0, 1)).argsort()].tolist()
    # the first window holds x, y in {0, 1}, read x-major (x slowest)
    assert order[:4] == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert order[4:8] == [[0, 2], [0, 3], [1, 2], [1, 3]]  # next window along y
    y_major = cells[window_code(cells, 4, 2, (1, 0)).argsort()].tolist()
    assert y_major[:4] == [[0, 0], [1, 0], [0, 1], [1, 1]]
    shifted = cells[window_code(cells, 4, 2, (0, 1), shift=True).argsort()].tolist()
    assert shifted[0] == [0, 0] and shifted[1] == [0, 1] and shifted[2] == [0, 2]  # border moved


def test_voxelize_groups_points_by_cell_and_cloud():
    points = torch.tensor([[-1.0, -1.0], [-0.99, -0.99], [0.99, 0.99], [-1.0, -1.0]])
    batch = torch.tensor([0, 0, 0, 1])
    voxels, inverse = voxelize(points, batch, 4, 2)
    assert voxels.coords.tolist() == [[0, 0], [3, 3], [0, 0]]
    assert voxels.batch.tolist() == [0, 0, 1]  # the same cell in another cloud is another voxel
    assert inverse.tolist() == [0, 0, 1, 2]


def random_voxels(dims: int, size: int, clouds: int, channels: int, seed: int = 0) -> Voxels:
    generator = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, size, (clouds * size**dims // 3, dims), generator=generator)
    batch = torch.randint(0, clouds, (len(cells),), generator=generator)
    keys = torch.unique(Voxels(torch.zeros(0), cells, batch, size, clouds).keys())
    coords = torch.stack([(keys // size ** (dims - 1 - a)) % size for a in range(dims)], 1)
    batch = keys // size**dims
    features = torch.randn(len(keys), channels, generator=generator, dtype=torch.float64)
    return Voxels(features, coords, batch, size, clouds)


def dense(voxels: Voxels, features: torch.Tensor) -> torch.Tensor:
    """`[clouds, C, size, ...]` with the voxels' features at their cells, zeros elsewhere."""
    dims = voxels.coords.shape[1]
    out = features.new_zeros(voxels.batch_size, features.shape[1], *[voxels.size] * dims)
    index = (voxels.batch, slice(None), *voxels.coords.unbind(1))
    out[index] = features
    return out


@pytest.mark.parametrize("dims", [2, 3])
def test_submanifold_convolution_is_a_dense_convolution_read_at_the_voxels(dims):
    voxels = random_voxels(dims, size=5, clouds=2, channels=3)
    conv = SubmanifoldConv(3, 4, dims).double()
    out = conv(voxels.features, neighbour_table(voxels))
    # the same stencil as a dense convolution; zeros stand for empty cells
    weight = conv.weight.view(*[3] * dims, 3, 4).permute(dims + 1, dims, *range(dims))
    dense_conv = (F.conv2d if dims == 2 else F.conv3d)(dense(voxels, voxels.features), weight,
                                                       padding=1)
    expected = dense_conv[(voxels.batch, slice(None), *voxels.coords.unbind(1))]
    torch.testing.assert_close(out, expected)
    out.square().sum().backward()  # gradients flow to the weights
    assert conv.weight.grad.abs().sum() > 0


def test_merging_sums_the_voxels_of_each_coarse_cell():
    voxels = random_voxels(2, size=7, clouds=2, channels=4, seed=1)
    merge = VoxelMerging(4, 2).double()
    merged = merge(voxels, neighbour_table(voxels))
    assert merged.size == 4
    with torch.no_grad():
        x = F.gelu(merge.conv_norm(merge.conv(voxels.features, neighbour_table(voxels))))
    for cloud in range(2):
        for cell in {tuple(c) for c in (voxels.coords[voxels.batch == cloud] // 2).tolist()}:
            inside = (voxels.batch == cloud) & (voxels.coords // 2 == torch.tensor(cell)).all(1)
            row = ((merged.batch == cloud) & (merged.coords == torch.tensor(cell)).all(1)).nonzero()
            assert len(row) == 1
            torch.testing.assert_close(merged.features[row[0, 0]],
                                       merge.norm(x[inside].sum(0)).detach())
    assert len(merged.batch) == len({(b, *c) for b, c in zip(
        voxels.batch.tolist(), (voxels.coords // 2).tolist(), strict=True)})


def test_scatter_max_takes_each_rows_largest():
    values = torch.tensor([[1.0, -5.0], [3.0, -7.0], [-2.0, -1.0]])
    assert scatter_max(values, torch.tensor([0, 0, 1]), 2).tolist() == [[3.0, -5.0], [-2.0, -1.0]]


@pytest.mark.parametrize("counts", [[5, 3, 12], [1], [4, 4], [9, 2]])
def test_group_layout_pads_each_cloud_with_its_own_voxels(counts):
    group = 4
    batch = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    gather, scatter = group_layout(batch, len(counts), group)
    assert len(gather) % group == 0
    groups = batch[gather].view(-1, group)
    assert (groups == groups[:, :1]).all()  # no group mixes clouds
    assert torch.equal(gather[scatter], torch.arange(len(batch)))  # each voxel keeps its own slot
    start = 0
    for cloud, n in enumerate(counts):  # LION's padding: the slot one group earlier, or wrap
        slots = gather[(batch[gather] == cloud).nonzero().squeeze(1)] - start
        padded = -(-n // group) * group
        expected = [q if q < n else (q - group if padded > group else q % n)
                    for q in range(padded)]
        assert slots.tolist() == expected
        start += n


@pytest.mark.parametrize("order", ["xy", "hilbert", "z"])
def test_serial_order_keeps_clouds_apart_and_alternates(order):
    voxels = random_voxels(2, size=8, clouds=3, channels=1, seed=2)
    first, second = (serial_order(voxels, order, layer, 4) for layer in (0, 1))
    for permutation in (first, second):
        assert sorted(permutation.tolist()) == list(range(len(voxels.batch)))
        assert (voxels.batch[permutation].diff() >= 0).all()  # clouds stay contiguous, in order
    assert not torch.equal(first, second)  # the two serializations differ
    with pytest.raises(ValueError, match="order must be one of"):
        serial_order(voxels, "spiral", 0, 4)
