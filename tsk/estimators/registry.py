"""The estimator registry: every estimator class registers here, so `tsk.load` can restore any
saved folder by the estimator name written in it."""

from __future__ import annotations

import os
from typing import Any

from tsk.io import read_folder

_ESTIMATORS: dict[str, type] = {}


def register_estimator(cls: type) -> type:
    """Class decorator: make an estimator class loadable by `tsk.load`."""
    _ESTIMATORS[cls.__name__] = cls
    return cls


def estimators() -> dict[str, type]:
    """Every registered estimator class by name."""
    return dict(_ESTIMATORS)


def load(path: str | os.PathLike) -> Any:
    """Load any estimator saved with `est.save(path)`; it predicts exactly as the saved one."""
    config, weights, arrays = read_folder(path)
    name = config.get("estimator")
    if name not in _ESTIMATORS:
        raise ValueError(f"{path}: unknown estimator {name!r}; known: {sorted(_ESTIMATORS)}.")
    return _ESTIMATORS[name]._from_saved(config, weights, arrays)
