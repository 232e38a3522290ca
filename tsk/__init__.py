"""tsk: modern sequence backbones behind scikit-learn-style estimators.

The public names load on first use, so `import tsk.kernels` does not pull in Lightning.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("tsk")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

_PUBLIC = {
    "Forecaster": "tsk.estimators",
    "Classifier": "tsk.estimators",
    "SpeechClassifier": "tsk.estimators",
    "SpeechEnhancer": "tsk.estimators",
    "VideoPredictor": "tsk.estimators",
    "PointCloudClassifier": "tsk.estimators",
    "load": "tsk.estimators",
    "tune": "tsk.tuning",
    "TuningResult": "tsk.tuning",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tsk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
