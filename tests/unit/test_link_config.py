"""A centre's network link (`link:`): validated in one line, rendered as a relay on the path
between its node and the researcher (link.py) in compose, Swarm and the hospital kit, the
node's posture unchanged and no container given a capability."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from fedjourney.config import parse_federation
from fedjourney.errors import FedjourneyError
from fedjourney.host import compose, kit, swarm
from fedjourney.link import Direction, Link
from tests.conftest import DEFAULT_CONFIG

SLOW = {"rate_mbit": 2, "latency_ms": 40, "jitter_ms": 10, "loss_pct": 1}


def _fed(link: Any) -> Any:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["centres"][1]["link"] = link
    return parse_federation(raw, DEFAULT_CONFIG)


def test_one_profile_serves_both_directions_or_each_its_own() -> None:
    both = Direction(rate_mbit=2.0, latency_ms=40.0, jitter_ms=10.0, loss_pct=1.0)
    assert _fed(SLOW).centres[1].link == Link(up=both, down=both)
    split = _fed({"up": {"rate_mbit": 1}, "down": {"rate_mbit": 20, "latency_ms": 5}})
    assert split.centres[1].link == Link(up=Direction(rate_mbit=1.0),
                                         down=Direction(rate_mbit=20.0, latency_ms=5.0))
    assert _fed({"latency_ms": 0}).centres[1].link is None  # perfect: no relay
    assert _fed(None).centres[0].link is None


@pytest.mark.parametrize(("link", "message"), [
    ("slow", "link must be a mapping like"),
    ({}, "link must be a mapping like"),
    ({"bandwidth": 3}, "unknown key 'bandwidth'"),
    ({"up": {"rate_mbit": 1}, "latency_ms": 3}, "unknown key 'latency_ms'"),
    ({"rate_mbit": -1}, r"link\.rate_mbit must be a number above 0 to 100000, got -1"),
    ({"rate_mbit": 0}, r"link\.rate_mbit must be a number above 0"),
    ({"loss_pct": 101}, r"link\.loss_pct must be a number from 0 to 100, got 101"),
    ({"latency_ms": "fast"}, r"link\.latency_ms must be a number from 0 to 60000"),
    ({"up": {"jitter_ms": 5}}, r"link\.up\.jitter_ms 5 is more than its latency_ms 0"),
    ({"down": "fast"}, r"link\.down must be a mapping like"),
])
def test_a_bad_link_is_one_line_naming_the_setting(link: Any, message: str) -> None:
    with pytest.raises(FedjourneyError, match=message) as caught:
        _fed(link)
    assert "centres[1].link" in str(caught.value) and "\n" not in str(caught.value)


def _services(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)["services"]  # type: ignore[no-any-return]


def test_compose_puts_a_relay_between_that_centres_node_and_the_researcher() -> None:
    fed = _fed(SLOW)
    doc = yaml.safe_load(compose.render(fed))
    services = doc["services"]
    relay = services["link-1"]
    # It answers as `researcher` where the node dials it, and dials the researcher by
    # another name on a network of their own.
    assert relay["networks"] == {"centre-1": {"aliases": ["researcher"]},
                                 "centre-1-link": {"aliases": ["researcher"]}}
    assert relay["command"][:7] == ["python3", "-m", "fedjourney.link", "--listen", "50051",
                                    "--connect", "researcher-upstream:50051"]
    spec = "rate_mbit=2,latency_ms=40,jitter_ms=10,loss_pct=1"
    assert relay["command"][7:11] == ["--up", spec, "--down", spec]
    # It leaves with the researcher as the node does, and `up node-1` starts it too.
    assert relay["command"][-2:] == ["--keep", "${FEDJOURNEY_KEEP:-0}"]
    assert services["node-1"]["depends_on"]["link-1"] == {"condition": "service_started"}
    assert "link-1" not in services["node-0"]["depends_on"]
    researcher = services["researcher"]["networks"]
    assert set(researcher) == {"centre-0", "centre-1-link", "centre-2"}
    assert researcher["centre-1-link"] == {"aliases": ["researcher-upstream"]}
    assert services["node-1"]["networks"] == ["centre-1"]
    assert doc["networks"]["centre-1-link"] == {"internal": True}
    # No capability anywhere; the node's posture is unchanged.
    for name in ("link-1", "node-1"):
        assert services[name]["cap_drop"] == ["ALL"] and "cap_add" not in services[name]
        assert services[name]["read_only"]
    # The other centres keep the engine's own network.
    assert "link-0" not in services and "link-2" not in services


def test_without_links_the_compose_file_is_as_before() -> None:
    text = compose.render(_fed(None))
    assert "link" not in text and "researcher-upstream" not in text


def test_swarm_renders_the_relay_with_its_alias() -> None:
    services = _services(swarm.render(_fed(SLOW)))
    assert services["link-1"]["networks"]["centre-1"] == {"aliases": ["researcher"]}
    assert services["link-1"]["deploy"]["placement"] == {
        "constraints": ["node.labels.fedjourney.centre-1 == true"]}
    assert "centre-1-link" in services["researcher"]["networks"]


def test_a_kit_site_with_a_link_dials_the_tunnel_through_its_relay() -> None:
    fed = _fed(SLOW)
    site = yaml.safe_load(kit.site(fed, fed.centres[1]))
    services = site["services"]
    port = "${FEDJOURNEY_RESEARCHER_PORT:-50051}"
    assert services["link-1"]["command"][3:7] == ["--listen", port, "--connect",
                                                 f"researcher-upstream:{port}"]
    assert services["tunnel"]["networks"]["centre-1-link"] == {
        "aliases": ["researcher-upstream"]}
    assert "centre-1" not in services["tunnel"]["networks"]
    assert services["node-1"]["networks"] == ["centre-1"]
    # A site without a link is as before.
    plain = yaml.safe_load(kit.site(fed, fed.centres[0]))["services"]
    assert "link-0" not in plain and "centre-0" in plain["tunnel"]["networks"]
