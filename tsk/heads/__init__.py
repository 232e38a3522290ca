"""Task heads: turn backbone features into the task's output; the loss lives with them.

Importing this package registers the papers' own task networks (`tsk.heads.registry`).
"""

from tsk.heads import spacetime, tpgn  # noqa: F401  (register their forecasting networks)
from tsk.heads.classify import ClassifyNet
from tsk.heads.forecast import (
    ForecastHead,
    ForecastNet,
    InstanceNorm,
    RidgeStartNet,
    VariateForecastNet,
)
from tsk.heads.registry import check_backbone_kind, get_task_net, register_task_net

__all__ = ["ClassifyNet", "ForecastHead", "ForecastNet", "InstanceNorm", "RidgeStartNet",
           "VariateForecastNet", "check_backbone_kind", "get_task_net", "register_task_net"]
