"""ConvS5 and the ConvLSTM baseline: frames backbones, checked against plain loops of their
recurrences, causal in time, `step()` == forward, and ConvS5's initialization as S5's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.backbones.conftest import run_steps
from tsk import backbones
from tsk.backbones import create, is_causal
from tsk.backbones.common import channel_layer_norm
from tsk.backbones.convs5 import MAX_REAL_PART, hippo_diagonal

SMALL = {"d_model": 8, "n_layers": 2}
FRAMES = ("convs5", "convlstm")


def _model(name, **options):
    torch.manual_seed(0)
    return create(name, **{**SMALL, **options}).double().eval()


def _video(batch=2, length=6, channels=8, height=5, width=7, seed=1):
    return torch.randn(batch, length, channels, height, width, dtype=torch.double,
                       generator=torch.Generator().manual_seed(seed))


def test_registered_as_frames_backbones():
    assert set(FRAMES) <= set(backbones.available("frames"))
    assert not set(FRAMES) & set(backbones.available("sequence"))
    assert all(is_causal(_model(name)) for name in FRAMES)


@pytest.mark.parametrize("name", FRAMES)
def test_a_sequence_is_not_a_video(name):
    with pytest.raises(ValueError, match=r"takes \[B, T, d_model, H, W\]"):
        _model(name)(torch.randn(2, 9, 8, dtype=torch.double))


def _convs5_loop(layer, u):
    """One ConvS5 layer as a literal loop of complex convolutions (torch's own complex conv2d):
    x_t = Lambda_bar x_{t-1} + B_bar * u_t, y_t = 2 Re(C * x_t), then the residual block."""
    Lambda_bar, B_bar = layer.discrete()
    C = torch.view_as_complex(layer.C)
    pad = layer.config.kernel_size // 2
    x = torch.zeros(u.shape[0], B_bar.shape[0], *u.shape[-2:], dtype=B_bar.dtype)
    ys = []
    for t in range(u.shape[1]):
        x = Lambda_bar[:, None, None] * x + F.conv2d(u[:, t].to(B_bar.dtype), B_bar, padding=pad)
        ys.append(layer.resnet(2 * F.conv2d(x, C, padding=pad).real))
    return torch.stack(ys, dim=1)


def test_convs5_layer_equals_the_loop_of_its_recurrence_forward_and_backward():
    model = _model("convs5", n_layers=1, d_state=6, kernel_size=3)
    layer = model.stack.layers[0]
    u = _video(length=9)
    fast, slow = layer(u), _convs5_loop(layer, u)
    torch.testing.assert_close(fast, slow)
    weights = torch.randn_like(fast)
    grads_fast = torch.autograd.grad((fast * weights).sum(), list(layer.parameters()))
    grads_slow = torch.autograd.grad((_convs5_loop(layer, u) * weights).sum(),
                                     list(layer.parameters()))
    for name, a, b in zip([n for n, _ in layer.named_parameters()], grads_fast, grads_slow,
                          strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_the_stack_adds_each_layers_input_and_normalizes_the_channels():
    model = _model("convs5", n_layers=1)
    u = _video()
    expected = channel_layer_norm(model.stack.norms[0], u + model.stack.layers[0](u))
    torch.testing.assert_close(model(u), expected)


def test_convlstm_cell_equals_the_gate_equations():
    model = _model("convlstm", n_layers=1, kernel_size=3)
    cell = model.stack.layers[0]
    u = _video(length=5)
    c = h = torch.zeros(2, 8, 5, 7, dtype=torch.double)
    outputs = []
    for t in range(u.shape[1]):
        gates = F.conv2d(torch.cat([u[:, t], h], dim=1), cell.weight, padding=1)
        i, f, o, g = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    torch.testing.assert_close(cell(u), torch.stack(outputs, dim=1))


@pytest.mark.parametrize("name", FRAMES)
def test_step_matches_forward(name):
    model = _model(name)
    x = _video(length=7)
    steps, _ = run_steps(model, x, model.initial_state(2, 5, 7))
    torch.testing.assert_close(steps, model(x))


@pytest.mark.parametrize("name", FRAMES)
def test_causal_in_time(name):
    model = _model(name)
    x = _video(length=8)
    bumped = x.clone()
    bumped[:, 5:] += torch.randn_like(bumped[:, 5:])
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, :5], model(bumped)[:, :5])
        assert not torch.allclose(model(x)[:, 5:], model(bumped)[:, 5:])


def test_the_convolutional_ssm_is_local_in_space():
    """3x3 kernels B and C: before the residual block (whose GroupNorm reads the whole frame), a
    pixel's output reads only the input pixels within two of it, at every time step."""
    model = _model("convs5", n_layers=1)
    layer = model.stack.layers[0]
    layer.resnet = torch.nn.Identity()
    x = _video(height=11, width=11)
    bumped = x.clone()
    bumped[..., 0, 0] += 1.0
    with torch.no_grad():
        change = (layer(x) - layer(bumped)).abs().amax(dim=(0, 1, 2))
    assert change[:3, :3].min() > 0
    assert change[3:, :].max() == 0 and change[:, 3:].max() == 0


def test_hippo_initialization_is_s5s():
    """Lambda: the eigenvalues of HiPPO-LegS's normal part with negative imaginary parts (one of
    each conjugate pair), real parts -1/2; blocks repeat a smaller one."""
    n = 8
    k = np.arange(n)
    legs = -np.sqrt(np.outer(2 * k + 1, 2 * k + 1)) * np.tri(n, k=-1) - np.diag(k + 1)
    normal = legs + np.outer(np.sqrt(k + 0.5), np.sqrt(k + 0.5))
    eig = np.linalg.eigvals(normal)
    expected = np.sort(eig[eig.imag < 0].imag)
    Lambda, V = hippo_diagonal(n)
    np.testing.assert_allclose(np.sort(Lambda.imag.numpy()), expected, atol=1e-10)
    np.testing.assert_allclose(Lambda.real.numpy(), -0.5)
    assert V.shape == (n, n // 2)
    np.testing.assert_allclose((V.conj().T @ V).numpy(), np.eye(n // 2), atol=1e-10)
    Lambda2, V2 = hippo_diagonal(n, blocks=2)
    small, _ = hippo_diagonal(n // 2)
    np.testing.assert_allclose(Lambda2.numpy(), np.concatenate([small, small]))
    assert V2.shape == (n, n // 2) and V2[: n // 2, n // 4:].abs().max() == 0  # block diagonal
    with pytest.raises(ValueError, match="blocks of an even size"):
        hippo_diagonal(6, blocks=2)


def test_convs5_parameters_at_initialization():
    torch.manual_seed(0)
    model = create("convs5", d_model=8, n_layers=1, d_state=16, dt_min=0.01, dt_max=0.05)
    layer = model.stack.layers[0]
    assert layer.B.shape == (8, 8, 3, 3, 2) and layer.C.shape == (8, 8, 3, 3, 2)  # P/2 complex
    steps = layer.log_step.exp()
    assert steps.shape == (8,) and (steps >= 0.01).all() and (steps <= 0.05).all()
    Lambda, _ = hippo_diagonal(16)
    torch.testing.assert_close(layer.Lambda_re, Lambda.real.float())
    # zero-order hold, per state channel
    Lambda = torch.complex(layer.Lambda_re, layer.Lambda_im).detach()
    Lambda_bar, B_bar = layer.discrete()
    torch.testing.assert_close(Lambda_bar, torch.exp(Lambda * steps))
    B = torch.view_as_complex(layer.B)
    for p in range(8):
        zoh = (torch.exp(Lambda[p] * steps[p]) - 1) / Lambda[p]
        torch.testing.assert_close(B_bar[p], zoh * B[p])
    with torch.no_grad():
        layer.Lambda_re.fill_(0.3)  # an unstable eigenvalue is clipped when used
    Lambda_bar, _ = layer.discrete()
    expected = torch.exp(MAX_REAL_PART * steps)
    torch.testing.assert_close(Lambda_bar.abs(), expected)


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="positive odd"):
        create("convs5", d_model=8, kernel_size=4)
    with pytest.raises(ValueError, match="must divide"):
        create("convs5", d_model=8, num_groups=3)
    with pytest.raises(ValueError, match="positive odd"):
        create("convlstm", d_model=8, kernel_size=2)


@pytest.mark.triton
@pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0")  # triton 3.6 interpreter
def test_the_triton_scan_gives_the_torch_scans_results(triton_device):
    """backend="triton" (the fused complex linear scan; interpreted on CPU) == backend="torch":
    forward and every parameter's gradient."""
    torch.manual_seed(0)
    fast = create("convs5", d_model=8, n_layers=1, d_state=4, backend="torch").to(triton_device)
    fused = create("convs5", d_model=8, n_layers=1, d_state=4, backend="triton").to(triton_device)
    fused.load_state_dict(fast.state_dict())
    x = torch.randn(2, 5, 8, 3, 5, device=triton_device)
    outputs = []
    for model in (fast, fused):
        y = model(x)
        outputs.append((y, torch.autograd.grad(y.square().sum(), list(model.parameters()))))
    torch.testing.assert_close(outputs[1][0], outputs[0][0], rtol=1e-5, atol=1e-5)
    for g_fused, g_fast in zip(outputs[1][1], outputs[0][1], strict=True):
        torch.testing.assert_close(g_fused, g_fast, rtol=1e-4, atol=1e-4)
