"""What every shipped plan shares: the centre's dataset, the optimizer, BCE and the
validation metrics. A plan subclasses CentrePlan and defines `init_model` (and INPUT when it
takes the per-bin sequence); it may override any other method, as in any Fed-BioMed plan.

Only the subclass's source travels to the nodes and is hashed for approval (with the imports
`init_dependencies` lists); this class is part of the images, which each hospital installs.
"""

from __future__ import annotations

from typing import Any

import torch
from fedbiomed.common.datamanager import DataManager
from fedbiomed.common.training_plans import TorchTrainingPlan

from fedjourney.node.dataset import CentreDataset, TrainingOrder
from fedjourney.node.metrics import validation_metrics


class CentrePlan(TorchTrainingPlan):  # type: ignore[misc]
    """A binary classifier of the FeatureSpec's target, trained with Adam (SGD under
    SCAFFOLD) on BCE, validated on the centre's held-out patients."""

    # What the model takes per patient: "vector" (K codes, the mean over the time bins, as
    # in the tutorial) or "sequence" (M bins x K codes; needs features.aggregation sequence).
    INPUT = "vector"

    def init_dependencies(self) -> list[str]:
        # The subclass's source is run on the node after these lines: it needs its base.
        return ["from typing import Any",
                "from fedjourney.plans.base import CentrePlan"]

    def init_optimizer(self, optimizer_args: dict[str, Any]) -> Any:
        # SCAFFOLD's correction assumes plain SGD steps.
        if self.model_args().get("optimizer") == "sgd":
            return torch.optim.SGD(self.model().parameters(), lr=optimizer_args["lr"])
        return torch.optim.Adam(self.model().parameters(), lr=optimizer_args["lr"])

    def training_data(self) -> Any:
        dataset = CentreDataset()
        dataset.settings = {**self.model_args(), "round": self.round()}
        # Loader shuffle off keeps the held-out split fixed; the sampler shuffles training.
        order = TrainingOrder(dataset, int(self.model_args().get("seed", 0)), self.round() or 0)
        return DataManager(dataset=dataset, shuffle=False, sampler=order)

    def training_step(self, data: Any, target: Any) -> Any:
        return torch.nn.functional.binary_cross_entropy(self.model()(data), target)

    def testing_step(self, data: Any, target: Any) -> dict[str, float]:
        return validation_metrics(self.model()(data), target, self.model_args(), self.round())
