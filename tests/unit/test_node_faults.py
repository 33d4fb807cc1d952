"""The node's own schedule events (node/faults.py): which apply to a request, the restart's
marker (once per run and round), the slow reply's hold, and a real exit's status."""

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
from fedjourney.node.faults import Faults, Slow, hold_s, mark, marker, scheduled_round
from fedjourney.schedule import Event
from fedjourney.story import Story

SCHEDULE = (Event("slow", 2, 3, 3.0), Event("restart", 4, 4), Event("down", 5, 6))
STORY = Story(logging.getLogger("test-node-faults"), {"run": None, "round": None})


class Exits:
    """Stands for the process's exit: counts the restarts instead."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


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
