"""What the baselines take from an experiment (the training itself runs in the researcher
image: tests/integration/test_prototype.py)."""

from __future__ import annotations

import dataclasses

import pytest

from fedjourney.baselines import differences, settings
from fedjourney.config import RESERVED_MODEL_ARGS, Privacy, Training, parse_federation
from fedjourney.errors import FedjourneyError
from tests.conftest import DEFAULT_CONFIG


def _raw() -> dict:  # type: ignore[type-arg]
    import yaml

    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def test_the_baselines_use_every_training_setting_of_the_experiment() -> None:
    raw = _raw()
    raw["training"].update(hidden=8, learning_rate=0.01, batch_size=8, held_out_percent=40,
                           seed=7, rounds=2, epochs=3)
    t = parse_federation(raw, DEFAULT_CONFIG).training
    assert settings(t) == {"plan": "mlp", "model_args": {}, "hidden": 8, "optimizer": "adam",
                           "learning_rate": 0.01, "batch_size": 8, "rounds": 2, "epochs": 3,
                           "num_updates": None, "held_out_percent": 40, "seed": 7}
    assert "seed" in RESERVED_MODEL_ARGS  # the nodes' sampler reads it from model_args


def test_the_baselines_name_what_they_cannot_share_with_the_run() -> None:
    assert differences(Training()) == []
    private = dataclasses.replace(Training(), dp=Privacy(sigma=1.0, clip=1.0))
    assert differences(private) == ["they train without DP-SGD (a federated run's local DP)"]
    masked = dataclasses.replace(Training(), secagg="lom", aggregator="scaffold",
                                 num_updates=5)
    assert len(differences(masked)) == 2
    assert settings(masked)["optimizer"] == "sgd"


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "x"])
def test_a_bad_training_seed_is_one_line(seed: object) -> None:
    raw = _raw()
    raw["training"]["seed"] = seed
    with pytest.raises(FedjourneyError, match=r"training\.seed"):
        parse_federation(raw, DEFAULT_CONFIG)
