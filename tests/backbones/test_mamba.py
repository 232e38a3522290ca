"""Mamba: the paper's initialisation, the selective_scan kernel op, step() == forward, the
bidirectional variant, S-Mamba's post-norm layout, optimizer hints and a tiny fit."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import tsk.backbones.mamba as mamba_module
from tests.backbones.conftest import run_steps
from tsk.backbones import create
from tsk.backbones.common import causal_depthwise_conv, dropout
from tsk.backbones.mamba import BidirectionalMamba, MambaMixer, SMambaEncoder
from tsk.training import TaskModule

SMALL = {"d_model": 16, "n_layers": 2, "d_state": 8}


def mixers(model: torch.nn.Module) -> list[MambaMixer]:
    return [m for m in model.modules() if isinstance(m, MambaMixer)]


@pytest.mark.parametrize("taps,bias", [(1, True), (2, False), (4, True), (7, True)])
def test_causal_depthwise_conv_is_the_modules_convolution(taps, bias):
    """The shifted multiply-adds give the depthwise Conv1d's first L outputs and its
    gradients (input, weight, bias), also with more taps than steps (7 > 5)."""
    torch.manual_seed(taps)
    conv = torch.nn.Conv1d(6, 6, taps, groups=6, padding=taps - 1, bias=bias)
    x = torch.randn(3, 6, 5, requires_grad=True)
    weight = torch.randn(3, 6, 5)
    expected = conv(x)[..., :5]
    grads_expected = torch.autograd.grad((expected * weight).sum(), [x, *conv.parameters()])
    got = causal_depthwise_conv(x, conv)
    grads = torch.autograd.grad((got * weight).sum(), [x, *conv.parameters()])
    torch.testing.assert_close(got, expected)
    for g, g_expected in zip(grads, grads_expected, strict=True):
        torch.testing.assert_close(g, g_expected)


def test_init_follows_the_paper():
    torch.manual_seed(0)
    model = create("mamba", d_model=40, n_layers=1, d_state=12, expand=2, dt_min=1e-3, dt_max=0.1)
    (mixer,) = mixers(model)
    d_inner, dt_rank = 80, math.ceil(40 / 16)
    assert mixer.dt_rank == dt_rank == 3
    assert mixer.in_proj.weight.shape == (2 * d_inner, 40) and mixer.in_proj.bias is None
    assert mixer.conv1d.weight.shape == (d_inner, 1, 4)  # depthwise, d_conv = 4
    assert mixer.x_proj.weight.shape == (dt_rank + 2 * 12, d_inner)
    assert mixer.out_proj.weight.shape == (40, d_inner)
    # A = -[1..N] per channel (S4D-Real), stored as its log; D = 1
    torch.testing.assert_close(mixer.A_log, torch.log(torch.arange(1.0, 13.0)).expand(d_inner, -1))
    torch.testing.assert_close(mixer.A(), -torch.arange(1.0, 13.0).expand(d_inner, -1))
    torch.testing.assert_close(mixer.D, torch.ones(d_inner))
    # softplus(dt bias) is the step size: log-uniform in [dt_min, dt_max]
    dt = torch.nn.functional.softplus(mixer.dt_proj.bias.detach().double())
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    log_dt = dt.log()
    span = math.log(0.1) - math.log(1e-3)
    assert log_dt.max() - log_dt.min() > 0.7 * span  # spread over the range, not a constant
    assert abs(log_dt.mean() - (math.log(1e-3) + span / 2)) < 0.2 * span  # centred (uniform in log)
    bound = dt_rank**-0.5
    assert mixer.dt_proj.weight.abs().max() <= bound and mixer.dt_proj.weight.abs().max() > 0.5 * bound


def test_dt_floor_and_rank_option():
    model = create("mamba", d_model=16, n_layers=1, dt_min=1e-6, dt_max=2e-6, dt_init_floor=1e-4,
                   dt_rank=5)
    (mixer,) = mixers(model)
    assert mixer.dt_rank == 5
    dt = torch.nn.functional.softplus(mixer.dt_proj.bias.detach().double())
    torch.testing.assert_close(dt, torch.full_like(dt, 1e-4), rtol=1e-4, atol=0)
    with pytest.raises(ValueError, match="dt_rank must be 'auto' or a positive int"):
        create("mamba", dt_rank="big")


def test_no_weight_decay_on_A_log_D_and_dt_bias():
    model = create("mamba", **SMALL)
    module = TaskModule(model, learning_rate=1e-3, weight_decay=0.1)
    groups = module.configure_optimizers()["optimizer"].param_groups
    no_decay = {id(p) for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    for mixer in mixers(model):
        assert {id(mixer.A_log), id(mixer.D), id(mixer.dt_proj.bias)} <= no_decay
        assert id(mixer.in_proj.weight) not in no_decay and id(mixer.dt_proj.weight) not in no_decay


def test_block_runs_the_selective_scan_kernel_op(monkeypatch):
    """The block calls `tsk.kernels.selective_scan`, and its output equals the same block run on
    the op's reference (literal loop) backend, gradients included."""
    torch.manual_seed(0)
    model = create("mamba", **SMALL)
    x = torch.randn(2, 11, 16)
    calls = []
    real_scan = mamba_module.selective_scan

    def counting_scan(*args, **kwargs):
        calls.append(kwargs)
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(mamba_module, "selective_scan", counting_scan)
    fast = model(x)
    assert len(calls) == 2 and all(c["delta_softplus"] and c["z"] is not None for c in calls)
    fast.square().sum().backward()
    fast_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for mixer in mixers(model):
        mixer.scan_backend = "reference"
    reference = model(x)
    reference.square().sum().backward()
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)
    for got, want in zip(fast_grads, (p.grad for p in model.parameters()), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("length", [1, 3, 13])
@pytest.mark.parametrize("d_ff", [0, 24])
def test_step_matches_forward_on_odd_lengths(length, d_ff):
    """Lengths shorter than d_conv included: the conv cache starts from zeros like the padding.
    With S-Mamba's feed-forward sublayers (`d_ff`) too."""
    torch.manual_seed(1)
    model = create("mamba", **SMALL, d_ff=d_ff).eval()
    assert len(model.stack.blocks) == SMALL["n_layers"] * (2 if d_ff else 1)
    x = torch.randn(3, length, 16)
    with torch.no_grad():
        full, (steps, state) = model(x), run_steps(model, x)
    torch.testing.assert_close(steps, full, rtol=1e-5, atol=1e-5)
    conv_state, ssm_state = state[0]
    assert conv_state.shape == (3, 32, 4) and ssm_state.shape == (3, 32, 8)
    assert ssm_state.dtype == torch.float32


def test_bidirectional_reads_the_future():
    torch.manual_seed(0)
    model = create("mamba", **SMALL, bidirectional=True).eval()
    assert all(isinstance(block, BidirectionalMamba) for block in model.stack.blocks)
    x = torch.randn(2, 20, 16)
    perturbed = x.clone()
    perturbed[:, 15:] += torch.randn_like(perturbed[:, 15:])  # not constant: norms remove that
    with torch.no_grad():
        a, b = model(x), model(perturbed)
    assert a.shape == (2, 20, 16)
    assert (a[:, :15] - b[:, :15]).abs().max() > 1e-3  # the past sees the change: not causal
    with pytest.raises(ValueError, match="bidirectional"):
        model.initial_state(2)


def test_bidirectional_is_forward_plus_reversed_backward():
    torch.manual_seed(0)
    model = create("mamba", **SMALL, bidirectional=True).eval()
    block = model.stack.blocks[0]
    x = torch.randn(2, 9, 16)
    with torch.no_grad():
        expected = block.forward_mixer(x) + block.backward_mixer(x.flip(1)).flip(1)
        torch.testing.assert_close(block(x), expected)
        # without the backward branch, the block is the causal one
        for b in model.stack.blocks:
            b.backward_mixer.out_proj.weight.zero_()
        y = model(x)
        x2 = x.clone()
        x2[:, 5:] += torch.randn_like(x2[:, 5:])
        torch.testing.assert_close(model(x2)[:, :5], y[:, :5])


def test_fit_reduces_the_loss(long_df, fit_losses):
    model, losses = fit_losses(long_df, "mamba")
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert len(model.predict()) == 3 * 4


def test_pre_norm_variant_on_variate_tokens_fits(wide_df, fit_losses):
    """tsk's own variant of S-Mamba: its tokens (variates and calendar features), bidirectional
    blocks with feed-forward sublayers, in the pre-norm RMSNorm stack."""
    model, losses = fit_losses(wide_df, "mamba", tokens="variates", channel_independent=False,
                               time_features=True,
                               backbone_kwargs={"bidirectional": True, "d_ff": 16})
    assert losses[-1] < losses[0]
    assert model.n_inputs_ == 3 + 5  # three variates, five calendar features of 15-minute data
    assert list(model.predict().columns) == ["ds", "c0", "c1", "c2"]


S_MAMBA = {"d_model": 10, "n_layers": 2, "d_state": 3, "d_conv": 2, "expand": 1, "d_ff": 14,
           "layout": "s-mamba", "bidirectional": True}


def s_mamba_by_hand(model: torch.nn.Module, x: torch.Tensor, p: float) -> torch.Tensor:
    """S-Mamba's encoder written out from the model's own submodules: per layer
    `x1 = norm1(x + fwd(x) + flip(rev(flip(x))))`, `norm2(x1 + drop(W2 drop(gelu(W1 x1))))`,
    then a final norm; dropout draws in the order the layer makes them."""
    for layer in model.stack.layers:
        fwd, rev = layer.mixer.forward_mixer, layer.mixer.backward_mixer
        x1 = layer.norm1(x + fwd(x) + rev(x.flip(1)).flip(1))
        w1, w2 = layer.feed_forward.net[0], layer.feed_forward.net[3]
        ffn = w2(dropout(F.gelu(w1(x1)), p))
        x = layer.norm2(x1 + dropout(ffn, p))
    return model.stack.final_norm(x)


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_s_mamba_layout_is_its_post_norm_encoder(p):
    torch.manual_seed(0)
    model = create("mamba", **S_MAMBA, dropout=p).train(p > 0)
    assert isinstance(model.stack, SMambaEncoder) and len(model.stack.layers) == 2
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm | torch.nn.RMSNorm)]
    assert len(norms) == 2 * 2 + 1 and all(isinstance(m, torch.nn.LayerNorm) for m in norms)
    assert all(m.eps == 1e-5 for m in norms)
    with torch.no_grad():  # non-trivial affine terms, so a norm after a norm is not the identity
        for norm in norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_()
    layer = model.stack.layers[0]
    forward, backward = layer.mixer.forward_mixer, layer.mixer.backward_mixer
    assert forward.conv1d.kernel_size == (2,) and forward.d_inner == 10  # d_conv 2, expand 1
    assert forward.in_proj.weight.data_ptr() != backward.in_proj.weight.data_ptr()  # not shared
    assert layer.feed_forward.net[0].weight.shape == (14, 10)
    x = torch.randn(3, 7, 10)
    torch.manual_seed(1)
    got = model(x)
    torch.manual_seed(1)
    want = s_mamba_by_hand(model, x, p)
    torch.testing.assert_close(got, want)


def test_s_mamba_layout_reads_both_directions():
    torch.manual_seed(0)
    model = create("mamba", **S_MAMBA).eval()
    x = torch.randn(2, 9, 10)
    future = x.clone()
    future[:, 6:] += torch.randn_like(future[:, 6:])
    with torch.no_grad():
        assert (model(x)[:, :6] - model(future)[:, :6]).abs().max() > 1e-3  # not causal
        # with the backward block a copy of the forward one, reversing the input reverses the
        # output: both directions enter the same way
        for layer in model.stack.layers:
            layer.mixer.backward_mixer.load_state_dict(layer.mixer.forward_mixer.state_dict())
        torch.testing.assert_close(model(x.flip(1)), model(x).flip(1), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="bidirectional"):
        model.initial_state(2)


@pytest.mark.parametrize("length", [1, 5])
def test_causal_s_mamba_layout_steps_like_forward(length):
    """Without the reversed block the post-norm layer is causal (norms and feed-forward act per
    token), so step() runs it."""
    torch.manual_seed(2)
    model = create("mamba", **{**S_MAMBA, "bidirectional": False}).eval()
    assert all(isinstance(layer.mixer, MambaMixer) for layer in model.stack.layers)
    x = torch.randn(3, length, 10)
    with torch.no_grad():
        full, (steps, _) = model(x), run_steps(model, x)
    torch.testing.assert_close(steps, full, rtol=1e-5, atol=1e-5)


def test_layout_is_checked():
    with pytest.raises(ValueError, match="layout must be one of 'pre-norm', 's-mamba', got 'post'"):
        create("mamba", **SMALL, layout="post")


def test_s_mamba_layout_fits_on_variate_tokens(wide_df, fit_losses):
    """S-Mamba: variates and calendar features as tokens through its post-norm encoder."""
    backbone_kwargs = {key: S_MAMBA[key] for key in ("d_state", "d_conv", "expand", "layout",
                                                    "bidirectional")}
    model, losses = fit_losses(wide_df, "mamba", tokens="variates", channel_independent=False,
                               time_features=True, max_epochs=1,
                               backbone_kwargs={**backbone_kwargs, "d_ff": 16})
    assert len(losses) == 1 and math.isfinite(losses[0])
    (encoder,) = [m for m in model.net_.modules() if isinstance(m, SMambaEncoder)]
    assert encoder.layers[0].feed_forward.net[0].out_features == 16
    assert model.n_inputs_ == 3 + 5
    assert list(model.predict().columns) == ["ds", "c0", "c1", "c2"]


def test_feed_forward_sublayer_is_checked():
    with pytest.raises(ValueError, match="d_ff must be >= 0"):
        create("mamba", **SMALL, d_ff=-1)
