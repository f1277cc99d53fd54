"""Task models built by the search spaces: preprocessing, fit-time adaptation, multi-output strategies
and the shared-trunk multi-task network."""

from metalearn.pipelines.models.adaptive import DEFAULT_BUDGET, Adaptive
from metalearn.pipelines.models.preprocessing import TabularPreprocessor, TargetSelectPercentile, VariancePCA
from metalearn.pipelines.models.shared_mlp import SharedTrunkMLP
from metalearn.pipelines.models.task_models import (
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
