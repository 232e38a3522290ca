import pytest
import torch
from torch import nn

from tests.conftest import require_tested_triton
from tsk.kernels import lstm_scan

NAMES = ["gates_x", "R", "bias", "h0", "c0"]


def _inputs(batch, length, heads, head_dim, dtype=torch.float32, bias=True, initial=True,
            device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    scale = head_dim**-0.5

    def rand(*shape, std=1.0):
        return (std * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(dtype)

    tensors = [
        rand(batch, length, 4, heads, head_dim),
        rand(heads, 4 * head_dim, head_dim, std=2 * scale),  # strong enough to matter over time
        rand(4, heads, head_dim) if bias else None,
        rand(batch, heads * head_dim) if initial else None,
        rand(batch, heads * head_dim) if initial else None,
    ]
    return [t.to(device).requires_grad_() if t is not None else None for t in tensors]


def _scan(inputs, backend="auto"):
    """lstm_scan on [gates_x, R, bias, h0, c0], asking for the final state."""
    gates_x, R, bias, h0, c0 = inputs  # noqa: N806
    return lstm_scan(gates_x, R, bias, (h0, c0), output_final_state=True, backend=backend)


def _run(inputs, backend, use_h=True, use_c_last=True):
    h, (h_last, c_last) = _scan(inputs, backend)
    gen = torch.Generator().manual_seed(3)
    loss = 0.3 * h_last.sum()
    if use_h:
        loss = loss + (h * torch.randn(h.shape, generator=gen, dtype=torch.float64).to(h)).sum()
    if use_c_last:
        loss = loss + (c_last * torch.randn(c_last.shape, generator=gen, dtype=torch.float64)
                       .to(c_last)).sum()
    wanted = [t for t in inputs if t is not None]
    return (h, h_last, c_last), torch.autograd.grad(loss, wanted)


def _compare(inputs, backend, check, tol=1e-5, **use):
    outs_ref, grads_ref = _run(inputs, "reference", **use)
    outs, grads = _run(inputs, backend, **use)
    for name, out, out_ref in zip(["h", "h_last", "c_last"], outs, outs_ref, strict=True):
        check(out, out_ref, tol, name)
    names = [n for n, t in zip(NAMES, inputs, strict=True) if t is not None]
    for name, g, g_ref in zip(names, grads, grads_ref, strict=True):
        check(g, g_ref, tol, f"grad {name}")


def _dense_lstm_from_heads(R, bias):  # noqa: N803
    """nn.LSTM equal to the head-wise recurrence: W_ih = identity (gates_x is its input), W_hh the
    block-diagonal matrix the heads describe, one bias."""
    heads, _, head_dim = R.shape
    width = heads * head_dim
    lstm = nn.LSTM(4 * width, width, batch_first=True).double()
    dense = torch.zeros(4, width, width, dtype=torch.float64)  # [gate, out unit, in unit]
    for k in range(heads):
        block = slice(k * head_dim, (k + 1) * head_dim)
        dense[:, block, block] = R[k].detach().double().view(4, head_dim, head_dim)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.eye(4 * width, dtype=torch.float64))
        lstm.weight_hh_l0.copy_(dense.reshape(4 * width, width))
        lstm.bias_ih_l0.copy_(bias.detach().double().reshape(-1))
        lstm.bias_hh_l0.zero_()
    return lstm


@pytest.mark.parametrize("heads,head_dim", [(1, 6), (3, 2)])
def test_reference_is_nn_lstm(heads, head_dim):
    """With one head the reference is nn.LSTM; with several, nn.LSTM with a block-diagonal W_hh."""
    gates_x, R, bias, h0, c0 = _inputs(2, 9, heads, head_dim, torch.float64)  # noqa: N806
    width = heads * head_dim
    lstm = _dense_lstm_from_heads(R, bias)
    expected, (h_n, c_n) = lstm(gates_x.detach().reshape(2, 9, 4 * width),
                                (h0.detach()[None], c0.detach()[None]))
    h, (h_last, c_last) = _scan([gates_x, R, bias, h0, c0], "reference")
    torch.testing.assert_close(h, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h_last, h_n[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(c_last, c_n[0], rtol=1e-10, atol=1e-12)


def test_nn_lstm_weights_in_the_documented_layout():
    """The docstring's recipe: gates_x = x W_ih^T, R = W_hh[None], bias = b_ih + b_hh."""
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 5, batch_first=True)
    x = torch.randn(3, 11, 5)
    expected, (h_n, c_n) = lstm(x)
    gates_x = nn.functional.linear(x, lstm.weight_ih_l0).view(3, 11, 4, 1, 5)
    bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0).view(4, 1, 5)
    for backend in ("reference", "torch"):
        h, (h_last, c_last) = lstm_scan(gates_x, lstm.weight_hh_l0[None], bias,
                                        output_final_state=True, backend=backend)
        torch.testing.assert_close(h, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(c_last, c_n[0], rtol=1e-5, atol=1e-6)


def test_gradcheck_reference_and_torch():
    inputs = _inputs(2, 3, 2, 2, torch.float64)
    for backend in ("reference", "torch"):

        def outputs(*x, backend=backend):
            h, (h_last, c_last) = _scan(x, backend)
            return h, h_last, c_last

        assert torch.autograd.gradcheck(outputs, inputs)


@pytest.mark.parametrize("length", [1, 7, 130])
@pytest.mark.parametrize("batch,heads,head_dim", [(1, 1, 8), (3, 4, 5)])
@pytest.mark.parametrize("initial", [True, False])
def test_torch_matches_reference(length, batch, heads, head_dim, initial, assert_rel_close):
    _compare(_inputs(batch, length, heads, head_dim, initial=initial), "torch", assert_rel_close)


def test_torch_without_bias_and_partial_losses(assert_rel_close):
    inputs = _inputs(2, 6, 2, 3, bias=False)
    _compare(inputs, "torch", assert_rel_close, use_h=False)  # only h_last and c_last
    _compare(inputs, "torch", assert_rel_close, use_c_last=False)


def test_half_inputs_compute_in_fp32():
    gates_x, R, bias, h0, c0 = _inputs(2, 5, 2, 4)  # noqa: N806
    h, (h_last, c_last) = _scan([gates_x.bfloat16(), R, bias, h0, c0], "torch")
    assert h.dtype == h_last.dtype == c_last.dtype == torch.bfloat16
    h_ref, _ = _scan([gates_x, R, bias, h0, c0], "reference")
    assert (h.float() - h_ref).abs().max() < 2e-2


def test_auto_is_torch_on_cpu():
    inputs = _inputs(2, 4, 2, 3)
    h_auto, _ = _scan(inputs)
    h_torch, _ = _scan(inputs, "torch")
    assert torch.equal(h_auto, h_torch)


def test_final_state_only_when_asked_and_pieces_chain():
    """(y, None) by default; two calls chained through the final state equal one call."""
    gates_x, R, bias, _, _ = _inputs(2, 9, 2, 3)  # noqa: N806
    h, final_state = lstm_scan(gates_x, R, bias)
    assert final_state is None
    h1, state = lstm_scan(gates_x[:, :4], R, bias, output_final_state=True)
    h2, _ = lstm_scan(gates_x[:, 4:], R, bias, state)
    torch.testing.assert_close(torch.cat([h1, h2], 1), h)


def test_deprecated_h0_c0_keywords_keep_working():
    gates_x, R, bias, h0, c0 = _inputs(2, 5, 2, 3)  # noqa: N806
    expected = _scan([gates_x, R, bias, h0, c0], "torch")
    with pytest.warns(DeprecationWarning, match="initial_state"):
        h, (h_last, c_last) = lstm_scan(gates_x, R, bias, h0=h0, c0=c0, backend="torch")
    torch.testing.assert_close((h, h_last, c_last), (expected[0], *expected[1]))
    with pytest.raises(ValueError, match="not with the deprecated"):
        lstm_scan(gates_x, R, bias, (h0, c0), h0=h0)


def test_errors():
    gates_x, R, bias, h0, _ = _inputs(2, 4, 2, 3)  # noqa: N806
    with pytest.raises(ValueError, match="gates_x"):
        lstm_scan(gates_x.reshape(2, 4, 24), R)
    with pytest.raises(ValueError, match="R must have shape"):
        lstm_scan(gates_x, R.transpose(1, 2))
    with pytest.raises(ValueError, match="bias"):
        lstm_scan(gates_x, R, bias.reshape(4, 6))
    with pytest.raises(ValueError, match=r"initial_state\[0\] \(h0\)"):
        lstm_scan(gates_x, R, bias, (h0[:1], None))
    with pytest.raises(TypeError, match="pair"):
        lstm_scan(gates_x, R, bias, h0)
    with pytest.raises(ValueError, match="no time steps"):
        lstm_scan(gates_x[:, :0], R)
    with pytest.raises(ValueError, match="Unknown kernel backend"):
        lstm_scan(gates_x, R, backend="cudnn")


@pytest.mark.triton
@pytest.mark.parametrize("batch,length,heads,head_dim", [(1, 1, 1, 16), (3, 7, 2, 5), (17, 4, 3, 3)])
@pytest.mark.parametrize("initial", [True, False])
def test_triton_matches_reference(batch, length, heads, head_dim, initial, triton_device,
                                  assert_rel_close):
    """Odd head sizes (padded to 16 inside), batch 1, and 17 rows (two batch blocks of dR)."""
    inputs = _inputs(batch, length, heads, head_dim, initial=initial, device=triton_device)
    _compare(inputs, "triton", assert_rel_close)


@pytest.mark.triton
def test_triton_long_sequence(triton_device, assert_rel_close):
    _compare(_inputs(1, 103, 1, 4, device=triton_device), "triton", assert_rel_close, tol=3e-5)


@pytest.mark.triton
def test_triton_partial_losses_no_bias_and_no_grad(triton_device, assert_rel_close):
    inputs = _inputs(2, 5, 2, 3, bias=False, device=triton_device)
    _compare(inputs, "triton", assert_rel_close, use_h=False)
    _compare(inputs, "triton", assert_rel_close, use_c_last=False)
    with torch.no_grad():  # the forward then stores no gates or cell states
        h, (_, c_last) = _scan(inputs, "triton")
        h_ref, (_, c_ref) = _scan(inputs, "reference")
    assert_rel_close(h, h_ref, 1e-5, "h")
    assert_rel_close(c_last, c_ref, 1e-5, "c_last")


@pytest.mark.triton
def test_triton_refuses_heads_too_wide_for_chip(triton_device):
    from tsk.kernels.lstm_scan import MAX_HEAD_DIM

    gates_x, R, *_ = _inputs(1, 1, 1, MAX_HEAD_DIM + 1, device=triton_device)  # noqa: N806
    with pytest.raises(ValueError, match="head_dim"):
        lstm_scan(gates_x, R, backend="triton")


def test_triton_autotune_prunes_blocks_larger_than_the_batch():
    require_tested_triton()
    import triton

    from tsk.kernels.lstm_scan.triton import _prune_configs

    configs = [triton.Config({"BLOCK_B": b}) for b in (16, 32, 64)]
    assert [c.kwargs["BLOCK_B"] for c in _prune_configs(configs, {"batch": 3})] == [16]
    assert [c.kwargs["BLOCK_B"] for c in _prune_configs(configs, {"batch": 20})] == [16, 32]
    assert len(_prune_configs(configs, {"batch": 500})) == 3
