"""Running a trained network, free of Lightning: the batch convention every task shares
(`run_net`), the prediction loop (`predict_batches`), a network's mean loss over a loader
(`mean_loss`) and the record of what a fit did (`FitSummary`).

A loaded estimator predicts with this module alone; `tsk.training` (Lightning) is imported only
when a fit runs, so `tsk.load(dir)` and `predict` do not pay Lightning's import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

BATCH_INPUTS, BATCH_TARGETS = "inputs", "targets"


def run_net(net: nn.Module, batch: Mapping[str, Any]) -> Any:
    """`net`'s output for a batch mapping: `net(inputs, **rest)`, where `rest` is what the batch
    holds besides its inputs and targets (e.g. `lengths` of right-padded sequences)."""
    extras = {key: value for key, value in batch.items() if key not in (BATCH_INPUTS, BATCH_TARGETS)}
    return net(batch[BATCH_INPUTS], **extras)


@dataclass
class FitSummary:
    """What a fit did: epochs run, the validation loss of the weights it kept, wall-clock
    seconds, whether the starting weights (a closed-form warm start) beat every epoch and were
    kept, the validation metric it followed (`monitor`) and that metric's kept value
    (`best_score`), every epoch's validation metrics (`history`), and the validation loss of
    each simple baseline the estimator scored beside the model (`baselines`, e.g. a forecaster's
    linear start and seasonal-naive forecast): whether the trained model earned its keep."""

    epochs: int
    best_val_loss: float
    train_seconds: float
    global_rank: int = 0
    start_kept: bool = False
    monitor: str = "val_loss"
    best_score: float = float("nan")
    history: list[dict[str, float]] = field(default_factory=list)
    baselines: dict[str, float] = field(default_factory=dict)


def predict_batches(net: nn.Module, loader: DataLoader, device: torch.device) -> list[Any]:
    """Run `net` over every batch (mappings, as in training) in eval mode; returns each batch's
    output on the CPU, in order (the caller joins them: outputs need not be one tensor)."""
    net.eval().to(device)
    outputs = []
    with torch.inference_mode():
        for batch in loader:
            batch = {key: value.to(device) if isinstance(value, torch.Tensor) else value
                     for key, value in batch.items()}
            outputs.append(_to_cpu(run_net(net, batch)))
    return outputs


def _to_cpu(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.cpu()
    if isinstance(output, Mapping):
        return {key: _to_cpu(value) for key, value in output.items()}
    if isinstance(output, list | tuple):
        return type(output)(_to_cpu(value) for value in output)
    return output


def mean_loss(net: nn.Module, loader: DataLoader) -> float:
    """`net.loss` over every batch of `loader` (on the CPU, in eval mode), averaged over samples
    as Lightning averages `val_loss`: what a fit's validation would score for `net`."""
    net.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for batch in loader:
            size = len(batch[BATCH_INPUTS])
            total += float(net.loss(run_net(net, batch), batch)) * size
            count += size
    return total / count if count else float("nan")
