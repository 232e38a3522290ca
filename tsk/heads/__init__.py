"""Task heads: turn backbone features into the task's output."""

from tsk.heads.forecast import ForecastHead, ForecastNet, InstanceNorm, VariateForecastNet

__all__ = ["ForecastHead", "ForecastNet", "InstanceNorm", "VariateForecastNet"]
