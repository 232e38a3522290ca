"""Hyperparameter search with Optuna: `tsk.tune(forecaster, data)`, `tsk.tune(classifier, X, y)`.

`search` runs the study; `folds` cuts the data into the train/validation folds each trial fits
and scores.
"""

from tsk.tuning.folds import time_folds
from tsk.tuning.search import (
    PruningCallback,
    TrialFailed,
    TuningResult,
    configure,
    default_space,
    space_from_json,
    tune,
)

__all__ = ["PruningCallback", "TrialFailed", "TuningResult", "configure", "default_space",
           "space_from_json", "time_folds", "tune"]
