"""docker-compose.yml follows the federation config: one source of truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from fedjourney.cli import main
from fedjourney.config import load_federation, load_raw
from fedjourney.contract import CONFIG
from fedjourney.host import compose
from fedjourney.host.compose import render
from fedjourney.policy import Policy
from tests.conftest import DEFAULT_CONFIG, ROOT, STUDY_CONFIG, WAN_CONFIG, write_config


@pytest.mark.parametrize("config", [DEFAULT_CONFIG, STUDY_CONFIG, WAN_CONFIG],
                         ids=lambda p: p.name)
def test_committed_compose_files_and_role_views_match_their_config(config: Path) -> None:
    where = compose.layout(config)
    stale = compose.stale(load_federation(config), load_raw(config), where)
    assert stale == [], f"{stale} stale: run `fedjourney compose --config {config} --write`"


def test_a_scenario_renders_into_its_own_folder_and_lands_in_the_same_results() -> None:
    where = compose.layout(STUDY_CONFIG)
    assert where.path == ROOT / "data" / "study" / "docker-compose.yml"
    assert (where.path.parent / where.results).resolve() == (ROOT / "results").resolve()
    rendered = yaml.safe_load(where.path.read_text())
    assert "../../results:/host-results" in rendered["services"]["results"]["volumes"]
    assert f"./roles/node-0.yaml:{CONFIG}:ro" in rendered["services"]["node-0"]["volumes"]


def test_each_role_sees_only_what_it_needs(tmp_path: Path) -> None:
    config = write_config(tmp_path / "f.yaml")
    fed = load_federation(config)
    compose.write(fed, load_raw(config), compose.Layout(tmp_path / "docker-compose.yml"))
    roles = tmp_path / "data" / "roles"
    researcher = load_federation(roles / "researcher.yaml")
    assert [c.name for c in researcher.centres] == [c.name for c in fed.centres]
    assert {(c.seed, c.population) for c in researcher.centres} == {(0, 0)}
    assert "seed" not in (roles / "researcher.yaml").read_text()
    assert researcher.feature_spec().fingerprint() == fed.feature_spec().fingerprint()
    for centre in fed.centres:
        node = load_federation(roles / f"node-{centre.id}.yaml")
        generator = load_federation(roles / f"generator-{centre.id}.yaml")
        assert node.centres == (centre,)
        # The generator's view draws the same centre, without the hospital's privacy stance.
        # Its approved plans are its node's too: the generator's view has the default ones.
        assert generator.centres == (dataclasses.replace(
            centre, secure_aggregation="allowed", metrics_under_secagg="withheld",
            approved_plans=generator.centres[0].approved_plans, policy=Policy()),)
        assert [p.name for p in generator.centres[0].approved_plans] == ["mlp"]
        for stance in ("metrics_under_secagg", "approved_plans", "policy"):
            assert stance not in (roles / f"generator-{centre.id}.yaml").read_text()
        assert node.training == fed.training and generator.features is None
        # The generator's view draws exactly the centre the full config draws.
        assert generator.centre_fingerprint(centre, "builtin", "v") == \
            fed.centre_fingerprint(centre, "builtin", "v")
    rendered = yaml.safe_load((tmp_path / "docker-compose.yml").read_text())
    for name, service in rendered["services"].items():
        config_mount = f":{CONFIG}:ro"
        mounts = [v for v in service["volumes"] if v.endswith(config_mount)]
        role = "researcher" if name == "notebook" else name  # the notebook is a researcher
        assert mounts in ([], [f"./data/roles/{role}.yaml{config_mount}"])


def test_an_invalid_config_renders_nothing(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "f.yaml", age_range="85-40")
    out = tmp_path / "docker-compose.yml"
    assert main(["compose", "--config", str(config), "--write", str(out)]) == 2
    assert "is inverted" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "data").exists()


def test_adding_a_centre_adds_its_generator_node_volumes_and_network(tmp_path: Path) -> None:
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg["centres"].append({"id": 7, "name": "Charite", "country": "de", "region": "Berlin",
                           "population": 40, "seed": 5, "age_range": "30-70"})
    path = tmp_path / "federation.yaml"
    path.write_text(yaml.safe_dump(cfg))
    compose = yaml.safe_load(render(load_federation(path)))
    assert {"generator-7", "node-7"} <= set(compose["services"])
    assert {"centre-7-data", "node-7-state"} <= set(compose["volumes"])
    assert compose["networks"]["centre-7"] == {"internal": True}
    assert "centre-7" in compose["services"]["researcher"]["networks"]


def test_isolation_is_in_the_file(tmp_path: Path) -> None:
    compose = yaml.safe_load(render(load_federation(write_config(tmp_path / "f.yaml"))))
    services = compose["services"]
    nodes = [name for name in services if name.startswith("node-")]
    assert len(nodes) == 3
    for name in nodes:
        node = services[name]
        cid = name.split("-")[1]
        data = [v for v in node["volumes"] if v.startswith("centre-")]
        assert data == [f"centre-{cid}-data:/data:ro"]  # only its own centre, read-only
        assert node["networks"] == [f"centre-{cid}"]  # shares a network with no other node
        assert node["read_only"] is True and node["cap_drop"] == ["ALL"]
        assert "user" not in node  # the image's non-root user (10001) applies
    researcher = services["researcher"]
    assert not any(v.startswith("centre-") for v in researcher["volumes"])
    for name in (n for n in services if n.startswith("generator-")):
        assert services[name]["network_mode"] == "none"
        assert len([v for v in services[name]["volumes"] if v.startswith("centre-")]) == 1


def test_the_images_health_file_is_the_contracts() -> None:
    from fedjourney.contract import HEALTH

    dockerfile = (ROOT / "images" / "base" / "Dockerfile").read_text()
    assert f"FEDJOURNEY_HEALTH_FILE={HEALTH}" in dockerfile


def test_results_service_is_the_only_root_container_and_has_no_network(tmp_path: Path
                                                                       ) -> None:
    compose = yaml.safe_load(render(load_federation(write_config(tmp_path / "f.yaml"))))
    services = compose["services"]
    rooted = {name for name, s in services.items() if "user" in s}
    assert rooted == {"results"}
    collector = services["results"]
    assert collector["network_mode"] == "none" and collector["cap_drop"] == ["ALL"]
    assert set(collector["cap_add"]) == {"CHOWN", "DAC_OVERRIDE", "FOWNER"}
    assert "results:/results:ro" in collector["volumes"]


def test_the_notebook_is_a_profile_published_on_loopback_only() -> None:
    from fedjourney.host import swarm

    fed = load_federation(DEFAULT_CONFIG)
    doc = yaml.safe_load(render(fed))
    notebook = doc["services"]["notebook"]
    assert notebook["profiles"] == ["notebook"]
    assert [s for s, body in doc["services"].items() if "profiles" in body] == ["notebook"]
    assert notebook["ports"] == ["127.0.0.1:${FEDJOURNEY_NOTEBOOK_PORT:-8888}:8888"]
    assert set(notebook["networks"]) == {"centre-0", "centre-1", "centre-2", "notebook-public"}
    assert all(n == {"aliases": ["researcher"]} for n in notebook["networks"].values())
    assert doc["networks"]["notebook-public"] == {}  # routed: its port is published
    assert notebook["cap_drop"] == ["ALL"] and notebook["read_only"] is True
    assert "user" not in notebook  # the image's non-root user
    assert "./notebooks:/home/fedjourney/notebooks:ro" in notebook["volumes"]
    assert "notebook" not in yaml.safe_load(swarm.render(fed))["services"]


def test_the_notebook_refuses_to_start_without_a_token(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from fedjourney.exits import Exit
    from fedjourney.researcher import notebook

    monkeypatch.delenv("FEDJOURNEY_NOTEBOOK_TOKEN", raising=False)
    assert notebook.main([]) == Exit.REFUSED
    err = capsys.readouterr().err
    assert "FEDJOURNEY_NOTEBOOK_TOKEN must be set" in err and len(err.splitlines()) == 1
    monkeypatch.setenv("FEDJOURNEY_NOTEBOOK_TOKEN", "short")
    assert notebook.main([]) == Exit.REFUSED


def test_the_researcher_has_four_times_a_nodes_cpu_share_under_compose_only() -> None:
    """Every role starts at once, CPU-bound: the researcher's larger share brings its server
    up while the nodes finish, so Fed-BioMed's fixed set-up wait costs nothing."""
    from fedjourney.host import swarm

    fed = load_federation(DEFAULT_CONFIG)
    services = yaml.safe_load(render(fed))["services"]
    assert services["researcher"]["cpu_shares"] == 4096
    assert [name for name, s in services.items() if "cpu_shares" in s] == ["researcher"]
    stack = yaml.safe_load(swarm.render(fed))["services"]
    assert not any("cpu_shares" in s for s in stack.values())  # no such setting in Swarm
