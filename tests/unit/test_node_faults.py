"""The node's own schedule events (node/faults.py): which apply to a request, the restart's
marker (once per run and round), the slow reply's hold, and a real exit's status; and the
events by time, on a fake clock from the request's run_started."""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fedjourney.exits import Exit
from fedjourney.node.faults import Faults, Slow, hold_s, labelled, mark, marker, scheduled_round
from fedjourney.schedule import Event
from fedjourney.story import Story

SCHEDULE = (Event("slow", 2, 3, 3.0), Event("restart", 4, 4), Event("down", 5, 6))
STORY = Story(logging.getLogger("test-node-faults"), {"run": None, "round": None})


class Exits:
    """Stands for the process's exit: counts the restarts instead (and says so: `done`)."""

    def __init__(self) -> None:
        self.count = 0
        self.done = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.done.set()


def _faults(tmp_path: Path, exits: Exits | None = None,
            stopping: threading.Event | None = None) -> Faults:
    return Faults(SCHEDULE, STORY, stopping or threading.Event(), tmp_path / "schedule",
                  exits or Exits())


def _request(faults: Faults, scheduled: int, run: str | None = "run-1",
             training: bool = True) -> Slow | None:
    """A request for the schedule's round `scheduled`, as Fed-BioMed numbers it (from 0)."""
    return faults.arrived(scheduled - 1, {"run_id": run}, training)


def test_a_request_names_fedbiomeds_round_from_0_and_the_schedule_counts_from_1() -> None:
    assert scheduled_round(0) == 1 and scheduled_round(3) == 4
    assert scheduled_round(None) is None and scheduled_round("3") is None
    assert scheduled_round(True) is None and scheduled_round(-1) is None


def test_only_a_slow_rounds_training_requests_are_slow(tmp_path: Path) -> None:
    faults = _faults(tmp_path)
    slow = _request(faults, 2)
    assert slow is not None and slow.event == SCHEDULE[0]
    assert _request(faults, 3) is not None
    assert [_request(faults, r) for r in (1, 5, 6, 7)] == [None] * 4
    assert _request(faults, 2, training=False) is None  # validation only
    assert faults.arrived("2", {"run_id": "run-1"}, True) is None  # not a round number


def test_a_restart_exits_once_per_run_and_round(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    exits = Exits()
    faults = _faults(tmp_path, exits)
    assert _request(faults, 3) is not None and exits.count == 0
    assert _request(faults, 4, training=False) is None and exits.count == 0
    _request(faults, 4)
    assert exits.count == 1
    assert marker(tmp_path / "schedule", "run-1", 4).is_file()
    assert "restarting: restart in round 4, its schedule" in caplog.messages
    # Fed-BioMed resends the pending request to the restarted node: it trains it.
    again = _faults(tmp_path, exits)
    assert _request(again, 4) is None and exits.count == 1
    assert "restart in round 4, its schedule: already restarted for it; training as normal" \
        in caplog.messages
    assert not (tmp_path / "schedule" / "exiting-to-restart").exists()
    # Another run in the same container life: the engine's one restart (on-failure:1) is
    # used, so the node says so and trains rather than exit for good.
    _request(again, 4, run="run-2")
    assert exits.count == 1
    assert any("not carried out, this container used its 1 engine restart(s)" in m
               for m in caplog.messages), caplog.messages
    # A fresh start (`docker compose up` again: no flag) renews it: another run restarts
    # again, once; so does a request without a run id, after the next fresh start.
    fresh = _faults(tmp_path, exits)
    _request(fresh, 4, run="run-3")
    _request(_faults(tmp_path, exits), 4, run="run-3")  # the engine's restart: back
    assert exits.count == 2
    _request(_faults(_fresh(tmp_path), exits), 4, run=None)
    assert exits.count == 3 and marker(tmp_path / "schedule", None, 4).is_file()
    assert sorted(p.name for p in (tmp_path / "schedule").iterdir()) == [
        "exiting-to-restart", "restarted-no-run-4", "restarted-run-1-4", "restarted-run-3-4",
        "restarts-used"]


def _fresh(tmp_path: Path) -> Path:
    """The state folder as a fresh start finds it: no flag from an exit to restart."""
    (tmp_path / "schedule" / "exiting-to-restart").unlink(missing_ok=True)
    return tmp_path


def test_a_restart_whose_marker_cannot_be_written_is_not_carried_out(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Else the restarted node would restart again on the resent request, and again."""
    caplog.set_level(logging.INFO)
    (tmp_path / "schedule").write_text("not a folder")
    exits = Exits()
    _request(_faults(tmp_path, exits), 4)
    assert exits.count == 0
    assert any(m.startswith("restart in round 4, its schedule: not carried out")
               for m in caplog.messages), caplog.messages


def test_the_marker_is_written_whole_leaving_no_temporary_file(tmp_path: Path) -> None:
    path = marker(tmp_path / "deep" / "schedule", "run-1", 2)
    mark(path)
    mark(path)  # again: replaced in place
    assert [p.name for p in path.parent.iterdir()] == ["restarted-run-1-2"]
    assert path.read_text().endswith("Z\n")


def test_a_slow_node_holds_its_reply_for_factor_less_one_times_its_training() -> None:
    assert hold_s(3.0, 0.8) == pytest.approx(1.6)
    assert hold_s(1.5, 2.0) == pytest.approx(1.0)
    assert hold_s(1.0, 5.0) == 0.0 and hold_s(None, 5.0) == 0.0


class Round:
    """Fed-BioMed's Round, as far as the task manager uses it."""

    def __init__(self, train_s: float, success: bool = True) -> None:
        self.train_s = train_s
        self.success = success
        self.calls: list[tuple[Any, ...]] = []

    def run_model_training(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        time.sleep(self.train_s)
        return self  # stands for the reply: has `success`


def test_a_slow_rounds_reply_is_held(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                     ) -> None:
    caplog.set_level(logging.INFO)
    slow = _request(_faults(tmp_path), 2)
    assert slow is not None
    round_ = Round(0.2)
    assert slow.wrap(round_) is round_
    began = time.monotonic()
    reply = round_.run_model_training(True, secagg_arguments=None)
    took = time.monotonic() - began
    assert reply is round_ and round_.calls == [((True,), {"secagg_arguments": None})]
    assert 0.6 <= took < 1.5  # 0.2 s of training, 0.4 s more held (x3)
    [line] = [m for m in caplog.messages if m.startswith("slow (x3) in rounds 2-3")]
    assert line == "slow (x3) in rounds 2-3, its schedule: trained in 0.2 s, reply held 0.4 s more"
    [record] = [r for r in caplog.records if r.getMessage() == line]
    assert (getattr(record, "run", None), getattr(record, "round", None)) == ("run-1", 2)


def test_a_held_reply_is_sent_at_once_when_the_node_stops(tmp_path: Path) -> None:
    stopping = threading.Event()
    slow = Slow(Event("slow", 1, 1, 100.0), STORY, stopping)
    round_ = slow.wrap(Round(0.1, success=False))
    threading.Timer(0.3, stopping.set).start()
    began = time.monotonic()
    round_.run_model_training()
    assert time.monotonic() - began < 2.0  # not the 9.9 s hold


def test_a_request_without_a_round_to_train_is_left_alone() -> None:
    slow = Slow(Event("slow", 1, 1, 3.0), STORY, threading.Event())
    assert slow.wrap(None) is None  # Fed-BioMed refused it (and already said why)


def test_a_restart_ends_the_process_with_restarting_and_its_story_told(tmp_path: Path
                                                                      ) -> None:
    """The real exit: status 75 at once, the story flushed, nothing after it run."""
    script = f"""
import threading
from pathlib import Path
from fedjourney.node.faults import Faults
from fedjourney.schedule import Event
from fedjourney.story import setup
story = setup("node-1 test", None)
faults = Faults([Event("restart", 2, 2)], story, threading.Event(), Path({str(tmp_path)!r}))
faults.arrived(1, {{"run_id": "run-9"}}, True)
print("not reached")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == Exit.RESTARTING, done.stderr
    assert "run=run-9 round=2 | restarting: restart in round 2, its schedule" in done.stdout
    assert "not reached" not in done.stdout
    assert (tmp_path / "restarted-run-9-2").is_file()


class Message:
    """Fed-BioMed's TrainRequest, as far as the node's parser reads it."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def get_param(self, name: str) -> Any:
        return self.params.get(name)


def test_the_running_node_carries_out_its_schedule_on_fedbiomeds_rounds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RunningNode's parser (node/component.py) on a stand-in for Fed-BioMed's Node: the
    restart exits before Fed-BioMed builds the round; a slow round's Round is wrapped."""
    import types

    from fedjourney.node import component, faults

    built: list[int] = []

    class Node:
        def __init__(self, *args: Any) -> None:
            pass

        def parser_task_train(self, msg: Any) -> Any:
            built.append(msg.get_param("round"))
            return Round(0.0)

    fake = {"fedbiomed": types.ModuleType("fedbiomed"),
            "fedbiomed.common": types.ModuleType("fedbiomed.common"),
            "fedbiomed.common.constants": types.ModuleType("fedbiomed.common.constants"),
            "fedbiomed.node": types.ModuleType("fedbiomed.node"),
            "fedbiomed.node.node": types.ModuleType("fedbiomed.node.node")}
    fake["fedbiomed.common.constants"].ErrorNumbers = None  # type: ignore[attr-defined]
    fake["fedbiomed.node.node"].Node = Node  # type: ignore[attr-defined]
    for name, module in fake.items():
        monkeypatch.setitem(sys.modules, name, module)
    exited: list[list[int]] = []  # the rounds Fed-BioMed had built at each exit
    monkeypatch.setattr(component, "Faults", functools.partial(
        faults.Faults, folder=tmp_path, exit_=lambda: exited.append(list(built))))
    running = component.RunningNode(None, STORY, schedule=SCHEDULE)
    try:
        parse = running.node.parser_task_train
        args = {"model_args": {"run_id": "run-1"}, "training": True}
        as_is = parse(Message(round=0, **args))  # round 1: as Fed-BioMed built it
        assert isinstance(as_is, Round) and "run_model_training" not in vars(as_is)
        slowed = parse(Message(round=1, **args))  # round 2: slow
        assert "run_model_training" in vars(slowed)
        assert "run_model_training" not in vars(parse(Message(round=1, model_args={},
                                                              training=False)))
        assert not exited
        parse(Message(round=3, **args))  # round 4: restart
        assert exited == [[0, 1, 1]] and (tmp_path / "restarted-run-1-4").is_file()
    finally:
        logging.getLogger("fedbiomed").removeHandler(running._watch)


# By time: the run began at STARTED (the researcher's run_started); the fake clock says when
# a request arrives.
STARTED = 1_700_000_000.0
BY_TIME = (Event("slow", 10, 50, 3.0, by_time=True), Event("restart", 40, 40, by_time=True),
           Event("down", 60, 90, by_time=True))


class Clock:
    """A fake clock: the run's second `second`."""

    def __init__(self, second: float = 0.0) -> None:
        self.second = second

    def __call__(self) -> float:
        return STARTED + self.second


def _timed(tmp_path: Path, schedule: tuple[Event, ...], clock: Clock,
           exits: Exits | None = None, stopping: threading.Event | None = None) -> Faults:
    return Faults(schedule, STORY, stopping or threading.Event(), tmp_path / "schedule",
                  exits or Exits(), clock=clock)


def _at(faults: Faults, scheduled: int = 1, run: str | None = "run-1",
        started: object = STARTED) -> Slow | None:
    """A training request of the schedule's round `scheduled`, with run_started."""
    return faults.arrived(scheduled - 1, {"run_id": run, "run_started": started}, True)


def _settled(faults: Faults) -> None:
    """Wait for every timer armed so far to have fired (or been let be)."""
    for timer in faults.timers:
        timer.join(5)
        assert not timer.is_alive()


def test_a_restart_by_time_has_its_own_marker_never_a_rounds(tmp_path: Path) -> None:
    event = Event("restart", 40, 40, by_time=True)
    assert marker(tmp_path, "run-1", labelled(event)).name == "restarted-run-1-s40"
    assert marker(tmp_path, "run-1", 40).name == "restarted-run-1-40"
    assert marker(tmp_path, None, labelled(event)).name == "restarted-no-run-s40"


def test_a_slow_event_by_time_slows_a_request_arriving_within_its_seconds(tmp_path: Path
                                                                          ) -> None:
    slow = (BY_TIME[0],)
    clock = Clock()
    faults = _timed(tmp_path, slow, clock)
    for second, expected in [(5, None), (9.9, None), (10, slow[0]), (30, slow[0]),
                             (49.9, slow[0]), (50, None), (70, None)]:
        clock.second = second
        got = _at(faults, scheduled=1 + int(second) // 10)
        assert (None if got is None else got.event) == expected, second
    clock.second = 30
    assert _at(faults, scheduled=1, started=STARTED - 100) is None  # the run's second 130
    assert faults.arrived(0, {"run_id": "run-1", "run_started": STARTED}, False) is None
    assert not faults.timers


def test_a_slow_round_wins_over_a_slow_event_by_time(tmp_path: Path) -> None:
    """The config refuses both clocks in one kind; the node would take the round's."""
    by_round = Event("slow", 2, 2, 5.0)
    faults = _timed(tmp_path, (BY_TIME[0], by_round), Clock(20))
    got, other = _at(faults, scheduled=2), _at(faults, scheduled=3)
    assert got is not None and got.event == by_round
    assert other is not None and other.event == BY_TIME[0]


def test_a_restart_by_time_whose_second_has_passed_fires_at_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    exits = Exits()
    faults = _timed(tmp_path, BY_TIME, Clock(45), exits)
    _at(faults, scheduled=3)
    assert exits.done.wait(5) and exits.count == 1
    assert faults.timers[0].interval == 0
    assert marker(tmp_path / "schedule", "run-1", "s40").is_file()
    assert (tmp_path / "schedule" / "exiting-to-restart").is_file()
    assert (tmp_path / "schedule" / "restarts-used").read_text() == "1\n"
    [record] = [r for r in caplog.records
                if r.getMessage() == "restarting: restart at 40 s, its schedule"]
    assert (getattr(record, "run", None), getattr(record, "round", None)) == ("run-1", None)


def test_a_restart_by_time_waits_for_its_second(tmp_path: Path) -> None:
    exits = Exits()
    faults = _timed(tmp_path, BY_TIME[1:], Clock(39.98), exits)
    _at(faults)
    [timer] = faults.timers
    assert timer.interval == pytest.approx(0.02, abs=1e-6)
    assert exits.done.wait(5) and exits.count == 1


def test_a_runs_restart_by_time_is_armed_once_and_another_runs_again(tmp_path: Path) -> None:
    exits = Exits()
    faults = _timed(tmp_path, BY_TIME, Clock(45), exits)
    _at(faults, scheduled=1)
    assert exits.done.wait(5)
    _settled(faults)
    marker(tmp_path / "schedule", "run-1", "s40").unlink()  # would restart again if armed
    _at(faults, scheduled=2)
    _at(faults, scheduled=3)
    _settled(faults)
    assert len(faults.timers) == 1 and exits.count == 1
    _at(faults, scheduled=1, run="run-2")  # another run: armed for it
    _settled(faults)
    assert len(faults.timers) == 2


def test_a_restart_by_time_already_done_for_the_run_is_not_armed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The restarted node: the run's next request finds the marker."""
    caplog.set_level(logging.INFO)
    mark(marker(tmp_path / "schedule", "run-1", "s40"))
    exits = Exits()
    faults = _timed(tmp_path, BY_TIME, Clock(45), exits)
    _at(faults, scheduled=3)
    _settled(faults)
    assert not faults.timers and exits.count == 0
    assert "restart at 40 s, its schedule: already restarted for it" in caplog.messages


def test_a_restart_by_time_beyond_the_engines_restarts_is_not_carried_out(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    folder = tmp_path / "schedule"
    folder.mkdir()
    (folder / "restarts-used").write_text("1\n")
    (folder / "exiting-to-restart").write_text("\n")  # back from the earlier run's restart
    exits = Exits()
    faults = _timed(tmp_path, BY_TIME, Clock(45), exits)
    assert faults.used == faults.budget == 1
    _at(faults, run="run-2")
    _settled(faults)
    assert len(faults.timers) == 1 and exits.count == 0
    assert not marker(folder, "run-2", "s40").exists()
    assert any(m.startswith("restart at 40 s, its schedule: not carried out, this container "
                            "used its 1 engine restart(s)") for m in caplog.messages), \
        caplog.messages


def test_the_restarts_budget_counts_events_of_both_clocks(tmp_path: Path) -> None:
    schedule = (Event("restart", 2, 2), Event("restart", 40, 40, by_time=True),
                Event("restart", 90, 90, by_time=True), Event("slow", 1, 1, 2.0))
    assert _timed(tmp_path, schedule, Clock()).budget == 3


def test_a_request_without_run_started_gets_the_events_by_round_only(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    exits = Exits()
    schedule = (BY_TIME[0], Event("restart", 40, 40, by_time=True), Event("restart", 4, 4))
    faults = _timed(tmp_path, schedule, Clock(45), exits)
    assert faults.arrived(0, {"run_id": "run-1"}, True) is None  # second 45: slow by time
    for started in ("2024-01-01", True, float("nan"), None):
        assert _at(faults, scheduled=2, started=started) is None
    warned = [m for m in caplog.messages if m.startswith("events by time")]
    assert warned == ["events by time not carried out: the request gave no run_started"]
    assert not faults.timers and exits.count == 0
    faults.arrived(3, {"run_id": "run-1"}, True)  # round 4: the restart by round
    assert exits.count == 1 and marker(tmp_path / "schedule", "run-1", 4).is_file()


def test_a_schedule_without_the_nodes_events_by_time_needs_no_run_started(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Links by time are the researcher's to cut: nothing for the node to say."""
    faults = _timed(tmp_path, (BY_TIME[2], Event("slow", 1, 1, 2.0)), Clock(45))
    assert faults.arrived(0, {"run_id": "run-1"}, True) is not None
    assert not [m for m in caplog.messages if m.startswith("events by time")]


def test_a_stopping_node_does_not_restart_by_time(tmp_path: Path) -> None:
    stopping = threading.Event()
    stopping.set()
    exits = Exits()
    faults = _timed(tmp_path, BY_TIME, Clock(45), exits, stopping)
    _at(faults)
    _settled(faults)
    assert len(faults.timers) == 1 and exits.count == 0
    assert not marker(tmp_path / "schedule", "run-1", "s40").exists()


def test_a_restart_by_time_ends_the_process_mid_training(tmp_path: Path) -> None:
    """The real exit, from the timer's thread, while the request's thread trains on."""
    script = f"""
import threading, time
from pathlib import Path
from fedjourney.node.faults import Faults
from fedjourney.schedule import Event
from fedjourney.story import setup
story = setup("node-1 test", None)
faults = Faults([Event("restart", 2, 2, by_time=True)], story, threading.Event(),
                Path({str(tmp_path)!r}))
faults.arrived(0, {{"run_id": "run-9", "run_started": time.time() - 1.9}}, True)
time.sleep(30)  # training
print("not reached")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == Exit.RESTARTING, done.stderr
    assert "run=run-9 round=- | restarting: restart at 2 s, its schedule" in done.stdout, \
        done.stdout
    assert "not reached" not in done.stdout
    assert (tmp_path / "restarted-run-9-s2").is_file()
