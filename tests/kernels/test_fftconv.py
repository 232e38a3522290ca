import pytest
import torch

from tsk.kernels import fftconv


def _inputs(batch, heads, length, taps, *, with_d, with_gate, dtype=torch.float32, device="cpu"):
    gen = torch.Generator().manual_seed(length * 31 + taps)
    u = torch.randn(batch, heads, length, generator=gen, dtype=dtype)
    k = torch.randn(heads, taps, generator=gen, dtype=dtype) / taps**0.5
    D = torch.randn(heads, generator=gen, dtype=dtype) if with_d else None
    gate = torch.randn(batch, heads, length, generator=gen, dtype=dtype) if with_gate else None
    return [t.to(device).requires_grad_() if t is not None else None for t in (u, k, D, gate)]


def _run(inputs, backend, seed=0):
    y = fftconv(*inputs, backend=backend)
    weight = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed)).to(y.device)
    wrt = [t for t in inputs if t is not None]
    return y, torch.autograd.grad((y * weight).sum(), wrt)


def _compare(inputs, backend, check, tol=1e-4):
    y_ref, grads_ref = _run(inputs, "reference")
    y, grads = _run(inputs, backend)
    check(y, y_ref, tol, "y")
    for i, (g, g_ref) in enumerate(zip(grads, grads_ref, strict=True)):
        check(g, g_ref, tol, f"grad {i}")


@pytest.mark.parametrize("length,taps", [(1, 1), (7, 4), (1000, 501), (431, 431), (337, 64)])
@pytest.mark.parametrize("with_d,with_gate", [(False, False), (True, False), (True, True)])
def test_torch_matches_reference(length, taps, with_d, with_gate, assert_rel_close):
    _compare(_inputs(2, 3, length, taps, with_d=with_d, with_gate=with_gate), "torch",
             assert_rel_close)


def test_full_length_kernel_batch_one_long(assert_rel_close):
    _compare(_inputs(1, 2, 4096, 4096, with_d=True, with_gate=True), "torch", assert_rel_close)


def test_non_contiguous_inputs(assert_rel_close):
    u = torch.randn(9, 3, 2).transpose(0, 2).requires_grad_()  # [2, 3, 9], strided
    k = torch.randn(5, 3).t().requires_grad_()  # [3, 5], strided
    gate = torch.randn(9, 3, 2).transpose(0, 2).requires_grad_()
    D = torch.randn(6)[::2].requires_grad_()
    assert not u.is_contiguous() and not k.is_contiguous() and not D.is_contiguous()
    _compare([u, k, D, gate], "torch", assert_rel_close)


def test_auto_is_torch_even_where_triton_would_be_picked(monkeypatch):
    """On CUDA the generic rule would give Triton; fftconv's `auto` stays on torch.fft (faster
    there, measured), so it never consults the rule."""
    import importlib

    module = importlib.import_module("tsk.kernels.fftconv")
    monkeypatch.setattr(module, "resolve_backend", lambda *a, **k: "triton")
    monkeypatch.setattr(module, "fftconv_torch", lambda *a: "torch path")
    inputs = _inputs(1, 2, 5, 3, with_d=True, with_gate=False)
    assert fftconv(*inputs) == "torch path"


def test_reference_gradcheck():
    inputs = _inputs(2, 2, 6, 4, with_d=True, with_gate=True, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda *a: fftconv(*a, backend="reference"), inputs)
    assert torch.autograd.gradcheck(lambda *a: fftconv(*a, backend="torch"), inputs)


def test_half_precision_keeps_dtype():
    u = torch.randn(1, 2, 8, dtype=torch.bfloat16)
    k = torch.randn(2, 8, dtype=torch.bfloat16)
    assert fftconv(u, k).dtype == torch.bfloat16


def test_errors():
    u, k = torch.randn(1, 2, 4), torch.randn(2, 5)
    with pytest.raises(ValueError, match="not be longer"):
        fftconv(u, k)
    with pytest.raises(ValueError, match="shape"):
        fftconv(u, torch.randn(3, 2))
    with pytest.raises(ValueError, match="Did you mean 'torch'"):
        fftconv(u, k[:, :2], backend="torhc")
    with pytest.raises(TypeError, match="real"):
        fftconv(u.to(torch.complex64), k[:, :2])


@pytest.mark.triton
@pytest.mark.parametrize("length,taps", [(1, 1), (7, 7), (33, 10)])
@pytest.mark.parametrize("with_d,with_gate", [(False, False), (True, True), (False, True)])
def test_triton_matches_reference(length, taps, with_d, with_gate, triton_device,
                                  assert_rel_close):
    inputs = _inputs(2, 3, length, taps, with_d=with_d, with_gate=with_gate, device=triton_device)
    _compare(inputs, "triton", assert_rel_close)
