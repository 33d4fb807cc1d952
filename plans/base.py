"""What every shipped plan shares: the centre's dataset, the optimizer, BCE and the
validation metrics. A plan subclasses CentrePlan and defines `init_model` (and INPUT when it
takes the per-bin sequence); it may override any other method, as in any Fed-BioMed plan.

Only the subclass's source travels to the nodes and is hashed for approval (with the imports
`init_dependencies` lists); this class is part of the images, which each hospital installs.

Optional model arguments every plan on this base understands; none is set by default, and
without them the model, its initialisation and its loss are exactly the subclass's (the
study's `dp` experiment sets the first two: docs/experiments.md says why):

- `input_transform: standardize` feeds the model (x - mean) / std per feature; `log1p`
  feeds log(1 + x); `log1p+standardize` both. The mean and std are `input_mean` and
  `input_std` (one per feature, of the log1p'd input if so) when given; otherwise each node
  computes its own from its training patients when it receives its data loaders, so that no
  statistic leaves the node. The transform is a forward pre-hook of the model, applied to
  every call of it on the node (training, and validation with the same statistics).
- `output_bias`: a number, the logit the output unit's bias starts at (the last Linear layer
  with one output); the researcher turns the config's `output_bias: prior` into the logit of
  the federation's positive rate (researcher/experiment.py). It shapes the initial model
  only: the nodes load the global weights over it.
- `pos_weight`: a positive patient's weight in the loss (negatives weigh 1).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from fedbiomed.common.datamanager import DataManager
from fedbiomed.common.training_plans import TorchTrainingPlan

from fedjourney.node.dataset import CentreDataset, TrainingOrder
from fedjourney.node.metrics import validation_metrics

INPUT_TRANSFORMS = ("log1p", "standardize", "log1p+standardize")


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

    def post_init(self, model_args: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        super().post_init(model_args, *args, **kwargs)
        given = model_args or {}
        self._input_pending = False
        transform = given.get("input_transform")
        if transform is not None:
            if transform not in INPUT_TRANSFORMS:
                raise ValueError(f"input_transform {transform!r}: one of "
                                 f"{', '.join(INPUT_TRANSFORMS)}")
            if transform.endswith("standardize") and given.get("input_mean") is None:
                self._input_pending = True  # the node's own statistics: set_data_loaders
            else:
                self.model().register_forward_pre_hook(input_hook(
                    transform, given.get("input_mean"), given.get("input_std")))
        if given.get("output_bias") is not None:
            set_output_bias(self.model(), float(given["output_bias"]))

    def set_data_loaders(self, train_data_loader: Any, test_data_loader: Any) -> None:
        super().set_data_loaders(train_data_loader, test_data_loader)
        if getattr(self, "_input_pending", False) and train_data_loader is not None:
            transform = str(self.model_args()["input_transform"])
            mean, std = input_moments(train_data_loader.dataset, transform)
            self.model().register_forward_pre_hook(input_hook(transform, mean, std))
            self._input_pending = False

    def init_optimizer(self, optimizer_args: dict[str, Any]) -> Any:
        # SCAFFOLD's correction assumes plain SGD steps.
        if self.model_args().get("optimizer") == "sgd":
            return torch.optim.SGD(self.model().parameters(), lr=optimizer_args["lr"])
        return torch.optim.Adam(self.model().parameters(), lr=optimizer_args["lr"])

    def round_number(self) -> int:
        """This request's round as the researcher's story, the schedule, the metrics, the
        baselines and dpsim count it, from 1 (Fed-BioMed counts from 0): its batch order's
        round and the round its node's story lines name. The final validation is rounds + 1."""
        return (self.round() or 0) + 1

    def training_data(self) -> Any:
        dataset = CentreDataset()
        dataset.settings = {**self.model_args(), "round": self.round_number()}
        # Loader shuffle off keeps the held-out split fixed; the sampler shuffles training.
        order = TrainingOrder(dataset, int(self.model_args().get("seed", 0)),
                              self.round_number())
        return DataManager(dataset=dataset, shuffle=False, sampler=order)

    def training_step(self, data: Any, target: Any) -> Any:
        weight = self.model_args().get("pos_weight")
        if weight is None:
            return torch.nn.functional.binary_cross_entropy(self.model()(data), target)
        return torch.nn.functional.binary_cross_entropy(
            self.model()(data), target, weight=1 + (float(weight) - 1) * target)

    def testing_step(self, data: Any, target: Any) -> dict[str, float]:
        return validation_metrics(self.model()(data), target, self.model_args(),
                                  self.round_number())


def set_output_bias(model: torch.nn.Module, logit: float) -> None:
    """The bias of the model's output unit (its last Linear layer with one output) set to
    `logit`; ValueError when it has none."""
    outputs = [m for m in model.modules()
               if isinstance(m, torch.nn.Linear) and m.out_features == 1 and m.bias is not None]
    if not outputs:
        raise ValueError("output_bias: the model has no Linear layer with one output and a bias")
    with torch.no_grad():
        outputs[-1].bias.fill_(logit)


def input_moments(dataset: Any, transform: str) -> tuple[list[float], list[float]]:
    """Per-feature mean and std (over patients, and time bins for a sequence) of a dataset's
    inputs, log1p'd first when `transform` says so."""
    x = torch.stack([dataset[i][0] for i in range(len(dataset))]).to(torch.float64)
    if transform.startswith("log1p"):
        x = torch.log1p(x)
    x = x.reshape(-1, x.shape[-1])
    return x.mean(dim=0).tolist(), x.std(dim=0, unbiased=False).tolist()


def input_hook(transform: str, mean: Any = None, std: Any = None) -> Any:
    """A forward pre-hook feeding the model its input transformed (INPUT_TRANSFORMS)."""
    log = transform.startswith("log1p")
    shift = scale = None
    if transform.endswith("standardize"):
        if mean is None or std is None:
            raise ValueError(f"input_transform {transform}: needs input_mean and input_std")
        shift = torch.tensor(mean, dtype=torch.float32)
        # A feature every patient has alike (std 0) is only centred.
        scale = torch.tensor([s if s > 1e-6 and math.isfinite(s) else 1.0 for s in std],
                             dtype=torch.float32)

    def hook(_module: Any, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
        x = inputs[0]
        if log:
            x = torch.log1p(x)
        if shift is not None and scale is not None:
            x = (x - shift) / scale
        return (x, *inputs[1:])

    return hook
