"""PGN and TPGN against literal computations: HIE as a loop over past inputs, the gate's
equations, causality and step() for PGN, TPGN's branches, grid layout, padding and training."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import tsk
from tests.backbones.conftest import run_steps
from tests.conftest import TINY, make_long
from tsk.backbones import create
from tsk.backbones.pgn import HistoricalInformationExtraction, PGNLayer, TPGNConfig, TPGNCore
from tsk.heads.forecast import RidgeStartNet
from tsk.heads.registry import get_task_net
from tsk.heads.tpgn import TPGNForecastNet


def literal_hie(hie: HistoricalInformationExtraction, x: torch.Tensor, d_in: int) -> torch.Tensor:
    """`x[B, L, G * d_in]` -> `[B, L, G * d_out]`: H_t = b + sum_{k=1..min(t, K)} A_k x_{t-k},
    A_k = weight[:, :, K - k], one block per group."""
    weight, bias, history = hie.conv.weight.detach(), hie.conv.bias.detach(), hie.history
    groups = hie.groups
    d_out = weight.shape[0] // groups
    batch, length, _ = x.shape
    out = torch.zeros(batch, length, groups * d_out, dtype=torch.float64)
    for t in range(length):
        for g in range(groups):
            rows, cols = slice(g * d_out, (g + 1) * d_out), slice(g * d_in, (g + 1) * d_in)
            total = bias[rows].double().expand(batch, d_out).clone()
            for k in range(1, min(t, history) + 1):
                total += x[:, t - k, cols].double() @ weight[rows, :, history - k].double().T
            out[:, t, rows] = total
    return out


def literal_pgn(layer: PGNLayer, x: torch.Tensor) -> torch.Tensor:
    """The paper's equations per group: z = [x_t, H_t], G = sigmoid(W_g z + b_g),
    Hhat = tanh(W_h z + b_h), out = G * H + (1 - G) * Hhat."""
    d_in, d_hidden, groups = layer.d_in, layer.d_hidden, layer.groups
    hidden = literal_hie(layer.hie, x, d_in)
    weight, bias = layer.gate.weight.detach()[..., 0].double(), layer.gate.bias.detach().double()
    outs = []
    for g in range(groups):
        z = torch.cat([x[..., g * d_in : (g + 1) * d_in].double(),
                       hidden[..., g * d_hidden : (g + 1) * d_hidden]], dim=-1)
        block = slice(g * 2 * d_hidden, (g + 1) * 2 * d_hidden)  # sigmoid rows first, then tanh
        w, b = weight[block], bias[block]
        select = torch.sigmoid(z @ w[:d_hidden].T + b[:d_hidden])
        candidate = torch.tanh(z @ w[d_hidden:].T + b[d_hidden:])
        h = hidden[..., g * d_hidden : (g + 1) * d_hidden]
        outs.append(select * h + (1 - select) * candidate)
    return torch.cat(outs, dim=-1)


# ---- PGN ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 4, 11])  # a single step, shorter and longer than the history
@pytest.mark.parametrize("groups", [1, 2])
def test_hie_matches_literal_loop(length, groups):
    torch.manual_seed(0)
    hie = HistoricalInformationExtraction(3, 4, history=6, groups=groups)
    x = torch.randn(2, length, groups * 3)
    with torch.no_grad():
        out = hie(x.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(out.double(), literal_hie(hie, x, 3), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("length", "history", "groups"), [(70, 80, 1), (131, 100, 2), (67, 66, 1)])
def test_hie_through_ffts_matches_the_literal_loop_and_the_direct_convolution(length, history, groups):
    """From FFT_MIN_LAGS lags on HIE convolves through FFTs: the same values and gradients as
    the direct convolution (checked in float64), and as the literal sum."""
    torch.manual_seed(0)
    hie = HistoricalInformationExtraction(3, 5, history=history, groups=groups).double()
    assert min(history, length - 1) >= hie.FFT_MIN_LAGS
    x = torch.randn(2, length, groups * 3, dtype=torch.float64, requires_grad=True)
    fast = hie(x.transpose(1, 2))
    lags = min(history, length - 1)
    weight = hie.conv.weight[..., history - lags :]
    direct = torch.nn.functional.conv1d(torch.nn.functional.pad(x.transpose(1, 2)[..., :-1], (lags, 0)),
                                        weight, hie.conv.bias, groups=groups)
    torch.testing.assert_close(fast, direct, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(fast.transpose(1, 2), literal_hie(hie, x.detach(), 3), rtol=1e-9, atol=1e-9)
    grad = torch.randn_like(fast)
    got = torch.autograd.grad(fast, [x, hie.conv.weight, hie.conv.bias], grad)
    want = torch.autograd.grad(direct, [x, hie.conv.weight, hie.conv.bias], grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("groups", [1, 3])
def test_pgn_layer_follows_the_gate_equations(groups):
    torch.manual_seed(1)
    layer = PGNLayer(3, 5, history=7, groups=groups)
    x = torch.randn(2, 12, groups * 3)
    with torch.no_grad():
        out = layer(x)
    assert out.shape == (2, 12, groups * 5)
    torch.testing.assert_close(out.double(), literal_pgn(layer, x), rtol=1e-5, atol=1e-5)


def test_pgn_layer_window_and_one_step_path():
    """HIE reads exactly the last `history` inputs: x_0 reaches step `history` directly, in one
    layer (the O(1) path), and no later step; the current input enters only through the gate."""
    torch.manual_seed(2)
    layer = PGNLayer(4, 4, history=5)
    x = torch.randn(1, 12, 4, requires_grad=True)
    out = layer(x)
    grad_first = torch.autograd.grad(out[0, 5].sum(), x, retain_graph=True)[0]
    assert grad_first[0, 0].abs().max() > 1e-4  # 5 steps back: inside the window
    grad_late = torch.autograd.grad(out[0, 6].sum(), x)[0]
    assert grad_late[0, 0].abs().max() == 0  # 6 steps back: outside
    assert grad_late[0, 7:].abs().max() == 0  # nothing from the future


def test_pgn_causal_perturbation():
    torch.manual_seed(3)
    model = create("pgn", d_model=8, n_layers=2, dropout=0.0, history=16).eval()
    x = torch.randn(2, 30, 8)
    t = 17
    perturbed = x.clone()
    perturbed[:, t + 1 :] += torch.randn_like(perturbed[:, t + 1 :])
    with torch.no_grad():
        a, b = model(x), model(perturbed)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=1e-6)
    assert (a[:, t + 1 :] - b[:, t + 1 :]).abs().min(dim=-1).values.max() > 1e-4


@pytest.mark.parametrize("length", [9, 25])  # shorter and longer than the history window
def test_pgn_step_matches_forward(length):
    torch.manual_seed(4)
    model = create("pgn", d_model=8, n_layers=2, dropout=0.0, history=12).eval()
    x = torch.randn(3, length, 8)
    with torch.no_grad():
        full, (steps, _) = model(x), run_steps(model, x)
    torch.testing.assert_close(steps, full, rtol=1e-5, atol=1e-5)


def test_grouped_pgn_layer_step_matches_forward():
    torch.manual_seed(5)
    layer = PGNLayer(2, 3, history=4, groups=3)
    x = torch.randn(2, 10, 6)
    with torch.no_grad():
        full, state, steps = layer(x), layer.initial_state(2), []
        for t in range(10):
            y, state = layer.step(x[:, t], state)
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, rtol=1e-5, atol=1e-5)


# ---- TPGN ---------------------------------------------------------------------------------------


def test_tpgn_short_term_branch_is_patch_embedding_then_fold():
    torch.manual_seed(6)
    core = TPGNCore(n_features=2, d_model=4, n_periods=3, period=5, out_per_column=1)
    grid = torch.randn(2, 3, 5, 2)
    w_row, b_row = core.patch_embed.weight.detach(), core.patch_embed.bias.detach()  # [d, F, P]
    w_col, b_col = core.short_fold.weight.detach(), core.short_fold.bias.detach()  # [d, d, R]
    patches = torch.einsum("dfp,brpf->brd", w_row, grid) + b_row  # [B, R, d]: one vector per period
    expected = torch.einsum("der,bre->bd", w_col, patches) + b_col  # [B, d]
    with torch.no_grad():
        short = core.short_term(grid)  # [B, P, 1, d]
    torch.testing.assert_close(short[:, :, 0], expected[:, None].expand(2, 5, 4), rtol=1e-5, atol=1e-5)


def test_tpgn_long_term_branch_runs_pgn_down_each_column():
    torch.manual_seed(7)
    core = TPGNCore(n_features=2, d_model=4, n_periods=4, period=3, out_per_column=1)
    grid = torch.randn(2, 4, 3, 2)
    w_fold, b_fold = core.long_fold.weight.detach().double(), core.long_fold.bias.detach().double()
    with torch.no_grad():
        long = core.long_term(grid)  # [B, P, 1, d]
    for column in range(3):
        pgn_out = literal_pgn(core.long_pgn[0], grid[:, :, column])  # PGN over the 4 periods [B, R, d]
        expected = torch.einsum("der,bre->bd", w_fold, pgn_out) + b_fold
        torch.testing.assert_close(long[:, column, 0].double(), expected, rtol=1e-5, atol=1e-5)
    assert core.long_pgn[0].hie.history == 3  # every earlier period


def test_tpgn_backbone_shapes_and_lengths():
    torch.manual_seed(8)
    model = create("tpgn", d_model=8, n_layers=2, period=6, max_length=30)
    for length in (30, 13, 1):  # whole periods, not a multiple of the period, one step
        x = torch.randn(2, length, 8, requires_grad=True)
        y = model(x)
        assert y.shape == (2, length, 8) and torch.isfinite(y).all()
        y.square().mean().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at most 30 steps"):
        model(torch.randn(1, 31, 8))


def test_tpgn_forecast_net_layout_row_r_column_p_is_step_r_period_plus_p():
    torch.manual_seed(9)
    net = TPGNForecastNet(TPGNConfig(d_model=4, period=6), lookback=18, horizon=10, n_in=1, n_out=1,
                          instance_norm=False).eval()
    x = torch.randn(2, 18, 1)
    with torch.no_grad():
        y = net(x)
        per_column = net.core(x.view(2, 3, 6, 1))  # [B, P, G, future_periods]
    assert net.future_periods == 2 and y.shape == (2, 10, 1)
    for step in range(10):
        torch.testing.assert_close(y[:, step, 0], per_column[:, step % 6, 0, step // 6])


def test_tpgn_lookback_off_the_period_is_front_zero_padding():
    """lookback 40 with period 24 = the same weights on the series zero-padded to 48 in front."""
    torch.manual_seed(10)
    config = TPGNConfig(d_model=8, period=24)
    short = TPGNForecastNet(config, lookback=40, horizon=24, n_in=1, n_out=1, instance_norm=False)
    whole = TPGNForecastNet(config, lookback=48, horizon=24, n_in=1, n_out=1, instance_norm=False)
    whole.load_state_dict(short.state_dict())
    x = torch.randn(3, 40, 1)
    with torch.no_grad():
        torch.testing.assert_close(short(x), whole(torch.cat([torch.zeros(3, 8, 1), x], dim=1)))


@pytest.mark.parametrize(("lookback", "horizon", "n_in", "n_out"),
                         [(48, 24, 1, 1), (50, 30, 3, 1), (30, 7, 2, 2)])
def test_tpgn_forecast_net_shapes_and_gradients(lookback, horizon, n_in, n_out):
    torch.manual_seed(11)
    spec = get_task_net("forecast", "tpgn")
    backbone = create("tpgn", d_model=8, n_layers=2, period=12)
    net = spec.build(backbone, lookback=lookback, horizon=horizon, n_in=n_in, n_out=n_out,
                     instance_norm=True)
    assert isinstance(net, TPGNForecastNet)
    x = torch.randn(4, lookback, n_in, requires_grad=True)
    y = net(x)
    assert y.shape == (4, horizon, n_out) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    for name, param in net.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_tpgn_variates_have_their_own_weights_and_see_the_exogenous():
    torch.manual_seed(12)
    config = TPGNConfig(d_model=4, period=6)
    net = TPGNForecastNet(config, lookback=24, horizon=6, n_in=3, n_out=2, instance_norm=False).eval()
    assert net.core.groups == 2 and net.core.patch_embed.in_channels == 2 * 2  # [value, exogenous]
    x = torch.randn(2, 24, 3)
    other_target, exogenous = x.clone(), x.clone()
    other_target[..., 1] += 1.0
    exogenous[..., 2] += 1.0
    with torch.no_grad():
        base, moved_target, moved_exogenous = net(x), net(other_target), net(exogenous)
    torch.testing.assert_close(base[..., 0], moved_target[..., 0])  # target 0 ignores target 1
    assert (base[..., 1] - moved_target[..., 1]).abs().max() > 1e-4
    assert (base - moved_exogenous).abs().min() > 0  # both targets read the exogenous column
    with pytest.raises(ValueError, match="n_out <= n_in"):
        TPGNForecastNet(config, lookback=24, horizon=6, n_in=1, n_out=2)


# ---- training -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("backbone", "params"), [
    ("tpgn", {"lookback": 48, "horizon": 24}),
    ("pgn", {"backbone_kwargs": {"history": 16}}),
])
def test_tiny_fit_reduces_the_loss(fit_losses, backbone, params):
    df = make_long(n_series=2, length=200)
    _, losses = fit_losses(df, backbone, **params)
    assert len(losses) == 4 and all(b < a for a, b in zip(losses[:-1], losses[1:], strict=True))
    assert losses[-1] < 0.9 * losses[0]


def test_forecaster_tpgn_fit_predict_save_load(tmp_path):
    df = make_long(n_series=3, length=160)
    params = {**TINY, "lookback": 48, "horizon": 24, "backbone_kwargs": {"period": 24}}
    model = tsk.Forecaster("tpgn", **params).fit(df)
    assert isinstance(model.net_, TPGNForecastNet) and model.net_.n_periods == 2
    assert model.learning_rate_ == 1e-3  # trained as the paper does, from random weights
    forecast = model.predict()
    assert list(forecast.columns) == ["unique_id", "ds", "y"] and len(forecast) == 3 * 24
    for uid, part in forecast.groupby("unique_id"):
        last = df[df.unique_id == uid].ds.max()
        assert list(part.ds) == list(pd.date_range(last, periods=25, freq="h")[1:])
        assert part.y.between(df[df.unique_id == uid].y.min() - 3, df[df.unique_id == uid].y.max() + 3).all()
    model.save(tmp_path / "tpgn")
    loaded = tsk.load(tmp_path / "tpgn")
    assert loaded.get_params() == model.get_params()
    pd.testing.assert_frame_equal(model.predict(), loaded.predict(), check_exact=True)


@pytest.mark.parametrize(("switch", "normalized"), [({}, True), ({"instance_norm": False}, False)])
def test_forecaster_instance_norm_reaches_tpgn_network(switch, normalized):
    """RevIN is on by default for TPGN's own network too, and the switch turns it off."""
    df = make_long(n_series=1, length=120)
    params = {**TINY, "lookback": 48, "horizon": 24, "backbone_kwargs": {"period": 24}}
    model = tsk.Forecaster("tpgn", **params, **switch).fit(df)
    assert model.net_.norm.enabled is normalized


@pytest.mark.parametrize("instance_norm", [True, False])
def test_forecaster_tpgn_from_the_ridge_start_on_request(instance_norm):
    """`ridge_init=True` wraps the paper's network in `RidgeStartNet`, whose skip normalizes the
    windows as the network does; the fit starts from the ridge forecast, frozen (lr 1e-3)."""
    df = make_long(n_series=1, length=120)
    params = {**TINY, "lookback": 48, "horizon": 24, "backbone_kwargs": {"period": 24}}
    model = tsk.Forecaster("tpgn", **params, ridge_init=True, instance_norm=instance_norm).fit(df)
    assert isinstance(model.net_, RidgeStartNet) and isinstance(model.net_.net, TPGNForecastNet)
    assert model.net_.norm.enabled is model.net_.net.norm.enabled is instance_norm
    assert not any(p.requires_grad for p in model.net_.skip.parameters())
    assert model.learning_rate_ == 1e-3 and model.predict().y.notna().all()
