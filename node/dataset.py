"""The centre's dataset as Fed-BioMed's node loads it: a `custom` dataset whose registered
path is the centre folder, turned into the FeatureSpec's tensor (cached on the node)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from fedbiomed.common.dataset import CustomDataset

from fedjourney.contract import check_run_id
from fedjourney.errors import FedjourneyError
from fedjourney.features import plan_input, spec_from_dict
from fedjourney.model import split_order, training_orders
from fedjourney.node.cache import load_or_build
from fedjourney.node.data import CACHE, recorded
from fedjourney.story import narrator


class CentreDataset(CustomDataset):  # type: ignore[misc]
    """Patients in split order: training patients first, held-out patients last, so that
    Fed-BioMed's unshuffled split (the last floor(N * test_ratio)) is our held-out split."""

    # Fed-BioMed forbids __init__ on custom datasets: the plan sets this before load().
    settings: dict[str, Any] = {}  # noqa: RUF012
    n_train = 0  # training patients (the first ones in split order), once read

    def read(self) -> None:
        spec = spec_from_dict(self.settings["spec"])
        record = recorded()
        story = narrator().at(self.settings.get("run_id"), self.settings.get("round"))
        try:
            check_run_id(self.settings.get("run_id"))  # type: ignore[arg-type]
        except ValueError as exc:
            story.warning(f"REFUSED: {exc}")
            raise FedjourneyError(f"REFUSED: {exc}") from None
        # The plan's approval covers its source, not its arguments: the FeatureSpec (target
        # included) is part of what this hospital approved, so another one is refused
        # before any tensor is built.
        if record.unhealthy:
            reason = f"REFUSED: this centre's data is broken ({record.unhealthy})"
            story.warning(reason)
            raise FedjourneyError(reason)
        if spec.fingerprint() != record.spec_fingerprint:
            reason = (f"REFUSED: the researcher's FeatureSpec {spec.fingerprint()} (target "
                      f"{spec.target.name}) is not this hospital's {record.spec_fingerprint}")
            story.warning(reason)
            raise FedjourneyError(reason)
        x, y, ids, hit = load_or_build(Path(self.path), spec, CACHE, record.fingerprint)
        # The plan's input: its class says (INPUT), the researcher passes it on.
        x = plan_input(x, spec, str(self.settings.get("input", "vector")))
        order, n_test = split_order(ids, int(self.settings["held_out_percent"]))
        self.n_train = len(ids) - n_test
        self._x = torch.from_numpy(np.ascontiguousarray(x[order]))
        self._y = torch.from_numpy(y[order]).reshape(-1, 1)
        shape = " x ".join(str(d) for d in x.shape[1:])
        story.info(
            f"features {'from cache' if hit else 'built'}: {len(ids)} patients x {shape} "
            f"(spec {spec.fingerprint()}), {len(ids) - n_test} to train, {n_test} held out")

    def get_item(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._x[index], self._y[index]

    def __len__(self) -> int:
        return int(self._x.shape[0])


class TrainingOrder(torch.utils.data.Sampler[int]):
    """The training batches' order: a new seeded permutation of the training patients each
    epoch (model.training_orders). Fed-BioMed's loader shuffle stays off, because it would
    also draw the held-out split at random; this sampler shuffles the training split only.
    The dataset is read after the plan builds its loaders, so its size is looked up late."""

    def __init__(self, dataset: CentreDataset, seed: int, round_: int) -> None:
        self._dataset = dataset
        self._seed, self._round = seed, round_
        self._orders: Any = None

    def __len__(self) -> int:
        return int(self._dataset.n_train)

    def __iter__(self) -> Any:
        if self._orders is None:
            self._orders = training_orders(len(self), self._seed, self._round)
        return iter(next(self._orders).tolist())
