"""tsk: modern sequence backbones behind scikit-learn-style estimators."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tsk")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from tsk.estimators import Forecaster  # noqa: E402
from tsk.io import load  # noqa: E402
from tsk.tuning import TuningResult, tune  # noqa: E402

__all__ = ["Forecaster", "TuningResult", "__version__", "load", "tune"]
