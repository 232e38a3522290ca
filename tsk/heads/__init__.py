"""Task heads: turn backbone features into the task's output."""

from tsk.heads.forecast import (
    ForecastHead,
    ForecastNet,
    InstanceNorm,
    RidgeStartNet,
    VariateForecastNet,
)

__all__ = ["ForecastHead", "ForecastNet", "InstanceNorm", "RidgeStartNet", "VariateForecastNet"]
