"""The linear baseline: logistic regression on each patient's codes averaged over the time
bins, K -> 1, sigmoid. What any other plan has to beat."""

from typing import Any

import torch.nn as nn

from fedjourney.plans.base import CentrePlan


class LogisticPlan(CentrePlan):
    """Logistic regression on the mean over time bins."""

    INPUT = "vector"

    def init_model(self, model_args: dict[str, Any]) -> Any:
        return nn.Sequential(nn.Linear(model_args["n_features"], 1), nn.Sigmoid())
