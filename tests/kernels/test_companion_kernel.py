import pytest
import torch

from tsk.kernels import companion_kernel
from tsk.kernels.companion_kernel.eager import row_times_power
from tsk.kernels.companion_kernel.reference import companion_matrix


def _params(heads, state, dtype=torch.float32, seed=0, normalized=True):
    """Random (a, b, c); a scaled to unit l1 norm as SpaceTime does (eigenvalues in the unit disk)."""
    gen = torch.Generator().manual_seed(seed)
    a, b, c = (torch.randn(heads, state, generator=gen, dtype=torch.float64) for _ in range(3))
    if normalized:
        a = a / a.abs().sum(-1, keepdim=True)
    return [t.to(dtype).requires_grad_() for t in (a, b, c)]


def _run(params, length, backend):
    K = companion_kernel(*params, length, backend=backend)
    weight = torch.randn(K.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # with L = 1 the kernel is c.b: a is unused and its gradient is zero
    grads = torch.autograd.grad((K * weight.to(K.dtype)).sum(), params, allow_unused=True)
    return K, [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def _to64(params):
    return [p.detach().double().requires_grad_() for p in params]


@pytest.mark.parametrize("length", [1, 7, 1000])
def test_torch_matches_reference(length, assert_rel_close):
    params = _params(4, 8)
    K_ref, grads_ref = _run(_to64(params), length, "reference")
    K, grads = _run(params, length, "torch")
    assert K.dtype == torch.float32
    assert_rel_close(K, K_ref, 1e-5, "K")
    for name, g, g_ref in zip("abc", grads, grads_ref, strict=True):
        if g_ref.abs().max() == 0:  # L = 1: K = c.b does not depend on a
            assert g.abs().max() < 1e-5, f"grad {name} should vanish"
        else:
            assert_rel_close(g, g_ref, 1e-4, f"grad {name}")


@pytest.mark.parametrize(("state", "length"), [(1, 9), (2, 3), (40, 7), (64, 336)])
def test_state_sizes_against_reference(state, length, assert_rel_close):
    """N = 1 (a scalar recurrence), N > L (degrees folded modulo L), the paper's N = 64."""
    params = _params(3, state, dtype=torch.float64, seed=state)
    K_ref, grads_ref = _run(params, length, "reference")
    K, grads = _run(params, length, "torch")
    assert_rel_close(K, K_ref, 1e-10, "K")
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert_rel_close(g, g_ref, 1e-9, "grad")


def test_unnormalized_coefficients(assert_rel_close):
    """Eigenvalues outside the unit disk: the kernel grows, the algorithm still holds."""
    params = _params(3, 6, dtype=torch.float64, normalized=False)
    K_ref = companion_kernel(*params, 30, backend="reference")
    assert K_ref.abs().max() > 1e3
    assert_rel_close(companion_kernel(*params, 30), K_ref, 1e-10)


@pytest.mark.parametrize("length", [64, 1000])
def test_eigenvalues_on_the_unit_circle(length, assert_rel_close):
    """Roots of unity as eigenvalues, where det(I - Az) vanishes at the plain DFT points:
    a cyclic shift (a = e_1, every eigenvalue an N-th root of unity, N | L) and a >= 0 with
    ||a||_1 = 1 (an eigenvalue at exactly 1, a unit root as in an integrated series)."""
    gen = torch.Generator().manual_seed(0)
    cyclic = torch.zeros(2, 8, dtype=torch.float64)
    cyclic[:, 0] = 1.0
    positive = torch.rand(2, 8, generator=gen, dtype=torch.float64)
    positive = positive / positive.sum(-1, keepdim=True)
    assert torch.allclose(positive.sum(-1), torch.ones(2, dtype=torch.float64))  # chi(1) = 0
    for a in (cyclic, positive):
        b, c = torch.randn(2, 2, 8, generator=gen, dtype=torch.float64)
        K_ref = companion_kernel(a, b, c, length, backend="reference")
        K = companion_kernel(a.float(), b.float(), c.float(), length)
        assert torch.isfinite(K).all()
        assert_rel_close(K, K_ref, 1e-5)


def test_shift_matrix_kernel_is_a_correlation():
    """a = 0: A is the pure shift, so K_l = sum_i c_{i+l} b_i for l < N and 0 after."""
    _, b, c = (p.detach() for p in _params(2, 5, dtype=torch.float64))
    K = companion_kernel(torch.zeros_like(b), b, c, 9)
    expected = torch.zeros(2, 9, dtype=torch.float64)
    for lag in range(5):
        expected[:, lag] = (c[:, lag:] * b[:, : 5 - lag]).sum(-1)
    torch.testing.assert_close(K, expected)


def test_cayley_hamilton_recurrence():
    """K obeys the recurrence of A's characteristic polynomial: K_{l+N} = sum_i a_i K_{l+i}."""
    a, b, c = (p.detach() for p in _params(3, 6, dtype=torch.float64))
    K = companion_kernel(a, b, c, 40)
    for start in range(40 - 6):
        torch.testing.assert_close(K[:, start + 6], (a * K[:, start : start + 6]).sum(-1))


@pytest.mark.parametrize("exponent", [0, 1, 5, 6, 64, 333])
def test_row_times_power(exponent):
    a, _, c = (p.detach() for p in _params(3, 6, dtype=torch.float64))
    expected = (c.unsqueeze(-2) @ torch.linalg.matrix_power(companion_matrix(a), exponent))[:, 0]
    torch.testing.assert_close(row_times_power(a, c, exponent), expected)


def test_gradcheck_float64():
    params = _params(2, 3, dtype=torch.float64, normalized=False)
    for backend in ("reference", "torch"):
        assert torch.autograd.gradcheck(
            lambda *p, b=backend: companion_kernel(*p, 9, backend=b), params
        )


def test_errors():
    a, b, c = _params(2, 3)
    with pytest.raises(ValueError, match="no Triton path"):
        companion_kernel(a, b, c, 5, backend="triton")
    with pytest.raises(ValueError, match="Did you mean 'torch'"):
        companion_kernel(a, b, c, 5, backend="torhc")
    with pytest.raises(ValueError, match="shape"):
        companion_kernel(a, b[:1], c, 5)
    with pytest.raises(TypeError, match="real"):
        companion_kernel(a, b, torch.complex(c, c), 5)
    with pytest.raises(ValueError, match="positive"):
        companion_kernel(a, b, c, 0)
