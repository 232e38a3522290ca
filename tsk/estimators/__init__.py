"""Estimators with the scikit-learn contract."""

from tsk.estimators.base import SequenceEstimator
from tsk.estimators.forecaster import Forecaster

__all__ = ["Forecaster", "SequenceEstimator"]
