"""The centre's dataset as Fed-BioMed's node loads it: a `custom` dataset whose registered
path is the centre folder, turned into the FeatureSpec's tensor (cached on the node). Each
request first compares the centre's files with those of the last check (node/data.py's
current()): data that changed under the running node is checked again, re-fingerprinted
and registered again before anything trains on it."""

from __future__ import annotations

import configparser
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fedbiomed.common.dataset import CustomDataset

from fedjourney import contract, settings
from fedjourney.config import Centre, Federation, load_federation
from fedjourney.contract import DatasetRecord, check_run_id
from fedjourney.errors import FedjourneyError
from fedjourney.features import FeatureSpec, plan_input, spec_from_dict
from fedjourney.model import split_order, training_orders
from fedjourney.node.cache import load_or_build
from fedjourney.node.data import CACHE, current
from fedjourney.node.ledger import Ledger
from fedjourney.node.rules import published
from fedjourney.story import Story, narrator


class CentreDataset(CustomDataset):  # type: ignore[misc]
    """Patients in split order: training patients first, held-out patients last, so that
    Fed-BioMed's unshuffled split (the last floor(N * test_ratio)) is our held-out split."""

    # Fed-BioMed forbids __init__ on custom datasets: the plan sets this before load().
    settings: dict[str, Any] = {}  # noqa: RUF012
    n_train = 0  # training patients (the first ones in split order), once read

    def read(self) -> None:
        spec = spec_from_dict(self.settings["spec"])
        story = narrator().at(self.settings.get("run_id"), self.settings.get("round"))
        try:
            check_run_id(self.settings.get("run_id"))  # type: ignore[arg-type]
        except ValueError as exc:
            story.warning(f"REFUSED: {exc}")
            raise FedjourneyError(f"REFUSED: {exc}") from None
        record = current_record(Path(self.path), story)
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


def current_record(folder: Path, story: Story) -> DatasetRecord:
    """The node's record of its centre, checked again when the files changed since the last
    check, as start-up checks them (with the node's own config): told in one line and, when
    the record changed, registered again in Fed-BioMed's registry."""
    fed: list[Federation] = []

    def own() -> tuple[Centre, FeatureSpec, str]:
        fed.append(load_federation(settings.CONFIG.raw(os.environ)))
        return (fed[0].centre(settings.CENTRE_ID.raw(os.environ)), fed[0].feature_spec(),
                fed[0].features_backend)

    now = current(folder, own)
    if now.said:
        said = now.said + (f"; {_registered_again(now.record, folder, fed[0].training.tag)}"
                           if now.changed else "")
        (story.error if now.record.unhealthy else story.info)(said)
    return now.record


def _registered_again(record: DatasetRecord, folder: Path, tag: str) -> str:
    """The record in place of the one Fed-BioMed's registry holds, as start-up registers
    it, so that a researcher's next search finds it (this experiment's researcher searched
    before its first request); what was done, said for the story line."""
    from fedjourney.node import component
    from fedjourney.node.start import COMPONENT

    where = folder if folder.is_dir() else folder.parent  # as start-up registers it
    try:
        dataset_id, done = component.register_dataset(
            _Config(COMPONENT), record, where, tag,
            published(Ledger(Path(contract.PRIVACY_LEDGER))))
    except Exception as exc:  # the request goes on: it trains on what the record says
        return (f"its entry in Fed-BioMed's registry is not updated ({type(exc).__name__}): "
                "researchers still find the old one")
    return (f"its registered dataset is {done} ({dataset_id}): a researcher's next search "
            "finds it")


class _Config(configparser.ConfigParser):
    """The node's Fed-BioMed config, read from its file, as component.register_dataset uses
    it (root, get, getint): the running node's own config object is out of a request's
    reach."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = str(root)
        self.read(root / "etc" / "config.ini", encoding="utf-8")


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
