import pytest
import torch

from tsk.kernels.common.polynomial import correlate, poly_mul, series_inverse


def test_polynomial_helpers():
    gen = torch.Generator().manual_seed(0)
    f, g = torch.randn(2, 3, 5, generator=gen, dtype=torch.float64)
    full = torch.stack([torch.tensor([sum(f[h, i] * g[h, k - i] for i in range(5) if 0 <= k - i < 5)
                                      for k in range(9)]) for h in range(3)]).double()
    torch.testing.assert_close(poly_mul(f, g), full)
    torch.testing.assert_close(poly_mul(f, g, 4), full[:, :4])
    torch.testing.assert_close(poly_mul(f, g, 12)[:, 9:], torch.zeros(3, 3, dtype=torch.float64))
    lags = torch.stack([(f[:, k:] * g[:, : 5 - k]).sum(-1) for k in range(5)], -1)
    torch.testing.assert_close(correlate(f, g, 5), lags)
    q = torch.cat([torch.ones(3, 1, dtype=torch.float64), 0.3 * f[:, 1:]], -1)
    inverse = series_inverse(q, 37)
    identity = torch.zeros(3, 37, dtype=torch.float64)
    identity[:, 0] = 1
    torch.testing.assert_close(poly_mul(q, inverse, 37), identity)
    # 1 / (1 - z) = 1 + z + z^2 + ...
    geometric = series_inverse(torch.tensor([1.0, -1.0], dtype=torch.float64), 10)
    torch.testing.assert_close(geometric, torch.ones(10, dtype=torch.float64))


@pytest.mark.parametrize("f_shape,g_shape", [((2, 3, 5), (3, 4)), ((3, 1), (2, 3, 6)),
                                             ((1, 3, 7), (2, 1, 7)), ((4,), (9,))])
@pytest.mark.parametrize("n", [None, 3, 30])
def test_poly_mul_gradcheck(f_shape, g_shape, n):
    """The written-out backward against finite differences, broadcasting either factor (its
    gradient summed over the batch), truncated and zero-padded outputs."""
    gen = torch.Generator().manual_seed(len(f_shape) * 7 + f_shape[-1])
    f = torch.randn(f_shape, generator=gen, dtype=torch.float64, requires_grad=True)
    g = torch.randn(g_shape, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: poly_mul(a, b, n), (f, g))
    frozen = g.detach()
    (grad,) = torch.autograd.grad(poly_mul(f, frozen, n).square().sum(), f)
    assert grad.shape == f.shape and frozen.grad is None


def test_poly_mul_mixed_dtypes_give_each_input_its_dtype():
    f = torch.randn(2, 5, requires_grad=True)
    g = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    poly_mul(f, g).sum().backward()
    assert f.grad.dtype == torch.float32 and g.grad.dtype == torch.float64
