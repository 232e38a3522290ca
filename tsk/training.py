"""One LightningModule for every task (network + loss) and the fit loop all estimators share.

Only a fit imports this module (it imports Lightning); what prediction needs is in
`tsk.inference`."""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sized
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn
from torch.utils.data import DataLoader, RandomSampler
from torchmetrics import MeanMetric

from tsk.allocator import keep_freed_memory
from tsk.inference import BATCH_INPUTS, FitSummary, run_net

logger = logging.getLogger(__name__)

VALIDATIONS_PER_BUDGET = 10
"""Validations a step budget gets at least (`validation_interval`), however few epochs it spans."""

LONG_EPOCH_STEPS = 500
"""Training steps a fit goes at most without validation (`validation_interval`): a long epoch
(ETTm1's 3,700 steps of 64 windows) is validated several times, so early stopping and the best
checkpoint see a model that peaks within its first epoch (a deep part started beside a
closed-form linear map can overfit in a few hundred steps)."""

MID_EPOCH_CHECKPOINT_SECONDS = 600.0
"""How often a resumable fit also rewrites `last.ckpt` within an epoch: at most this much
training is lost to an interruption, however long an epoch runs."""


class TaskModule(L.LightningModule):
    """A task network in Lightning: `run_net(net, batch)` -> output, `net.loss(output, batch)`;
    AdamW with per-parameter hints and a cosine schedule.

    Batches are mappings (`inputs`, `targets`, and what the net also reads, e.g. `lengths`).
    Every epoch logs `train_loss` and `val_loss`, and the net's `metrics(output, batch)` (a dict of
    scalar tensors, if it has that method) as `val_<name>`: estimators early-stop on one of them.
    A net that sets `auxiliary_loss` (a scalar tensor, or None) in its training forward has it
    added to the training loss (the logged `train_loss` is the task loss alone).

    A parameter with an `_optim` dict (e.g. `{"lr": 1e-3, "weight_decay": 0.0}`, as SSM
    parameters carry) gets its own optimizer group. Its `lr` is a ceiling: the group steps at
    `min(lr, learning_rate)`, the S4 authors' rule (state-spaces/s4 example.py), so a smaller
    global rate (a user's, a tuning trial's) is not overridden by a faster SSM rate. The
    learning rate follows a cosine over the steps the fit may take (`max_epochs` epochs, or
    `max_steps` when that comes first), updated every step, so a fit cut short by a step
    budget still anneals.
    """

    def __init__(self, net: nn.Module, learning_rate: float, weight_decay: float = 0.0,
                 max_epochs: int = 1) -> None:
        super().__init__()
        self.net = net
        self.learning_rate, self.weight_decay, self.max_epochs = (
            learning_rate, weight_decay, max_epochs
        )
        # The epoch's mean training loss, updated every step and logged (as a metric object,
        # which Lightning computes and resets at the epoch's end) once an epoch: `self.log` of a
        # tensor every step cost ~0.57 ms, 4% of a default s4d step; an update costs ~0.02 ms.
        # A NaN loss is "imputed" as NaN, so the mean shows it: the default drops it with a
        # warning, and "disable" also drops the batch-size weights (torchmetrics#3434, 1.9.0).
        self.train_loss_mean = MeanMetric(nan_strategy=float("nan"))
        self._train_loss_logged = False

    def forward(self, batch: Mapping[str, Any]) -> Any:
        return run_net(self.net, batch)

    def _step(self, batch: Mapping[str, Any], name: str) -> torch.Tensor:
        output = run_net(self.net, batch)
        loss = self.net.loss(output, batch)
        size = len(batch[BATCH_INPUTS])
        if name == "train":
            self.train_loss_mean.update(loss.detach().clone(), weight=size)  # (imputes in place)
            if not self._train_loss_logged:
                self.log("train_loss", self.train_loss_mean, prog_bar=True, on_epoch=True,
                         on_step=False)
                self._train_loss_logged = True
        else:
            self.log(f"{name}_loss", loss, prog_bar=True, on_epoch=True, on_step=False,
                     batch_size=size, sync_dist=True)
        if name == "val" and hasattr(self.net, "metrics"):
            for key, value in self.net.metrics(output, batch).items():
                self.log(f"val_{key}", value, prog_bar=True, on_epoch=True, on_step=False,
                         batch_size=size, sync_dist=True)
        # a net may leave extra training terms of its paper (e.g. SpaceTime's lag losses) here
        auxiliary = getattr(self.net, "auxiliary_loss", None) if name == "train" else None
        return loss if auxiliary is None else loss + auxiliary

    def on_train_epoch_start(self) -> None:
        self._train_loss_logged = False  # each epoch's results hold the metric anew

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
            {"params": params, **_capped(dict(key), self.learning_rate)}
            for key, params in groups.items()
        ]
        # fused: one kernel over all the weights, where torch has one (CPU, CUDA); on the CPU
        # 3.4x faster than the default loop over them (0.22 vs 0.75 ms a step at 108k weights)
        fused = all(p.device.type in ("cpu", "cuda") for group in param_groups for p in group["params"])
        optimizer = torch.optim.AdamW(
            param_groups, lr=self.learning_rate, weight_decay=self.weight_decay, fused=fused or None
        )
        # outside a fit (no trainer attached) the schedule has no steps to count: one per epoch
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else math.inf
        steps = int(total) if math.isfinite(total) else self.max_epochs
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _capped(hint: dict[str, Any], learning_rate: float) -> dict[str, Any]:
    """An optimizer hint with its `lr` (a ceiling) no higher than the global `learning_rate`."""
    if "lr" in hint:
        hint["lr"] = min(hint["lr"], learning_rate)
    return hint


class ReplayableSampler(RandomSampler):
    """`RandomSampler` (the same orders from the same generator) that keeps its generator's
    state from before each epoch's permutation, so that a fit resumed mid-epoch can draw that
    permutation again and go on after the samples it had trained on."""

    def __init__(self, data_source: Sized, generator: torch.Generator | None = None) -> None:
        if generator is None:  # unseeded: a stream of its own, drawn from torch's
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            generator = torch.Generator().manual_seed(seed)
        super().__init__(data_source, generator=generator)
        self.epoch_state: torch.Tensor | None = None
        self._replay: tuple[torch.Tensor, int] | None = None

    def replay(self, epoch_state: torch.Tensor, skip: int) -> None:
        """Make the next epoch the one whose permutation `epoch_state` draws, less its first
        `skip` samples."""
        self._replay = (epoch_state, skip)

    def __iter__(self) -> Iterator[int]:
        skip = 0
        if self._replay is not None:
            (state, skip), self._replay = self._replay, None
            self.generator.set_state(state)
        self.epoch_state = self.generator.get_state()
        return itertools.islice(super().__iter__(), skip, None)


class ResumableRun(Callback):
    """What a resumed fit needs besides Lightning's own checkpoint (weights, optimizer, schedule,
    epoch and batch, early-stopping and best-checkpoint state): the seconds trained so far and
    the random streams (torch's for dropout, the loader's for shuffling), saved with every
    checkpoint and restored before the next training batch, and within an epoch the place in
    its permutation (a `ReplayableSampler` replays it), so an interrupted and resumed fit
    trains as an uninterrupted one would."""

    def __init__(self, loader: DataLoader) -> None:
        self.sampler = loader.sampler if isinstance(loader.sampler, ReplayableSampler) else None
        # the shuffle's stream (the loader's own draws share it when it is seeded)
        self.generator = self.sampler.generator if self.sampler is not None else loader.generator
        self.batch_size = loader.batch_size  # set whenever the sampler is (no batch_sampler)
        self.seconds = 0.0
        self.history: list[dict[str, float]] = []  # each validation's epoch, step and val_*
        self._since: float | None = None
        self._restore: dict[str, Any] | None = None
        self._trainer: L.Trainer | None = None

    @property
    def elapsed(self) -> float:
        running = time.perf_counter() - self._since if self._since is not None else 0.0
        return self.seconds + running

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._since = time.perf_counter()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds, self._since = self.elapsed, None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return  # not an epoch: the sanity check, or the start validated before fitting
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items()
                   if key.startswith("val_")}
        step = trainer.global_step
        self.history = [h for h in self.history if h.get("step") != step]
        self.history.append({"epoch": trainer.current_epoch, "step": step, **metrics})

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        # torch's stream only now: the sanity check before this draws from it, the uninterrupted
        # fit did not at this point (the loader's streams were set before its first shuffle)
        if self._restore is None:
            return
        torch.set_rng_state(self._restore["torch"])
        if self._restore["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self._restore["cuda"])
        self._restore = None

    def _batches_done(self) -> int:
        """Training batches of the current epoch already stepped; 0 at its end or when the
        sampler cannot replay (nothing to skip)."""
        trainer = self._trainer
        if trainer is None or self.sampler is None:
            return 0
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return done if done < trainer.num_training_batches else 0

    def state_dict(self) -> dict[str, Any]:
        done = self._batches_done()
        return {
            "seconds": self.elapsed, "history": self.history, "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            "generator": self.generator.get_state() if self.generator is not None else None,
            "epoch_state": self.sampler.epoch_state if done else None,
            "samples_done": done * self.batch_size if done else 0,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seconds = float(state_dict["seconds"])
        self.history = list(state_dict.get("history", []))  # absent from tsk 0.1.0's checkpoints
        # both before the first shuffle: the loader draws from its generator, then the sampler
        if self.generator is not None and state_dict["generator"] is not None:
            self.generator.set_state(state_dict["generator"])
        if state_dict.get("epoch_state") is not None and self.sampler is not None:
            self.sampler.replay(state_dict["epoch_state"], state_dict["samples_done"])
        self._restore = state_dict


class _EveryEpochCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` that keeps `last.ckpt` current: after every epoch (Lightning 2.6
    rewrites it only when the monitored score improves, so a fit resumed after epochs that did
    not improve would train them all again) and, given `every_seconds`, within an epoch too.
    Its name keys its state in checkpoints (`_check_callback_states`): renaming it would make
    every earlier checkpoint unresumable."""

    def __init__(self, *args: Any, every_seconds: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.every_seconds = every_seconds
        self._saved_at = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        # not on an epoch's last batch: the epoch-end saves that follow at this step would skip
        due = (self.every_seconds is not None and self.save_last
               and time.monotonic() - self._saved_at >= self.every_seconds
               and (batch_idx + 1) % trainer.accumulate_grad_batches == 0  # no gradients held
               and batch_idx + 1 < trainer.num_training_batches and trainer.world_size == 1)
        if due and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._save_last_if_missed(trainer, at_epoch_end=False)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A folder moved since it was saved (copied from another machine, say) resumes with its
        best epoch: Lightning would forget it (its score, and the path it loads at the end)."""
        saved = state_dict.get("dirpath")
        if saved is not None and self.dirpath is not None and saved != self.dirpath:
            def moved(path: Any) -> Any:
                return (os.path.join(self.dirpath, os.path.relpath(path, saved))
                        if isinstance(path, str) and path.startswith(saved + os.sep) else path)
            state_dict = {**{k: moved(v) for k, v in state_dict.items()}, "dirpath": self.dirpath,
                          "best_k_models": {moved(k): v for k, v in
                                            state_dict.get("best_k_models", {}).items()}}
        super().load_state_dict(state_dict)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._save_last_if_missed(trainer, at_epoch_end=True)

    def _save_last_if_missed(self, trainer: L.Trainer, at_epoch_end: bool) -> None:
        # not skipped: not sanity checking, and nothing saved at this step (no new best)
        if (self.save_last and self._should_save_on_train_epoch_end(trainer) == at_epoch_end
                and not self._should_skip_saving_checkpoint(trainer)):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._saved_at = time.monotonic()


def _check_callback_states(path: Path, callbacks: list[Callback]) -> None:
    """Lightning restores a callback's state only under the key it was saved with and silently
    skips it otherwise; a fit resumed that way (e.g. from a checkpoint of another tsk version)
    would forget its best epoch. Refuse instead."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False, mmap=True).get("callbacks", {})
    except Exception as err:  # a file cut short by a crash mid-write, or not a checkpoint at all
        raise ValueError(
            f"{path} is damaged and cannot be resumed ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:160] if str(err) else 'unreadable'}). Delete it to "
            "start the fit over (the other files in the folder may stay)."
        ) from err
    missing = [c.state_key for c in callbacks if c.state_dict() and c.state_key not in saved]
    if missing:
        raise ValueError(
            f"{path} cannot be resumed by this version of tsk (it lacks the state of "
            f"{', '.join(missing)}). Give another checkpoint_dir (or empty this one) to start "
            "afresh."
        )


def _check_fingerprint(path: Path, fingerprint: dict[str, Any] | None, resume: bool) -> None:
    """Refuse to resume another fit's checkpoint; record this fit's fingerprint otherwise."""
    fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back (tuples are lists)
    if resume and path.is_file():
        saved = json.loads(path.read_text())
        if saved != fingerprint:
            differ = sorted(k for k in {*saved, *(fingerprint or {})}
                            if saved.get(k) != (fingerprint or {}).get(k))
            raise ValueError(
                f"{path.parent} holds an interrupted fit of another model or data (differs in: "
                f"{', '.join(differ) or 'everything'}). Resume it with the same arguments and "
                "data, or give another checkpoint_dir (or empty this one) to start afresh."
            )
    elif not resume:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(fingerprint, indent=1))


def _validated_start(trainer: L.Trainer, module: TaskModule, val_loader: DataLoader,
                     start_file: Path | None, resume: bool) -> dict[str, Any]:
    """The weights before training as a candidate: their validation loss, a copy of them and
    the seconds that took; kept in `start_file` (when given) for a resumed fit to read back."""
    if resume and start_file is not None and start_file.is_file():
        return torch.load(start_file, map_location="cpu", weights_only=True)
    begun = time.perf_counter()
    scores = trainer.validate(module, val_loader, verbose=False)
    start = {**{key: float(value) for key, value in scores[0].items()},
             "seconds": time.perf_counter() - begun, "state_dict": copy.deepcopy(module.state_dict())}
    if start_file is not None and trainer.is_global_zero:
        start_file.parent.mkdir(parents=True, exist_ok=True)
        torch.save(start, start_file)
    return start


LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")
QUIET_WARNINGS = (  # Lightning's advice and deprecations, not about the user's data or model
    ".*isinstance\\(treespec, LeafSpec\\).*", ".*does not have many workers.*",
    ".*litlogger.*", ".*litmodels.*",
)


@contextlib.contextmanager
def lightning_output(verbose: bool) -> Iterator[None]:
    """Inside, Lightning says only warnings and errors unless `verbose`: no "GPU available",
    "Tip: ..." or "`Trainer.fit` stopped" lines and none of its own deprecation warnings (a
    library is quiet unless asked; the command line's `--verbose` asks)."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        with warnings.catch_warnings():
            if not verbose:
                for message in QUIET_WARNINGS:
                    warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


def fit_module(module: TaskModule, train_loader: DataLoader, val_loader: DataLoader | None, *,
               verbose: bool = False, **options: Any) -> FitSummary:
    """`_fit_module` (the training itself; its docstring has the options), with Lightning's
    messages shown only when `verbose`. Freed memory is kept for the next step's reuse
    (`tsk.allocator`)."""
    keep_freed_memory()
    with lightning_output(verbose):
        return _fit_module(module, train_loader, val_loader, **options)


def _fit_module(
    module: TaskModule,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    *,
    max_epochs: int,
    patience: int,
    max_steps: int | None = None,
    val_check_steps: int | None = None,
    ema_decay: float | str | None = None,
    accelerator: str = "auto",
    devices: Any = "auto",
    enable_progress_bar: bool = True,
    trainer_kwargs: dict[str, Any] | None = None,
    keep_start_if_better: bool = False,
    checkpoint_dir: str | os.PathLike | None = None,
    fingerprint: dict[str, Any] | None = None,
    monitor: str = "val_loss",
    mode: str = "min",
) -> FitSummary:
    """Train with Lightning: early stopping on the validation metric `monitor` (`mode` "min" or
    "max": which way is better), its best checkpoint restored into `module`. Without validation
    data every epoch trains and the last weights stay.

    `max_steps` caps the optimizer steps (the fit ends at `max_epochs` or `max_steps`, whichever
    comes first; Lightning's own `max_steps` in `trainer_kwargs` means the same). Validation
    runs every `val_check_steps` steps, across epoch ends (`validation_interval`); early
    stopping's `patience` counts validations, not epochs. `ema_decay`: validation, the kept
    checkpoint and so the returned weights are an exponential moving average of the weights
    (Lightning's `WeightAveraging`, updated every step from the first), not the last step's;
    `"auto"`: from a start kept as a candidate (`keep_start_if_better`, a closed-form start,
    where it was measured to help) the decay 1 - 1 / n for n training steps between validations
    (`interval_decay`), so that each validation scores an average of about the weights since
    the previous one; from any other start no average.

    `trainer_kwargs` go to `lightning.Trainer` unchanged (e.g. `strategy="ddp"`, `precision`).
    `keep_start_if_better`: the weights before training (e.g. a closed-form warm start) count as
    a candidate too: validated first, and kept if no epoch beats them.
    `checkpoint_dir`: keep the checkpoints there (the best epoch's, the latest one's without
    validation data, and `last.ckpt` after every epoch while training runs, and every
    `MID_EPOCH_CHECKPOINT_SECONDS` within one when `train_loader` shuffles with a
    `ReplayableSampler`); a fit that finds a `last.ckpt` there, left by an interrupted fit of the
    same model and data, resumes from it (mid-epoch too) and ends as the uninterrupted fit
    would. A finished fit removes `last.ckpt`.
    `fingerprint` (JSON data naming the model and data) is kept next to it: resuming with
    another one raises instead of training one fit's state on another's data.
    """
    kwargs = dict(trainer_kwargs or {})
    max_steps = kwargs.pop("max_steps", max_steps)
    max_steps = None if max_steps in (None, -1) else max_steps
    interval = validation_interval(train_loader, max_steps, val_check_steps,
                                   kwargs.get("limit_train_batches"))
    if val_loader is not None and interval is not None:
        kwargs.update(val_check_interval=interval, check_val_every_n_epoch=None)
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    with tempfile.TemporaryDirectory(prefix="tsk-fit-") as tmp:
        persistent = checkpoint_dir is not None
        directory = Path(checkpoint_dir if persistent else tmp)
        last, start_file, identity = (directory / name for name in ("last.ckpt", "start.pt", "fit.json"))
        resume = persistent and last.is_file()
        # only this fit's files in the folder (Lightning warns of any others)
        own_folder = resume or not (directory.is_dir() and any(directory.iterdir()))
        if persistent:
            _check_fingerprint(identity, fingerprint, resume)
        run = ResumableRun(train_loader)
        # within epochs too when the loader can replay one (and one process trains)
        every = MID_EPOCH_CHECKPOINT_SECONDS if persistent and run.sampler is not None else None
        callbacks: list[Any] = [run]
        checkpoint = None
        if val_loader is not None:
            checkpoint = _EveryEpochCheckpoint(dirpath=directory, monitor=monitor, mode=mode,
                                               save_top_k=1, save_last=persistent,
                                               every_seconds=every)
            # checked after each validation, not at epoch ends (a validation may fall mid-epoch)
            callbacks += [EarlyStopping(monitor, patience=patience, mode=mode,
                                        check_on_train_epoch_end=False), checkpoint]
        else:
            kwargs.setdefault("limit_val_batches", 0)  # no validation data: skip that loop
            if persistent:  # the latest
                callbacks.append(_EveryEpochCheckpoint(dirpath=directory, save_last=True,
                                                       every_seconds=every))
        if ema_decay == "auto":
            ema_decay = keep_start_if_better and interval_decay(
                interval or epoch_steps(train_loader, kwargs.get("limit_train_batches")))
        if ema_decay:  # None or 0: the weights themselves
            # Lightning's EMAWeightAveraging, but one foreach lerp over all the weights a step
            # rather than its loop over them, one tensor at a time
            callbacks.append(WeightAveraging(multi_avg_fn=get_ema_multi_avg_fn(ema_decay)))
        if resume:
            _check_callback_states(last, callbacks)
        callbacks += kwargs.pop("callbacks", [])
        kwargs.setdefault("default_root_dir", tmp)
        kwargs.setdefault("logger", False)
        kwargs.setdefault("enable_model_summary", False)
        trainer = L.Trainer(
            max_epochs=max_epochs, max_steps=max_steps if max_steps is not None else -1,
            accelerator=accelerator,
            devices=kwargs.pop("devices", devices), callbacks=callbacks,
            enable_progress_bar=enable_progress_bar, deterministic=kwargs.pop("deterministic", True),
            **kwargs,
        )
        initial = None
        try:
            if keep_start_if_better and val_loader is not None:
                initial = _validated_start(trainer, module, val_loader,
                                           start_file if persistent else None, resume)
            if resume:
                logger.info("Resuming the fit from %s.", last)
            with warnings.catch_warnings():  # fitting without validation data is intended
                warnings.filterwarnings("ignore", ".*validation_step.* but have no `val_dataloader`")
                if own_folder:
                    warnings.filterwarnings("ignore", "Checkpoint directory .* is not empty")
                # the sampler replays the interrupted epoch (ResumableRun), unknown to Lightning
                warnings.filterwarnings("ignore", ".*ended before the epoch ended and your "
                                        "dataloader is not resumable")
                trainer.fit(module, train_loader, val_loader, ckpt_path=last if resume else None)
        finally:  # Lightning switches deterministic algorithms on globally: switch them back
            torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        seconds = run.elapsed + (initial["seconds"] if initial is not None else 0.0)
        best, best_loss, start_kept = float("nan"), float("nan"), False
        if checkpoint is not None and checkpoint.best_model_path:
            state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
            module.load_state_dict(state["state_dict"])
            best = float(checkpoint.best_model_score)
            best_loss = best if monitor == "val_loss" else next(
                (h.get("val_loss", best_loss) for h in run.history
                 if h.get("step") == state["global_step"]), best_loss)
        # the start wins ties, and also when no epoch was scored (best is NaN)
        if initial is not None and not (initial[monitor] > best if mode == "min"
                                        else initial[monitor] < best):
            logger.info("No epoch beat the starting weights on validation (%s %.4g): kept them.",
                        monitor, initial[monitor])
            module.load_state_dict(initial["state_dict"])
            best, best_loss, start_kept = float(initial[monitor]), float(initial["val_loss"]), True
        trainer.strategy.barrier()  # under DDP, no rank deletes the checkpoint while others read
        if persistent and trainer.is_global_zero:
            for path in (last, start_file, identity):  # finished: nothing left to resume
                path.unlink(missing_ok=True)
    module.cpu()
    return FitSummary(trainer.current_epoch, best_loss, seconds, trainer.global_rank, start_kept,
                      monitor, best, run.history)


def validation_interval(train_loader: DataLoader, max_steps: int | None,
                        val_check_steps: int | None, limit_train_batches: Any = None) -> int | None:
    """Training steps between validations, or None for once per epoch (Lightning's default).

    `val_check_steps` when given; else once per epoch, or where an epoch is longer than
    `LONG_EPOCH_STEPS` at the ends of its equal parts no longer than that. Under a
    step budget, every `ceil(max_steps / VALIDATIONS_PER_BUDGET)` steps or once per epoch,
    whichever is more often, counted across epoch ends: a fit that its budget ends within (or
    soon after) an epoch is still validated several times, and its last steps are too (Lightning
    does not validate where `max_steps` stops it; less than one interval goes unvalidated).
    """
    if val_check_steps is not None:
        return _positive_int("val_check_steps", val_check_steps)
    per_epoch = epoch_steps(train_loader, limit_train_batches)
    # a long epoch is cut into equal parts of at most LONG_EPOCH_STEPS, each ending in validation
    every = math.ceil(per_epoch / math.ceil(per_epoch / LONG_EPOCH_STEPS)) if per_epoch else 1
    if max_steps is None:
        return every if every < per_epoch else None
    _positive_int("max_steps", max_steps)
    return max(1, min(every, math.ceil(max_steps / VALIDATIONS_PER_BUDGET)))


def epoch_steps(train_loader: DataLoader, limit_train_batches: Any = None) -> int:
    """Training steps in one epoch of `train_loader`, as Lightning's `limit_train_batches` (a
    count or a share) leaves them."""
    per_epoch = len(train_loader)
    if isinstance(limit_train_batches, int) and not isinstance(limit_train_batches, bool):
        return min(per_epoch, limit_train_batches)
    if isinstance(limit_train_batches, float):
        return max(1, int(per_epoch * limit_train_batches))
    return per_epoch


def interval_decay(steps: int) -> float:
    """The moving average's decay that spans about `steps` training steps, 1 - 1 / steps (a
    step's share of the average falls by a factor e over the next `steps` steps); 0, the
    weights themselves, for one step."""
    return 1.0 - 1.0 / max(steps, 1)


def _positive_int(name: str, value: Any) -> int:
    """`value`, or a ValueError naming `name` unless it is a positive integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


