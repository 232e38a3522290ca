"""The forecasting head's closed-form start: the linear skip solved as a ridge regression."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tsk.backbones import create
from tsk.heads.forecast import (
    ForecastNet,
    GridForecastNet,
    PatchEmbedding,
    RidgeForecast,
    RidgeStartNet,
    SeasonalNaive,
)

LOOKBACK, HORIZON = 12, 5


def make_net(instance_norm: bool, n_in: int = 2, n_out: int = 2) -> ForecastNet:
    torch.manual_seed(0)
    backbone = create("s4d", d_model=8, n_layers=1, dropout=0.0)
    return ForecastNet(backbone, LOOKBACK, HORIZON, n_in, n_out, d_model=8, instance_norm=instance_norm)


def make_batches(seed: int, n: int = 64, channels: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Windows of noisy random walks with per-window level and scale, in batches of 16."""
    gen = torch.Generator().manual_seed(seed)
    walk = torch.randn(n, LOOKBACK + HORIZON, channels, generator=gen).cumsum(1)
    walk = walk * (1 + 3 * torch.rand(n, 1, channels, generator=gen)) + 5 * torch.randn(n, 1, channels,
                                                                                          generator=gen)
    x, y = walk[:, :LOOKBACK], walk[:, LOOKBACK:]
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, n, 16)]


def as_mappings(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """The batches as the training loop hands them over."""
    return [{"inputs": x, "targets": y} for x, y in batches]


def weighted_rows(batches, instance_norm: bool, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """One row per (window, channel): ([x_n, 1] * std, y_n * std), x_n, y_n normalized by the
    window's mean and std (RevIN) so the squares are those of the de-normalized forecast."""
    x = np.concatenate([b[0].numpy() for b in batches]).astype(np.float64)
    y = np.concatenate([b[1].numpy() for b in batches]).astype(np.float64)
    rows_x, rows_y = [], []
    for window, future in zip(x, y, strict=True):
        for c in range(window.shape[1]):
            series, target = window[:, c], future[:, c]
            mean, std = (series.mean(), np.sqrt(series.var() + eps)) if instance_norm else (0.0, 1.0)
            rows_x.append(np.append((series - mean) / std, 1.0) * std)
            rows_y.append((target - mean) / std * std)
    return np.array(rows_x), np.array(rows_y)


def ridge_numpy(batches, strength: float, instance_norm: bool) -> np.ndarray:
    """argmin_W |Y - X W|^2 + strength |W[:-1]|^2 (no penalty on the intercept row)."""
    a, b = weighted_rows(batches, instance_norm)
    penalty = strength * np.eye(a.shape[1])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(a.T @ a + penalty, a.T @ b)


@pytest.mark.parametrize("instance_norm", [True, False])
def test_ridge_skip_is_the_weighted_ridge_solution(instance_norm):
    net = make_net(instance_norm)
    train = make_batches(0)
    strength = net.init_skip_ridge(as_mappings(train))
    expected = ridge_numpy(train, strength, instance_norm)
    np.testing.assert_allclose(net.head.skip.weight.detach().numpy(), expected[:-1].T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(net.head.skip.bias.detach().numpy(), expected[-1], rtol=1e-4, atol=1e-5)
    # the deep part starts at zero: the network's forecast is the ridge forecast, de-normalized
    x = train[0][0]
    with torch.no_grad():
        forecast = net(x)
    window = x[0, :, 1].double().numpy()
    mean, std = (window.mean(), np.sqrt(window.var() + 1e-5)) if instance_norm else (0.0, 1.0)
    by_hand = (np.append((window - mean) / std, 1.0) @ expected) * std + mean
    np.testing.assert_allclose(forecast[0, :, 1].numpy(), by_hand, rtol=1e-4, atol=1e-4)


def test_ridge_strength_minimizes_generalized_cross_validation():
    """The strength is GCV's choice on the training windows, computed here from the explicit hat
    matrix, and the validation windows (early stopping's) play no part."""
    net = make_net(True)
    train = make_batches(0, n=32)
    chosen = net.init_skip_ridge(as_mappings(train))
    a, b = weighted_rows(train, True)
    scale = np.mean(np.sum(a[:, :-1] ** 2, axis=0))  # mean diagonal of X^T X without the intercept

    def gcv(strength: float) -> float:
        penalty = strength * np.eye(a.shape[1])
        penalty[-1, -1] = 0.0
        hat = a @ np.linalg.solve(a.T @ a + penalty, a.T)
        rows = a.shape[0]
        return rows * np.sum((b - hat @ b) ** 2) / (rows - np.trace(hat)) ** 2

    grid = [scale * r for r in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)]
    scores = [gcv(strength) for strength in grid]
    assert len(set(np.round(scores, 6))) > 1  # the choice is not a tie
    assert chosen == pytest.approx(grid[int(np.argmin(scores))], rel=1e-6)


def test_ridge_strength_with_fewer_rows_than_weights_skips_the_interpolating_ones():
    """With fewer (window, channel) rows than lookback weights a weak ridge interpolates them:
    GCV's denominator is zero there (effective parameters = rows), so those strengths are not
    candidates and the choice is GCV's best among the others."""
    net = make_net(True)
    few = make_batches(6, n=3)  # 3 windows x 2 channels = 6 rows, 13 weights
    a, b = weighted_rows(few, True)
    rows = a.shape[0]
    scale = np.mean(np.sum(a[:, :-1] ** 2, axis=0))
    chosen = net.init_skip_ridge(as_mappings(few))
    penalty = np.eye(a.shape[1])
    penalty[-1, -1] = 0.0
    scores = []
    for r in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0):
        hat = a @ np.linalg.solve(a.T @ a + scale * r * penalty, a.T)
        dof = np.trace(hat)
        scores.append(np.inf if dof > rows - 0.5 else
                      rows * np.sum((b - hat @ b) ** 2) / (rows - dof) ** 2)
    assert np.isinf(scores[0])  # the weakest strength interpolates the 6 rows
    assert np.argmin(scores) == 5  # here GCV taken at face value would pick the weakest
    assert chosen == pytest.approx(scale * [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0][int(np.argmin(scores))],
                                   rel=1e-6)
    assert torch.isfinite(net.head.skip.weight).all()


@pytest.mark.parametrize(("lookback", "patch_len", "stride"),
                         [(336, 16, 8), (37, 16, 8), (20, 5, 2), (336, 16, 16), (37, 16, 16), (20, 5, 5)])
def test_patches_tile_the_window_and_end_with_the_newest_step(lookback, patch_len, stride):
    embed = PatchEmbedding(lookback, n_in=2, d_model=4, patch_len=patch_len, stride=stride)
    x = torch.randn(3, lookback, 2)
    tokens = embed(x)
    assert tokens.shape == (3, embed.n_tokens, 4)
    with torch.no_grad():  # the projection is linear: recover each patch's values through it
        embed.project.weight.zero_()
        embed.project.bias.zero_()
        embed.project.weight[0, -1] = 1.0  # the token's first value = its last step of channel 1
        first_steps = embed(x)[..., 0]
    padded = torch.cat([x[:, :, 1], x[:, -1:, 1].expand(-1, stride)], dim=1)
    expected = torch.stack([padded[:, start + patch_len - 1]
                            for start in range(0, embed.n_tokens * stride, stride)], dim=1)
    torch.testing.assert_close(first_steps, expected)
    assert (expected[:, -1] == x[:, -1, 1]).all()  # the last token ends on the padded newest step


def test_patch_longer_than_the_lookback_is_refused():
    with pytest.raises(ValueError, match="longer than the lookback"):
        PatchEmbedding(8, 1, 4, patch_len=16)


@pytest.mark.parametrize("stride", [0, 5])
def test_a_stride_that_would_skip_steps_is_refused(stride):
    with pytest.raises(ValueError, match=r"stride must be in \[1, patch_len=4\]"):
        PatchEmbedding(20, 1, 4, patch_len=4, stride=stride)


def test_patch_tokens_keep_the_ridge_start_exact():
    """With patches the deep part still starts at zero: the net predicts the ridge forecast."""
    torch.manual_seed(0)
    backbone = create("s4d", d_model=8, n_layers=1, dropout=0.0)
    net = ForecastNet(backbone, LOOKBACK, HORIZON, 2, 2, d_model=8, patch_len=4).eval()
    assert net.head.flatten_proj.in_features == net.embed.n_tokens * 8
    batches = make_batches(0)
    net.init_skip_ridge(as_mappings(batches))
    x = batches[0][0]
    with torch.no_grad():
        normalized, window = net.norm(x)
        linear = window.restore(net.head.skip(normalized.transpose(1, 2)).transpose(1, 2))
        torch.testing.assert_close(net(x), linear)


def test_window_normalization_leaves_calendar_features_alone():
    """RevIN standardizes each window's data channels; the calendar channels keep their values,
    so the date they carry reaches the backbone (a window mean would erase it)."""
    from tsk.heads.forecast import InstanceNorm, VariateForecastNet

    x = torch.randn(3, 10, 4) * 5 + 2
    x[..., 2:] = torch.rand(3, 10, 2) - 0.5
    normed, window = InstanceNorm(keep_last=2)(x)
    torch.testing.assert_close(normed[..., 2:], x[..., 2:])
    torch.testing.assert_close(normed[..., :2].mean(1), torch.zeros(3, 2), atol=1e-5, rtol=0)
    assert (window.mean[..., 2:] == 0).all() and (window.std[..., 2:] == 1).all()
    torch.testing.assert_close(window.restore(normed[..., :2]), x[..., :2])
    torch.testing.assert_close(window.apply(x[..., :2]), normed[..., :2])
    unchanged, identity = InstanceNorm(enabled=False)(x)
    assert unchanged is x and identity.restore(x) is x
    seen = []
    backbone = create("mamba", d_model=8, n_layers=1, bidirectional=True)
    net = VariateForecastNet(backbone, 10, 4, n_out=2, d_model=8, n_calendar=2)
    net.embed.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    assert net(x).shape == (3, 4, 2)
    torch.testing.assert_close(seen[0][:, 2:], x[..., 2:].transpose(1, 2))


@pytest.mark.parametrize("name", ["tpgn", "spacetime"])
def test_paper_networks_leave_calendar_features_out_of_window_normalization(name):
    """A paper's own network (`forecast_net`) gets `n_calendar` too: with RevIN on (TPGN's ETTh1
    setting), the calendar channels reach the network unchanged while the data channels are
    standardized."""
    from tsk.heads.registry import get_task_net

    x = torch.randn(3, 24, 4) * 5 + 2
    x[..., 2:] = torch.rand(3, 24, 2) - 0.5
    backbone = create(name, d_model=4, **({"period": 6} if name == "tpgn" else {}))
    net = get_task_net("forecast", name).build(backbone, lookback=24, horizon=5, n_in=4, n_out=2,
                                      n_calendar=2, instance_norm=True)
    seen = []
    net.norm.register_forward_hook(lambda module, args, out: seen.append(out[0]))
    assert net(x).shape == (3, 5, 2)
    torch.testing.assert_close(seen[0][..., 2:], x[..., 2:])
    torch.testing.assert_close(seen[0][..., :2].mean(1), torch.zeros(3, 2), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["tpgn", "spacetime"])
@pytest.mark.parametrize("instance_norm", [True, False])
def test_paper_network_starts_from_the_ridge_forecast_and_then_trains(name, instance_norm):
    """`RidgeStartNet` predicts exactly the closed-form ridge forecast at first (the gate on the
    paper's network is zero), and two Adam steps later the paper's network has moved and counts."""
    from tsk.heads.registry import get_task_net

    torch.manual_seed(0)
    backbone = create(name, d_model=4, **({"period": 4} if name == "tpgn" else {"d_state": 4}))
    paper = get_task_net("forecast", name).build(backbone, lookback=LOOKBACK, horizon=HORIZON, n_in=2,
                                        n_out=2, instance_norm=instance_norm)
    net = RidgeStartNet(paper, LOOKBACK, HORIZON, n_out=2, instance_norm=instance_norm)
    batches = make_batches(0)
    strength = net.init_skip_ridge(as_mappings(batches))
    expected = ridge_numpy(batches, strength, instance_norm)
    x, y = batches[0]
    window = x[0, :, 1].double().numpy()
    mean, std = (window.mean(), np.sqrt(window.var() + 1e-5)) if instance_norm else (0.0, 1.0)
    by_hand = (np.append((window - mean) / std, 1.0) @ expected) * std + mean
    with torch.no_grad():
        np.testing.assert_allclose(net(x)[0, :, 1].numpy(), by_hand, rtol=1e-4, atol=1e-4)
    before = [p.detach().clone() for p in paper.parameters()]
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(2):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        if getattr(net, "auxiliary_loss", None) is not None:
            loss = loss + net.auxiliary_loss
        loss.backward()
        optimizer.step()
    assert net.gate.abs().item() > 0
    assert any(not torch.equal(b, p) for b, p in zip(before, paper.parameters(), strict=True))


def test_ridge_start_net_passes_on_the_paper_networks_own_loss():
    """SpaceTime's lag losses still train its network under the ridge start."""
    from tsk.heads.registry import get_task_net

    backbone = create("spacetime", d_model=4, d_state=4)
    paper = get_task_net("forecast", "spacetime").build(backbone, lookback=24, horizon=6, n_in=1, n_out=1)
    net = RidgeStartNet(paper, 24, 6, n_out=1).train()
    net(torch.randn(2, 24, 1))
    assert net.auxiliary_loss is paper.auxiliary_loss and net.auxiliary_loss is not None


def make_grid_net(patch_len: int | None = None, n_in: int = 3, n_out: int = 2,
                  n_calendar: int = 0) -> GridForecastNet:
    torch.manual_seed(0)
    backbone = create("chimera", d_model=8, n_layers=1, d_state=2)
    return GridForecastNet(backbone, LOOKBACK, HORIZON, n_in, n_out, d_model=8,
                           patch_len=patch_len, n_calendar=n_calendar)


@pytest.mark.parametrize("patch_len", [None, 4])
def test_grid_net_starts_from_the_ridge_forecast_of_each_target_channel(patch_len):
    """The grid net's head is the generic one, run per target channel: zero deep part at start,
    so it forecasts exactly the ridge skip, the same closed form as a channel-independent net."""
    batches = make_batches(0, channels=3)
    net = make_grid_net(patch_len)
    net.init_skip_ridge(as_mappings([(x, y[..., :2]) for x, y in batches]))  # 2 targets
    reference = make_net(True, n_in=1, n_out=1)
    reference.init_skip_ridge(as_mappings([(x[..., :2].transpose(1, 2).reshape(-1, LOOKBACK, 1),
                                            y[..., :2].transpose(1, 2).reshape(-1, HORIZON, 1))
                                           for x, y in batches]))
    torch.testing.assert_close(net.head.skip.weight, reference.head.skip.weight)
    x = batches[0][0]
    with torch.no_grad():
        out = net(x)
        expected = reference(x[..., :2].transpose(1, 2).reshape(-1, LOOKBACK, 1))
    assert out.shape == (16, HORIZON, 2)
    torch.testing.assert_close(out, expected.view(16, 2, HORIZON).transpose(1, 2))


def test_grid_net_forecasts_each_target_from_every_channel():
    """Channels are the grid's variates: an exogenous channel moves the targets' forecast."""
    net = make_grid_net()
    with torch.no_grad():
        for p in net.head.flatten_proj.parameters():
            p.normal_()  # a deep part that is not zero, as after training
    x = torch.randn(4, LOOKBACK, 3)
    bumped = x.clone()
    bumped[..., 2] += torch.randn(4, LOOKBACK)  # the exogenous channel only
    with torch.no_grad():
        change = (net(bumped) - net(x)).abs().amax((0, 1))  # per target channel
    assert (change > 1e-6).all()  # float32 round-off here is ~1e-7; no path at all gives 0


def test_the_ridge_start_is_frozen_and_training_moves_only_the_deep_part():
    """After the closed-form start the skip takes no gradient: Adam's steps move the deep part
    (which then counts) and leave the optimal linear map where it was."""
    net = make_net(True)
    batches = make_batches(0)
    net.init_skip_ridge(as_mappings(batches))
    skip = {k: v.clone() for k, v in net.skip.state_dict().items()}
    assert not any(p.requires_grad for p in net.skip.parameters())
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    x, y = batches[0]
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()
    assert all(torch.equal(skip[k], v) for k, v in net.skip.state_dict().items())
    assert net.head.flatten_proj.weight.abs().max() > 0  # the deep part moved


def test_ridge_forecast_alone_is_the_networks_start():
    """`RidgeForecast` (the baseline every fit is scored against) forecasts what a generic head
    started from the same closed form does before training."""
    batches = make_batches(0)
    net = make_net(True).eval()
    net.init_skip_ridge(as_mappings(batches))
    linear = RidgeForecast(LOOKBACK, HORIZON, n_out=2)
    linear.fit(as_mappings(batches))
    torch.testing.assert_close(linear.skip.weight, net.skip.weight)
    x = batches[1][0]
    with torch.no_grad():
        torch.testing.assert_close(linear(x), net(x))


def test_seasonal_naive_repeats_the_last_season_or_the_last_value():
    x = torch.arange(2 * 10 * 3, dtype=torch.float32).view(2, 10, 3)  # 2 windows, 3 channels
    out = SeasonalNaive(horizon=7, season=3, n_out=2)(x)
    steps = [7, 8, 9, 7, 8, 9, 7]  # the last three steps, tiled
    torch.testing.assert_close(out, x[:, steps, :2])
    torch.testing.assert_close(SeasonalNaive(4, 12, 1)(x), x[:, [9] * 4, :1])  # season > window
    torch.testing.assert_close(SeasonalNaive(2, 1, 3)(x), x[:, [9, 9]])
