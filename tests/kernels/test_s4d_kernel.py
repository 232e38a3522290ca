import math

import pytest
import torch

from tsk.kernels import s4d_kernel


def _params(heads, state, dtype=torch.float32, device="cpu", seed=0):
    """S4D-Lin style parameters: A = -1/2 + i pi n, random B, C, dt in [1e-3, 1e-1]."""
    gen = torch.Generator().manual_seed(seed)
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    a_re = -0.5 * torch.ones(heads, state, dtype=dtype) + 0.1 * torch.rand(heads, state,
                                                                            generator=gen)
    a_im = math.pi * torch.arange(state, dtype=dtype).expand(heads, state)
    A = torch.complex(a_re, a_im)
    B = torch.randn(heads, state, generator=gen, dtype=cdtype)
    C = torch.randn(heads, state, generator=gen, dtype=cdtype)
    log_dt = (torch.rand(heads, generator=gen, dtype=dtype) * math.log(100) + math.log(1e-3))
    return [t.to(device).requires_grad_() for t in (A, B, C, log_dt)]


def _run(params, length, disc, backend):
    K = s4d_kernel(*params, length, discretization=disc, backend=backend)
    weight = torch.randn(K.shape, generator=torch.Generator().manual_seed(1))
    weight = weight.to(device=K.device, dtype=K.dtype)
    return K, torch.autograd.grad((K * weight).sum(), params)


def _to64(params):
    return [p.detach().cpu().to(torch.complex128 if p.is_complex() else torch.float64)
            .requires_grad_() for p in params]


def _compare(params, length, disc, backend, check, tol=1e-4):
    # ground truth: the reference in float64 (in float32 its exp(dtA) - 1 loses digits)
    K_ref, grads_ref = _run(_to64(params), length, disc, "reference")
    K, grads = _run(params, length, disc, backend)
    check(K, K_ref, tol, "K")
    for name, g, g_ref in zip(["A", "B", "C", "log_dt"], grads, grads_ref, strict=True):
        check(g, g_ref, tol, f"grad {name}")


@pytest.mark.parametrize("length", [1, 7, 1000])
@pytest.mark.parametrize("disc", ["zoh", "bilinear"])
def test_torch_matches_reference(length, disc, assert_rel_close):
    _compare(_params(4, 8), length, disc, "torch", assert_rel_close)


@pytest.mark.parametrize("disc", ["zoh", "bilinear"])
def test_torch_long_against_float64_reference(disc, assert_rel_close):
    length = 4096
    params = _params(2, 16)
    K_ref, grads_ref = _run(_to64(params), length, disc, "reference")
    K, grads = _run(params, length, disc, "torch")
    assert_rel_close(K, K_ref, 1e-4, "K")
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert_rel_close(g, g_ref, 1e-3, "grad")


def test_torch_block_boundaries(assert_rel_close):
    """Kernel and gradients across block sizes: one block (the backward reads the forward's
    table: 50, 64), several (1, 7, 49: a shifted table per block)."""
    from tsk.kernels.s4d_kernel.eager import s4d_kernel_torch

    params = _params(2, 4)
    K_ref, grads_ref = _run(_to64(params), 50, "zoh", "reference")
    weight = torch.randn(K_ref.shape, generator=torch.Generator().manual_seed(1))
    for block in (1, 7, 49, 50, 64):
        K = s4d_kernel_torch(*params, 50, block=block)
        assert_rel_close(K, K_ref, 1e-5, f"block {block}")
        grads = torch.autograd.grad((K * weight).sum(), params)
        for name, g, g_ref in zip(["A", "B", "C", "log_dt"], grads, grads_ref, strict=True):
            assert_rel_close(g, g_ref, 1e-4, f"grad {name}, block {block}")


@pytest.mark.parametrize("disc", ["zoh", "bilinear"])
def test_gradcheck_float64(disc):
    params = _params(2, 3, dtype=torch.float64)
    for backend in ("reference", "torch"):
        assert torch.autograd.gradcheck(
            lambda *p, b=backend: s4d_kernel(*p, 9, discretization=disc, backend=b), params
        )


def test_non_contiguous(assert_rel_close):
    A, B, C, log_dt = _params(4, 6)
    A2 = A.detach().t().contiguous().t().requires_grad_()  # same values, transposed strides
    assert not A2.is_contiguous()
    assert_rel_close(s4d_kernel(A2, B, C, log_dt, 20), s4d_kernel(A, B, C, log_dt, 20,
                                                                   backend="reference"))


def test_errors():
    A, B, C, log_dt = _params(2, 3)
    with pytest.raises(ValueError, match="discretization"):
        s4d_kernel(A, B, C, log_dt, 5, discretization="euler")
    with pytest.raises(TypeError, match="complex"):
        s4d_kernel(A.real, B, C, log_dt, 5)
    with pytest.raises(ValueError, match="shape"):
        s4d_kernel(A, B[:1], C, log_dt, 5)
    with pytest.raises(ValueError, match="positive"):
        s4d_kernel(A, B, C, log_dt, 0)


@pytest.mark.triton
@pytest.mark.parametrize("length", [1, 7, 130])
@pytest.mark.parametrize("disc", ["zoh", "bilinear"])
def test_triton_matches_reference(length, disc, triton_device, assert_rel_close):
    _compare(_params(3, 5, device=triton_device), length, disc, "triton", assert_rel_close)


@pytest.mark.triton
def test_triton_state_larger_than_block(triton_device, assert_rel_close):
    _compare(_params(2, 40, device=triton_device), 20, "zoh", "triton", assert_rel_close)
