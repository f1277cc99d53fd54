"""Task models built by the search spaces: preprocessing, fit-time adaptation, multi-output strategies
and the shared-trunk multi-task network."""

from metalearn.models.adaptive import DEFAULT_BUDGET, Adaptive
from metalearn.models.preprocessing import TabularPreprocessor, TargetSelectPercentile, VariancePCA
from metalearn.models.shared_mlp import SharedTrunkMLP
from metalearn.models.task_models import (
    ClassificationModel,
    MultiLabelModel,
    MultiTargetModel,
    MultiTaskModel,
    RegressionModel,
)

__all__ = [
    "DEFAULT_BUDGET",
    "Adaptive",
    "ClassificationModel",
    "MultiLabelModel",
    "MultiTargetModel",
    "MultiTaskModel",
    "RegressionModel",
    "SharedTrunkMLP",
    "TabularPreprocessor",
    "TargetSelectPercentile",
    "VariancePCA",
]
