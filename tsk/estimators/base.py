"""What every tsk estimator shares: the training parameters, scikit-learn's parameter rules, the
fit template (prepare data -> build the network -> train -> keep the fitted state), seeding,
device choice, checkpoint/resume and save/load.

A new estimator writes only its data preparation (`_prepare_fit`, returning `FitData`), its
network (`_build_net`, a module with `loss(output, batch)`) and its fitted state for saving
(`_fitted_state` / `_restore_state`); its `__init__` stores its own parameters and passes the
shared training ones on (`**training`), which are declared once, in `TRAINING_PARAMS`.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tsk import backbones
from tsk.inference import FitSummary, predict_batches
from tsk.io import read_folder, write_folder

logger = logging.getLogger(__name__)

LEARNING_RATE = 1e-3  # Adam's step, from random weights and beside a frozen closed-form start
# `batch_size=None`: the largest of these that leaves an epoch of at least `AUTO_EPOCH_STEPS`
# steps; the first is the batch `LEARNING_RATE` was set for
AUTO_BATCH_SIZES = (64, 128, 256)
AUTO_EPOCH_STEPS = 2000


@dataclass(frozen=True)
class TrainingParam:
    """One training parameter every estimator takes: its name, default and what it does."""

    name: str
    default: Any
    doc: str
    run_only: bool = False  # where and how visibly a fit runs, not what it trains


TRAINING_PARAMS = (
    TrainingParam("max_epochs", 20, "Most passes over the training data (a `Classifier`'s None: "
                  "as many as its training-set size calls for)."),
    TrainingParam("max_steps", None, "Most optimizer steps (None: `max_epochs` alone bounds the "
                  "fit): the budget knob. The fit ends at whichever comes first; under a budget "
                  "that ends it within a few epochs, validation (and early stopping) runs every "
                  "tenth of the budget instead of once per epoch. Fewer steps train on fewer "
                  "windows: faster, and as accurate only while validation keeps improving."),
    TrainingParam("val_check_steps", None, "Validate every this many steps, across epoch ends "
                  "(None: once per epoch, at most 500 steps apart in longer epochs, or as "
                  "`max_steps` says); `patience` counts validations."),
    TrainingParam("patience", 3, "Validations (once per epoch, or every 500 steps or fewer) "
                  "without a better score before stopping."),
    TrainingParam("ema_decay", "auto", "Validate, keep and predict with an exponential moving "
                  "average of the weights, updated every step with this decay (0.99: about the "
                  "last 100 steps; Lightning's `WeightAveraging`); 'auto': from a closed-form "
                  "start (a `Forecaster`'s ridge start), 1 - 1/n for n steps between "
                  "validations, so each validation scores the average of about the weights "
                  "since the previous one, and none otherwise; None: the weights themselves "
                  "(benchmarks/README.md, 'The training recipe', has the measurements)."),
    TrainingParam("batch_size", None, "Samples per training step; None: the largest of "
                  f"{', '.join(map(str, AUTO_BATCH_SIZES))} that leaves an epoch of at least "
                  f"{AUTO_EPOCH_STEPS:,} steps (`batch_size_`), so only long epochs take larger "
                  "batches, which a small CPU runs faster per window."),
    TrainingParam("learning_rate", None, f"AdamW's step; None: {LEARNING_RATE:g}, grown by "
                  f"sqrt(batch / {AUTO_BATCH_SIZES[0]}) (Adam's square-root scaling) for a batch "
                  "`batch_size=None` chose (`learning_rate_`)."),
    TrainingParam("weight_decay", 0.0, "AdamW's decoupled weight decay (SSM parameters that ask for "
                  "none get none)."),
    TrainingParam("random_state", None, "Seed for weights, shuffling and dropout; a fit with the same "
                  "seed, data and machine repeats exactly."),
    TrainingParam("accelerator", "auto", "Lightning's accelerator: 'auto', 'cpu', 'gpu'.", True),
    TrainingParam("devices", "auto", "Lightning's devices (e.g. 2 for two GPUs).", True),
    TrainingParam("trainer_kwargs", None, "Any other `lightning.Trainer` option, e.g. "
                  "`{'strategy': 'ddp', 'precision': 'bf16-mixed'}`.", True),
    TrainingParam("enable_progress_bar", True, "Lightning's progress bar while fitting.", True),
    TrainingParam("verbose", False, "Let Lightning print its messages (devices found, tips, why "
                  "a fit stopped) and warnings; a library is quiet otherwise.", True),
    TrainingParam("num_workers", 0, "DataLoader worker processes.", True),
)
_RUN_ONLY_PARAMS = {param.name for param in TRAINING_PARAMS if param.run_only}


def training_params_doc(defaults: dict[str, Any] | None = None) -> str:
    """The docstring block of the shared training parameters (with a class's own defaults)."""
    defaults = defaults or {}
    lines = ["Training parameters (every tsk estimator takes these, keyword only):"]
    for param in TRAINING_PARAMS:
        lines.append(f"    `{param.name}={defaults.get(param.name, param.default)!r}`: {param.doc}")
    return "\n".join(lines)


@dataclass
class FitData:
    """What an estimator's data preparation hands the shared training loop.

    `train`/`validation`: datasets of batch mappings (`inputs`, `targets`, ...); `validation`
    None trains every epoch and keeps the last weights. `collate` joins samples into a batch
    (None: torch's default, for equal shapes). `digest` names the data for a resumable fit.
    `warm_start(net, train_loader, val_loader)` sets some weights in closed form before training;
    those weights then compete with every epoch's on validation. `baselines(net, train_loader,
    val_loader)`, called after the warm start, returns the validation loss of each simple
    baseline by name (the fit summary reports them beside the model's). `max_epochs`: the
    number of epochs the data calls for, where the estimator's `max_epochs` is None.
    `calibrate(net, validation)`, called with the trained network (in eval mode) once training
    is done, keeps what the estimator measures on held-out data (a `Forecaster`'s conformal
    scores); a failure there leaves the estimator unfitted, as a failed fit does.
    """

    train: Dataset
    validation: Dataset | None = None
    collate: Callable[[list[Any]], Any] | None = None
    digest: str | None = None
    warm_start: Callable[[nn.Module, DataLoader, DataLoader | None], Any] | None = None
    max_epochs: int | None = None  # the epochs this fit trains at most (None: `max_epochs`)
    baselines: Callable[[nn.Module, DataLoader, DataLoader | None], dict[str, float]] | None = None
    calibrate: Callable[[nn.Module, Dataset], Any] | None = None


class SequenceEstimator(BaseEstimator):
    """Base class of every tsk estimator (see the module docstring for what a subclass writes).

    `_training_defaults` overrides the defaults of `TRAINING_PARAMS` for a subclass;
    `_monitor` is the validation metric early stopping and the best checkpoint follow, with its
    direction ("min" or "max"); `_scores` and `_epoch_scores` tell `tsk.tune` what to optimize.
    """

    _training_defaults: dict[str, Any] = {}
    _monitor: tuple[str, str] = ("val_loss", "min")
    # a kept validation loss above this means the fit diverged (the loss's units are the task's)
    _loss_ceiling: float = float("inf")
    # what `evaluate` returns that a search may optimize, and which way is better (the first is
    # `tsk.tune`'s default), and the per-epoch validation metric that improves in each direction
    _scores: dict[str, str] = {}
    _epoch_scores: dict[str, str] = {"minimize": "val_loss"}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Declare the shared training parameters in the subclass's signature (so scikit-learn's
        get_params/set_params/clone see them) and in its docstring."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)
        own = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
        if len(own) == len(signature.parameters):
            raise TypeError(f"{cls.__name__}.__init__ must take **training and pass it to "
                            "self._set_training_params.")
        shared = [inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY,
                                    default=cls._training_defaults.get(p.name, p.default))
                  for p in TRAINING_PARAMS]
        init.__signature__ = signature.replace(parameters=[*own, *shared])
        shared_doc = training_params_doc(cls._training_defaults)
        cls.__doc__ = f"{inspect.cleandoc(cls.__doc__ or '')}\n\n{shared_doc}\n"

    def _set_training_params(self, training: dict[str, Any]) -> None:
        """Store the shared training parameters given to `__init__` (the rest take defaults)."""
        names = [param.name for param in TRAINING_PARAMS]
        unknown = sorted(set(training) - set(names))
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s) "
                            f"{', '.join(map(repr, unknown))}.")
        for param in TRAINING_PARAMS:
            default = self._training_defaults.get(param.name, param.default)
            setattr(self, param.name, training.get(param.name, default))

    # ---- fitted-state helpers -------------------------------------------------------------
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "net_")

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet: call fit(...) first, or load a "
                "saved model with tsk.load(path)."
            )

    @contextlib.contextmanager
    def _seeded(self) -> Iterator[torch.Generator | None]:
        """Seed torch inside, restoring the caller's global RNG afterwards."""
        if self.random_state is None:
            yield None
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            generator = torch.Generator().manual_seed(self.random_state)
            yield generator

    def _check_positive_ints(self, *names: str) -> None:
        for name in names:
            check_positive_int(name, getattr(self, name))

    def _validate_training_params(self) -> None:
        """The shared parameters, and the backbone sizes every estimator takes where set."""
        self._check_positive_ints("patience")
        for name in ("batch_size", "max_steps", "val_check_steps"):
            if getattr(self, name) is not None:
                self._check_positive_ints(name)
        if self.max_epochs is not None or self._training_defaults.get("max_epochs", 1) is not None:
            self._check_positive_ints("max_epochs")  # None only where the class picks it
        for name in ("learning_rate", "weight_decay"):
            value = getattr(self, name)
            if value is None and name == "learning_rate":
                continue
            if not isinstance(value, int | float | np.number) or isinstance(value, bool):
                raise TypeError(f"{name} must be a number, got {value!r} "
                                f"({type(value).__name__}).")
            if not np.isfinite(value) or value < 0 or (name == "learning_rate" and value == 0):
                raise ValueError(f"{name} must be a finite number "
                                 f"{'above' if name == 'learning_rate' else 'of at least'} 0, "
                                 f"got {value!r}.")
        decay = self.ema_decay
        if decay not in (None, "auto") and (isinstance(decay, bool)
                                            or not isinstance(decay, int | float | np.number)
                                            or not 0 < decay < 1):
            raise ValueError(f"ema_decay must be a number in (0, 1), e.g. 0.99, 'auto' or None "
                             f"(no average), got {decay!r}.")
        for name in ("d_model", "n_layers"):
            if getattr(self, name, None) is not None:
                self._check_positive_ints(name)
        dropout = getattr(self, "dropout", None)
        if dropout is not None and not (isinstance(dropout, int | float) and 0 <= dropout < 1):
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")

    def _batch_size(self, n_samples: int) -> int:
        """`batch_size`, else the largest of `AUTO_BATCH_SIZES` that leaves `n_samples` an epoch
        of at least `AUTO_EPOCH_STEPS` steps. A step of small ops costs a CPU nearly as much at
        256 samples as at 64, so long epochs train more windows a second in larger batches, and
        still take enough steps an epoch for early stopping to act within the first."""
        if self.batch_size is not None:
            return self.batch_size
        return max((size for size in AUTO_BATCH_SIZES if n_samples >= size * AUTO_EPOCH_STEPS),
                   default=AUTO_BATCH_SIZES[0])

    def _learning_rate(self, batch_size: int) -> float:
        """`learning_rate`, else `LEARNING_RATE`: from random weights, and from a closed-form
        start too, whose weights stay frozen while the rest learns what they miss. A batch that
        `batch_size=None` chose grows it by sqrt(batch_size / 64), the square-root scaling rule
        for Adam (Malladi et al., 2022); a batch the user set keeps 1e-3, as it always has."""
        if self.learning_rate is not None:
            return self.learning_rate
        if self.batch_size is None:
            return LEARNING_RATE * math.sqrt(batch_size / AUTO_BATCH_SIZES[0])
        return LEARNING_RATE

    def _device(self) -> torch.device:
        """Where prediction runs: the GPU when present and allowed, else the CPU."""
        use_gpu = self.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        return torch.device("cuda" if use_gpu else "cpu")

    # ---- the fit template -----------------------------------------------------------------
    def _fit(self, *data: Any, checkpoint_dir: str | os.PathLike | None = None,
             **options: Any) -> Self:
        """Validate the parameters, prepare the data (`_prepare_fit(*data, **options)`, which
        also sets the fitted preprocessing state), build the network, train it, keep it. A fit
        that fails once the data is read leaves the estimator unfitted, not half refitted."""
        self._validate_training_params()
        self._validate_params()
        try:
            prepared = self._prepare_fit(*data, **options)
            with self._seeded() as generator:
                net = self._build_net()
                self.fit_summary_ = self._fit_net(net, prepared, generator, checkpoint_dir)
            if prepared.calibrate is not None and prepared.validation is not None:
                prepared.calibrate(net.eval(), prepared.validation)
        except BaseException:
            self.__dict__.pop("net_", None)
            raise
        self.net_ = net.eval()
        return self

    def _fit_net(self, net: nn.Module, data: FitData, generator: torch.Generator | None,
                 checkpoint_dir: str | os.PathLike | None = None) -> FitSummary:
        """Train `net` in place with the shared Lightning loop; returns what the fit did.

        `learning_rate` None steps with 1e-3 from either start: beside a frozen closed-form
        start the rest learns from zero, as from random weights (at 1e-4 a deep part on a
        nonlinear series barely moved in five epochs; benchmarks/README.md has the recipe's
        measurements). `checkpoint_dir` keeps the checkpoints there and resumes an interrupted fit
        (`tsk.training.fit_module`) of the same parameters and data (`data.digest` names it).
        """
        # Lightning only when a fit runs: a loaded model predicts without it (tsk.inference)
        from tsk.training import ReplayableSampler, TaskModule, fit_module

        self.batch_size_ = self._batch_size(len(data.train))
        loader_kwargs = {"batch_size": self.batch_size_, "num_workers": self.num_workers,
                         "persistent_workers": self.num_workers > 0, "collate_fn": data.collate}
        val_loader = None
        if data.validation is not None:
            val_loader = DataLoader(data.validation, **{**loader_kwargs,
                                                        "batch_size": self._eval_batch_size})
        big = {**loader_kwargs, "batch_size": max(self.batch_size_, 1024)}  # closed-form passes
        if data.warm_start is not None:
            data.warm_start(net, DataLoader(data.train, **big), val_loader)
        baselines = {}
        if data.baselines is not None:
            big_val = DataLoader(data.validation, **big) if data.validation is not None else None
            baselines = data.baselines(net, DataLoader(data.train, **big), big_val)
        train_loader = DataLoader(data.train, sampler=ReplayableSampler(data.train, generator),
                                  generator=generator, **loader_kwargs)
        self.learning_rate_ = self._learning_rate(self.batch_size_)
        self.max_epochs_ = max_epochs = data.max_epochs or self.max_epochs
        module = TaskModule(net, self.learning_rate_, self.weight_decay, max_epochs)
        kwargs = dict(self.trainer_kwargs or {})
        kwargs.setdefault("deterministic", self.random_state is not None and "warn")
        monitor, mode = self._monitor
        summary = fit_module(
            module, train_loader, val_loader, max_epochs=max_epochs, patience=self.patience,
            max_steps=self.max_steps, val_check_steps=self.val_check_steps,
            ema_decay=self.ema_decay, accelerator=self.accelerator, devices=self.devices,
            enable_progress_bar=self.enable_progress_bar, trainer_kwargs=kwargs, verbose=self.verbose,
            keep_start_if_better=data.warm_start is not None, checkpoint_dir=checkpoint_dir,
            fingerprint=self._fingerprint(data.digest) if checkpoint_dir is not None else None,
            monitor=monitor, mode=mode,
        )
        self._check_converged(net, summary)
        summary.baselines = baselines
        return summary

    def _check_converged(self, net: nn.Module, summary: FitSummary) -> None:
        """Raise when the fit diverged: every validated epoch's loss non-finite (and no finite
        start kept), or non-finite weights. A diverged network would predict NaN."""
        losses = [h["val_loss"] for h in summary.history if "val_loss" in h]
        every_loss_bad = bool(losses) and not any(np.isfinite(losses))
        if not summary.start_kept and summary.best_val_loss > self._loss_ceiling:
            every_loss_bad = True  # finite, but far past anything a trained model scores
        bad_weights = [name for name, value in net.state_dict().items()
                       if value.is_floating_point() and not torch.isfinite(value).all()]
        if (every_loss_bad and not summary.start_kept) or bad_weights:
            where = (f"every validation loss was non-finite or absurd ({losses[-3:]} last)"
                     if every_loss_bad
                     else f"weights {bad_weights[:3]} are NaN or infinite")
            raise FloatingPointError(
                f"The fit diverged: {where}. Lower learning_rate (it was {self.learning_rate_:g}) "
                "or check the data's scale; the estimator is left unfitted.")

    def _epochs_when_validated(self) -> int:
        """The most epochs a fit with validation data trains (`tsk.tune`'s folds)."""
        return self.max_epochs

    def _grid(self) -> bool:
        """Whether the backbone is a grid backbone (variates x time, e.g. Chimera): the
        estimator then feeds it every channel as a variate."""
        return backbones.get_spec(self.backbone).kind == "grid"

    def _backbone_config(self, tokens: int) -> dict[str, Any]:
        """The backbone's options: `backbone_kwargs`, with `d_model`, `n_layers` and `dropout`
        where set, and the lengths a backbone sizes itself to unless the user set them: its
        `length_option` (PGN's history) to the past `tokens` have, its `max_length` (TPGN) to
        `tokens`, the most tokens it will read."""
        config = dict(self.backbone_kwargs or {})
        for name in ("d_model", "n_layers", "dropout"):
            if getattr(self, name) is not None:
                config[name] = getattr(self, name)
        spec = backbones.get_spec(self.backbone)
        if spec.length_option is not None:
            config.setdefault(spec.length_option, max(tokens - 1, 1))
        if "max_length" in spec.config_fields:
            config.setdefault("max_length", tokens)
        return config

    def _fingerprint(self, data_digest: str | None) -> dict[str, Any]:
        """What a resumable fit must share with the interrupted one: the estimator, every
        parameter that shapes the training (not where or how visibly it runs) and the data."""
        params = {key: value for key, value in self.get_params(deep=False).items()
                  if key not in _RUN_ONLY_PARAMS}
        return {"estimator": type(self).__name__,
                "params": json.loads(json.dumps(params, default=repr)), "data": data_digest}

    @property
    def _eval_batch_size(self) -> int:
        """Samples per batch where nothing trains (validation, prediction): larger than the
        training batch, since a forward pass alone holds no activations for a backward."""
        return max(self.batch_size or 0, 256)  # a batch `batch_size=None` chose is at most 256

    def _predict_outputs(self, dataset: Dataset, batch_size: int | None = None,
                         collate: Callable[[list[Any]], Any] | None = None,
                         net: nn.Module | None = None) -> list[Any]:
        """The fitted network's (or `net`'s) output for every batch of `dataset`, in order, on
        the CPU."""
        # its own generator: iterating a DataLoader would otherwise draw from the global RNG
        loader = DataLoader(dataset, batch_size=batch_size or self._eval_batch_size,
                            generator=torch.Generator(), collate_fn=collate)
        return predict_batches(self.net_ if net is None else net, loader, self._device())

    # ---- persistence ----------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted estimator to folder `path`; `tsk.load(path)` restores it."""
        self._check_fitted()
        params, skipped = {}, []
        for key, value in self.get_params(deep=False).items():
            try:
                json.dumps(value)
                params[key] = value
            except TypeError:
                params[key], _ = None, skipped.append(key)
        if skipped:
            logger.warning("Parameters %s are not JSON data and are saved as None.", skipped)
        state, arrays = self._fitted_state()
        config = {"estimator": type(self).__name__, "params": params, "state": state}
        return write_folder(path, config, self.net_.state_dict(), arrays)

    @classmethod
    def _from_saved(
        cls, config: dict[str, Any], weights: dict[str, torch.Tensor], arrays: dict[str, np.ndarray]
    ) -> Self:
        estimator = cls(**config["params"])
        estimator._restore_state(config["state"], arrays)
        net = estimator._build_net()
        try:
            net.load_state_dict(weights)
        except RuntimeError as error:  # weights of a network this tsk no longer builds
            saved = config.get("versions", {}).get("tsk", "an unknown version")
            raise ValueError(f"The saved weights do not fit the {type(net).__name__} this tsk "
                             f"builds for these parameters (saved by tsk {saved}; the network "
                             f"has changed since): fit the model again and save it. {error}"
                             ) from None
        estimator.net_ = net.eval()
        return estimator

    @classmethod
    def load(cls, path: str | os.PathLike) -> Self:
        """Load a saved estimator of this class."""
        config, weights, arrays = read_folder(path)
        if config.get("estimator") != cls.__name__:
            raise ValueError(f"{path} holds a {config.get('estimator')}, not a {cls.__name__}.")
        return cls._from_saved(config, weights, arrays)

    # ---- what a subclass writes -----------------------------------------------------------
    def _validate_params(self) -> None:
        """Check the task's own parameters (the shared ones are checked already)."""

    def _prepare_fit(self, *data: Any, **options: Any) -> FitData:  # pragma: no cover - abstract
        raise NotImplementedError

    def _build_net(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:  # pragma: no cover
        raise NotImplementedError

    def _restore_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError  # pragma: no cover


def check_positive_int(name: str, value: Any) -> None:
    """A ValueError naming `name` unless `value` is a positive integer (numpy's too, not a bool)."""
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def join_outputs(outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Batch outputs of equal trailing shape as one tensor."""
    return torch.cat(list(outputs)) if outputs else torch.empty(0)


__all__ = ["TRAINING_PARAMS", "FitData", "SequenceEstimator", "TrainingParam",
           "training_params_doc"]
