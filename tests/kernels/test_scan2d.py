import math

import pytest
import torch

from tsk.kernels import scan2d, selective_scan

NAMES = ("u", "delta_t", "delta_v", "A1", "A2", "A3", "A4", "B1", "B2", "C1", "C2", "D")


def _inputs(batch, channels, n_var, length, state, *, dtype=torch.float64, seed=0, init=True):
    """The scan's arguments (couplings below the decays, as a trained model keeps them) and an
    initial state."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)

    grid = (batch, channels, n_var, length)
    args = {
        "u": randn(*grid),
        "delta_t": 0.05 + 0.5 * torch.rand(*grid, generator=gen, dtype=dtype),
        "delta_v": 0.05 + 0.5 * torch.rand(*grid, generator=gen, dtype=dtype),
        "A1": -0.2 - 3 * torch.rand(channels, state, generator=gen, dtype=dtype),
        "A2": 0.5 * randn(channels, state),
        "A3": 0.5 * randn(channels, state),
        "A4": -0.2 - 3 * torch.rand(channels, state, generator=gen, dtype=dtype),
        **{name: randn(batch, state, n_var, length) for name in ("B1", "B2", "C1", "C2")},
        "D": randn(channels),
    }
    state0 = (randn(batch, channels, n_var, state), randn(batch, channels, n_var, state)) if init else None
    return args, state0


def _run(args, state0, backend, seed=1):
    """y, final states and the gradients of a random projection of both w.r.t. every input."""
    leaves = {k: v.detach().clone().requires_grad_() for k, v in args.items()}
    init = None if state0 is None else tuple(h.detach().clone().requires_grad_() for h in state0)
    y, (h1, h2) = scan2d(**leaves, initial_state=init, output_final_state=True, backend=backend)
    gen = torch.Generator().manual_seed(seed)
    loss = sum((x * torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)).sum()
               for x in (y, h1, h2))
    wrt = [*leaves.values(), *(init or ())]
    return (y, h1, h2), torch.autograd.grad(loss, wrt)


def _compare(args, state0, backend, check, tol):
    outs_ref, grads_ref = _run(args, state0, "reference")
    outs, grads = _run(args, state0, backend)
    for name, got, want in zip(("y", "h1 final", "h2 final"), outs, outs_ref, strict=True):
        check(got, want, tol, name)
    names = [*NAMES, *(("h1 initial", "h2 initial") if state0 is not None else ())]
    for name, got, want in zip(names, grads, grads_ref, strict=True):
        if not want.any():  # e.g. a coupling's gradient on a one-cell grid
            assert got.abs().max() <= 1e-12, f"grad {name} should be zero"
            continue
        check(got, want, tol, f"grad {name}")


@pytest.mark.parametrize("shape", [(2, 3, 4, 7, 5), (1, 1, 1, 1, 1), (3, 2, 5, 1, 2),
                                   (1, 2, 1, 9, 3), (2, 5, 3, 33, 4)])
@pytest.mark.parametrize("init", [True, False])
def test_torch_matches_reference(shape, init, assert_rel_close):
    args, state0 = _inputs(*shape, init=init)
    _compare(args, state0, "torch", assert_rel_close, 1e-10)


def test_torch_matches_reference_in_float32(assert_rel_close):
    args, state0 = _inputs(2, 4, 6, 40, 8, dtype=torch.float32)
    _compare(args, state0, "torch", assert_rel_close, 2e-4)


def test_two_by_two_grid_by_hand():
    """One channel, one state, a 2 x 2 grid written out: checks the reference itself."""
    args, _ = _inputs(1, 1, 2, 2, 1)
    y, _ = scan2d(**args, backend="reference")
    a = {k: v.squeeze() for k, v in args.items()}
    u, dt, dv = a["u"], a["delta_t"], a["delta_v"]
    A1, A2, A3, A4 = a["A1"], a["A2"], a["A3"], a["A4"]  # noqa: N806

    def cell(v, t, h1_left, h2_left, h1_below, h2_below):
        e1, e4 = math.exp(dt[v, t] * A1), math.exp(dv[v, t] * A4)
        h1 = (e1 * h1_left + (e1 - 1) / A1 * A2 * h2_left
              + dt[v, t] * a["B1"][v, t] * u[v, t])
        h2 = (e4 * h2_below + (e4 - 1) / A4 * A3 * h1_below
              + dv[v, t] * a["B2"][v, t] * u[v, t])
        return h1, h2, a["C1"][v, t] * h1 + a["C2"][v, t] * h2 + a["D"] * u[v, t]

    h1_00, h2_00, y00 = cell(0, 0, 0, 0, 0, 0)
    h1_01, h2_01, y01 = cell(0, 1, h1_00, h2_00, 0, 0)
    h1_10, h2_10, y10 = cell(1, 0, 0, 0, h1_00, h2_00)
    _, _, y11 = cell(1, 1, h1_10, h2_10, h1_01, h2_01)
    expected = torch.stack([torch.stack([y00, y01]), torch.stack([y10, y11])])
    torch.testing.assert_close(y[0, 0], expected)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_without_variate_transitions_each_row_is_a_selective_scan(backend):
    """The paper's special case: no coupling into the time state and no variate-state output
    leaves Mamba's selective scan along time, per variate."""
    args, state0 = _inputs(2, 3, 4, 11, 5)
    args["A2"] = torch.zeros_like(args["A2"])
    args["C2"] = torch.zeros_like(args["C2"])
    y, (h1, _) = scan2d(**args, initial_state=state0, output_final_state=True, backend=backend)
    batch, channels, n_var, length = args["u"].shape

    def rows(x):  # [B, X, V, T] -> [B * V, X, T]
        return x.transpose(1, 2).reshape(batch * n_var, x.shape[1], length)

    y_1d, last = selective_scan(
        rows(args["u"]), rows(args["delta_t"]), args["A1"], rows(args["B1"]), rows(args["C1"]),
        args["D"], initial_state=state0[0].transpose(1, 2).reshape(batch * n_var, channels, -1),
        output_final_state=True, backend="reference")
    torch.testing.assert_close(rows(y), y_1d)
    torch.testing.assert_close(h1.transpose(1, 2).reshape(batch * n_var, channels, -1), last)


def test_without_time_transitions_each_column_is_a_selective_scan():
    """And symmetrically: the variate state alone is a selective scan along variates."""
    args, _ = _inputs(2, 3, 6, 4, 5)
    for name in ("A3", "C1"):
        args[name] = torch.zeros_like(args[name])
    y, _ = scan2d(**args, backend="torch")
    batch, channels, n_var, length = args["u"].shape

    def columns(x):  # [B, X, V, T] -> [B * T, X, V]
        return x.permute(0, 3, 1, 2).reshape(batch * length, x.shape[1], n_var)

    y_1d, _ = selective_scan(columns(args["u"]), columns(args["delta_v"]), args["A4"],
                             columns(args["B2"]), columns(args["C2"]), args["D"],
                             backend="reference")
    torch.testing.assert_close(columns(y), y_1d)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_causal_along_time_and_variates(backend):
    args, state0 = _inputs(1, 2, 5, 9, 3)
    y, _ = scan2d(**args, initial_state=state0, backend=backend)
    bumped = dict(args, u=args["u"].clone())
    bumped["u"][:, :, 2, 4] += 10.0
    y2, _ = scan2d(**bumped, initial_state=state0, backend=backend)
    changed = (y2 - y).abs().amax((0, 1)) > 1e-9  # [V, T]
    expected = torch.zeros_like(changed)
    expected[2, 4:] = True  # the cell's row from t on ...
    expected[3:, 4:] = True  # ... and every later variate from t on (through h2, then h1)
    assert torch.equal(changed, expected)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_two_pieces_along_time_equal_one_scan(backend):
    args, state0 = _inputs(2, 3, 4, 13, 2)
    y, final = scan2d(**args, initial_state=state0, output_final_state=True, backend=backend)
    first = {k: (v[..., :6] if v.dim() == 4 else v) for k, v in args.items()}
    second = {k: (v[..., 6:] if v.dim() == 4 else v) for k, v in args.items()}
    y1, mid = scan2d(**first, initial_state=state0, output_final_state=True, backend=backend)
    y2, end = scan2d(**second, initial_state=mid, output_final_state=True, backend=backend)
    torch.testing.assert_close(torch.cat([y1, y2], dim=-1), y)
    for got, want in zip(end, final, strict=True):
        torch.testing.assert_close(got, want)


def test_stable_for_any_step_when_couplings_stay_below_decays():
    """The exact ZOH coupling keeps a long grid bounded even at huge steps."""
    args, _ = _inputs(1, 2, 40, 200, 4)
    args["delta_t"] = args["delta_t"] * 1000
    args["delta_v"] = args["delta_v"] * 1000
    args["A2"] = -0.99 * args["A1"]
    args["A3"] = -0.99 * args["A4"]
    for name in ("B1", "B2"):
        args[name] = args[name] / 1000  # inputs of the size they had
    y, _ = scan2d(**args, backend="torch")
    assert torch.isfinite(y).all() and y.abs().max() < 1e3


def test_bad_inputs_raise():
    args, _ = _inputs(1, 2, 3, 4, 5)
    with pytest.raises(ValueError, match="A1 must be negative"):
        scan2d(**dict(args, A1=-args["A1"]))
    with pytest.raises(ValueError, match="B2 must have shape"):
        scan2d(**dict(args, B2=args["B2"][..., :2]))
    with pytest.raises(ValueError, match=r"initial_state\[1\] must have shape"):
        scan2d(**args, initial_state=(torch.zeros(1, 2, 3, 5), torch.zeros(1, 2, 3)))
    with pytest.raises(TypeError, match="pair"):
        scan2d(**args, initial_state=torch.zeros(1, 2, 3, 5))


@pytest.mark.triton
@pytest.mark.parametrize("shape", [(2, 5, 3, 7, 3), (1, 1, 1, 1, 1), (1, 6, 4, 9, 4),
                                   (2, 3, 2, 5, 16)])
@pytest.mark.parametrize("init", [True, False])
def test_triton_matches_reference(shape, init, triton_device, assert_rel_close):
    """Odd channel counts straddle the channel blocks; several blocks add their B and C
    gradients atomically; a state size that is not a power of two is masked."""
    args, state0 = _inputs(*shape, dtype=torch.float32, init=init)
    args = {k: v.to(triton_device) for k, v in args.items()}
    state0 = None if state0 is None else tuple(h.to(triton_device) for h in state0)
    _compare(args, state0, "triton", assert_rel_close, 2e-4)


@pytest.mark.triton
def test_triton_two_pieces_along_time_equal_one_scan(triton_device):
    args, state0 = _inputs(1, 3, 3, 9, 2, dtype=torch.float32)
    args = {k: v.to(triton_device) for k, v in args.items()}
    state0 = tuple(h.to(triton_device) for h in state0)
    y, final = scan2d(**args, initial_state=state0, output_final_state=True, backend="triton")
    first = {k: (v[..., :4] if v.dim() == 4 else v) for k, v in args.items()}
    second = {k: (v[..., 4:] if v.dim() == 4 else v) for k, v in args.items()}
    y1, mid = scan2d(**first, initial_state=state0, output_final_state=True, backend="triton")
    y2, end = scan2d(**second, initial_state=mid, output_final_state=True, backend="triton")
    torch.testing.assert_close(torch.cat([y1, y2], dim=-1), y, rtol=1e-4, atol=1e-5)
    for got, want in zip(end, final, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
