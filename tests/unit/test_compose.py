"""docker-compose.yml follows the federation config: one source of truth."""

from __future__ import annotations

from pathlib import Path

import yaml

from fedjourney.config import load_federation
from fedjourney.host.compose import render
from tests.conftest import DEFAULT_CONFIG, ROOT, write_config


def test_committed_compose_file_matches_the_config() -> None:
    committed = (ROOT / "docker-compose.yml").read_text()
    assert committed == render(load_federation(DEFAULT_CONFIG)), (
        "docker-compose.yml is stale: run `fedjourney compose --write`")


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
