"""One LightningModule for every task (network + loss) and the fit loop all estimators share."""

from __future__ import annotations

import copy
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

logger = logging.getLogger(__name__)


class TaskModule(L.LightningModule):
    """`net(x) -> prediction`, `loss(prediction, y)`; AdamW with per-parameter hints.

    A net that sets `auxiliary_loss` (a scalar tensor, or None) in its training forward has it
    added to the training loss (the logged `train_loss` is the task loss alone).

    A parameter with an `_optim` dict (e.g. `{"lr": 1e-3, "weight_decay": 0.0}`, as SSM
    parameters carry) gets its own optimizer group.
    """

    def __init__(
        self, net: nn.Module, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        learning_rate: float, weight_decay: float = 0.0, max_epochs: int = 1,
    ) -> None:
        super().__init__()
        self.net, self.loss = net, loss
        self.learning_rate, self.weight_decay, self.max_epochs = (
            learning_rate, weight_decay, max_epochs
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], name: str) -> torch.Tensor:
        x, y = batch
        loss = self.loss(self.net(x), y)
        self.log(f"{name}_loss", loss, prog_bar=True, on_epoch=True, on_step=False,
                 batch_size=len(x), sync_dist=name == "val")
        # a net may leave extra training terms of its paper (e.g. SpaceTime's lag losses) here
        auxiliary = getattr(self.net, "auxiliary_loss", None) if name == "train" else None
        return loss if auxiliary is None else loss + auxiliary

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> Any:
        default, groups = [], {}
        for param in self.net.parameters():
            if not param.requires_grad:
                continue
            hint = getattr(param, "_optim", None)
            if hint is None:
                default.append(param)
            else:
                groups.setdefault(tuple(sorted(hint.items())), []).append(param)
        param_groups = [{"params": default}] + [
            {"params": params, **dict(key)} for key, params in groups.items()
        ]
        optimizer = torch.optim.AdamW(
            param_groups, lr=self.learning_rate, weight_decay=self.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.max_epochs)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


@dataclass
class FitSummary:
    """What a fit did: epochs run, best validation loss, wall-clock seconds, and whether the
    starting weights (a closed-form warm start) beat every epoch and were kept."""

    epochs: int
    best_val_loss: float
    train_seconds: float
    global_rank: int = 0
    start_kept: bool = False


def fit_module(
    module: TaskModule,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    *,
    max_epochs: int,
    patience: int,
    accelerator: str = "auto",
    devices: Any = "auto",
    enable_progress_bar: bool = True,
    trainer_kwargs: dict[str, Any] | None = None,
    keep_start_if_better: bool = False,
) -> FitSummary:
    """Train with Lightning: early stopping on `val_loss`, best checkpoint restored into `module`.

    `trainer_kwargs` go to `lightning.Trainer` unchanged (e.g. `strategy="ddp"`, `precision`).
    `keep_start_if_better`: the weights before training (e.g. a closed-form warm start) count as
    a candidate too: validated first, and kept if no epoch beats them.
    """
    kwargs = dict(trainer_kwargs or {})
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    with tempfile.TemporaryDirectory(prefix="tsk-fit-") as tmp:
        callbacks: list[Any] = []
        checkpoint = None
        if val_loader is not None:
            checkpoint = ModelCheckpoint(dirpath=kwargs.pop("checkpoint_dir", tmp),
                                         monitor="val_loss", mode="min", save_top_k=1)
            callbacks += [EarlyStopping("val_loss", patience=patience, mode="min"), checkpoint]
        else:
            kwargs.setdefault("limit_val_batches", 0)  # no validation data: skip that loop
        callbacks += kwargs.pop("callbacks", [])
        kwargs.setdefault("default_root_dir", tmp)
        kwargs.setdefault("logger", False)
        kwargs.setdefault("enable_model_summary", False)
        trainer = L.Trainer(
            max_epochs=max_epochs, accelerator=accelerator,
            devices=kwargs.pop("devices", devices), callbacks=callbacks,
            enable_progress_bar=enable_progress_bar, deterministic=kwargs.pop("deterministic", True),
            **kwargs,
        )
        start = time.perf_counter()
        initial = None
        try:
            if keep_start_if_better and val_loader is not None:
                scores = trainer.validate(module, val_loader, verbose=False)
                initial = (scores[0]["val_loss"], copy.deepcopy(module.state_dict()))
            with warnings.catch_warnings():  # fitting without validation data is intended
                warnings.filterwarnings("ignore", ".*validation_step.* but have no `val_dataloader`")
                trainer.fit(module, train_loader, val_loader)
        finally:  # Lightning switches deterministic algorithms on globally: switch them back
            torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        seconds = time.perf_counter() - start
        best, start_kept = float("nan"), False
        if checkpoint is not None and checkpoint.best_model_path:
            state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
            module.load_state_dict(state["state_dict"])
            best = float(checkpoint.best_model_score)
        if initial is not None and not initial[0] > best:  # also when no epoch was scored (nan)
            logger.info("No epoch beat the starting weights on validation (%.4g): kept them.", initial[0])
            module.load_state_dict(initial[1])
            best, start_kept = float(initial[0]), True
        trainer.strategy.barrier()  # under DDP, no rank deletes the checkpoint while others read
    module.cpu()
    return FitSummary(trainer.current_epoch, best, seconds, trainer.global_rank, start_kept)


def predict_batches(net: nn.Module, loader: DataLoader, device: torch.device) -> torch.Tensor:
    """Run `net` over every batch of inputs in eval mode; returns predictions on the CPU."""
    net.eval().to(device)
    outputs = []
    with torch.inference_mode():
        for batch in loader:
            x = batch[0] if isinstance(batch, list | tuple) else batch
            outputs.append(net(x.to(device)).cpu())
    return torch.cat(outputs)
