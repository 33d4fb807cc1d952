"""A centre's fault timetable (`schedule:`): parsed into schedule.Event, each bad input one
line naming the setting, checked against each experiment's rounds and min_nodes, and carried
by the researcher's view (which carries it out), not by the generator's or the records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fedjourney.config import Federation, parse_federation
from fedjourney.errors import FedjourneyError
from fedjourney.host.views import views
from fedjourney.schedule import Event, in_round
from tests.conftest import DEFAULT_CONFIG

TWO = [{"event": "down", "rounds": [3, 4]}, {"event": "down", "rounds": 6}]


def _raw(schedule: Any = None, centre: int = 1, **training: Any) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG.read_text())
    if schedule is not None:
        raw["centres"][centre]["schedule"] = schedule
    raw["training"].update(training)
    return raw


def _fed(schedule: Any = None, centre: int = 1, **training: Any) -> Federation:
    # min_nodes 2 of 3 lets one centre miss a round (the default needs every centre).
    return parse_federation(_raw(schedule, centre, **{"min_nodes": 2, **training}),
                            DEFAULT_CONFIG)


def _refused(raw: dict[str, Any], message: str, experiment: str | None = None) -> str:
    with pytest.raises(FedjourneyError, match=message) as caught:
        parse_federation(raw, DEFAULT_CONFIG).experiment(experiment)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(str(DEFAULT_CONFIG))
    return text


def test_a_round_or_a_range_of_rounds() -> None:
    fed = _fed(TWO)
    assert fed.centres[1].schedule == (Event("down", 3, 4), Event("down", 6, 6))
    assert fed.centres[0].schedule == () and fed.centres[2].schedule == ()
    assert _fed([]).centres[1].schedule == ()
    assert [e.describe() for e in fed.centres[1].schedule] == ["down in rounds 3-4",
                                                              "down in round 6"]
    assert [r for r in range(1, 11) if in_round(fed.centres[1].schedule, "down", r)] == [3, 4, 6]


def test_the_yaml_form_as_written() -> None:
    text = DEFAULT_CONFIG.read_text().replace(
        "    policy: {min_batch_size: 8, max_epochs: 100, dp: allowed, training_loss: epoch}\n",
        "    policy: {min_batch_size: 8, max_epochs: 100, dp: allowed, training_loss: epoch}\n"
        "    schedule: [{event: down, rounds: [3, 4]}, {event: down, rounds: 6}]\n", 1)
    assert "schedule:" in text
    raw = yaml.safe_load(text)
    raw["training"]["min_nodes"] = 2
    assert parse_federation(raw).centres[1].schedule == (Event("down", 3, 4),
                                                         Event("down", 6, 6))


@pytest.mark.parametrize(("schedule", "message"), [
    ({"event": "down", "rounds": 3}, r"schedule must be a list like \[\{event: down"),
    ("down", r"schedule must be a list like"),
    (["down"], r"schedule\[0\] must be a mapping like \{event: down, rounds: \[3, 4\]\}"),
    ([{"rounds": 3}], r"schedule\[0\] has no 'event'; add it, e.g. event: down"),
    ([{"event": "down"}], r"schedule\[0\] needs its rounds or its seconds, got neither; write "
     r"e\.g\. rounds: \[3, 4\] \(by round\) or seconds: \[30, 90\] \(by time\)"),
    ([{"event": "down", "rounds": 3, "seconds": [0, 9]}],
     r"schedule\[0\] needs its rounds or its seconds, got both"),
    ([{"event": "down", "seconds": 30}],
     r"schedule\[0\]\.seconds must be a window of whole seconds from the run's start like "
     r"\[30, 90\] \(0 to 604800\), got 30"),
    ([{"event": "down", "seconds": [-5, 30]}], r"schedule\[0\]\.seconds must be a window"),
    ([{"event": "down", "seconds": [0, 604801]}], r"schedule\[0\]\.seconds must be a window"),
    ([{"event": "down", "seconds": [2.5, 30]}], r"schedule\[0\]\.seconds must be a window"),
    ([{"event": "down", "seconds": [30, 30]}],
     r"schedule\[0\]\.seconds \[30, 30\] must end after it starts \(the end second is "
     r"excluded\); write e\.g\. \[30, 90\]"),
    ([{"event": "restart", "seconds": [30, 40]}],
     r"schedule\[0\]\.seconds must be the second of the run the node restarts at, like 40 "
     r"\(0 to 604800\), got \[30, 40\]"),
    ([{"event": "flaky", "seconds": [0, 9], "loss_pct": 20, "rounds": 3}],
     r"schedule\[0\] needs its rounds or its seconds, got both"),
    ([{"event": "slow", "seconds": [0, 60], "factor": 2},
      {"event": "slow", "seconds": [59, 90], "factor": 3}],
     r"schedule\[1\] \(slow \(x3\) from 59 s to 90 s\) overlaps its schedule\[0\] \(slow "
     r"\(x2\) from 0 s to 60 s\)"),
    ([{"event": "restart", "seconds": 40}, {"event": "restart", "seconds": 40}],
     r"schedule\[1\] \(restart at 40 s\) overlaps its schedule\[0\]"),
    ([{"event": "down", "rounds": 3}, {"event": "down", "seconds": [0, 60]}],
     r"schedule\[1\] \(down from 0 s to 60 s\) and its schedule\[0\] \(down in round 3\) "
     "time one kind by different clocks; give both rounds or both seconds"),
    ([{"event": "up", "rounds": 3}],
     r"schedule\[0\]\.event must be one of down, flaky, slow, restart \(the events a "
     r"schedule can hold\), got 'up'"),
    ([{"event": "down", "rounds": 3, "loss_pct": 5}],
     r"schedule\[0\]: unknown key 'loss_pct'; allowed keys: event, rounds"),
    ([{"event": "flaky", "rounds": 3}],
     r"schedule\[0\] \(flaky\) has no 'loss_pct'; add it, e.g. loss_pct: 20 \(percent"),
    ([{"event": "flaky", "rounds": 3, "loss_pct": 0}],
     r"schedule\[0\]\.loss_pct must be a number like loss_pct: 20 \(percent, above 0, at most "
     r"100\), got 0"),
    ([{"event": "flaky", "rounds": 3, "loss_pct": 101}], r"schedule\[0\]\.loss_pct must be"),
    ([{"event": "flaky", "rounds": 3, "loss_pct": True}], r"schedule\[0\]\.loss_pct must be"),
    ([{"event": "slow", "rounds": 3, "factor": 1}],
     r"schedule\[0\]\.factor must be a number like factor: 3 \(training takes 3 times as "
     r"long; above 1, at most 100\), got 1"),
    ([{"event": "slow", "rounds": 3, "factor": "3x"}], r"schedule\[0\]\.factor must be"),
    ([{"event": "slow", "rounds": 3, "loss_pct": 3}],
     r"schedule\[0\]: unknown key 'loss_pct'; allowed keys: event, factor, rounds"),
    ([{"event": "restart", "rounds": [3, 4]}],
     r"schedule\[0\] restarts the node in one round, got rounds \[3, 4\]; list one restart "
     "event per round"),
    ([{"event": "slow", "rounds": [2, 5], "factor": 2},
      {"event": "slow", "rounds": 4, "factor": 3}],
     r"schedule\[1\] \(slow \(x3\) in round 4\) overlaps its schedule\[0\] \(slow \(x2\) in "
     r"rounds 2-5\)"),
    ([{"event": "down", "rounds": 3, "why": "maintenance"}],
     r"schedule\[0\]: unknown key 'why'; allowed keys: event, rounds"),
    ([{"event": "down", "rounds": 0}],
     r"schedule\[0\]\.rounds must be a round like 3 or a range like \[3, 4\] \(rounds count "
     r"from 1, up to 1000\), got 0"),
    ([{"event": "down", "rounds": "3-4"}], r"schedule\[0\]\.rounds must be a round like 3 .* "
                                           r"got '3-4' \(text\)"),
    ([{"event": "down", "rounds": [3]}], r"schedule\[0\]\.rounds must be a round like 3"),
    ([{"event": "down", "rounds": [3, 4, 5]}], r"schedule\[0\]\.rounds must be a round"),
    ([{"event": "down", "rounds": [2, 2.5]}], r"schedule\[0\]\.rounds must be a round"),
    ([{"event": "down", "rounds": True}], r"schedule\[0\]\.rounds must be a round"),
    ([{"event": "down", "rounds": [4, 3]}],
     r"schedule\[0\]\.rounds \[4, 3\] ends before it starts; write \[3, 4\]"),
    ([{"event": "down", "rounds": [2, 5]}, {"event": "down", "rounds": 4}],
     r"schedule\[1\] \(down in round 4\) overlaps its schedule\[0\] \(down in rounds 2-5\); "
     "merge them into one event or move one"),
    ([{"event": "down", "rounds": 7}, {"event": "down", "rounds": [5, 7]}],
     r"schedule\[1\] \(down in rounds 5-7\) overlaps its schedule\[0\]"),
])
def test_a_bad_schedule_is_one_line_naming_the_setting(schedule: Any, message: str) -> None:
    text = _refused(_raw(schedule, min_nodes=2), message)
    assert "centres[1].schedule" in text


def test_flaky_slow_and_restart_carry_their_setting() -> None:
    schedule = [{"event": "flaky", "rounds": [2, 3], "loss_pct": 20},
                {"event": "slow", "rounds": [2, 5], "factor": 3},
                {"event": "restart", "rounds": 4}, {"event": "down", "rounds": 3}]
    fed = _fed(schedule)
    assert fed.centres[1].schedule == (Event("flaky", 2, 3, 20.0), Event("slow", 2, 5, 3.0),
                                       Event("restart", 4, 4), Event("down", 3, 3))
    assert [e.describe() for e in fed.centres[1].schedule] == [
        "flaky (loss 20%) in rounds 2-3", "slow (x3) in rounds 2-5", "restart in round 4",
        "down in round 3"]
    # Events of different kinds may share rounds; the config form round-trips.
    assert [e.as_config() for e in fed.centres[1].schedule] == [
        {"event": "flaky", "rounds": [2, 3], "loss_pct": 20.0},
        {"event": "slow", "rounds": [2, 5], "factor": 3.0},
        {"event": "restart", "rounds": [4, 4]}, {"event": "down", "rounds": [3, 3]}]


def test_events_by_time_carry_their_seconds() -> None:
    schedule = [{"event": "down", "seconds": [30, 90]}, {"event": "restart", "seconds": 200},
                {"event": "flaky", "seconds": [0, 60], "loss_pct": 20},
                {"event": "flaky", "seconds": [60, 61], "loss_pct": 50},
                {"event": "slow", "rounds": 2, "factor": 3}]
    events = _fed(schedule).centres[1].schedule
    assert events == (Event("down", 30, 90, None, True), Event("restart", 200, 200, None, True),
                      Event("flaky", 0, 60, 20.0, True), Event("flaky", 60, 61, 50.0, True),
                      Event("slow", 2, 2, 3.0))
    assert [e.describe() for e in events] == [
        "down from 30 s to 90 s", "restart at 200 s", "flaky (loss 20%) from 0 s to 60 s",
        "flaky (loss 50%) from 60 s to 61 s", "slow (x3) in round 2"]
    assert [e.as_config() for e in events][:2] == [{"event": "down", "seconds": [30, 90]},
                                                   {"event": "restart", "seconds": 200}]
    # By time, the window's end is excluded, and no round covers it.
    down = events[0]
    assert down.active_at(30) and down.active_at(89.9) and not down.active_at(90)
    assert not any(down.covers(r) for r in range(1, 11))
    assert down.overlaps(80, 95) and not down.overlaps(90, 95) and not down.overlaps(0, 29.9)
    assert events[1].overlaps(199, 200) and not events[1].overlaps(200.1, 300)
    # No round bounds a second: an event past the last round's likely end is accepted.
    assert _fed([{"event": "down", "seconds": [5000, 6000]}], rounds=2).centres[1].schedule


def test_events_by_time_count_against_min_nodes_with_every_round() -> None:
    # Every centre needed: a centre down at any second may miss a round.
    _refused(_raw([{"event": "down", "seconds": [30, 90]}]),
             r"second 30 of the run has centre 'CHU de Lyon' down \(schedule\), leaving 2 of "
             r"3, but training\.min_nodes is unset")
    # A restart by time is away for node_deadline_s (the researcher's wait for a node).
    raw = _raw([{"event": "restart", "seconds": 100}], min_nodes=2, node_deadline_s=60)
    raw["centres"][2]["schedule"] = [{"event": "down", "seconds": [159, 300]}]
    _refused(raw, r"second 159 of the run has centres 'CHU de Lyon', 'University College "
             r"London Hospital' down \(schedule\), leaving 1 of 3, but training\.min_nodes is "
             "2")
    raw["centres"][2]["schedule"] = [{"event": "down", "seconds": [160, 300]}]
    assert parse_federation(raw, DEFAULT_CONFIG).centres[2].schedule
    # Which round runs at which second is unknown: a centre down by time meets every round's.
    raw["centres"][2]["schedule"] = [{"event": "down", "rounds": 7}]
    _refused(raw, r"round 7, should it run at second 100, has centres 'CHU de Lyon', "
             r"'University College London Hospital' down \(schedule\), leaving 1 of 3")
    raw["centres"][2]["schedule"] = [{"event": "slow", "seconds": [0, 900], "factor": 5}]
    assert parse_federation(raw, DEFAULT_CONFIG).centres[2].schedule
    raw = _raw([{"event": "down", "seconds": [10, 20]}], min_nodes=2)
    raw["experiments"]["secagg"] = {"secagg": "lom", "min_nodes": 3}
    _refused(raw, r"experiments\.secagg uses secagg lom, which needs every centre in every "
             r"round, but second 10 of the run has centre 'CHU de Lyon' down \(schedule\)",
             "secagg")


def test_a_restart_counts_against_min_nodes_flaky_and_slow_do_not() -> None:
    # Every centre needed (min_nodes unset): a restarting node may miss its round.
    _refused(_raw([{"event": "restart", "rounds": 3}]),
             r"round 3 has centre 'CHU de Lyon' down \(schedule\), leaving 2 of 3")
    slowed = parse_federation(_raw([{"event": "slow", "rounds": 3, "factor": 4},
                                    {"event": "flaky", "rounds": 3, "loss_pct": 50}]),
                              DEFAULT_CONFIG)
    assert len(slowed.centres[1].schedule) == 2


def test_back_to_back_events_do_not_overlap() -> None:
    schedule = [{"event": "down", "rounds": [5, 6]}, {"event": "down", "rounds": [2, 4]}]
    assert _fed(schedule).centres[1].schedule == (Event("down", 5, 6), Event("down", 2, 4))


def test_an_event_past_the_last_round_is_refused() -> None:
    text = _refused(_raw([{"event": "down", "rounds": [4, 6]}], min_nodes=2, rounds=5),
                    r"centres\[1\]\.schedule\[0\] is down in rounds 4-6 but training\.rounds "
                    "is 5; end it by round 5 or raise rounds")
    assert text == (f"{DEFAULT_CONFIG}: centres[1].schedule[0] is down in rounds 4-6 but "
                    "training.rounds is 5; end it by round 5 or raise rounds")


def test_a_round_needs_min_nodes_centres_up() -> None:
    # min_nodes unset: every centre is needed, so no centre can miss a round.
    _refused(_raw([{"event": "down", "rounds": 3}]),
             r"round 3 has centre 'CHU de Lyon' down \(schedule\), leaving 2 of 3, but "
             r"training\.min_nodes is unset \(every centre\); set training\.min_nodes to at "
             "most 2 or move the event")
    raw = _raw([{"event": "down", "rounds": [3, 4]}], min_nodes=2)
    raw["centres"][2]["schedule"] = [{"event": "down", "rounds": [4, 5]}]
    _refused(raw, r"round 4 has centres 'CHU de Lyon', 'University College London Hospital' "
             r"down \(schedule\), leaving 1 of 3, but training\.min_nodes is 2; set "
             r"training\.min_nodes to at most 1 or move the event")
    raw["training"]["min_nodes"] = 1
    assert parse_federation(raw, DEFAULT_CONFIG).centres[2].schedule == (Event("down", 4, 5),)
    for c in raw["centres"]:
        c["schedule"] = [{"event": "down", "rounds": 4}]
    _refused(raw, r"round 4 has every centre down \(schedule\) and a round needs at least "
             "one; move an event")


def test_each_named_experiment_is_checked_with_its_own_rounds_when_chosen() -> None:
    raw = _raw([{"event": "down", "rounds": [3, 4]}], min_nodes=2)
    raw["experiments"]["fast"] = {"rounds": 3}
    fed = parse_federation(raw, DEFAULT_CONFIG)  # training's 10 rounds hold the event
    assert fed.experiment("fedprox").rounds == 10
    _refused(raw, r"centres\[1\]\.schedule\[0\] is down in rounds 3-4 but "
             r"experiments\.fast\.rounds is 3; end it by round 3 or raise rounds", "fast")
    raw["experiments"]["all"] = {"min_nodes": 3}
    _refused(raw, r"round 3 has centre 'CHU de Lyon' down \(schedule\), leaving 2 of 3, but "
             r"experiments\.all\.min_nodes is 3; set experiments\.all\.min_nodes to at most 2",
             "all")


def test_an_experiment_that_needs_every_centre_refuses_a_centre_down() -> None:
    raw = _raw([{"event": "down", "rounds": 2}], min_nodes=2)
    raw["experiments"]["secagg"] = {"secagg": "lom", "min_nodes": 3}
    _refused(raw, r"experiments\.secagg uses secagg lom, which needs every centre in every "
             r"round, but round 2 has centre 'CHU de Lyon' down \(schedule\); remove the event "
             "or choose an experiment without secagg lom", "secagg")


def test_the_researcher_carries_it_out_the_generator_never_sees_it() -> None:
    raw = _raw(TWO, min_nodes=2)
    fed = parse_federation(raw, DEFAULT_CONFIG)
    plain = parse_federation(_raw(min_nodes=2), DEFAULT_CONFIG)
    seen = views(raw, fed)
    assert "schedule" not in seen["generator-1"]["centres"][0]
    assert seen["node-1"]["centres"][0]["schedule"] == TWO
    assert seen["researcher"]["centres"][1]["schedule"] == [
        {"event": "down", "rounds": [3, 4]}, {"event": "down", "rounds": [6, 6]}]
    assert "schedule" not in seen["researcher"]["centres"][0]
    researcher = parse_federation(seen["researcher"], Path("researcher.yaml"))
    assert researcher.centres[1].schedule == fed.centres[1].schedule
    # Its federation-wide checks run in the researcher's view too.
    seen["researcher"]["training"]["rounds"] = 5
    with pytest.raises(FedjourneyError, match=r"researcher\.yaml: centres\[1\]\.schedule\[1\] "
                       r"is down in round 6 but training\.rounds is 5"):
        parse_federation(seen["researcher"], Path("researcher.yaml"))
    # A node's view holds one centre: nothing federation-wide is checked there.
    node = parse_federation(seen["node-1"], Path("node-1.yaml"))
    assert node.centres[0].schedule == fed.centres[1].schedule
    # The same records whatever the timetable.
    assert fed.centre_fingerprint(fed.centres[1], "builtin", "v") == \
        plain.centre_fingerprint(plain.centres[1], "builtin", "v")


def test_the_deployment_gives_each_event_what_carries_it_out() -> None:
    from fedjourney.host import compose, swarm

    def rendered(schedule: list[dict[str, Any]], render: Any = compose.render) -> Any:
        return yaml.safe_load(render(_fed(schedule)))["services"]

    # down and flaky: a relay that takes the researcher's commands on its control port.
    for event in ({"event": "down", "rounds": 3}, {"event": "flaky", "rounds": 3,
                                                   "loss_pct": 20}):
        services = rendered([event])
        assert services["link-1"]["command"][-2:] == ["--control", "50052"], event
        assert services["node-1"]["restart"] == "no"
    # slow and restart: the node's own; no relay. A restart: the engine may restart it once
    # per scheduled restart (so a node that cannot start does not restart for ever).
    services = rendered([{"event": "slow", "rounds": 3, "factor": 2},
                         {"event": "restart", "rounds": 2}, {"event": "restart", "rounds": 5}])
    assert "link-1" not in services and services["node-1"]["restart"] == "on-failure:2"
    assert services["node-0"]["restart"] == "no" and services["researcher"]["restart"] == "no"
    stack = rendered([{"event": "restart", "rounds": 2}], swarm.render)
    assert stack["node-1"]["deploy"]["restart_policy"] == {"condition": "on-failure",
                                                           "max_attempts": 1}
    assert stack["node-0"]["deploy"]["restart_policy"] == {"condition": "none"}
