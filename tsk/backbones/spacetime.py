"""SpaceTime (Zhang, Saab, Poli, Dao, Goel & Re, ICLR 2023, "Effectively Modeling Time Series
with Simple Discrete State Spaces").

A SpaceTime layer is a discrete SSM whose state matrix is a companion matrix, `A = S + a e_N^T`
(the shift S with the characteristic-polynomial coefficients `a` as its last column): it can
express AR(p) / ARIMA recurrences exactly, which diagonal continuous-time SSMs (S4, S4D) cannot.
Each layer applies its kernel `K = (c^T b, c^T A b, ..., c^T A^(L-1) b)` as a long convolution
(the kernel from the paper's O(N log N + L log L) algorithm, `tsk.kernels.companion_kernel`),
adds a skip `D u`, then a pre-activation MLP with its own skip, and the layer's residual.

Also here, the paper's other SSMs: the shift SSM (`ssm="shift"`), the fixed preprocessing SSMs
(differencing and moving-average residual kernels, `PreprocessingEmbedding`) and the closed-loop
companion SSM that generates its own future inputs (`u_{t+1} = k^T x_t`, i.e. the state follows
`A + b k^T` past the lookback) to roll a whole horizon out (`ClosedLoopSSM`). The forecasting
network that assembles them around this backbone is `tsk.heads.spacetime.SpaceTimeForecastNet`,
which registers itself with the heads as the forecasting network of "spacetime".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tsk.backbones.common import Dropout
from tsk.backbones.registry import register_backbone
from tsk.kernels import companion_kernel, fftconv
from tsk.kernels.common import fit_length, poly_mul, series_inverse
from tsk.kernels.companion_kernel import reversed_characteristic

SSM_KINDS = ("companion", "shift")


@dataclass
class SpaceTimeConfig:
    """Defaults follow the authors' ETT scripts: 128 channels, state size 64, one encoder layer
    (plus the closed-loop decoder in the forecasting network), dropout 0.25, the first layer's
    16 companion kernels shared by 8 channels each (the 8 preprocessed views of one input)."""

    d_model: int = 128
    n_layers: int = 1
    d_state: int = 64
    dropout: float = 0.25
    n_heads: int = 8  # channels sharing one SSM kernel in the first layer (later layers: 1)
    ssm: str = "companion"  # "shift": A = S fixed, b = e_1 (a learned FIR filter c)
    norm_order: int = 1  # scale a (decoder: a, b, c, k) to unit l_p norm; 0 = off
    kernel_init: str = "xavier"  # a, b, c (and k): "xavier" U(+-1/sqrt(N)) or "normal" N(0, 1)
    diff_orders: int = 4  # preprocessing: differencing of orders 0 .. diff_orders - 1
    ma_kernels: int = 4  # preprocessing: moving-average residuals per group of views
    min_ma_window: int = 4
    max_ma_window: int = 64  # windows drawn from [min, max), capped at the lookback
    # Weight of the paper's two lag losses while training (the paper: 1, 1). The authors' released
    # code runs them in the first epoch only (its evaluation step turns them off for good): 0
    # trains as that code does, 2x faster per step; which is better depends on the data (README).
    lag_loss_weight: float = 1.0

    @classmethod
    def search_space(cls) -> dict[str, Any]:
        """Default `tsk.tune` space (`lookback`, `learning_rate` are the estimator's)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {
            "d_model": CategoricalDistribution([32, 64, 128, 256]),
            "n_layers": IntDistribution(1, 3),
            "d_state": CategoricalDistribution([16, 32, 64, 128]),
            "dropout": FloatDistribution(0.0, 0.3),
            "lag_loss_weight": CategoricalDistribution([0.0, 1.0]),  # off: the authors' code
            "lookback": CategoricalDistribution([96, 192, 336, 720]),
            "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        }


def normalized(x: torch.Tensor, order: int) -> torch.Tensor:
    """`x / ||x||_order` along the last dim (order 0: unchanged). With ||a||_1 <= 1 every root
    of `x^N - sum a_i x^i` lies in the closed unit disk, so the companion SSM cannot blow up.
    Rows with a norm near zero are left as they are (as the authors do)."""
    if order <= 0:
        return x
    norm = torch.linalg.vector_norm(x, ord=order, dim=-1, keepdim=True)
    return torch.where(norm > 1e-4, x / norm.clamp_min(1e-4), x)


def initial_weights(shape: tuple[int, int], init: str) -> torch.Tensor:
    """The authors' two SSM inits: "normal" N(0, 1) (their configs' choice) and "xavier"
    U(-1/sqrt(N), 1/sqrt(N)) (the default here: with N(0, 1) b and c every kernel tap is
    O(sqrt(N)), so a layer amplifies its input ~100x at N = 64 and float32 FFT round-off grows
    with it; it also fit AR(4) better in our tests)."""
    if init == "normal":
        return torch.randn(shape)
    if init == "xavier":
        bound = 1 / math.sqrt(shape[-1])
        return torch.empty(shape).uniform_(-bound, bound)
    raise ValueError(f"kernel_init must be 'normal' or 'xavier', got {init!r}.")


class CompanionSSM(nn.Module):
    """H channels, `ceil(H / heads)` companion SSMs (channel h uses SSM `h // heads`), as a long
    convolution plus the skip `D u`; `step()` runs the same SSM as a recurrence.

    `a, b, c` start from `initial_weights(init)`, `D ~ N(0, 1)`; only `a` is normalized
    (`norm_order`), as in the authors' code. With `kind="shift"`, `a = 0` and `b = e_1` are
    fixed buffers: `y_t = sum_l c_l u_{t-l}`, a learned FIR filter.
    """

    def __init__(self, d_model: int, d_state: int, heads: int = 1, kind: str = "companion",
                 norm_order: int = 1, skip: bool = True, init: str = "normal") -> None:
        super().__init__()
        if kind not in SSM_KINDS:
            raise ValueError(f"ssm must be one of {SSM_KINDS}, got {kind!r}.")
        self.norm_order = norm_order if kind == "companion" else 0
        n_kernels = -(-d_model // heads)
        self.register_buffer("kernel_index", torch.arange(d_model) // heads, persistent=False)
        shape = (n_kernels, d_state)
        if kind == "companion":
            self.a = nn.Parameter(initial_weights(shape, init))
            self.b = nn.Parameter(initial_weights(shape, init))
        else:
            self.register_buffer("a", torch.zeros(shape))
            self.register_buffer("b", F.one_hot(torch.zeros(n_kernels, dtype=torch.long),
                                                d_state).float())
        self.c = nn.Parameter(initial_weights(shape, init))
        self.D = nn.Parameter(torch.randn(d_model)) if skip else None

    def matrices(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-kernel `(a, b, c)`, each `[n_kernels, N]`, with `a` normalized."""
        return normalized(self.a, self.norm_order), self.b, self.c

    def kernel(self, length: int) -> torch.Tensor:
        """`K[H, L]`: each channel's `c^T A^l b` (shared within a head group)."""
        return companion_kernel(*self.matrices(), length)[self.kernel_index]

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """`u[B, L, H]` -> `[B, L, H]`."""
        return fftconv(u.transpose(1, 2), self.kernel(u.shape[1]), self.D).transpose(1, 2)

    def initial_state(self, batch: int) -> torch.Tensor:
        return self.c.new_zeros(batch, len(self.kernel_index), self.c.shape[-1])  # [B, H, N]

    def step(self, u: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`u[B, H]`, state `[B, H, N]` -> `(y[B, H], state)`: x <- A x + b u, y = c^T x + D u,
        with `A x = (0, x_1, ..., x_{N-1}) + a x_N` (shift down, feed the last entry back)."""
        a, b, c = (m[self.kernel_index] for m in self.matrices())  # [H, N]
        shifted = F.pad(state[..., :-1], (1, 0))
        state = shifted + a * state[..., -1:] + b * u.unsqueeze(-1)
        y = (c * state).sum(-1)
        return (y if self.D is None else y + self.D * u), state


class PreActivationMLP(nn.Module):
    """`GELU -> dropout -> Linear`, plus the input when `skip` (the paper's block MLP)."""

    def __init__(self, d_in: int, d_out: int, dropout: float, skip: bool) -> None:
        super().__init__()
        self.dropout = Dropout(dropout)
        self.linear = nn.Linear(d_in, d_out)
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(self.dropout(F.gelu(x)))
        return y + x if self.skip else y


class SpaceTimeLayer(nn.Module):
    """`u + MLP(SSM(u))`, `MLP(y) = y + Linear(dropout(GELU(y)))`: no normalization layers."""

    def __init__(self, config: SpaceTimeConfig, heads: int) -> None:
        super().__init__()
        self.ssm = CompanionSSM(config.d_model, config.d_state, heads, config.ssm,
                                config.norm_order, init=config.kernel_init)
        self.mlp = PreActivationMLP(config.d_model, config.d_model, config.dropout, skip=True)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u + self.mlp(self.ssm(u))

    def initial_state(self, batch: int) -> torch.Tensor:
        return self.ssm.initial_state(batch)

    def step(self, u: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, state = self.ssm.step(u, state)
        return u + self.mlp(y), state


def _validate(config: SpaceTimeConfig) -> None:
    for name in ("d_model", "n_layers", "d_state", "n_heads"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be a positive integer, got {getattr(config, name)!r}.")
    if config.ssm not in SSM_KINDS:
        raise ValueError(f"ssm must be one of {SSM_KINDS}, got {config.ssm!r}.")
    if config.diff_orders < 0 or config.ma_kernels < 0 or config.diff_orders + config.ma_kernels < 1:
        raise ValueError(
            "diff_orders and ma_kernels must be >= 0 and give at least one view (diff_orders=1, "
            f"ma_kernels=0 is the plain repeat embedding); got {config.diff_orders}, "
            f"{config.ma_kernels}."
        )
    if not 1 <= config.min_ma_window < config.max_ma_window:
        raise ValueError(
            f"need 1 <= min_ma_window < max_ma_window, got {config.min_ma_window}, "
            f"{config.max_ma_window}."
        )


class PreprocessingEmbedding(nn.Module):
    """The paper's repeat embedding followed by its preprocessing SSMs: every input channel is
    copied across `d_model` channels and each copy convolved with a fixed, non-trainable kernel.

    Views, in groups of `diff_orders + ma_kernels` channels per input: differencing of order
    `0 .. diff_orders - 1` (kernel `(-1)^k C(order, k)`; order 0 is the identity) and
    moving-average residuals `u_t - mean(u_{t-w+1 .. t})`, each with its own window w drawn
    once from `[min_ma_window, max_ma_window)` (capped at the lookback) and stored. Channel h
    reads input `h % n_in` through view `(h // n_in) % views` (the authors' layout: inputs
    innermost, so every input is embedded whenever `d_model >= n_in`).
    """

    def __init__(self, n_in: int, lookback: int, config: SpaceTimeConfig) -> None:
        super().__init__()
        if config.d_model < n_in:
            raise ValueError(
                f"The repeat embedding needs d_model >= the number of inputs, got d_model="
                f"{config.d_model} for {n_in} inputs; raise d_model."
            )
        views = config.diff_orders + config.ma_kernels
        channel = torch.arange(config.d_model)
        source, view = channel % n_in, (channel // n_in) % views
        windows = torch.randint(config.min_ma_window, config.max_ma_window, (config.d_model,))
        windows = windows.clamp(max=lookback)
        taps = min(lookback, max(config.diff_orders, int(windows.max())))
        kernels = torch.zeros(config.d_model, taps)
        for h in range(config.d_model):
            order = int(view[h])
            if order < config.diff_orders:
                for k in range(min(order + 1, taps)):
                    kernels[h, k] = (-1) ** k * math.comb(order, k)
            else:
                kernels[h, 0] = 1.0
                kernels[h, : int(windows[h])] -= 1.0 / float(windows[h])
        self.register_buffer("source", source)  # [d_model]: the input each channel reads
        self.register_buffer("windows", torch.where(view >= config.diff_orders, windows, 0))
        self.register_buffer("kernels", kernels)  # [d_model, taps], fixed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x[B, L, n_in]` -> `[B, L, d_model]`."""
        copies = x[..., self.source].transpose(1, 2)  # [B, d_model, L]
        taps = self.kernels[:, : copies.shape[-1]]
        return fftconv(copies, taps).transpose(1, 2)


def lower_toeplitz(v: torch.Tensor) -> torch.Tensor:
    """`T[..., j, q] = v[..., j - q]` for `q <= j`, else 0: `[..., N]` -> `[..., N, N]`."""
    n = v.shape[-1]
    lag = torch.arange(n, device=v.device)
    lag = lag[:, None] - lag[None, :]
    return v[..., lag.clamp_min(0)] * (lag >= 0)


def state_impulse_response(a: torch.Tensor, b: torch.Tensor, length: int) -> torch.Tensor:
    """`X[..., j, l] = e_j^T A^l b` for `l < length` (`a, b [..., N]` -> `[..., N, length]`): the
    companion SSM's state after an impulse, so that `x_{T-1} = sum_l X[:, l] u_{T-1-l}`.

    From `(I - zA) X(z) = b` with `(Ax)_j = x_{j-1} + a_j x_{N-1}`: every entry is
    `X_j = P_j + Q_j X_{N-1}` with `P_j = sum_{i<=j} b_i z^(j-i)` and
    `Q_j = z sum_{i<=j} a_i z^(j-i)`, so the last one is `X_{N-1} = P_{N-1} / (1 - Q_{N-1})`
    (the denominator is `det(I - zA)`): one power-series division, then N short products.
    """
    numerators = lower_toeplitz(b)  # P: [..., N, N]
    feedback = F.pad(lower_toeplitz(a), (1, 0))  # Q: [..., N, N + 1]
    last = poly_mul(numerators[..., -1, :], series_inverse(reversed_characteristic(a), length),
                    length)  # [..., length]
    return fit_length(numerators, length) + poly_mul(feedback, last.unsqueeze(-2), length)


class ClosedLoopSSM(nn.Module):
    """The decoder's closed-loop companion SSM, one per channel: `x_t = A x_{t-1} + b u_t`,
    `y_t = c^T x_t`, and a learned `k` predicting the next input, `u_{t+1} = k^T x_t`.

    Past the lookback T the layer feeds itself, `x_{t+1} = M x_t` with `M = A + b k^T`, so the
    forecast is `y_{T-1+m} = c^T M^m x_{T-1}`: the lookback is summarized by its last state
    (`state_impulse_response`), which the horizon's readout `C[j, m] = c^T M^m e_j` maps to the
    forecast (the authors' route: the closed loop runs from the last state). `C` comes from
    Sherman-Morrison on `(I - zA - z b k^T)^-1`: `c^T R e_j + z (c^T R b)(k^T R e_j) /
    (1 - z k^T R b)` with `R = (I - zA)^-1`, where `c^T R e_j` are windows of the one kernel
    `c^T A^l e_0` (`A e_j = e_{j+1}`). Both are batch-free; the batch meets them in two matrix
    products. While training, the open-loop outputs and next-input predictions over the lookback
    (the lag losses' inputs) are one FFT convolution with the kernels `c^T A^l b`, `k^T A^l b`.
    a, b, c, k ~ N(0, 1), each scaled to unit norm (`norm_order`) as in the paper.
    """

    def __init__(self, d_model: int, d_state: int, kind: str = "companion",
                 norm_order: int = 1, init: str = "normal") -> None:
        super().__init__()
        self.open_loop = CompanionSSM(d_model, d_state, 1, kind, norm_order, skip=False, init=init)
        self.k = nn.Parameter(initial_weights((d_model, d_state), init))
        self.norm_order = norm_order

    def matrices(self) -> tuple[torch.Tensor, ...]:
        """`(a, b, c, k)`, each `[H, N]`, the trainable ones normalized."""
        ssm, order = self.open_loop, self.norm_order
        learned = isinstance(ssm.a, nn.Parameter)
        a = normalized(ssm.a, order) if learned else ssm.a
        b = normalized(ssm.b, order) if learned else ssm.b
        return a, b, normalized(ssm.c, order), normalized(self.k, order)

    def forward(self, u: torch.Tensor, horizon: int, lookback_outputs: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """`u[B, T, H]` -> forecast `[B, horizon, H]` (closed loop), and with `lookback_outputs`
        the open-loop outputs over the lookback `[B, T, H]` (`y_t`, a prediction of step t + 1)
        and the predicted next inputs `k^T x_t` `[B, T, H]` (else None, None)."""
        length = u.shape[1]
        a, b, c, k = self.matrices()
        n = a.shape[-1]
        unit = F.one_hot(torch.zeros_like(a[:, 0], dtype=torch.long), n).to(a.dtype)  # e_0
        span = max(length, horizon + n - 1)
        kernels = companion_kernel(torch.cat([a, a, a, a]), torch.cat([b, b, unit, unit]),
                                   torch.cat([c, k, c, k]), span)
        output_kernel, input_kernel, output_rows, input_rows = kernels.chunk(4)  # [H, span]
        signal = u.transpose(1, 2).to(kernels.dtype)  # [B, H, T], in the kernels' dtype
        response = state_impulse_response(a.to(kernels.dtype), b.to(kernels.dtype), length)
        state = torch.einsum("bht,hnt->bhn", signal, response.flip(-1))  # x_{T-1}
        readout = output_rows.unfold(-1, horizon, 1)[:, :n]  # c^T A^m e_j: [H, N, m]
        if horizon > 1:
            feedback = torch.cat([torch.ones_like(input_kernel[:, :1]),
                                  -input_kernel[:, : horizon - 2]], dim=-1)  # 1 - z k^T R b
            gain = poly_mul(output_kernel[:, : horizon - 1], series_inverse(feedback, horizon - 1),
                            horizon - 1)
            inputs = input_rows.unfold(-1, horizon - 1, 1)[:, :n]  # k^T A^m e_j
            readout = readout + F.pad(poly_mul(gain.unsqueeze(-2), inputs, horizon - 1), (1, 0))
        forecast = torch.einsum("bhn,hnm->bmh", state, readout).to(u.dtype)
        if not lookback_outputs:
            return forecast, None, None
        lookback = torch.stack([output_kernel[:, :length], input_kernel[:, :length]])  # [2, H, T]
        outputs = poly_mul(signal.unsqueeze(1), lookback, length).to(u.dtype)  # [B, 2, H, T]
        return forecast, outputs[:, 0].transpose(1, 2), outputs[:, 1].transpose(1, 2)



@register_backbone(
    "spacetime", SpaceTimeConfig,
    "companion-matrix SSM layers (AR-expressive), closed-loop decoder for long horizons",
    paper="Zhang et al. 2023, Effectively Modeling Time Series with Simple Discrete State Spaces",
    tags=("ssm", "forecasting"),
)
class SpaceTime(nn.Module):
    """The encoder: `n_layers` SpaceTime layers; causal, and `step()` runs it as a recurrence.

    The first layer shares each companion SSM among `n_heads` channels, later layers give every
    channel its own (the authors' layout).
    """

    def __init__(self, config: SpaceTimeConfig) -> None:
        super().__init__()
        _validate(config)
        self.config = config
        self.causal = True
        self.layers = nn.ModuleList(
            SpaceTimeLayer(config, config.n_heads if i == 0 else 1) for i in range(config.n_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x[B, L, d_model]` -> `[B, L, d_model]`."""
        for layer in self.layers:
            x = layer(x)
        return x

    def initial_state(self, batch: int) -> list[torch.Tensor]:
        return [layer.initial_state(batch) for layer in self.layers]

    def step(self, x: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """`x[B, d_model]`, one state `[B, d_model, d_state]` per layer -> `(y[B, d_model], state)`."""
        new_state = []
        for layer, layer_state in zip(self.layers, state, strict=True):
            x, layer_state = layer.step(x, layer_state)
            new_state.append(layer_state)
        return x, new_state
