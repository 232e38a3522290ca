import pytest
import torch

from tsk.kernels import linear_scan


def _inputs(shape, dtype=torch.float32, initial=True, device="cpu", seed=0):
    gen = torch.Generator().manual_seed(seed)
    real = torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32
    mag = 0.2 + 0.8 * torch.rand(shape, generator=gen, dtype=real)
    if dtype.is_complex:
        phase = 6.3 * torch.rand(shape, generator=gen, dtype=real)
        a = torch.polar(mag, phase)
    else:
        a = mag * torch.sign(torch.rand(shape, generator=gen, dtype=real) - 0.2)  # some a < 0
    b = torch.randn(shape, generator=gen, dtype=real).to(dtype)
    if dtype.is_complex:
        b = b + 1j * torch.randn(shape, generator=gen, dtype=real)
    h0 = torch.randn(*shape[:-2], shape[-1], generator=gen, dtype=real).to(dtype) if initial \
        else None
    return [t.to(device).requires_grad_() if t is not None else None for t in (a, b, h0)]


def _run(inputs, backend):
    h, final = linear_scan(*inputs, output_final_state=True, backend=backend)
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(h.shape, generator=gen, dtype=torch.float64).to(h)
    w_final = torch.randn(final.shape, generator=gen, dtype=torch.float64).to(final)
    loss = (h * w).real.sum() + (final * w_final).real.sum()
    return h, final, torch.autograd.grad(loss, [t for t in inputs if t is not None])


def _compare(inputs, backend, check, tol=1e-4):
    h_ref, final_ref, grads_ref = _run(inputs, "reference")
    h, final, grads = _run(inputs, backend)
    check(h, h_ref, tol, "h")
    check(final, final_ref, tol, "final state")
    for name, g, g_ref in zip(["a", "b", "h0"], grads, grads_ref, strict=False):
        check(g, g_ref, tol, f"grad {name}")


@pytest.mark.parametrize("length", [1, 7, 1000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
@pytest.mark.parametrize("initial", [True, False])
def test_torch_matches_reference(length, dtype, initial, assert_rel_close):
    _compare(_inputs((2, length, 5), dtype, initial), "torch", assert_rel_close)


def test_torch_long_and_other_layouts(assert_rel_close):
    _compare(_inputs((1, 4096, 8)), "torch", assert_rel_close)
    _compare(_inputs((2, 3, 10, 4)), "torch", assert_rel_close)  # [B, H, L, D]
    _compare(_inputs((10, 4)), "torch", assert_rel_close)  # [L, D]


def test_broadcast_a_and_zero_decay(assert_rel_close):
    a = torch.rand(9, 4).requires_grad_()
    with torch.no_grad():
        a[3] = 0.0  # a zero resets the state: no division anywhere in the fast path
    b = torch.randn(3, 9, 4, requires_grad=True)
    _compare([a, b, None], "torch", assert_rel_close)


def test_non_contiguous(assert_rel_close):
    a, b, h0 = _inputs((3, 11, 6))
    a2 = a.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()
    b2 = b.detach()[:, :, ::1].transpose(0, 1).contiguous().transpose(0, 1).requires_grad_()
    assert not a2.is_contiguous() and not b2.is_contiguous()
    _compare([a2, b2, h0], "torch", assert_rel_close)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_gradcheck(dtype):
    inputs = _inputs((2, 6, 3), dtype)
    for backend in ("reference", "torch"):
        assert torch.autograd.gradcheck(
            lambda *x, b=backend: linear_scan(*x, output_final_state=True, backend=b), inputs
        )


def test_final_state_none_unless_asked():
    a, b, _ = _inputs((1, 4, 2))
    h, final = linear_scan(a, b)
    assert final is None and h.shape == (1, 4, 2)


def test_errors():
    a, b, h0 = _inputs((2, 4, 3))
    with pytest.raises(ValueError, match="broadcast"):
        linear_scan(a[:, :3], b)
    with pytest.raises(ValueError, match="initial_state"):
        linear_scan(a, b, h0[:1])


@pytest.mark.triton
@pytest.mark.parametrize("length", [1, 9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
@pytest.mark.parametrize("initial", [True, False])
def test_triton_matches_reference(length, dtype, initial, triton_device, assert_rel_close):
    _compare(_inputs((2, length, 70), dtype, initial, device=triton_device), "triton",
             assert_rel_close)
