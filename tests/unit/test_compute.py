"""A centre's compute (`compute: {cpus, memory}`): validated in one line, rendered as the
engine's own limits on its node alone, in compose, Swarm and the hospital kit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fedjourney.config import Compute, parse_federation
from fedjourney.errors import FedjourneyError
from fedjourney.host import compose, kit, swarm
from fedjourney.host.views import views
from tests.conftest import DEFAULT_CONFIG


def _fed(compute: Any) -> Any:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["centres"][1]["compute"] = compute
    return raw, parse_federation(raw, DEFAULT_CONFIG)


def test_a_centres_compute_is_parsed_in_dockers_notation() -> None:
    _, fed = _fed({"cpus": 0.5, "memory": "1.5G"})
    assert fed.centres[1].compute == Compute(cpus=0.5, memory="1.5g")
    assert fed.centres[1].compute.memory_mib == 1536
    assert fed.centres[0].compute is None
    assert _fed({"cpus": 2})[1].centres[1].compute == Compute(cpus=2.0)


@pytest.mark.parametrize(("compute", "message"), [
    ("fast", "compute must be a mapping like"),
    ({}, "compute must be a mapping like"),
    ({"gpus": 1}, "unknown key 'gpus'"),
    ({"cpus": 0}, r"compute\.cpus must be a number in \(0, 1024\)"),
    ({"cpus": 0.001}, r"compute\.cpus must be at least 0\.01"),
    ({"cpus": "half"}, r"compute\.cpus must be a number"),
    ({"memory": "lots"}, r"compute\.memory must be an amount like 1g or 768m"),
    ({"memory": 1024}, r"compute\.memory must be an amount like 1g or 768m"),
    ({"memory": "256m"}, r"compute\.memory 256m is below what a node needs \(768m"),
])
def test_bad_compute_is_one_line_naming_the_setting(compute: Any, message: str) -> None:
    with pytest.raises(FedjourneyError, match=message) as caught:
        _fed(compute)
    assert "centres[1].compute" in str(caught.value) and "\n" not in str(caught.value)


def _services(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)["services"]  # type: ignore[no-any-return]


def test_compose_limits_the_node_of_that_centre_only() -> None:
    _, fed = _fed({"cpus": 0.5, "memory": "1g"})
    services = _services(compose.render(fed))
    assert services["node-1"]["cpus"] == 0.5 and services["node-1"]["mem_limit"] == "1g"
    others = [s for name, s in services.items() if name != "node-1"]
    assert not any("cpus" in s or "mem_limit" in s for s in others)
    assert services["node-1"]["cap_drop"] == ["ALL"]  # its posture is unchanged


def test_swarm_and_the_kit_give_the_same_limits() -> None:
    _, fed = _fed({"cpus": 0.25, "memory": "768m"})
    stack = _services(swarm.render(fed))
    assert stack["node-1"]["deploy"]["resources"] == {"limits": {"cpus": "0.25",
                                                                 "memory": "768m"}}
    assert "resources" not in stack["node-0"]["deploy"]
    site = _services(kit.site(fed, fed.centres[1]))
    assert site["node-1"]["cpus"] == 0.25 and site["node-1"]["mem_limit"] == "768m"


def test_compute_is_the_nodes_business_not_the_generators_nor_the_records() -> None:
    raw, fed = _fed({"cpus": 0.5})
    _, plain = _fed(None)
    seen = views(raw, fed)
    assert seen["node-1"]["centres"][0]["compute"] == {"cpus": 0.5}
    assert "compute" not in seen["generator-1"]["centres"][0]
    node = parse_federation(seen["node-1"], Path("node-1.yaml"))
    assert node.centres[0].compute == Compute(cpus=0.5)
    # The same records whatever machine the node gets.
    assert fed.centre_fingerprint(fed.centres[1], "builtin", "v") == \
        plain.centre_fingerprint(plain.centres[1], "builtin", "v")
