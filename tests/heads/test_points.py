"""The point-cloud networks: what a group of voxels reads (against a plain loop), invariances a
point-set classifier must have, augmentation only while training, gradients to every backbone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tsk import backbones
from tsk.heads.points import LIONLayer, LIONNet, PointAugment, PointNet, normalize_clouds
from tsk.heads.voxels import Voxels, serial_order


class PrefixSum(nn.Module):
    """A stand-in backbone whose output at each step is the sum of the group so far."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.cumsum(1)


def test_lion_layer_runs_each_group_in_serialized_order_and_writes_back():
    generator = torch.Generator().manual_seed(0)
    coords = torch.randint(0, 8, (40, 2), generator=generator)
    batch = torch.randint(0, 2, (40,), generator=generator)
    keys = torch.unique(batch * 64 + coords[:, 0] * 8 + coords[:, 1])
    voxels = Voxels(torch.randn(len(keys), 3, generator=generator, dtype=torch.float64),
                    torch.stack([keys // 8 % 8, keys % 8], 1), keys // 64, 8, 2)
    group = 4
    layer = LIONLayer(PrefixSum, index=0, order="xy", group_size=group, window=4)
    out = layer(voxels).features
    expected = voxels.features.clone()
    for turn in range(2):  # the x-major then the y-major reading, by hand
        order = serial_order(voxels, "xy", turn, 4).tolist()
        updated = expected.clone()
        for cloud in range(2):
            mine = [i for i in order if voxels.batch[i] == cloud]
            for start in range(0, len(mine), group):
                members = mine[start:start + group]
                for place, voxel in enumerate(members):
                    # a full group's prefix and suffix sums; padded slots repeat voxels
                    padded = members + [mine[start - group + k] if start >= group else
                                        mine[k % len(mine)] for k in range(len(members), group)]
                    rows = expected[padded]
                    prefix, suffix = rows[: place + 1].sum(0), rows[place:].sum(0)
                    updated[voxel] = (prefix + suffix) / 2
        expected = updated
    torch.testing.assert_close(out, expected)


def lion(backbone: str = "s4d", dims: int = 2, n_features: int = 0, **options) -> LIONNet:
    return LIONNet(lambda: backbones.create(backbone, d_model=16, n_layers=1), dims, n_features,
                   5, 16, grid_size=16, group_size=8, **options)


def clouds(batch: int = 3, points: int = 30, dims: int = 2, seed: int = 0) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, points, dims, generator=generator) * 2 - 1
    lengths = torch.tensor([points, points // 2, 3][:batch])
    return x, lengths


@pytest.mark.parametrize("network", ["lion", "pointnet"])
def test_a_cloud_is_classified_alike_whatever_its_order_place_scale_and_batch(network):
    torch.manual_seed(0)
    net = (lion() if network == "lion" else PointNet(2, 0, 5)).eval()
    x, lengths = clouds()
    with torch.no_grad():
        reference = net(x, lengths)
        shuffled = x.clone()
        shuffled[0] = x[0, torch.randperm(x.shape[1])]
        torch.testing.assert_close(net(shuffled, lengths), reference, atol=1e-5, rtol=1e-5)
        moved = x * 3.0 + torch.tensor([5.0, -2.0])  # normalized away
        torch.testing.assert_close(net(moved, lengths), reference, atol=1e-5, rtol=1e-5)
        alone = net(x[1:2, : int(lengths[1])], lengths[1:2])
        torch.testing.assert_close(alone[0], reference[1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backbone", ["s4d", "mamba", "lstm"])
def test_every_group_operator_learns(backbone):
    torch.manual_seed(0)
    net = lion(backbone, dims=3, n_features=1, stages=2, depth=2)
    x, lengths = clouds(dims=4)
    loss = net.loss(net(x, lengths), {"targets": torch.tensor([0, 1, 2])})
    loss.backward()
    for name, parameter in net.named_parameters():
        if "backbone" in name and parameter.requires_grad:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_normalized_clouds_fill_a_ball_of_the_set_radius():
    points = torch.tensor([[0.0, 0.0], [10.0, 0.0], [5.0, 5.0], [1.0, 1.0]])
    batch = torch.tensor([0, 0, 0, 1])
    out = normalize_clouds(points, batch, 2)
    torch.testing.assert_close(out[:3].mean(0), torch.zeros(2))
    assert out[:3].norm(dim=1).max().item() == pytest.approx(0.8)
    assert out[3].abs().max() == 0  # a single point sits at the origin


def test_augmentation_only_while_training_and_rotation_keeps_the_up_axis():
    augment = PointAugment(3, up_axis=1)
    coords = torch.randn(50, 3)
    batch = torch.zeros(50, dtype=torch.long)
    assert torch.equal(augment.eval()(coords, batch, 1), coords)
    torch.manual_seed(0)
    moved = augment.train()(coords, batch, 1)
    assert not torch.allclose(moved, coords)
    scale = moved[:, 1].norm() / coords[:, 1].norm()  # height changes by the scaling alone
    assert 0.75 < scale < 1.3
    ratio = moved[:, [0, 2]].norm(dim=1) / coords[:, [0, 2]].norm(dim=1)  # rotation keeps radii
    assert ratio.std() < 0.05
