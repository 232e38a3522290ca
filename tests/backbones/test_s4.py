"""S4: HiPPO-LegS and its NPLR form, the Cauchy/Woodbury/FFT kernel against a dense power
series, the learned C~ (its length, other lengths, doubling, saved models), the clip of Im(B~),
step() == forward, the bidirectional kernel, optimizer hints and a tiny fit."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load, save

from tests.backbones.conftest import run_steps
from tsk.backbones import create, s4
from tsk.backbones.s4 import S4Kernel, S4Layer, hippo_legs, nplr_legs
from tsk.training import TaskModule


def full(x: torch.Tensor) -> torch.Tensor:
    """One of each conjugate pair -> all of them (last axis)."""
    return torch.cat([x, x.conj()], dim=-1)


def dense_power_kernel(A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, dt: torch.Tensor,
                       length: int) -> torch.Tensor:
    """K[c, h, l] = C[c, h] Ab^l Bb with the bilinear Ab = (I - dt/2 A)^-1 (I + dt/2 A),
    Bb = dt (I - dt/2 A)^-1 B, by explicit inverses and a loop; A [H, N, N], B [H, N]."""
    eye = torch.eye(A.shape[-1], dtype=A.dtype)
    inverse = torch.linalg.inv(eye - dt[:, None, None] / 2 * A)
    A_bar = inverse @ (eye + dt[:, None, None] / 2 * A)
    x = dt[:, None] * (inverse @ B.unsqueeze(-1)).squeeze(-1)  # [H, N]
    taps = []
    for _ in range(length):
        taps.append(torch.einsum("chn,hn->ch", C, x))
        x = torch.einsum("hmn,hn->hm", A_bar, x)
    return torch.stack(taps, -1)


def test_hippo_legs_closed_form():
    A, B = hippo_legs(3)
    r3, r5, r15 = math.sqrt(3), math.sqrt(5), math.sqrt(15)
    expected = torch.tensor([[-1.0, 0.0, 0.0], [-r3, -2.0, 0.0], [-r5, -r15, -3.0]], dtype=torch.float64)
    torch.testing.assert_close(A, expected)
    torch.testing.assert_close(B, torch.tensor([1.0, r3, r5], dtype=torch.float64))


@pytest.mark.parametrize("d_state", [2, 8, 16])
def test_nplr_reconstructs_hippo(d_state):
    A, B = hippo_legs(d_state)
    Lambda, P, B_tilde, V = nplr_legs(d_state)
    half = d_state // 2
    assert Lambda.shape == P.shape == B_tilde.shape == (half,) and V.shape == (d_state, half)
    torch.testing.assert_close(Lambda.real, torch.full((half,), -0.5, dtype=torch.float64))
    assert (Lambda.imag < 0).all()
    V_full = torch.cat([V, V.conj()], dim=1)  # [N, N]
    eye = torch.eye(d_state, dtype=torch.complex128)
    torch.testing.assert_close(V_full.conj().T @ V_full, eye)  # unitary
    P_full = full(P)
    # A = V Lambda V* - p p^T with p = V P real = sqrt(n + 1/2)
    normal_part = V_full @ torch.diag(full(Lambda)) @ V_full.conj().T
    low_rank = (V_full @ P_full)[:, None] * (V_full @ P_full).conj()[None, :]
    torch.testing.assert_close(normal_part - low_rank, A.to(torch.complex128))
    torch.testing.assert_close(V_full @ P_full, torch.sqrt(torch.arange(d_state) + 0.5).double()
                               .to(torch.complex128))
    torch.testing.assert_close(V_full @ full(B_tilde), B.to(torch.complex128))
    with pytest.raises(ValueError, match="even"):
        nplr_legs(5)


def random_dplr_kernel(d_model: int, d_state: int, channels: int, seed: int,
                       length: int | None = None) -> S4Kernel:
    """A float64 kernel module with its parameters (C: C~ when `length` is given) moved away
    from the init."""
    torch.manual_seed(seed)
    kernel = S4Kernel(d_model, d_state, 1e-2, 0.5, channels, lr=None, length=length).double()
    with torch.no_grad():
        kernel.log_A_real.add_(0.3 * torch.randn_like(kernel.log_A_real))
        kernel.A_imag.mul_(1 + 0.2 * torch.randn_like(kernel.A_imag))
        kernel.P.add_(0.3 * torch.randn_like(kernel.P))
        kernel.B.add_(0.3 * torch.randn_like(kernel.B))
        kernel.C.add_(0.3 * torch.randn_like(kernel.C))
    return kernel


def equivalent_kernel(kernel: S4Kernel, length: int) -> torch.Tensor:
    """The kernel of the plain system the module stands for, all dense: C = C~ (I - Ab^L)^-1
    for its stored L (C itself when none is stored), then C Ab^l Bb for l < `length`."""
    dt, Lambda, P, B, C = (x.detach() for x in kernel.parameters_complex())
    A = torch.diag_embed(full(Lambda)) - full(P)[:, :, None] * full(P).conj()[:, None, :]
    C, stored = full(C), int(kernel.length)
    if stored:
        eye = torch.eye(A.shape[-1], dtype=A.dtype)
        half_step = dt[:, None, None] / 2 * A
        A_bar = torch.linalg.inv(eye - half_step) @ (eye + half_step)
        truncation = eye - torch.linalg.matrix_power(A_bar, stored)
        C = torch.einsum("chn,hnm->chm", C, torch.linalg.inv(truncation))
    expected = dense_power_kernel(A, full(B), C, dt, length)
    assert expected.imag.abs().max() < 1e-10  # conjugate pairs: a real system
    return expected.real


@pytest.mark.parametrize("length", [1, 2, 7, 16])  # odd and even (the z = -1 node) lengths
@pytest.mark.parametrize("channels", [1, 2])
def test_cauchy_kernel_equals_dense_power_series(length, channels):
    """The key check: generating function at the roots of unity (Cauchy + Woodbury, truncation
    by C~ = C(I - Ab^L)) then inverse FFT == C Ab^l Bb with dense matrices."""
    kernel = random_dplr_kernel(3, 6, channels, seed=length)
    dt, Lambda, P, B, C = kernel.parameters_complex()
    A = torch.diag_embed(full(Lambda)) - full(P)[:, :, None] * full(P).conj()[:, None, :]
    expected = dense_power_kernel(A, full(B), full(C), dt, length)  # [ch, H, L] complex
    assert expected.imag.abs().max() < 1e-12  # conjugate pairs: a real system
    got = kernel(length)
    assert got.shape == (channels, 3, length)
    torch.testing.assert_close(got, expected.real, rtol=1e-9, atol=1e-11)


def test_kernel_at_init_is_the_real_hippo_system():
    """With C set from a real vector c in the HiPPO basis, the kernel is c Ab^l Bb for the real
    (dense, non-diagonal) HiPPO-LegS A and B (with Im(B~) unclipped: the clip departs from it)."""
    torch.manual_seed(0)
    d_state, length = 8, 12
    kernel = S4Kernel(2, d_state, 1e-2, 0.1, 1, lr=None, b_imag_clip=None).double()
    c = torch.randn(1, 2, d_state, dtype=torch.float64)
    V = nplr_legs(d_state)[3]
    with torch.no_grad():
        kernel.C.copy_(torch.view_as_real(c.to(torch.complex128) @ V))
    A, B = hippo_legs(d_state)
    dt = torch.exp(kernel.log_dt.detach())
    expected = dense_power_kernel(A.expand(2, -1, -1), B.expand(2, -1), c, dt, length)
    # parameters are stored in float32: the init is exact to float32 precision only
    torch.testing.assert_close(kernel(length), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("d_state", "length", "channels"), [(4, 7, 1), (6, 16, 2), (6, 1, 2),
                                                         (4, 2, 1)])
def test_learned_C_tilde_kernel_equals_the_equivalent_dense_system(d_state, length, channels):
    """At the stored length the parameter is C~: K[l] = C Ab^l Bb with C = C~ (I - Ab^L)^-1."""
    kernel = random_dplr_kernel(3, d_state, channels, seed=length, length=length)
    C_tilde = kernel.C.detach().clone()
    expected = equivalent_kernel(kernel, length)
    got = kernel(length)
    assert got.shape == (channels, 3, length)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-11)
    assert int(kernel.length) == length and torch.equal(kernel.C.detach(), C_tilde)


def test_other_lengths_give_the_equivalent_systems_kernel():
    """Shorter: the stored kernel cut short; longer (once, twice, three times the doubling):
    C~ doubled for that call only, the parameter and the stored length unchanged."""
    kernel = random_dplr_kernel(3, 6, 2, seed=5, length=9)
    C_tilde = kernel.C.detach().clone()
    for length in (1, 4, 8, 9, 10, 18, 19, 40):
        torch.testing.assert_close(kernel(length), equivalent_kernel(kernel, length),
                                   rtol=1e-9, atol=1e-11)
    assert int(kernel.length) == 9 and torch.equal(kernel.C.detach(), C_tilde)


def test_double_length_keeps_the_system():
    kernel = random_dplr_kernel(3, 4, 1, seed=2, length=7)
    before = {length: equivalent_kernel(kernel, length) for length in (5, 7, 14, 20)}
    C_tilde = kernel.C.detach().clone()
    kernel.double_length()
    assert int(kernel.length) == 14 and not torch.allclose(kernel.C.detach(), C_tilde)
    for length, expected in before.items():
        torch.testing.assert_close(kernel(length), expected, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(equivalent_kernel(kernel, length), expected)
    with pytest.raises(ValueError, match="stored length"):
        S4Kernel(2, 4, 1e-2, 0.1, 1, lr=None).double_length()


def test_forward_at_the_stored_length_does_no_dense_work(monkeypatch):
    """The point of learning C~: no N x N discretization, power or solve per call."""
    kernel = S4Kernel(3, 6, 1e-3, 0.1, 1, lr=None, length=11)

    def dense(*args, **kwargs):
        raise AssertionError("dense N x N work in the kernel's forward")

    monkeypatch.setattr(s4, "_bilinear", dense)
    monkeypatch.setattr(s4, "_row_times_power", dense)
    for name in ("solve", "inv", "matrix_power"):
        monkeypatch.setattr(torch.linalg, name, dense)
    kernel(11).sum().backward()
    kernel(6).sum().backward()
    assert kernel.C.grad.abs().max() > 0
    with pytest.raises(AssertionError, match="dense"):
        kernel(12)  # the check can fail: a longer length doubles C~ with dense matrices


@pytest.mark.parametrize("length", [5, 12])  # the stored length, then through the doubling
def test_gradients_reach_C_tilde(length):
    kernel = random_dplr_kernel(3, 4, 2, seed=0, length=5)

    def K(C: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(kernel, {"C": C}, (length,))

    assert torch.autograd.gradcheck(K, (kernel.C.detach().clone().requires_grad_(),))


def test_C_tilde_at_init_is_the_drawn_C_converted():
    """The first forward (or `length=`) turns the C drawn at init into C~ = C (I - Ab^L): the
    initial kernel is the one of the drawn C, as before C~ was the parameter."""
    torch.manual_seed(3)
    lazy = S4Kernel(3, 6, 1e-2, 0.5, 1, lr=None).double()
    torch.manual_seed(3)
    eager = S4Kernel(3, 6, 1e-2, 0.5, 1, lr=None, length=11).double()
    assert int(lazy.length) == 0 and int(eager.length) == 11
    drawn = equivalent_kernel(lazy, 11)  # length 0: C is the drawn C
    C_drawn = lazy.C.detach().clone()
    torch.testing.assert_close(lazy(11), drawn, rtol=1e-9, atol=1e-11)
    assert int(lazy.length) == 11 and not torch.allclose(lazy.C.detach(), C_drawn)
    torch.testing.assert_close(lazy.C, eager.C, rtol=1e-6, atol=1e-7)  # eager's C~ is float32
    torch.testing.assert_close(eager(11), drawn, rtol=1e-5, atol=1e-7)


def test_B_imag_is_clipped_at_init():
    """As the authors' `B_clip`: Im(B~) in [-2, 2], the real parts and small entries kept."""
    exact = nplr_legs(64)[2].to(torch.complex64)
    assert exact.imag.abs().max() > 40
    B = torch.view_as_complex(S4Kernel(2, 64, 1e-3, 0.1, 1, lr=None).B.detach())
    inside = exact.imag.abs() <= 2
    assert B.shape == (2, 32) and inside.any() and (~inside).any()
    torch.testing.assert_close(B.real, exact.real.expand(2, -1))
    torch.testing.assert_close(B.imag[:, inside], exact.imag[inside].expand(2, -1))
    assert torch.equal(B.imag[:, ~inside], 2 * exact.imag[~inside].sign().expand(2, -1))


def test_saved_models_keep_their_length_and_older_ones_load_as_plain_C():
    """`length` is in the state dict (and survives safetensors); a state dict saved before C~
    was learned has none, and its C is the plain C: it loads with length 0 and converts."""
    torch.manual_seed(0)
    model = create("s4", d_model=3, n_layers=1, d_state=6, dropout=0.0).double()
    kernel = model.stack.blocks[0].kernel
    older = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith(".length")}
    expected = {length: equivalent_kernel(kernel, length) for length in (5, 9)}
    model(torch.randn(2, 9, 3, dtype=torch.float64))
    state = load(save(model.state_dict()))
    assert int(state["stack.blocks.0.kernel.length"]) == 9

    def loaded(weights: dict[str, torch.Tensor]) -> S4Kernel:
        fresh = create("s4", d_model=3, n_layers=1, d_state=6, dropout=0.0).double()
        fresh(torch.randn(1, 4, 3, dtype=torch.float64))  # its own C~ for length 4, overwritten
        fresh.load_state_dict(weights)  # strict
        return fresh.stack.blocks[0].kernel

    restored, legacy = loaded(state), loaded(older)
    assert int(restored.length) == 9 and int(legacy.length) == 0
    for length in (5, 9):
        torch.testing.assert_close(restored(length), expected[length], rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(legacy(9), expected[9], rtol=1e-9, atol=1e-11)
    assert int(legacy.length) == 9
    torch.testing.assert_close(legacy.C, restored.C)


def test_kernel_float32_and_gradients():
    torch.manual_seed(0)
    kernel = S4Kernel(4, 16, 1e-3, 0.1, 1, lr=1e-3)
    reference = kernel.double()(64).detach()
    kernel = kernel.float()
    K = kernel(64)
    assert K.dtype == torch.float32
    torch.testing.assert_close(K.double(), reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())
    K.square().sum().backward()
    for name, param in kernel.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().max() > 0, name


@pytest.mark.parametrize("length", [1, 13])
def test_step_matches_forward_on_odd_lengths(length):
    torch.manual_seed(1)
    model = create("s4", d_model=8, n_layers=2, d_state=8, dropout=0.0).eval()
    x = torch.randn(2, length, 8)
    with torch.no_grad():
        expected, (steps, state) = model(x), run_steps(model, x)
    torch.testing.assert_close(steps, expected, rtol=1e-4, atol=1e-4)
    assert state[0].shape == (2, 8, 8) and state[0].is_complex()


def test_step_matches_forward_before_set_up_and_at_other_lengths():
    """Before any forward C is plain C; after one, step recovers C from C~: the recurrence
    matches the convolution at the stored length and at a longer one (odd sizes: H = 3, N = 6)."""
    torch.manual_seed(4)
    model = create("s4", d_model=3, n_layers=2, d_state=6, dropout=0.0).double().eval()
    x = torch.randn(2, 23, 3, dtype=torch.float64)
    with torch.no_grad():
        before = run_steps(model, x[:, :11])[0]
        assert int(model.stack.blocks[0].kernel.length) == 0
        torch.testing.assert_close(model(x[:, :11]), before)
        assert int(model.stack.blocks[0].kernel.length) == 11
        torch.testing.assert_close(run_steps(model, x[:, :11])[0], before)
        torch.testing.assert_close(run_steps(model, x)[0], model(x))


def test_bidirectional_layer_is_two_kernels():
    """y[t] = sum_{s<=t} K0[s] u[t-s] + sum_j K1[j] u[t+1+j] + D u[t], then GELU/GLU."""
    torch.manual_seed(0)
    model = create("s4", d_model=4, n_layers=1, d_state=4, dropout=0.0, bidirectional=True).double()
    layer = model.stack.blocks[0]
    assert isinstance(layer, S4Layer) and layer.kernel.C.shape[0] == 2
    u = torch.randn(2, 4, 9, dtype=torch.float64)  # [B, H, L]
    K = layer.kernel(9).detach()  # [2, H, L]
    expected = layer.D.detach()[:, None] * u
    for t in range(9):
        for s in range(t + 1):
            expected[..., t] += K[0, :, s] * u[..., t - s]
        for j in range(9 - t - 1):
            expected[..., t] += K[1, :, j] * u[..., t + 1 + j]
    torch.testing.assert_close(layer.convolve(u), expected)
    y = model(torch.randn(3, 9, 4, dtype=torch.float64))
    assert y.shape == (3, 9, 4)


def test_bidirectional_reads_the_future():
    torch.manual_seed(0)
    model = create("s4", d_model=8, n_layers=2, d_state=8, dropout=0.0, bidirectional=True).eval()
    x = torch.randn(2, 20, 8)
    perturbed = x.clone()
    perturbed[:, 15:] += torch.randn_like(perturbed[:, 15:])  # not constant: norms remove that
    with torch.no_grad():
        a, b = model(x), model(perturbed)
    assert a.shape == (2, 20, 8) and (a[:, :15] - b[:, :15]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="bidirectional"):
        model.step(x[:, 0], [])


def test_ssm_parameters_get_their_optimizer_hints():
    model = create("s4", d_model=8, n_layers=1, d_state=8, ssm_lr=2e-3)
    kernel = model.stack.blocks[0].kernel
    for name in ("log_dt", "log_A_real", "A_imag", "P", "B"):
        assert getattr(kernel, name)._optim == {"weight_decay": 0.0, "lr": 2e-3}, name
    assert not hasattr(kernel.C, "_optim")
    module = TaskModule(model, learning_rate=1e-2, weight_decay=0.1)
    groups = module.configure_optimizers()["optimizer"].param_groups
    assert any(g["lr"] == 2e-3 and g["weight_decay"] == 0.0 and len(g["params"]) == 5 for g in groups)


def test_config_errors():
    with pytest.raises(ValueError, match="d_state must be even"):
        create("s4", d_state=7)


def test_fit_reduces_the_loss(long_df, fit_losses):
    model, losses = fit_losses(long_df, "s4", backbone_kwargs={"d_state": 8})
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert len(model.predict()) == 3 * 4
