"""LSTM (Hochreiter & Schmidhuber, 1997), dense or head-wise as in FlashRNN (Pöppel et al., 2024).

heads = 1 is the classic LSTM, stored as `torch.nn.LSTM` (unchanged state-dict keys, so older
checkpoints load). It runs as `nn.LSTM` (cuDNN / oneDNN) except on CUDA with backend="auto", where
the fused Triton recurrence of `tsk.kernels.lstm_scan` runs on the same weights (when
d_model <= 64, the widest recurrent block the kernel keeps on-chip; cuDNN otherwise).
heads > 1 splits the hidden state into heads whose recurrent matrices are blocks of a
block-diagonal R (FlashRNN's head-wise LSTM): the input projection stays dense, and the
recurrence runs through `lstm_scan` on every device (torch path on CPU, Triton on CUDA).
The CUDA paths were tested on an H100 (forward, gradients, step) and in the Triton interpreter.

ConvLSTM (Shi et al. 2015), the video baseline of the ConvSSM authors, is a frames backbone here
too (`convlstm`): convolutional gates, a state per pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tsk._names import unknown_name_error
from tsk.backbones.common import FrameStack, dropout, he_normal
from tsk.backbones.registry import register_backbone
from tsk.kernels import lstm_scan
from tsk.kernels.common import BACKENDS, resolve_backend
from tsk.kernels.lstm_scan import MAX_HEAD_DIM

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [n_layers, B, d_model]
CellState = tuple[torch.Tensor, torch.Tensor]  # a ConvLSTM layer's (c, h), each [B, d_model, H, W]


@dataclass
class LSTMConfig:
    d_model: int = 64
    n_layers: int = 2
    dropout: float = 0.1
    heads: int = 1  # > 1: block-diagonal (head-wise) recurrent matrix, FlashRNN-style
    backend: str = "auto"  # lstm_scan backend: "auto", "torch", "triton" or "reference"

    @classmethod
    def search_space(cls) -> dict[str, Any]:
        """Default `tsk.tune` space: name -> Optuna distribution. Names that are not fields here
        (`lookback`, `learning_rate`) are the estimator's."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        return {
            "d_model": IntDistribution(16, 128, log=True),
            "n_layers": IntDistribution(1, 3),
            "dropout": FloatDistribution(0.0, 0.3),
            "lookback": CategoricalDistribution([48, 96, 192, 336]),
            "learning_rate": FloatDistribution(1e-4, 1e-2, log=True),
        }


class HeadwiseLSTMLayer(nn.Module):
    """Weights of one head-wise LSTM layer: dense input projection, block-diagonal recurrence.

    weight_ih [4 D, D] (gate-major rows i, f, g, o as in nn.LSTM), weight_hh [H, 4 Dh, Dh] (head
    k's block of the recurrent matrix), bias [4, H, Dh]. Initialised like nn.LSTM: uniform in
    +-1/sqrt(fan-in), where the recurrent fan-in of a head is Dh.
    """

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        head_dim = d_model // heads
        self.weight_ih = nn.Parameter(torch.empty(4 * d_model, d_model))
        self.weight_hh = nn.Parameter(torch.empty(heads, 4 * head_dim, head_dim))
        self.bias = nn.Parameter(torch.empty(4, heads, head_dim))
        bound_in, bound_rec = 1 / math.sqrt(d_model), 1 / math.sqrt(head_dim)
        nn.init.uniform_(self.weight_ih, -bound_in, bound_in)
        nn.init.uniform_(self.weight_hh, -bound_rec, bound_rec)
        nn.init.uniform_(self.bias, -bound_in, bound_in)


@register_backbone(
    "lstm", LSTMConfig, "stacked LSTM (torch.nn.LSTM; head-wise FlashRNN-style with heads > 1)",
    paper="Hochreiter 1997; Poeppel 2024 (FlashRNN)",
)
class LSTM(nn.Module):
    """A stacked unidirectional LSTM, `[B, L, d_model] -> [B, L, d_model]`; causal."""

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        if config.heads < 1 or config.d_model % config.heads:
            raise ValueError(
                f"heads must be a positive divisor of d_model={config.d_model}, got "
                f"heads={config.heads}; pick e.g. heads=1 or a d_model that heads divides."
            )
        if config.backend not in BACKENDS:
            raise unknown_name_error("LSTM backend", config.backend, BACKENDS)
        self.config = config
        self.causal = True
        if config.heads == 1:
            self.lstm = nn.LSTM(
                config.d_model, config.d_model, num_layers=config.n_layers, batch_first=True,
                dropout=config.dropout if config.n_layers > 1 else 0.0,
            )
        else:
            self.layers = nn.ModuleList(
                HeadwiseLSTMLayer(config.d_model, config.heads) for _ in range(config.n_layers)
            )

    def _scan_backend(self, x: torch.Tensor) -> str | None:
        """The `lstm_scan` backend to run, or None to run `nn.LSTM` (dense, heads = 1)."""
        backend = self.config.backend
        if self.config.heads > 1 or backend in ("triton", "reference"):
            return backend
        if (backend == "auto" and resolve_backend("auto", x) == "triton"
                and self.config.d_model <= MAX_HEAD_DIM):
            return "triton"  # the fused recurrence on the same weights, while R fits on-chip
        return None  # "torch", or "auto" off CUDA: nn.LSTM is torch's fused dense recurrence

    def _layer_weights(self, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_ih [4 D, D], R [H, 4 Dh, Dh], bias [4, H, Dh]) of one layer, for `lstm_scan`."""
        if self.config.heads > 1:
            weights = self.layers[layer]
            return weights.weight_ih, weights.weight_hh, weights.bias
        d_model = self.config.d_model
        bias = getattr(self.lstm, f"bias_ih_l{layer}") + getattr(self.lstm, f"bias_hh_l{layer}")
        return (
            getattr(self.lstm, f"weight_ih_l{layer}"),
            getattr(self.lstm, f"weight_hh_l{layer}").view(1, 4 * d_model, d_model),
            bias.view(4, 1, d_model),
        )

    def _scan(self, x: torch.Tensor, backend: str, state: State | None = None) -> tuple[torch.Tensor, State]:
        """All layers through `lstm_scan`: x [B, L, D] -> (y [B, L, D], (h, c) [n_layers, B, D])."""
        batch, length, d_model = x.shape
        heads = self.config.heads
        # nn.LSTM's dropout: on every layer's output but the last, in training only
        rate = self.config.dropout if self.config.n_layers > 1 else 0.0
        h_last, c_last = [], []
        for layer in range(self.config.n_layers):
            weight_ih, R, bias = self._layer_weights(layer)  # noqa: N806
            gates_x = F.linear(x, weight_ih).view(batch, length, 4, heads, d_model // heads)
            initial = (state[0][layer], state[1][layer]) if state is not None else None
            x, (h, c) = lstm_scan(  # x [B, L, D]
                gates_x, R, bias, initial, output_final_state=True, backend=backend
            )
            if layer < self.config.n_layers - 1:
                x = dropout(x, rate, self.training)
            h_last.append(h)
            c_last.append(c)
        return x, (torch.stack(h_last), torch.stack(c_last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x[B, L, d_model]` -> `[B, L, d_model]`."""
        backend = self._scan_backend(x)
        if backend is None:
            return self.lstm(x)[0]
        return self._scan(x, backend)[0]

    def initial_state(self, batch: int) -> State:
        weight = next(self.parameters())
        zeros = weight.new_zeros(self.config.n_layers, batch, self.config.d_model)
        return zeros, zeros.clone()

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One time step: `x[B, d_model]`, `state` = (h, c) each `[n_layers, B, d_model]`."""
        backend = self._scan_backend(x)
        if backend is None:
            y, state = self.lstm(x.unsqueeze(1), state)
        else:
            y, state = self._scan(x.unsqueeze(1), backend, state)
        return y.squeeze(1), state


@dataclass
class ConvLSTMConfig:
    d_model: int = 64  # channels of the frames, and of each layer's hidden and cell states
    n_layers: int = 2
    kernel_size: int = 3
    dropout: float = 0.0


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer (Shi et al. 2015) as the ConvSSM authors' baseline writes it: one k x k
    convolution of `[u_t, h_{t-1}]` gives the gates i, f, o, g; `c_t = f c_{t-1} + i g`,
    `h_t = o tanh(c_t)`; the kernel He-normal, no bias (their `A`). The input's share of the
    convolution is linear in `u`, so `forward` takes it for all frames at once."""

    def __init__(self, d_model: int, kernel_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(he_normal(4 * d_model, 2 * d_model, kernel_size, kernel_size,
                                             fan_in=2 * d_model * kernel_size**2))
        self.padding = kernel_size // 2
        self.d_model = d_model

    def _gates(self, gates: torch.Tensor, state: CellState) -> tuple[torch.Tensor, CellState]:
        c, h = state
        i, f, o, g = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (c, h)

    def _recurrent(self, h: torch.Tensor) -> torch.Tensor:
        return F.conv2d(h, self.weight[:, self.d_model:], padding=self.padding)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        batch, length, channels, height, width = u.shape
        from_input = F.conv2d(u.reshape(-1, channels, height, width),
                              self.weight[:, : self.d_model], padding=self.padding)
        from_input = from_input.reshape(batch, length, -1, height, width)
        state = self.initial_state(batch, height, width)
        outputs = []
        for t in range(length):
            h, state = self._gates(from_input[:, t] + self._recurrent(state[1]), state)
            outputs.append(h)
        return torch.stack(outputs, dim=1)

    def initial_state(self, batch: int, height: int, width: int) -> CellState:
        zeros = self.weight.new_zeros(batch, self.d_model, height, width)
        return zeros, zeros.clone()

    def step(self, u: torch.Tensor, state: CellState) -> tuple[torch.Tensor, CellState]:
        gates = F.conv2d(torch.cat([u, state[1]], dim=1), self.weight, padding=self.padding)
        return self._gates(gates, state)


@register_backbone(
    "convlstm", ConvLSTMConfig, "ConvLSTM: LSTM gates from 3x3 convolutions, a state per pixel",
    paper="Shi et al. 2015", kind="frames",
)
class ConvLSTM(nn.Module):
    """Stacked ConvLSTM layers over video frames, `[B, T, d_model, H, W]` (the ConvSSM authors'
    baseline, in the same `FrameStack` as ConvS5); sequential in time, causal, with `step()`."""

    causal = True

    def __init__(self, config: ConvLSTMConfig) -> None:
        super().__init__()
        if config.kernel_size < 1 or config.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number ('same' padding), got "
                             f"{config.kernel_size}.")
        self.config = config
        self.stack = FrameStack([ConvLSTMCell(config.d_model, config.kernel_size)
                                 for _ in range(config.n_layers)], config.d_model, config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`x[B, T, d_model, H, W]` -> `[B, T, d_model, H, W]`."""
        return self.stack(x)

    def initial_state(self, batch: int, height: int, width: int) -> list[CellState]:
        return self.stack.initial_state(batch, height, width)

    def step(self, x: torch.Tensor, state: list[CellState]) -> tuple[torch.Tensor, list[CellState]]:
        """One frame `x[B, d_model, H, W]`, `(c, h)` per layer -> `(y[B, d_model, H, W], state)`."""
        return self.stack.step(x, state)
