"""Training plans as files: the config names a shipped plan or a user's file; the host reads
it without running it; the input it takes is checked against the FeatureSpec; each
hospital's approved plans reach its node's view, and the files are mounted read-only."""

from __future__ import annotations

import dataclasses
import math
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from fedjourney import contract
from fedjourney.config import RESERVED_MODEL_ARGS, load_federation
from fedjourney.contract import DatasetRecord
from fedjourney.errors import FedjourneyError
from fedjourney.host import deployment, kit, swarm, views
from fedjourney.host.approve import plan_named
from fedjourney.host.compose import render
from fedjourney.planfile import SHIPPED, resolve
from fedjourney.researcher.approval import refusals
from fedjourney.researcher.experiment import class_prior, model_args
from tests.conftest import DEFAULT_CONFIG

OWN = '''"""A narrow MLP."""
from typing import Any

import torch.nn as nn

from fedjourney.plans.base import CentrePlan


class MyPlan(CentrePlan):
    def init_model(self, model_args: dict[str, Any]) -> Any:
        return nn.Sequential(nn.Linear(model_args["n_features"], 1), nn.Sigmoid())
'''


def _config(tmp_path: Path, **changes: object) -> Path:
    """The default config in tmp_path with `changes` applied to its sections."""
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if section == "centre0":
            cfg["centres"][0][name] = value
        elif name:
            cfg[section][name] = value
        else:
            cfg[section] = value
    path = tmp_path / "federation.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_the_shipped_plans_say_what_they_take() -> None:
    kinds = {name: resolve(name, Path(), "plan").input for name in SHIPPED}
    assert kinds == {"mlp": "vector", "logistic": "vector", "gru": "sequence"}
    fed = load_federation(DEFAULT_CONFIG)
    assert fed.training.plan.name == "mlp" and fed.experiment("gru").plan.name == "gru"
    assert [p.name for p in fed.centres[0].approved_plans] == ["mlp", "logistic", "gru"]


def test_a_users_plan_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "my_plan.py").write_text(OWN)
    fed = load_federation(_config(tmp_path, training__plan="plans/my_plan.py",
                                  training__model_args={"dropout": 0.2}))
    plan = fed.training.plan
    assert (plan.name, plan.class_name, plan.input, plan.shipped) == (
        "my_plan.py", "MyPlan", "vector", False)
    assert plan.path == tmp_path / "plans" / "my_plan.py"
    assert fed.training.describe()["model_args"] == {"dropout": 0.2}
    assert plan_named(fed, "my_plan.py") == plan and plan_named(fed, None) == plan


BAD: dict[str, tuple[dict[str, Any], str]] = {
    "an unknown name": ({"training__plan": "transformer"},
                        "training.plan: 'transformer' is neither a shipped plan"),
    "a missing file": ({"training__plan": "nowhere.py"}, "plan file"),
    "a sequence plan on the mean": (
        {"training__plan": "gru", "features": "MEAN"},
        "plan gru takes a per-bin sequence (M bins x K codes) but features.aggregation is "
        "mean"),
    "a reserved model argument": ({"training__model_args": {"spec": 1}},
                                  "training.model_args.spec is set by fedjourney"),
    "hidden as a model argument": ({"training__model_args": {"hidden": 8}},
                                   "set training.hidden"),
    "approved plans not a list": ({"centre0__approved_plans": "mlp"},
                                  "approved_plans must be a list"),
    "an approved plan that is no plan": ({"centre0__approved_plans": ["mlp", "x"]},
                                         "approved_plans[1]: 'x' is neither"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_plan_setting_is_refused_in_one_line(case: str, tmp_path: Path) -> None:
    changes, expected = BAD[case]
    if changes.get("features") == "MEAN":
        features = yaml.safe_load(DEFAULT_CONFIG.read_text())["features"]
        changes = {**changes, "features": {**features, "aggregation": "mean"}}
    with pytest.raises(FedjourneyError) as caught:
        load_federation(_config(tmp_path, **changes))
    assert expected in str(caught.value) and "\n" not in str(caught.value), str(caught.value)


FILES: dict[str, tuple[str, str]] = {
    "no plan class": ("import torch\n", "must define exactly one class deriving from"),
    "two plan classes": ("class A(CentrePlan):\n    pass\n\n\nclass B(TorchTrainingPlan):\n"
                         "    pass\n", "(found: A, B)"),
    "an odd input": ("class A(CentrePlan):\n    INPUT = 'image'\n", "A.INPUT in"),
    "a syntax error": ("class A(CentrePlan)\n", "line 2: expected ':'"),
}


@pytest.mark.parametrize("case", sorted(FILES))
def test_a_file_that_is_no_plan_is_refused_without_running_it(case: str, tmp_path: Path
                                                              ) -> None:
    text, expected = FILES[case]
    # Code that would write a file if it ran: reading a plan never runs it.
    (tmp_path / "mine.py").write_text("open('ran', 'w')\n" + text)
    with pytest.raises(FedjourneyError) as caught:
        resolve("mine.py", tmp_path, "training.plan")
    assert expected in str(caught.value) and "\n" not in str(caught.value), str(caught.value)
    assert not (tmp_path / "ran").exists() and not Path("ran").exists()


def test_a_plan_file_name_that_cannot_be_mounted_is_refused(tmp_path: Path) -> None:
    (tmp_path / "my plan.py").write_text(OWN)
    with pytest.raises(FedjourneyError, match="must be letters, digits"):
        resolve("my plan.py", tmp_path, "training.plan")


def test_two_plan_files_may_not_share_a_name(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "plan.py").write_text(OWN)
    with pytest.raises(FedjourneyError, match=r"share the name 'plan\.py'"):
        load_federation(_config(tmp_path, training__plan="a/plan.py",
                                centre0__approved_plans=["b/plan.py"]))


def test_views_and_deployments_carry_users_plans_read_only(tmp_path: Path) -> None:
    (tmp_path / "my_plan.py").write_text(OWN)
    config = _config(tmp_path, centre0__approved_plans=["mlp", "my_plan.py"],
                     experiments={"mine": {"plan": "my_plan.py"}})
    fed = load_federation(config)
    raw = yaml.safe_load(config.read_text())
    rendered = views.views(raw, fed)
    mounted = str(contract.PLANS / "my_plan.py")
    assert rendered["node-0"]["centres"][0]["approved_plans"] == ["mlp", mounted]
    assert rendered["node-1"]["centres"][0]["approved_plans"] == ["mlp", "logistic", "gru"]
    assert rendered["researcher"]["experiments"]["mine"]["plan"] == mounted
    assert "approved_plans" not in str(rendered["generator-0"])
    assert "approved_plans" not in str(rendered["researcher"])  # each node states its own
    services = {s.name: s for s in deployment.federation(fed).services}

    def plans_of(name: str) -> list[tuple[str, str, bool]]:
        return [(m.source, str(m.target), m.read_only) for m in services[name].mounts
                if str(m.target).startswith(str(contract.PLANS))]

    own = (str(tmp_path / "my_plan.py"), mounted, True)
    assert plans_of("node-0") == [own] and plans_of("node-1") == []
    assert plans_of("researcher") == [own]
    assert f"{tmp_path / 'my_plan.py'}:{mounted}:ro" in render(fed)
    stack = yaml.safe_load(swarm.render(fed))
    assert stack["configs"]["plan-my_plan.py"] == {"file": str(tmp_path / "my_plan.py")}
    assert {"source": "plan-my_plan.py", "target": mounted} in stack["services"]["node-0"][
        "configs"]
    # A kit carries its own copy, mounted from ./plans beside its compose file.
    assert kit.site_plans(fed.centres[0]) == [tmp_path / "my_plan.py"]
    assert f"./plans/my_plan.py:{mounted}:ro" in kit.site(fed, fed.centres[0])
    assert f"./plans/my_plan.py:{mounted}:ro" in kit.researcher(fed)
    out = tmp_path / "kit" / "docker-compose.yml"
    out.parent.mkdir()
    kit.write(kit.site(fed, fed.centres[0]), kit.site_views(raw, fed, fed.centres[0]), out,
              plans=kit.site_plans(fed.centres[0]))
    assert (out.parent / "plans" / "my_plan.py").read_text() == OWN


def _record(centre_id: int) -> DatasetRecord:
    return DatasetRecord(centre_id=centre_id, centre=f"C{centre_id}", country="fr",
                         region="", patients=10, fingerprint="f", spec_fingerprint="s")


def test_the_researcher_names_each_node_that_has_not_approved_the_plan() -> None:
    plan = resolve("gru", Path(), "plan")
    nodes = {"a": _record(0), "b": _record(1), "c": _record(2), "d": _record(3)}
    replies = {
        "a": SimpleNamespace(success=True, approval_obligation=True, status="Approved"),
        "b": SimpleNamespace(success=True, approval_obligation=True, status="Pending"),
        "d": SimpleNamespace(success=False, msg="internal error"),
    }
    lines = refusals(replies, nodes, plan, "ab" * 32)
    assert lines == [
        "node-1 C1 has not approved it (status: Pending): plan gru sha256 abababababababab; "
        "approve it: fedjourney approve --centre 1 gru (or add it to the centre's "
        "approved_plans)",
        "node-2 C2 did not answer the plan-status request: plan gru sha256 abababababababab; "
        "approve it: fedjourney approve --centre 2 gru (or add it to the centre's "
        "approved_plans)",
        "node-3 C3 could not check it (internal error): plan gru sha256 abababababababab; "
        "approve it: fedjourney approve --centre 3 gru (or add it to the centre's "
        "approved_plans)"]
    replies["b"].status = "Approved"
    replies["c"] = replies["a"]
    replies["d"] = replies["a"]
    assert refusals(replies, nodes, plan, "ab" * 32) == []


# Optional model arguments of the shipped plans (issue 18, local DP that learns).

STUDY = Path(__file__).resolve().parents[2] / "data" / "study.yaml"


def test_the_prior_is_pooled_over_the_centres_that_state_their_positives() -> None:
    profiles = [{"patients": 100, "positives": 5}, {"patients": 50, "positives": None},
                {"patients": 200, "positives": 10}, {}]
    assert class_prior(profiles) == pytest.approx(15 / 300)
    assert class_prior([{"patients": 40, "positives": None}]) is None
    assert class_prior([]) is None


def test_output_bias_prior_becomes_its_logit_and_the_default_run_is_untouched() -> None:
    fed = load_federation(STUDY)
    dp = dataclasses.replace(fed.experiment("dp"), model_args={
        "output_bias": "prior", "input_transform": "standardize"})
    args = model_args(fed, dp, "run", prior=0.03)
    assert args["output_bias"] == pytest.approx(math.log(0.03 / 0.97))
    assert args["input_transform"] == "standardize"
    # Without a prior (the baselines see no record) the plan keeps its own initialisation.
    assert "output_bias" not in model_args(fed, dp, "run")
    # The default run and the other experiments get fedjourney's own arguments only.
    for t in [fed.training, *(fed.experiment(n) for n in fed.experiments if n != "dp")]:
        assert set(model_args(fed, t, "run", prior=0.03)) == \
            set(RESERVED_MODEL_ARGS) - {"run_started"}
        # A run's experiment also gets its second 0 (the schedules' events by time).
        assert model_args(fed, t, "run", started=12.5)["run_started"] == 12.5


# The plans' base on a stand-in for Fed-BioMed's TorchTrainingPlan.


class _TorchTrainingPlan:
    """What CentrePlan uses of Fed-BioMed's class: post_init builds the model, model(),
    model_args(), set_data_loaders()."""

    def post_init(self, model_args: dict[str, Any], training_args: Any = None,
                  **_kwargs: Any) -> None:
        self._model_args = model_args
        self._model = self.init_model(model_args)  # type: ignore[attr-defined]

    def model(self) -> Any:
        return self._model

    def model_args(self) -> dict[str, Any]:
        return self._model_args

    def set_data_loaders(self, train_data_loader: Any, test_data_loader: Any) -> None:
        self.training_data_loader = train_data_loader


@pytest.fixture()
def base(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """fedjourney.plans.base, imported over stand-ins of the Fed-BioMed modules it needs."""
    pytest.importorskip("torch")
    stubs = {"fedbiomed": {}, "fedbiomed.common": {},
             "fedbiomed.common.datamanager": {"DataManager": object},
             "fedbiomed.common.training_plans": {"TorchTrainingPlan": _TorchTrainingPlan},
             "fedbiomed.common.dataset": {"CustomDataset": object}}
    for name, attrs in stubs.items():
        module = types.ModuleType(name)
        vars(module).update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    for name in ("fedjourney.plans.base", "fedjourney.node.dataset"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import fedjourney.plans.base as module

    yield module
    for name in ("fedjourney.plans.base", "fedjourney.node.dataset"):
        sys.modules.pop(name, None)


def _plan(base: Any, args: dict[str, Any]) -> Any:
    import torch

    from fedjourney.model import make_mlp

    class Plan(base.CentrePlan):  # type: ignore[misc, name-defined]
        def init_model(self, model_args: dict[str, Any]) -> Any:
            return make_mlp(3, 4)

    torch.manual_seed(0)
    plan = Plan()
    plan.post_init({"n_features": 3, **args})
    return plan


def _loader(x: Any) -> Any:
    import torch

    data = torch.utils.data.TensorDataset(x, torch.zeros(len(x), 1))
    return torch.utils.data.DataLoader(data, batch_size=2)


def test_without_the_options_the_plan_is_its_subclass(base: Any) -> None:
    import torch

    from fedjourney.model import make_mlp

    plan = _plan(base, {})
    torch.manual_seed(0)
    bare = make_mlp(3, 4)
    x = torch.rand(5, 3) * 4
    plan.set_data_loaders(_loader(x), None)
    assert all(torch.equal(a, b) for a, b in zip(plan.model().state_dict().values(),
                                                 bare.state_dict().values(), strict=True))
    assert torch.equal(plan.model()(x), bare(x))
    y = torch.tensor([[1.0], [0.0], [0.0], [1.0], [0.0]])
    assert torch.equal(plan.training_step(x, y),
                       torch.nn.functional.binary_cross_entropy(bare(x), y))


def test_output_bias_sets_the_output_unit_only(base: Any) -> None:
    import torch

    plain, biased = _plan(base, {}), _plan(base, {"output_bias": -3.5})
    assert torch.equal(biased.model()[2].bias, torch.tensor([-3.5]))
    assert torch.equal(biased.model()[0].bias, plain.model()[0].bias)
    assert torch.equal(biased.model()[2].weight, plain.model()[2].weight)
    with pytest.raises(ValueError, match="output_bias"):
        base.set_output_bias(torch.nn.Linear(3, 2), 0.0)


def test_standardize_uses_the_nodes_own_training_patients(base: Any) -> None:
    import torch

    plan = _plan(base, {"input_transform": "standardize"})
    bare = _plan(base, {})
    train = torch.tensor([[0.0, 1.0, 0.7], [2.0, 3.0, 0.7], [4.0, 8.0, 0.7]])
    x = torch.tensor([[1.0, 2.0, 0.7], [9.0, 0.0, 0.7]])
    assert torch.equal(plan.model()(x), bare.model()(x))  # no statistics before the data
    plan.set_data_loaders(_loader(train), None)
    mean, std = train.mean(dim=0), train.std(dim=0, unbiased=False)
    expected = (x - mean) / torch.where(std > 0, std, torch.ones(3))  # a constant: centred
    assert torch.allclose(plan.model()(x), bare.model()(expected), atol=1e-6)
    plan.set_data_loaders(_loader(train * 100), None)  # a second call changes nothing
    assert torch.allclose(plan.model()(x), bare.model()(expected), atol=1e-6)


def test_given_statistics_and_log1p(base: Any) -> None:
    import torch

    bare = _plan(base, {})
    x = torch.tensor([[1.0, 2.0, 3.0]])
    given = _plan(base, {"input_transform": "log1p+standardize", "input_mean": [0.0, 1.0, 0.5],
                         "input_std": [2.0, 0.0, 1.0]})
    expected = (torch.log1p(x) - torch.tensor([0.0, 1.0, 0.5])) / torch.tensor([2.0, 1.0, 1.0])
    assert torch.allclose(given.model()(x), bare.model()(expected))
    logged = _plan(base, {"input_transform": "log1p"})
    assert torch.allclose(logged.model()(x), bare.model()(torch.log1p(x)))
    with pytest.raises(ValueError, match="input_transform"):
        _plan(base, {"input_transform": "whiten"})


def test_pos_weight_weighs_the_positives(base: Any) -> None:
    import torch

    plan = _plan(base, {"pos_weight": 30.0})
    x, y = torch.rand(4, 3), torch.tensor([[1.0], [0.0], [0.0], [0.0]])
    p = plan.model()(x)
    expected = -(30 * y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    assert torch.allclose(plan.training_step(x, y), expected, atol=1e-6)
