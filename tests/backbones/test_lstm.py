"""LSTM backbone: nn.LSTM checkpoints keep loading, the lstm_scan path equals nn.LSTM on the same
weights, head-wise (block-diagonal) LSTMs equal a dense nn.LSTM with a block-diagonal W_hh,
step() == forward, Triton == torch, and a tiny fit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.backbones.conftest import run_steps
from tests.conftest import require_tested_triton
from tsk.backbones import create
from tsk.backbones.lstm import HeadwiseLSTMLayer

SMALL = {"d_model": 12, "n_layers": 2, "dropout": 0.0}


def _loss_and_grads(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    x = x.clone().requires_grad_()
    y = model(x)
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(y)
    grads = torch.autograd.grad((y * weights).sum(), [x, *model.parameters()])
    return y, list(grads)


def test_one_head_keeps_nn_lstm_state_dict():
    torch.manual_seed(0)
    model = create("lstm", **SMALL)
    reference = nn.LSTM(12, 12, num_layers=2, batch_first=True)
    assert set(model.state_dict()) == {f"lstm.{k}" for k in reference.state_dict()}
    model.load_state_dict({f"lstm.{k}": v for k, v in reference.state_dict().items()})
    x = torch.randn(2, 9, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x)[0])


def test_one_head_scan_path_equals_nn_lstm():
    """backend="reference" runs lstm_scan on nn.LSTM's own weights: same outputs and gradients."""
    torch.manual_seed(0)
    dense = create("lstm", **SMALL)  # auto on CPU: nn.LSTM
    scanned = create("lstm", **SMALL, backend="reference")
    scanned.load_state_dict(dense.state_dict())
    x = torch.randn(3, 11, 12)
    y_dense, grads_dense = _loss_and_grads(dense, x)
    y_scan, grads_scan = _loss_and_grads(scanned, x)
    torch.testing.assert_close(y_scan, y_dense, rtol=1e-5, atol=1e-6)
    for g_scan, g_dense in zip(grads_scan, grads_dense, strict=True):
        torch.testing.assert_close(g_scan, g_dense, rtol=1e-4, atol=1e-5)


def _dense_twin(model: nn.Module) -> nn.LSTM:
    """An nn.LSTM with the same math as a head-wise model: W_hh block-diagonal, one bias."""
    config = model.config
    d_model, heads = config.d_model, config.heads
    head_dim = d_model // heads
    twin = nn.LSTM(d_model, d_model, num_layers=config.n_layers, batch_first=True)
    for layer, weights in enumerate(model.layers):
        dense_hh = torch.zeros(4, d_model, d_model)  # [gate, out unit, in unit]
        for k in range(heads):
            block = slice(k * head_dim, (k + 1) * head_dim)
            dense_hh[:, block, block] = weights.weight_hh[k].detach().view(4, head_dim, head_dim)
        with torch.no_grad():
            getattr(twin, f"weight_ih_l{layer}").copy_(weights.weight_ih)
            getattr(twin, f"weight_hh_l{layer}").copy_(dense_hh.reshape(4 * d_model, d_model))
            getattr(twin, f"bias_ih_l{layer}").copy_(weights.bias.reshape(-1))
            getattr(twin, f"bias_hh_l{layer}").zero_()
    return twin


@pytest.mark.parametrize("heads", [2, 3, 12])
def test_heads_equal_a_block_diagonal_nn_lstm(heads):
    torch.manual_seed(0)
    model = create("lstm", **SMALL, heads=heads).eval()
    assert all(isinstance(m, HeadwiseLSTMLayer) for m in model.layers)
    assert model.layers[0].weight_hh.shape == (heads, 4 * 12 // heads, 12 // heads)
    x = torch.randn(2, 13, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _dense_twin(model)(x)[0], rtol=1e-5, atol=1e-6)


def test_heads_init_bounds():
    torch.manual_seed(0)
    layer = HeadwiseLSTMLayer(d_model=64, heads=4)
    assert layer.weight_ih.abs().max() <= 1 / 8 and layer.weight_ih.abs().max() > 0.9 / 8
    assert layer.weight_hh.abs().max() <= 1 / 4 and layer.weight_hh.abs().max() > 0.9 / 4


@pytest.mark.parametrize("length", [1, 7, 33])
@pytest.mark.parametrize("heads", [2, 4])
def test_heads_step_matches_forward(length, heads):
    torch.manual_seed(0)
    model = create("lstm", **SMALL, heads=heads).eval()
    x = torch.randn(2, length, 12)
    with torch.no_grad():
        torch.testing.assert_close(run_steps(model, x)[0], model(x), rtol=1e-5, atol=1e-5)


def test_heads_causal_and_trainable():
    torch.manual_seed(0)
    model = create("lstm", **SMALL, heads=3)
    x = torch.randn(2, 20, 12)
    perturbed = x.clone()
    perturbed[:, 11:] += 1.0
    with torch.no_grad():
        a, b = model.eval()(x), model(perturbed)
    torch.testing.assert_close(a[:, :11], b[:, :11])
    assert (a[:, 11:] - b[:, 11:]).abs().max() > 1e-3
    _, grads = _loss_and_grads(model.train(), x)
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    model = create("lstm", d_model=8, n_layers=2, dropout=0.5, heads=2)
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), model(x))
        assert not torch.equal(model.train()(x), model.eval()(x))


def test_config_errors():
    with pytest.raises(ValueError, match="heads must be a positive divisor"):
        create("lstm", d_model=10, heads=3)
    with pytest.raises(ValueError, match="Did you mean 'triton'"):
        create("lstm", backend="trition")


@pytest.mark.triton
@pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0")  # triton 3.6 interpreter
@pytest.mark.parametrize("heads", [1, 2])
def test_triton_equals_torch(heads, triton_device, monkeypatch):
    """backend="triton" (interpreted on CPU) == backend="torch": forward, gradients, step."""
    # cuDNN's LSTM (the torch path at heads=1) would otherwise round matmuls to TF32
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    small = {"d_model": 8, "n_layers": 2, "dropout": 0.0, "heads": heads}
    fast = create("lstm", **small, backend="torch").to(triton_device)
    fused = create("lstm", **small, backend="triton").to(triton_device)
    fused.load_state_dict(fast.state_dict())
    x = torch.randn(2, 6, 8, device=triton_device)
    y_fast, grads_fast = _loss_and_grads(fast, x)
    y_fused, grads_fused = _loss_and_grads(fused, x)
    torch.testing.assert_close(y_fused, y_fast, rtol=1e-5, atol=1e-6)
    for g_fused, g_fast in zip(grads_fused, grads_fast, strict=True):
        torch.testing.assert_close(g_fused, g_fast, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(run_steps(fused, x[:, :3])[0], fused(x[:, :3]),
                                   rtol=1e-5, atol=1e-5)


def test_heads_fit_reduces_the_loss(long_df, fit_losses):
    model, losses = fit_losses(long_df, "lstm", backbone_kwargs={"heads": 2})
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert len(model.predict()) == 3 * 4


def test_auto_backend_choice(monkeypatch):
    """auto: nn.LSTM off CUDA; on CUDA the Triton scan for heads that fit on-chip, else cuDNN."""
    import tsk.backbones.lstm as lstm_module

    x = torch.zeros(1, 1, 8)
    assert create("lstm", d_model=8).eval()._scan_backend(x) is None
    assert create("lstm", d_model=8, heads=2)._scan_backend(x) == "auto"  # lstm_scan decides
    assert create("lstm", d_model=8, backend="torch")._scan_backend(x) is None
    require_tested_triton()
    monkeypatch.setattr(lstm_module, "resolve_backend", lambda backend, *tensors: "triton")  # "CUDA"
    assert create("lstm", d_model=8)._scan_backend(x) == "triton"
    assert create("lstm", d_model=128)._scan_backend(x) is None
    assert create("lstm", d_model=8, backend="torch")._scan_backend(x) is None
