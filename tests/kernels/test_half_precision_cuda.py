"""bf16 and fp16 inputs through the Triton kernels on a real GPU (skipped without CUDA).

The kernels compute in float32 and return the input dtype, so their outputs and gradients must
match the float32 reference run on the same (already rounded) inputs up to half-precision
rounding of the results. `s4d_kernel` and `cauchy` take complex parameters, which models keep in
float32, so they have no half-precision inputs to test.
"""

from __future__ import annotations

import pytest
import torch

from tsk.kernels import fftconv, linear_scan, lstm_scan, scan2d, selective_scan

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA GPU (Triton's compiled kernels in bf16/fp16)")


def _selective_scan_case(gen):
    batch, channels, state, length = 2, 40, 16, 300
    tensors = [torch.randn(batch, channels, length, generator=gen),
               0.5 * torch.rand(batch, channels, length, generator=gen),
               -4 * torch.rand(channels, state, generator=gen),
               torch.randn(batch, state, length, generator=gen),
               torch.randn(batch, state, length, generator=gen),
               torch.randn(channels, generator=gen),
               torch.randn(batch, channels, length, generator=gen),
               torch.randn(channels, generator=gen) - 1]

    def call(u, delta, A, B, C, D, z, bias, backend):  # noqa: N803
        return selective_scan(u, delta, A, B, C, D, z, bias, delta_softplus=True,
                              backend=backend)[0]

    return tensors, call


def _linear_scan_case(gen):
    a = torch.rand(2, 257, 70, generator=gen) * 0.5 + 0.5
    b = torch.randn(2, 257, 70, generator=gen)
    h0 = torch.randn(2, 70, generator=gen)

    def call(a, b, h0, backend):
        return linear_scan(a, b, h0, backend=backend)[0]

    return [a, b, h0], call


def _fftconv_case(gen):
    u = torch.randn(2, 24, 513, generator=gen)
    k = torch.randn(24, 513, generator=gen) / 20
    D = torch.randn(24, generator=gen)  # noqa: N806
    gate = torch.randn(2, 24, 513, generator=gen)

    def call(u, k, D, gate, backend):  # noqa: N803
        return fftconv(u, k, D, gate, backend=backend)

    return [u, k, D, gate], call


def _lstm_case(gen):
    batch, length, heads, head_dim = 5, 65, 2, 16
    gates_x = torch.randn(batch, length, 4, heads, head_dim, generator=gen)
    R = torch.randn(heads, 4 * head_dim, head_dim, generator=gen) / head_dim ** 0.5  # noqa: N806
    bias = torch.randn(4, heads, head_dim, generator=gen) / 4

    def call(gates_x, R, bias, backend):  # noqa: N803
        h, (h_last, c_last) = lstm_scan(gates_x, R, bias, output_final_state=True,
                                        backend=backend)
        return h, c_last

    return [gates_x, R, bias], call


def _scan2d_case(gen):
    batch, channels, n_var, length, state = 2, 5, 4, 37, 6
    grid = (batch, channels, n_var, length)
    tensors = [torch.randn(*grid, generator=gen),
               0.05 + 0.5 * torch.rand(*grid, generator=gen),
               0.05 + 0.5 * torch.rand(*grid, generator=gen),
               -0.2 - 3 * torch.rand(channels, state, generator=gen),
               0.1 * torch.randn(channels, state, generator=gen),
               0.1 * torch.randn(channels, state, generator=gen),
               -0.2 - 3 * torch.rand(channels, state, generator=gen),
               *(torch.randn(batch, state, n_var, length, generator=gen) for _ in range(4)),
               torch.randn(channels, generator=gen)]

    def call(*args, backend):
        return scan2d(*args, backend=backend)[0]

    return tensors, call


CASES = {"selective_scan": _selective_scan_case, "linear_scan": _linear_scan_case,
         "fftconv": _fftconv_case, "lstm_scan": _lstm_case, "scan2d": _scan2d_case}


def _outputs_and_grads(tensors, call, backend):
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = call(*leaves, backend=backend)
    outs = out if isinstance(out, tuple) else (out,)
    gen = torch.Generator().manual_seed(7)
    loss = sum((o.float() * torch.randn(o.shape, generator=gen).to(o.device)).sum() for o in outs)
    return outs, torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("op", list(CASES))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_triton_half_inputs_match_float32_reference(op, dtype, assert_rel_close):
    tensors, call = CASES[op](torch.Generator().manual_seed(0))
    half = [t.to("cuda", dtype) for t in tensors]
    outs, grads = _outputs_and_grads(half, call, "triton")
    outs_ref, grads_ref = _outputs_and_grads([t.float() for t in half], call, "reference")
    tol = 2e-2 if dtype == torch.bfloat16 else 5e-3  # ~2 ulps of the format at the output's scale
    for i, (o, o_ref) in enumerate(zip(outs, outs_ref, strict=True)):
        assert o.dtype == dtype, f"output {i} came back as {o.dtype}"
        assert_rel_close(o, o_ref, tol, f"output {i}")
    for i, (g, g_ref) in enumerate(zip(grads, grads_ref, strict=True)):
        assert g.dtype == dtype, f"grad {i} came back as {g.dtype}"
        assert_rel_close(g, g_ref, tol, f"grad {i}")
