"""The Swarm stack file follows the federation config, and the compose file's services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fedjourney.cli import main
from fedjourney.config import Federation, load_federation, load_raw
from fedjourney.contract import CONFIG, HOST_RESULTS, generator_service, node_service
from fedjourney.host import compose, swarm, views
from tests.conftest import (
    DEFAULT_CONFIG,
    ROOT,
    STUDY_CONFIG,
    WAN_CONFIG,
    imported_centre,
    write_config,
)

MANAGER = ["node.role == manager"]
# Keys `docker stack deploy` ignores (or, for depends_on's condition form, rejects).
NOT_IN_SWARM = {"depends_on", "network_mode", "restart", "security_opt", "tmpfs",
                "container_name"}


def _five_centres(path: Path) -> Path:
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg["centres"] += [
        {"id": 3, "name": "Charite", "country": "de", "region": "Berlin",
         "population": 40, "seed": 5, "age_range": "30-70"},
        {"id": 4, "name": "CHU de Bordeaux", "country": "fr", "region": "Nouvelle-Aquitaine",
         "population": 40, "seed": 6, "age_range": "25-75"}]
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(params=["default", "five-centres"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return DEFAULT_CONFIG if request.param == "default" else \
        _five_centres(tmp_path / "federation.yaml")


@pytest.fixture
def fed(config: Path) -> Federation:
    return load_federation(config)


@pytest.fixture
def stack(fed: Federation) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(swarm.render(fed))
    return parsed


def _members(stack: dict[str, Any]) -> dict[str, set[str]]:
    """{network: the services on it}."""
    out: dict[str, set[str]] = {name: set() for name in stack["networks"]}
    for name, service in stack["services"].items():
        for network in service["networks"]:
            out[network].add(name)
    return out


def test_it_is_a_stack_file(stack: dict[str, Any], fed: Federation) -> None:
    assert stack["version"] == "3.8"
    assert len(stack["services"]) == 2 * len(fed.centres) + 2
    text = swarm.render(fed)
    assert text.startswith("# GENERATED") and "docker stack deploy" in text


def test_each_centre_runs_on_its_own_host_and_the_researcher_on_the_manager(
        stack: dict[str, Any], fed: Federation) -> None:
    services = stack["services"]
    for centre in fed.centres:
        for name in (generator_service(centre.id), node_service(centre.id)):
            assert services[name]["deploy"]["placement"]["constraints"] == \
                [f"node.labels.fedjourney.centre-{centre.id} == true"]
    for name in ("researcher", "results"):
        assert services[name]["deploy"]["placement"]["constraints"] == MANAGER


def test_every_task_runs_once_and_is_never_restarted(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        deploy = service["deploy"]
        assert deploy["restart_policy"] == {"condition": "none"}, name
        assert (deploy["mode"], deploy["replicas"]) == ("replicated", 1), name


def test_no_key_swarm_ignores_or_rejects(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        assert not NOT_IN_SWARM & set(service), name
        # Without a networks key a service would join the stack's default, routed network.
        assert service["networks"], name


def test_networks_keep_centres_apart(stack: dict[str, Any], fed: Federation) -> None:
    for name, network in stack["networks"].items():
        assert network == {"driver": "overlay", "driver_opts": {"encrypted": "true"},
                           "internal": True, "attachable": False}, name
    members = _members(stack)
    for centre in fed.centres:
        assert members[f"centre-{centre.id}"] == {node_service(centre.id), "researcher"}
    services = stack["services"]
    nodes = [n for n in services if n.startswith("node-")]
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            assert not set(services[a]["networks"]) & set(services[b]["networks"]), (a, b)
    # A generator, and the collector, are alone on their own network.
    for name in [generator_service(x.id) for x in fed.centres] + ["results"]:
        assert len(services[name]["networks"]) == 1
        assert members[services[name]["networks"][0]] == {name}
    assert set(services["researcher"]["networks"]) == {f"centre-{x.id}" for x in fed.centres}


def test_role_views_are_configs_at_the_compose_files_path(
        stack: dict[str, Any], config: Path, fed: Federation) -> None:
    viewers = {name.removesuffix(".yaml") for name in views.render(load_raw(config), fed)}
    for name, service in stack["services"].items():
        if name in viewers:
            assert service["configs"] == [{"source": f"{name}-view", "target": str(CONFIG)}]
            assert stack["configs"][f"{name}-view"] == {"file": f"./data/roles/{name}.yaml"}
        else:
            assert "configs" not in service
        assert not any(str(CONFIG) in str(v) for v in service["volumes"])  # no bind mount
    assert set(stack["configs"]) == {f"{name}-view" for name in viewers}


def test_the_same_services_as_the_compose_file(stack: dict[str, Any], fed: Federation) -> None:
    """Service set, images, commands, users, environment, mounts and volumes are the compose
    file's, so that the two renderers cannot drift apart."""
    composed = yaml.safe_load(compose.render(fed))
    # The notebook researcher is a Compose profile, with its own network and volume.
    del composed["services"]["notebook"], composed["volumes"]["notebook-work"]
    assert set(stack["services"]) == set(composed["services"])
    for name, want in composed["services"].items():
        got = stack["services"][name]
        for key in ("image", "command", "user", "hostname", "environment", "read_only",
                    "cap_drop", "cap_add", "logging"):
            assert got.get(key) == want.get(key), (name, key)
        tmpfs = [v["target"] for v in got["volumes"] if isinstance(v, dict)]
        assert tmpfs == want["tmpfs"] and all(v["type"] == "tmpfs" for v in got["volumes"]
                                              if isinstance(v, dict)), name
        mounts = [v for v in want["volumes"] if not v.endswith(f":{CONFIG}:ro")]
        assert [v for v in got["volumes"] if isinstance(v, str)] == mounts, name
        assert ("healthcheck" in want) == ("healthcheck" in got) or name == "results"
    assert stack["volumes"] == composed["volumes"]


def test_health_checks_do_not_stop_what_compose_only_reports(stack: dict[str, Any],
                                                              fed: Federation) -> None:
    composed = yaml.safe_load(compose.render(fed))
    services = stack["services"]
    assert services["researcher"]["healthcheck"] == composed["services"]["researcher"][
        "healthcheck"]
    assert services["results"]["healthcheck"] == {"disable": True}
    for centre in fed.centres:
        check = services[node_service(centre.id)]["healthcheck"]
        assert int(check.pop("start_period").removesuffix("s")) == \
            compose.HEALTH_START_S + fed.training.node_deadline_s
        want = dict(composed["services"][node_service(centre.id)]["healthcheck"])
        del want["start_period"]
        assert check == want


def test_the_collector_writes_to_the_managers_results(stack: dict[str, Any]) -> None:
    collector = stack["services"]["results"]
    assert f"./results:{HOST_RESULTS}" in collector["volumes"]
    assert "results:/results:ro" in collector["volumes"]
    assert collector["user"] == "0:0"


def test_an_imported_centre_mounts_its_folder_on_its_host(tmp_path: Path) -> None:
    fed, source = imported_centre(tmp_path)
    generator = yaml.safe_load(swarm.render(fed))["services"]["generator-1"]
    composed = yaml.safe_load(compose.render(fed))["services"]["generator-1"]
    assert f"{source}:/source:ro" in generator["volumes"]
    assert generator["command"] == composed["command"] and "/source" in generator["command"]


def test_a_scenarios_stack_file_sits_beside_its_compose_file() -> None:
    where = swarm.layout(STUDY_CONFIG)
    assert where == compose.Layout(ROOT / "data" / "study" / "docker-stack.yml",
                                   roles="./roles", results="../../results")
    assert swarm.layout(DEFAULT_CONFIG).path == Path("docker-stack.yml")
    assert swarm.layout(DEFAULT_CONFIG, Path("x/s.yml")).path == Path("x/s.yml")


def test_cli_writes_then_checks_the_stack_file(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "f.yaml")
    out = tmp_path / "deploy" / "stack.yml"
    assert main(["compose", "--config", str(config), "--swarm", "--write", str(out)]) == 0
    assert out.read_text() == swarm.render(load_federation(config))
    roles = out.parent / "data" / "roles"
    assert (roles / "researcher.yaml").is_file() and (roles / "node-0.yaml").is_file()
    assert not (out.parent / "docker-compose.yml").exists()
    assert main(["compose", "--config", str(config), "--swarm", "--check", str(out)]) == 0
    capsys.readouterr()

    out.write_text(out.read_text() + "# edited\n")
    assert main(["compose", "--config", str(config), "--swarm", "--check", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--swarm --write" in err

    assert main(["compose", "--config", str(config), "--swarm", "--write", str(out)]) == 0
    (roles / "node-1.yaml").write_text("edited: true\n")
    assert main(["compose", "--config", str(config), "--swarm", "--check", str(out)]) == 2
    assert str(roles / "node-1.yaml") in capsys.readouterr().err


def test_cli_prints_the_stack_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compose", "--config", str(DEFAULT_CONFIG), "--swarm"]) == 0
    assert capsys.readouterr().out == swarm.render(load_federation(DEFAULT_CONFIG))
    assert main(["compose", "--config", str(DEFAULT_CONFIG)]) == 0
    assert capsys.readouterr().out == compose.render(load_federation(DEFAULT_CONFIG))


@pytest.mark.parametrize("committed", [DEFAULT_CONFIG, STUDY_CONFIG, WAN_CONFIG],
                         ids=lambda p: p.name)
def test_the_committed_stack_files_match_their_config(committed: Path) -> None:
    stale = compose.stale(load_federation(committed), load_raw(committed),
                          swarm.layout(committed), swarm.render)
    assert stale == [], f"{stale} stale: run `fedjourney compose --swarm --write`"
