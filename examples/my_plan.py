"""A researcher's own plan: a narrow MLP with dropout (docs/own-model.md)."""

from typing import Any

import torch.nn as nn

from fedjourney.plans.base import CentrePlan


class NarrowPlan(CentrePlan):
    """K -> 8 -> 1 with dropout, on each patient's mean over the time bins."""

    def init_model(self, model_args: dict[str, Any]) -> Any:
        return nn.Sequential(nn.Linear(model_args["n_features"], 8), nn.ReLU(),
                             nn.Dropout(model_args["dropout"]), nn.Linear(8, 1), nn.Sigmoid())
