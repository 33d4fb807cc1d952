"""The centre's dataset as Fed-BioMed's node loads it: a `custom` dataset whose registered
path is the centre folder, turned into the FeatureSpec's tensor (cached on the node)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from fedbiomed.common.dataset import CustomDataset

from fedjourney.features import spec_from_dict
from fedjourney.federated.cache import load_or_build
from fedjourney.federated.node_side import STATE_DIR, node_story, recorded_dataset
from fedjourney.model import split_order


class CentreDataset(CustomDataset):  # type: ignore[misc]
    """Patients in split order: training patients first, held-out patients last, so that
    Fed-BioMed's unshuffled split (the last floor(N * test_ratio)) is our held-out split."""

    # Fed-BioMed forbids __init__ on custom datasets: the plan sets this before load().
    settings: dict[str, Any] = {}  # noqa: RUF012

    def read(self) -> None:
        spec = spec_from_dict(self.settings["spec"])
        record = recorded_dataset()
        x, y, ids, hit = load_or_build(Path(self.path), spec, STATE_DIR / "fedjourney" / "cache",
                                       str(record["fingerprint"]))
        order, n_test = split_order(ids, int(self.settings["held_out_percent"]))
        self._x = torch.from_numpy(x[order])
        self._y = torch.from_numpy(y[order]).reshape(-1, 1)
        node_story().say(
            f"features {'from cache' if hit else 'built'}: {len(ids)} patients x "
            f"{x.shape[1]} codes (spec {spec.fingerprint()}), {len(ids) - n_test} to train, "
            f"{n_test} held out", self.settings.get("run_id"), self.settings.get("round"))

    def get_item(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._x[index], self._y[index]

    def __len__(self) -> int:
        return int(self._x.shape[0])
