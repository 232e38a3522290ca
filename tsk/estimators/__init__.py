"""Estimators with the scikit-learn contract, on one shared base; `load` restores any saved one."""

from tsk.estimators.base import TRAINING_PARAMS, SequenceEstimator
from tsk.estimators.classifier import Classifier
from tsk.estimators.enhancer import SpeechEnhancer
from tsk.estimators.forecaster import Forecaster
from tsk.estimators.points import PointCloudClassifier
from tsk.estimators.registry import estimators, load, register_estimator
from tsk.estimators.speech import SpeechClassifier
from tsk.estimators.video import VideoPredictor

__all__ = ["TRAINING_PARAMS", "Classifier", "Forecaster", "PointCloudClassifier", "SequenceEstimator",
           "SpeechClassifier", "SpeechEnhancer", "VideoPredictor", "estimators", "load",
           "register_estimator"]
