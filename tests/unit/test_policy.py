"""A centre's data-use policy: parsed from its config, judged on the requests a researcher
sends (the same function on the node and, first, on the researcher), and the monitor that
sends training losses only as epoch means."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fedjourney.config import parse_federation
from fedjourney.errors import FedjourneyError
from fedjourney.host.views import views
from fedjourney.node.rules import CoarseMonitor, parties
from fedjourney.policy import Policy, Request, dp_steps, parse_policy, refusals
from fedjourney.researcher.experiment import model_args, training_args
from tests.conftest import DEFAULT_CONFIG


def _raw() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def _request(**changes: Any) -> Request:
    """The default experiment's request to a node, as the researcher sends it, changed."""
    fed = parse_federation(_raw(), DEFAULT_CONFIG)
    targs, margs = training_args(fed.training), model_args(fed, fed.training, "r1")
    for key, value in changes.items():
        if key == "batch_size":
            targs["loader_args"]["batch_size"] = value
        elif key in ("held_out_percent", "optimizer"):
            margs[key] = value
        else:
            targs[key] = value
    return Request.of(targs, margs, changes.get("parties"))


def test_the_default_experiment_is_within_the_default_policy() -> None:
    assert refusals(Policy(), 30, _request()) == []


@pytest.mark.parametrize(("change", "rule"), [
    ({"batch_size": 1}, "policy.min_batch_size"),
    ({"batch_size": 7}, "policy.min_batch_size"),
    ({"epochs": 101}, "policy.max_epochs"),
    ({"num_updates": 10001}, "policy.max_updates"),
    ({"test_ratio": 0.9}, "training.held_out_percent"),
    ({"held_out_percent": 90}, "training.held_out_percent"),
    ({"test_batch_size": 1}, "test_batch_size 0"),
    ({"shuffle_testing_dataset": True}, "test_batch_size 0"),
    ({"optimizer": "rmsprop"}, "policy.optimizers"),
    ({"dp_args": {"type": "central", "sigma": 1.0, "clip": 1.0}}, "local DP-SGD only"),
])
def test_each_rule_refuses_what_it_names(change: dict[str, Any], rule: str) -> None:
    refused = refusals(Policy(), 30, _request(**change))
    assert len(refused) == 1 and rule in refused[0], refused


def test_the_dp_stance_is_the_centres() -> None:
    dp = {"dp_args": {"type": "local", "sigma": 1.0, "clip": 1.0}}
    required = Policy(dp="required", epsilon_budget=10)
    assert "requires local DP-SGD" in refusals(required, 30, _request())[0]
    assert refusals(required, 30, _request(**dp)) == []
    assert "refuses it" in refusals(Policy(dp="refused"), 30, _request(**dp))[0]
    assert refusals(Policy(), 30, _request(**dp)) == []


def test_too_few_secure_aggregation_parties_are_refused() -> None:
    policy = Policy(secagg_min_parties=3)
    assert "at least 3" in refusals(policy, 30, _request(parties=2))[0]
    assert refusals(policy, 30, _request(parties=3)) == []
    assert refusals(policy, 30, _request()) == []  # in the clear


def test_parties_are_the_nodes_the_researcher_lists_without_itself() -> None:
    assert parties(None, "r") is None and parties({}, "r") is None
    assert parties({"parties": ["r", "n1", "n2", "n2"]}, "r") == 2


@pytest.mark.parametrize(("raw", "message"), [
    ("strict", "must be a mapping"),
    ({"min_batch": 8}, "unknown key 'min_batch'"),
    ({"min_batch_size": 0}, "min_batch_size must be a whole number from 1"),
    ({"optimizers": []}, "optimizers must be a non-empty list"),
    ({"dp": "maybe"}, "dp must be one of required, allowed, refused"),
    ({"dp": "required"}, "dp required needs an epsilon_budget"),
    ({"dp": "refused", "epsilon_budget": 3}, "remove its epsilon_budget"),
    ({"epsilon_budget": -1}, "epsilon_budget must be a number"),
    ({"secagg_min_parties": 1}, "secagg_min_parties must be a whole number from 2"),
    ({"training_loss": "batch"}, "training_loss must be one of epoch, none"),
])
def test_a_bad_policy_is_one_line_naming_the_setting(raw: Any, message: str) -> None:
    with pytest.raises(FedjourneyError, match=message) as caught:
        parse_policy(raw, "centres[0].policy")
    assert "\n" not in str(caught.value) and "centres[0].policy" in str(caught.value)


def test_a_policy_travels_in_the_record_and_back() -> None:
    policy = parse_policy({"dp": "required", "epsilon_budget": 8, "optimizers": ["adam"]}, "p")
    assert Policy.from_dict(policy.to_dict()) == policy
    assert Policy.from_dict({}) == Policy()  # a record from before policies


def test_the_config_refuses_an_experiment_a_centre_refuses() -> None:
    raw = _raw()
    raw["centres"][1]["policy"] = {"min_batch_size": 32}
    with pytest.raises(FedjourneyError, match=r"training: centre CHU de Lyon refuses "
                       r"training batches of 16 patients.*policy.min_batch_size"):
        parse_federation(raw, DEFAULT_CONFIG)
    raw["centres"][1]["policy"] = {"dp": "required", "epsilon_budget": 10}
    with pytest.raises(FedjourneyError, match="refuses training without DP; this centre "
                       "requires local DP-SGD"):
        parse_federation(raw, DEFAULT_CONFIG)


def test_an_experiment_a_centre_refuses_fails_when_chosen() -> None:
    raw = _raw()
    raw["centres"][0]["policy"] = {"dp": "refused"}
    fed = parse_federation(raw, DEFAULT_CONFIG)  # the default experiment has no DP
    with pytest.raises(FedjourneyError, match="experiment 'dp': centre Massachusetts General "
                       "Hospital refuses training with DP-SGD"):
        fed.experiment("dp")


def test_the_held_out_share_is_each_nodes_not_an_experiments() -> None:
    raw = _raw()
    raw["experiments"]["wide"] = {"held_out_percent": 50}
    with pytest.raises(FedjourneyError, match=r"experiments\.wide cannot change "
                       r"held_out_percent; set it in training"):
        parse_federation(raw, DEFAULT_CONFIG)


def test_more_secure_aggregation_parties_than_centres_is_refused() -> None:
    raw = _raw()
    raw["centres"][2]["policy"] = {"secagg_min_parties": 4}
    with pytest.raises(FedjourneyError, match=r"at least 4 nodes .* the federation has 3"):
        parse_federation(raw, DEFAULT_CONFIG)


def test_a_nodes_view_holds_the_federations_size_as_its_fewest_parties() -> None:
    raw = _raw()
    fed = parse_federation(raw, DEFAULT_CONFIG)
    view = views(raw, fed)["node-1"]
    node = parse_federation(view, Path("node-1.yaml"))
    assert node.centres[0].policy.secagg_min_parties == 3
    raw["centres"][1]["policy"] = {"secagg_min_parties": 2}
    view = views(raw, parse_federation(raw, DEFAULT_CONFIG))["node-1"]
    assert parse_federation(view, Path("node-1.yaml")).centres[0].policy.secagg_min_parties == 2
    assert "policy" not in str(views(raw, fed)["researcher"])  # each node states its own


def test_dp_steps_are_fedbiomeds() -> None:
    assert dp_steps(35, 16, 5, None) == (1 / 3, 15)
    assert dp_steps(35, 16, 5, 20) == (1 / 3, 20)
    assert dp_steps(0, 16, 1, None) == (1.0, 1)


class _Sent:
    def __init__(self) -> None:
        self.scalars: list[dict[str, Any]] = []

    def add_scalar(self, **kwargs: Any) -> None:
        self.scalars.append(kwargs)


def _epoch(monitor: CoarseMonitor, losses: list[float], sizes: list[int], epoch: int) -> None:
    for i, (loss, size) in enumerate(zip(losses, sizes, strict=True), 1):
        monitor.add_scalar(metric={"Loss": loss}, iteration=i, epoch=epoch,
                           total_samples=sum(sizes), batch_samples=size,
                           num_batches=len(losses), train=True)


def test_training_losses_leave_as_each_epochs_mean_only() -> None:
    sent = _Sent()
    monitor = CoarseMonitor(sent, "epoch")
    _epoch(monitor, [1.0, 0.5, 0.2], [16, 16, 3], 1)
    _epoch(monitor, [0.4, 0.4, 0.4], [16, 16, 3], 2)
    assert [s["metric"]["Loss"] for s in sent.scalars] == pytest.approx(
        [(16 + 8 + 0.6) / 35, 0.4])
    assert all(s["batch_samples"] == 35 and s["train"] for s in sent.scalars)


def test_no_training_loss_leaves_under_none_and_validation_is_whole_split() -> None:
    sent = _Sent()
    monitor = CoarseMonitor(sent, "none")
    _epoch(monitor, [1.0, 0.5], [8, 8], 1)
    assert sent.scalars == []
    for batches in (2, 1):
        monitor.add_scalar(metric={"auc": 0.7}, iteration=1, epoch=None, total_samples=15,
                           batch_samples=15, num_batches=batches, test=True,
                           test_on_global_updates=True)
    assert len(sent.scalars) == 1 and sent.scalars[0]["num_batches"] == 1


def _rules(tmp_path: Path, patients: int = 50, **policy: Any) -> Any:
    from fedjourney.contract import DatasetRecord
    from fedjourney.node.ledger import Ledger
    from fedjourney.node.rules import Rules

    record = DatasetRecord(centre_id=1, centre="Lyon", country="fr", region="",
                           patients=patients, fingerprint="f", spec_fingerprint="s")
    return Rules("node-1 Lyon", Policy(**policy), 30, Ledger(tmp_path / "ledger.json"),
                 lambda: record)


def _judge(rules: Any, targs: dict[str, Any], margs: dict[str, Any],
           training: bool = True) -> list[str]:
    import logging

    from fedjourney.story import Story

    return rules.judge(targs, margs, None, training, "r1", 1,  # type: ignore[no-any-return]
                       Story(logging.getLogger("test"), {}))


def _args(**dp: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    fed = parse_federation(_raw(), DEFAULT_CONFIG)
    targs, margs = training_args(fed.training), model_args(fed, fed.training, "r1")
    if dp:
        targs["dp_args"] = {"type": "local", **dp}
    return targs, margs


def test_a_run_id_that_is_not_one_is_refused_before_anything(tmp_path: Path) -> None:
    targs, margs = _args()
    margs["run_id"] = "r1\nforged"
    assert _judge(_rules(tmp_path), targs, margs)[0].startswith("invalid run id 'r1\\nforged'")


def test_a_centre_with_fewer_training_patients_than_a_batch_refuses_to_train(
        tmp_path: Path) -> None:
    targs, margs = _args()
    refused = _judge(_rules(tmp_path, patients=10), targs, margs)  # 7 train
    assert refused == ["training on this centre's 7 training patients, fewer than its minimum "
                       "batch of 8 (policy.min_batch_size)"]
    assert _judge(_rules(tmp_path, patients=10), targs, margs, training=False) == []


def test_each_dp_round_is_charged_before_it_trains_and_the_budget_holds(
        tmp_path: Path) -> None:
    targs, margs = _args(sigma=1.0, clip=1.0)
    rules = _rules(tmp_path, dp="required", epsilon_budget=25.0)
    assert _judge(rules, targs, margs) == []  # 35 train: 3 batches of 16, 5 epochs
    assert len(rules.ledger.charges()) == 1
    charge = rules.ledger.charges()[0]
    assert (charge.sigma, charge.sample_rate, charge.steps) == (1.0, 1 / 3, 15)
    assert _judge(rules, targs, margs, training=False) == []  # validation spends nothing
    while not (refused := _judge(rules, targs, margs)):
        pass
    assert "over its budget of 25; spent so far" in refused[0]
    assert refused[0].endswith("(policy.epsilon_budget)")
    assert 10 < rules.ledger.epsilon(1e-5) <= 25.0  # the refused round was not charged


def test_the_published_ledger_composes_with_a_run_as_the_node_counts(tmp_path: Path) -> None:
    """What the researcher tells as spent on a centre's data after its run equals what the
    node's ledger will hold: the record's [sigma, rate, steps] composed with the run."""
    from fedjourney.config import Privacy
    from fedjourney.node.ledger import Charge, Ledger
    from fedjourney.researcher.privacy import epsilon

    ledger = Ledger(tmp_path / "ledger.json")
    for run, rounds in (("a", 3), ("b", 2)):
        for r in range(rounds):
            ledger.charge(Charge(run_id=run, round=r, sigma=1.0, sample_rate=1 / 3, steps=15))
    assert ledger.spent() == [[1.0, 1 / 3, 75.0]]
    dp = Privacy(sigma=1.0, clip=1.0)
    after = epsilon(dp, 16, 5, None, [35, 35], ledger.spent())
    for r in range(2):
        ledger.charge(Charge(run_id="c", round=r, sigma=1.0, sample_rate=1 / 3, steps=15))
    assert after == pytest.approx(ledger.epsilon(1e-5))
    assert epsilon(dp, 16, 5, None, [], ledger.spent()) == pytest.approx(ledger.epsilon(1e-5))


def test_a_second_node_claiming_a_centre_or_an_unknown_one_is_named() -> None:
    from fedjourney.contract import DatasetRecord
    from fedjourney.researcher.run import false_claims

    fed = parse_federation(_raw(), DEFAULT_CONFIG)

    def record(centre: int, name: str) -> DatasetRecord:
        return DatasetRecord(centre_id=centre, centre=name, country="", region="",
                             patients=50, fingerprint="f", spec_fingerprint="s")

    honest = {f"NODE_{c.id}": record(c.id, c.name) for c in fed.centres}
    assert false_claims(honest, fed) == ""
    twice = {**honest, "NODE_evil": record(1, "CHU de Lyon")}
    assert false_claims(twice, fed).startswith("2 nodes claim node-1 CHU de Lyon (NODE_1, "
                                                "NODE_evil); stop the node")
    stranger = {**honest, "NODE_x": record(9, "Elsewhere")}
    assert "node NODE_x claims node-9 Elsewhere, which is not a centre of this federation" \
        in false_claims(stranger, fed)


def test_a_nodes_refusal_reaches_the_researchers_story_in_its_own_words() -> None:
    """Fed-BioMed only logs a node's error reply; the researcher tells it as one line."""
    import logging

    from fedjourney.researcher.run import _NodeRefusals
    from fedjourney.story import Story

    told: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            told.append(record.getMessage())

    narrator = logging.getLogger("test-refusals-story")  # outside fedjourney's own logger
    narrator.addHandler(collect := Collect())
    handler = _NodeRefusals(Story(narrator, {}))
    fedbiomed = logging.getLogger("fedbiomed.test-refusals")
    fedbiomed.addHandler(handler)
    try:
        fedbiomed.warning("Error message received during training: FB300. REFUSED by "
                          "node-1 CHU de Lyon's data-use policy: training batches of 1\n"
                          "patients")
        fedbiomed.warning("Error message received during training: FB313. no dataset")
    finally:
        fedbiomed.removeHandler(handler)
        narrator.removeHandler(collect)
    assert told == ["REFUSED by node-1 CHU de Lyon's data-use policy: training batches of 1 "
                    "patients"]
