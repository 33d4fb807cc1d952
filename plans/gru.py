"""A recurrent model over the time bins: a GRU reads each patient's M bins of K code counts
in calendar order (no mean over time), and its last state predicts the target. Counts enter
as log(1 + count), so a code seen 40 times does not swamp one seen once. Needs
features.aggregation: sequence. `training.hidden` sets the GRU's width."""

from typing import Any

import torch
import torch.nn as nn

from fedjourney.plans.base import CentrePlan


class GruPlan(CentrePlan):
    """GRU(K -> hidden) over the bins, then hidden -> 1, sigmoid."""

    INPUT = "sequence"

    class Net(nn.Module):
        def __init__(self, n_features: int, hidden: int) -> None:
            super().__init__()
            self.gru = nn.GRU(n_features, hidden, batch_first=True)
            self.out = nn.Linear(hidden, 1)

        def forward(self, x: Any) -> Any:
            _, last = self.gru(torch.log1p(x))
            return torch.sigmoid(self.out(last[-1]))

    def init_model(self, model_args: dict[str, Any]) -> Any:
        return self.Net(model_args["n_features"], model_args["hidden"])
