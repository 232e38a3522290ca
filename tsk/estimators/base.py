"""What every tsk estimator shares: scikit-learn parameter rules, seeding, the Lightning fit,
device choice and save/load."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tsk.io import read_folder, write_folder
from tsk.training import FitSummary, ReplayableSampler, TaskModule, fit_module, predict_batches

logger = logging.getLogger(__name__)

LEARNING_RATE = 1e-3  # Adam's step from random weights
WARM_START_LEARNING_RATE = 1e-4  # fine-tuning a closed-form start takes smaller steps
# where and how visibly a fit runs, not what it trains: a resumed fit may change these
_RUN_ONLY_PARAMS = {"accelerator", "devices", "trainer_kwargs", "enable_progress_bar", "num_workers"}


class SequenceEstimator(BaseEstimator):
    """Base class. Subclasses define `__init__` (storing arguments only), `_build_net()`,
    `_fitted_state()`/`_restore_state()` for persistence, and their task's fit/predict.

    Subclasses' `__init__` must accept the training parameters used here: `max_epochs`,
    `patience`, `batch_size`, `learning_rate`, `weight_decay`, `random_state`, `accelerator`,
    `devices`, `trainer_kwargs`, `enable_progress_bar`, `num_workers`.
    """

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
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")

    def _validate_training_params(self) -> None:
        self._check_positive_ints("max_epochs", "batch_size")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}.")

    def _learning_rate(self, warm_start: bool) -> float:
        """`learning_rate`, else 1e-4 from a closed-form warm start and 1e-3 from random weights."""
        if self.learning_rate is not None:
            return self.learning_rate
        return WARM_START_LEARNING_RATE if warm_start else LEARNING_RATE

    def _device(self) -> torch.device:
        """Where prediction runs: the GPU when present and allowed, else the CPU."""
        use_gpu = self.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        return torch.device("cuda" if use_gpu else "cpu")

    # ---- training -------------------------------------------------------------------------
    def _fit_net(
        self, net: nn.Module, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        train: Dataset, validation: Dataset | None, generator: torch.Generator | None,
        warm_start: Callable[[DataLoader, DataLoader | None], Any] | None = None,
        checkpoint_dir: str | os.PathLike | None = None, data_digest: str | None = None,
    ) -> FitSummary:
        """Train `net` in place with the shared Lightning loop; returns what the fit did.

        `warm_start(train_loader, val_loader)`, if given, sets some weights in closed form first;
        the warm-started weights then compete with every epoch's on validation. `learning_rate`
        None steps with 1e-3 from random weights, 1e-4 from a warm start: on ETTm1-96 (s4d,
        patches) 1e-3 never beat the ridge start on validation and 1e-4 did, also on test.
        `checkpoint_dir` keeps the checkpoints there and resumes an interrupted fit
        (`tsk.training.fit_module`) of the same parameters and data (`data_digest` names it).
        """
        loader_kwargs = {"batch_size": self.batch_size, "num_workers": self.num_workers,
                         "persistent_workers": self.num_workers > 0}
        val_loader = DataLoader(validation, **loader_kwargs) if validation is not None else None
        if warm_start is not None:
            warm_start(DataLoader(train, batch_size=max(self.batch_size, 1024)), val_loader)
        train_loader = DataLoader(train, sampler=ReplayableSampler(train, generator),
                                  generator=generator, **loader_kwargs)
        self.learning_rate_ = self._learning_rate(warm_start is not None)
        module = TaskModule(net, loss, self.learning_rate_, self.weight_decay, self.max_epochs)
        kwargs = dict(self.trainer_kwargs or {})
        kwargs.setdefault("deterministic", self.random_state is not None and "warn")
        return fit_module(
            module, train_loader, val_loader, max_epochs=self.max_epochs, patience=self.patience,
            accelerator=self.accelerator, devices=self.devices,
            enable_progress_bar=self.enable_progress_bar, trainer_kwargs=kwargs,
            keep_start_if_better=warm_start is not None, checkpoint_dir=checkpoint_dir,
            fingerprint=self._fingerprint(data_digest) if checkpoint_dir is not None else None,
        )

    def _fingerprint(self, data_digest: str | None) -> dict[str, Any]:
        """What a resumable fit must share with the interrupted one: the estimator, every
        parameter that shapes the training (not where or how visibly it runs) and the data."""
        params = {key: value for key, value in self.get_params(deep=False).items()
                  if key not in _RUN_ONLY_PARAMS}
        return {"estimator": type(self).__name__,
                "params": json.loads(json.dumps(params, default=repr)), "data": data_digest}

    def _predict_dataset(self, dataset: Dataset, batch_size: int | None = None) -> torch.Tensor:
        # its own generator: iterating a DataLoader would otherwise draw from the global RNG
        loader = DataLoader(dataset, batch_size=batch_size or max(self.batch_size, 256),
                            generator=torch.Generator())
        return predict_batches(self.net_, loader, self._device())

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
    ) -> SequenceEstimator:
        estimator = cls(**config["params"])
        estimator._restore_state(config["state"], arrays)
        net = estimator._build_net()
        net.load_state_dict(weights)
        estimator.net_ = net.eval()
        return estimator

    @classmethod
    def load(cls, path: str | os.PathLike) -> SequenceEstimator:
        """Load a saved estimator of this class."""
        config, weights, arrays = read_folder(path)
        if config.get("estimator") != cls.__name__:
            raise ValueError(f"{path} holds a {config.get('estimator')}, not a {cls.__name__}.")
        return cls._from_saved(config, weights, arrays)

    def _build_net(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fitted_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:  # pragma: no cover
        raise NotImplementedError

    def _restore_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError  # pragma: no cover


__all__ = ["SequenceEstimator", "TaskModule"]
