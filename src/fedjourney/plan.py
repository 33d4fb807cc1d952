"""The federation's training plan. Nodes approve it by hash before they start; the
researcher sends exactly this class's source, so keep it free of module-level helpers."""

from __future__ import annotations

from typing import Any

import torch
from fedbiomed.common.datamanager import DataManager
from fedbiomed.common.training_plans import TorchTrainingPlan

from fedjourney.model import make_mlp
from fedjourney.node.dataset import CentreDataset
from fedjourney.node.metrics import validation_metrics


class FedJourneyPlan(TorchTrainingPlan):  # type: ignore[misc]
    """The tutorial's MLP (K -> hidden -> 1, ReLU, sigmoid; Adam, or SGD for SCAFFOLD; BCE)
    on the FeatureSpec."""

    def init_dependencies(self) -> list[str]:
        return ["from typing import Any",
                "import torch",
                "from fedbiomed.common.datamanager import DataManager",
                "from fedjourney.node.dataset import CentreDataset",
                "from fedjourney.node.metrics import validation_metrics",
                "from fedjourney.model import make_mlp"]

    def init_model(self, model_args: dict[str, Any]) -> Any:
        return make_mlp(model_args["n_features"], model_args["hidden"])

    def init_optimizer(self, optimizer_args: dict[str, Any]) -> Any:
        # SCAFFOLD's correction assumes plain SGD steps; the tutorial's MLP uses Adam.
        if self.model_args().get("optimizer") == "sgd":
            return torch.optim.SGD(self.model().parameters(), lr=optimizer_args["lr"])
        return torch.optim.Adam(self.model().parameters(), lr=optimizer_args["lr"])

    def training_data(self) -> Any:
        dataset = CentreDataset()
        dataset.settings = {**self.model_args(), "round": self.round()}
        return DataManager(dataset=dataset, shuffle=False)

    def training_step(self, data: Any, target: Any) -> Any:
        return torch.nn.functional.binary_cross_entropy(self.model()(data), target)

    def testing_step(self, data: Any, target: Any) -> dict[str, float]:
        return validation_metrics(self.model()(data), target, self.model_args(), self.round())
