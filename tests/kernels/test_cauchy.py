import math

import pytest
import torch

from tsk.kernels import cauchy


def _inputs(heads, state, length, *, z_per_head=False, dtype=torch.complex64, device="cpu",
            seed=0):
    """S4-like setup: w in the left half plane, z on the unit circle (roots of unity)."""
    gen = torch.Generator().manual_seed(seed)
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    w = torch.complex(-0.5 - torch.rand(heads, state, generator=gen, dtype=real),
                      math.pi * torch.randn(heads, state, generator=gen, dtype=real))
    v = torch.complex(torch.randn(heads, state, generator=gen, dtype=real),
                      torch.randn(heads, state, generator=gen, dtype=real))
    angles = 2 * math.pi * torch.arange(length, dtype=real) / max(length, 1)
    z = torch.polar(torch.ones_like(angles), angles)
    if z_per_head:
        z = z * (1 + 0.1 * torch.rand(heads, 1, generator=gen, dtype=real))
    return [t.to(device).requires_grad_() for t in (v, z, w)]


def _run(inputs, backend):
    out = cauchy(*inputs, backend=backend)
    gen = torch.Generator().manual_seed(5)
    weight = torch.randn(*out.shape, 2, generator=gen, dtype=torch.float64)
    weight = torch.view_as_complex(weight).to(device=out.device, dtype=out.dtype)
    loss = (out * weight).real.sum()
    return out, torch.autograd.grad(loss, inputs)


def _compare(inputs, backend, check, tol=1e-4):
    out_ref, grads_ref = _run(inputs, "reference")
    out, grads = _run(inputs, backend)
    check(out, out_ref, tol, "out")
    for name, g, g_ref in zip(["v", "z", "w"], grads, grads_ref, strict=True):
        check(g, g_ref, tol, f"grad {name}")


@pytest.mark.parametrize("length", [1, 7, 1000])
@pytest.mark.parametrize("z_per_head", [False, True])
def test_torch_matches_reference(length, z_per_head, assert_rel_close):
    _compare(_inputs(3, 8, length, z_per_head=z_per_head), "torch", assert_rel_close)


def test_torch_long_several_blocks(monkeypatch, assert_rel_close):
    from tsk.kernels.cauchy import eager as fast

    monkeypatch.setattr(fast, "_TARGET_BLOCK_ELEMENTS", 2 * 16 * 100)  # blocks of 100 points
    _compare(_inputs(2, 16, 4096), "torch", assert_rel_close)


def test_gradcheck_float64():
    inputs = _inputs(2, 3, 5, dtype=torch.complex128)
    for backend in ("reference", "torch"):
        assert torch.autograd.gradcheck(lambda *x, b=backend: cauchy(*x, backend=b), inputs)


def test_real_z_and_non_contiguous(assert_rel_close):
    v, _, w = _inputs(4, 6, 3)
    v2 = v.detach().t().contiguous().t().requires_grad_()
    assert not v2.is_contiguous()
    z = torch.linspace(-1, 1, 9).requires_grad_()  # real z is promoted to complex
    out = cauchy(v2, z, w)
    assert out.dtype == torch.complex64
    assert_rel_close(out, cauchy(v, z, w, backend="reference"))


def test_errors():
    v, z, w = _inputs(2, 3, 4)
    with pytest.raises(ValueError, match="w must have shape"):
        cauchy(v, z, w[:1])
    with pytest.raises(ValueError, match="z must have shape"):
        cauchy(v, z.detach().expand(3, 4), w)


@pytest.mark.triton
@pytest.mark.parametrize("length,state,z_per_head", [(1, 3, False), (70, 40, True),
                                                     (9, 5, False)])
def test_triton_matches_reference(length, state, z_per_head, triton_device, assert_rel_close):
    inputs = _inputs(2, state, length, z_per_head=z_per_head, device=triton_device)
    _compare(inputs, "triton", assert_rel_close)
