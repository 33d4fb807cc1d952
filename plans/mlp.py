"""The tutorial's MLP (the default plan): each patient's codes averaged over the time bins,
K -> hidden -> 1, ReLU, sigmoid. `training.hidden` sets the width."""

from typing import Any

from fedjourney.model import make_mlp
from fedjourney.plans.base import CentrePlan


class MlpPlan(CentrePlan):
    """The tutorial's MLP on the mean over time bins (the prototype trains the same model)."""

    INPUT = "vector"

    def init_dependencies(self) -> list[str]:
        return [*super().init_dependencies(), "from fedjourney.model import make_mlp"]

    def init_model(self, model_args: dict[str, Any]) -> Any:
        return make_mlp(model_args["n_features"], model_args["hidden"])
