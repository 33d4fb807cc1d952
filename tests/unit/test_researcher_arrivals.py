"""How the researcher learns that a node connected (researcher/arrivals.py) and how it waits
for its federation's nodes with it (researcher/run.py wait_for_nodes): pure logic, against a
fake of Fed-BioMed's `requests` whose nodes "connect" from threads that log Fed-BioMed's
debug record "Node: <id> polling for the tasks" on the "fedbiomed" logger, as its gRPC
server does when a node opens a task request."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from fedjourney import contract
from fedjourney.config import Federation, load_federation
from fedjourney.researcher import run
from fedjourney.researcher.arrivals import Arrivals
from fedjourney.story import Story
from tests.conftest import DEFAULT_CONFIG, StoryLines

FEDBIOMED = logging.getLogger("fedbiomed")
NODES = {0: "NODE_a", 1: "NODE_b", 2: "NODE_c"}  # centre id -> Fed-BioMed node id
LIMIT_S = 10.0  # no call here may take longer: a broken implementation fails, not hangs


def _came(node_id: str) -> None:
    """What Fed-BioMed's server logs when a node opens a task request."""
    FEDBIOMED.debug(f"Node: {node_id} polling for the tasks")


@pytest.fixture(autouse=True)
def fedbiomed_logger() -> Iterator[logging.Logger]:
    """The "fedbiomed" logger as Fed-BioMed leaves it (WARNING, no propagation), then back
    as it was."""
    level, handlers, propagate = FEDBIOMED.level, list(FEDBIOMED.handlers), FEDBIOMED.propagate
    FEDBIOMED.setLevel(logging.WARNING)
    FEDBIOMED.propagate = False
    yield FEDBIOMED
    for handler in list(FEDBIOMED.handlers):
        FEDBIOMED.removeHandler(handler)
    for handler in handlers:
        FEDBIOMED.addHandler(handler)
    FEDBIOMED.setLevel(level)
    FEDBIOMED.propagate = propagate


class _Later:
    """Things done from daemon threads after a delay from now (joined at the end)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.threads: list[threading.Thread] = []

    def at(self, seconds: float, action: Callable[[], None]) -> None:
        def act() -> None:
            time.sleep(max(0.0, self.start + seconds - time.monotonic()))
            action()

        thread = threading.Thread(target=act, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(LIMIT_S)
            assert not thread.is_alive()


# ---- Arrivals ----------------------------------------------------------------------------
def test_arrivals_collects_the_node_of_each_task_request_and_nothing_else() -> None:
    with Arrivals() as arrivals:
        _came("NODE_a")
        FEDBIOMED.debug("Node: %s polling for the tasks", "NODE_b")  # formatted late
        FEDBIOMED.debug("Request: ping sent to NODE_c")
        FEDBIOMED.info("Node: NODE_d is training")
        FEDBIOMED.debug("polling for the tasks")  # no node named
        assert arrivals.wait(0.0) == {"NODE_a", "NODE_b"}
        assert arrivals.wait(0.0) == set()  # each once
        _came("NODE_a")  # asking for tasks again: there again, once
        _came("NODE_a")
        assert arrivals.wait(0.0) == {"NODE_a"}
    _came("NODE_c")  # closed: no longer listening
    assert arrivals.wait(0.0) == set()


def test_arrivals_wait_returns_as_a_node_comes_else_empty_after_its_timeout() -> None:
    later = _Later()
    with Arrivals() as arrivals:
        later.at(0.2, lambda: _came("NODE_a"))
        start = time.monotonic()
        assert arrivals.wait(3.0) == {"NODE_a"}
        took = time.monotonic() - start
        assert 0.15 <= took < 0.6, took
        later.join()

        start = time.monotonic()
        assert arrivals.wait(0.3) == set()
        took = time.monotonic() - start
        assert 0.28 <= took < 1.0, took
        assert arrivals.wait(-1.0) == set()  # a past deadline: at once


def test_arrivals_wait_keeps_a_node_that_came_between_two_waits() -> None:
    with Arrivals() as arrivals:
        _came("NODE_a")
        start = time.monotonic()
        assert arrivals.wait(3.0) == {"NODE_a"}
        assert time.monotonic() - start < 0.1


@pytest.mark.parametrize("before", [logging.WARNING, logging.NOTSET])
def test_arrivals_restores_the_logger_on_exit_even_when_its_body_raises(before: int) -> None:
    FEDBIOMED.setLevel(before)
    own = logging.StreamHandler(io.StringIO())
    FEDBIOMED.addHandler(own)
    with Arrivals() as arrivals:
        assert FEDBIOMED.level == logging.DEBUG
        assert FEDBIOMED.handlers == [own, arrivals]
    assert FEDBIOMED.level == before
    assert FEDBIOMED.handlers == [own]

    with pytest.raises(RuntimeError, match="boom"), Arrivals() as arrivals:
        assert arrivals in FEDBIOMED.handlers
        raise RuntimeError("boom")
    assert FEDBIOMED.level == before
    assert FEDBIOMED.handlers == [own]


def test_fedbiomed_handlers_do_not_show_the_debug_record_while_arrivals_listens() -> None:
    console, file = io.StringIO(), io.StringIO()
    for stream, level in ((console, logging.WARNING), (file, logging.INFO)):
        handler = logging.StreamHandler(stream)
        handler.setLevel(level)
        FEDBIOMED.addHandler(handler)
    with Arrivals() as arrivals:
        _came("NODE_a")
        FEDBIOMED.warning("a warning")
        assert arrivals.wait(0.0) == {"NODE_a"}
    assert console.getvalue() == file.getvalue() == "a warning\n"


# ---- wait_for_nodes ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Call:
    at: float  # time.monotonic()
    tags: list[str]
    nodes: list[str] | None
    answered: frozenset[str]


class _Requests:
    """Fed-BioMed's `requests`, as far as wait_for_nodes uses it: `search(tags, nodes)`
    answers, for each connected node (only those listed, when `nodes` is a list), its
    centre's dataset record; every call is recorded."""

    def __init__(self, fed: Federation, unhealthy: dict[int, str] | None = None) -> None:
        self.records = {
            NODES[c.id]: contract.DatasetRecord(
                centre_id=c.id, centre=c.name, country=c.country, region=c.region,
                patients=50, fingerprint="f", spec_fingerprint="s",
                unhealthy=(unhealthy or {}).get(c.id, ""))
            for c in fed.centres}
        self._searchable: dict[str, float] = {}  # node id -> from when
        self._lock = threading.Lock()
        self.calls: list[_Call] = []

    def connect(self, node_id: str, log: bool = True, searchable_in: float = 0.0) -> float:
        """The node connects: it answers searches `searchable_in` s from now; its task
        request is logged now (unless `log` is False: the record lost). Returns now."""
        now = time.monotonic()
        with self._lock:
            self._searchable[node_id] = now + searchable_in
        if log:
            _came(node_id)
        return now

    def search(self, tags: list[str], nodes: list[str] | None = None
               ) -> dict[str, list[dict[str, Any]]]:
        now = time.monotonic()
        with self._lock:
            ready = {n for n, t in self._searchable.items() if t <= now}
        if nodes is not None:
            ready &= set(nodes)
        self.calls.append(_Call(now, list(tags), None if nodes is None else list(nodes),
                                frozenset(ready)))
        return {n: [{"description": self.records[n].description()}] for n in sorted(ready)}

    def finder(self, node_id: str) -> _Call:
        """The first search that answered with the node."""
        return next(c for c in self.calls if node_id in c.answered)


@pytest.fixture
def told() -> Iterator[StoryLines]:
    logger = logging.getLogger("test-researcher-arrivals")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = StoryLines()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture(scope="module")
def fed() -> Federation:
    """The default federation: node-0, node-1 and node-2."""
    return load_federation(DEFAULT_CONFIG)


@pytest.fixture(autouse=True)
def shipped_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped retry intervals, whatever they become (a test changes what it needs)."""
    monkeypatch.setattr(run, "SEARCH_AGAIN_S", 5.0)
    monkeypatch.setattr(run, "ASK_AGAIN_S", 0.2)
    monkeypatch.setattr(run, "FRESH_S", 2.0)
    monkeypatch.setattr(run, "BROKEN_GRACE_S", 10)


@dataclass
class _Waited:
    result: dict[str, contract.DatasetRecord] | None
    started: float
    ended: float

    @property
    def took(self) -> float:
        return self.ended - self.started


def _wait(requests: _Requests, fed: Federation, deadline_s: float, told: StoryLines) -> _Waited:
    """wait_for_nodes in a daemon thread, bounded by LIMIT_S; its story goes to `told`."""
    out: dict[str, Any] = {}
    story = Story(logging.getLogger("test-researcher-arrivals"), {"run": None, "round": None})

    def target() -> None:
        try:
            out["result"] = run.wait_for_nodes(requests, fed, deadline_s, story)
        except BaseException as exc:  # re-raised in the test's thread
            out["error"] = exc
        out["ended"] = time.monotonic()

    started = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(LIMIT_S)
    assert not thread.is_alive(), f"wait_for_nodes did not return in {LIMIT_S}s"
    if "error" in out:
        raise out["error"]
    return _Waited(out["result"], started, out["ended"])


def _answered(told: StoryLines) -> list[str]:
    return [m for _, m in told.lines if " answered " in m]


def test_a_node_is_searched_alone_the_moment_it_connects(fed: Federation,
                                                          told: StoryLines) -> None:
    requests = _Requests(fed)
    requests.connect(NODES[0], log=False)
    requests.connect(NODES[2], log=False)
    later = _Later()
    came: list[float] = []
    later.at(1.0, lambda: came.append(requests.connect(NODES[1])))
    waited = _wait(requests, fed, 4.0, told)
    later.join()

    assert waited.result is not None
    assert {n: r.centre_id for n, r in waited.result.items()} == {v: k for k, v in NODES.items()}
    first = requests.calls[0]
    assert first.nodes is None and first.answered == {NODES[0], NODES[2]}
    assert first.tags == [fed.training.tag]
    found = requests.finder(NODES[1])
    assert found.nodes == [NODES[1]]  # only the node that came
    assert found.at - came[0] < 0.3, found.at - came[0]
    assert waited.ended - came[0] < 0.3, waited.ended - came[0]
    # No search on a timer in between: the first for everyone, then the one for node-1.
    assert [c.nodes for c in requests.calls] == [None, [NODES[1]]]
    assert _answered(told) == [f"{contract.node_service(i)} answered with its dataset"
                               for i in (0, 2, 1)]


def test_a_node_logged_before_the_server_files_it_is_asked_again(fed: Federation,
                                                                  told: StoryLines) -> None:
    requests = _Requests(fed)
    requests.connect(NODES[0], log=False)
    requests.connect(NODES[2], log=False)
    later = _Later()
    came: list[float] = []
    later.at(0.3, lambda: came.append(requests.connect(NODES[1], searchable_in=0.3)))
    waited = _wait(requests, fed, 4.0, told)
    later.join()

    assert waited.result is not None and len(waited.result) == 3
    searchable = came[0] + 0.3
    found = requests.finder(NODES[1])
    assert found.nodes == [NODES[1]]
    assert found.at - searchable < 0.6, found.at - searchable  # ASK_AGAIN_S, not 5 s
    assert waited.ended - searchable < 0.6
    asked = requests.calls[1:]
    assert asked and all(c.nodes == [NODES[1]] for c in asked)  # only the node that came
    assert asked[0].answered == set() and asked[0].at - came[0] < 0.15  # at once, too early
    assert 2 <= len(asked) <= 5, [round(c.at - came[0], 2) for c in asked]


def test_a_node_that_came_is_asked_again_only_for_a_while(fed: Federation, told: StoryLines,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setattr(run, "ASK_AGAIN_S", 0.1)
    monkeypatch.setattr(run, "FRESH_S", 0.3)
    requests = _Requests(fed)
    requests.connect(NODES[0], log=False)
    requests.connect(NODES[1], log=False)
    later = _Later()
    came: list[float] = []
    later.at(0.1, lambda: came.append(requests.connect(NODES[2], searchable_in=60)))
    waited = _wait(requests, fed, 0.9, told)
    later.join()

    assert waited.result is None
    asked = requests.calls[1:]
    assert all(c.nodes == [NODES[2]] for c in asked), [c.nodes for c in asked]
    assert 2 <= len(asked) <= 6, [round(c.at - came[0], 2) for c in asked]
    # FRESH_S (+ one ASK_AGAIN_S), then no more until the deadline, 0.8 s after it came
    assert max(c.at for c in asked) - came[0] < 0.6, [round(c.at - came[0], 2) for c in asked]


def test_nodes_already_found_asking_for_tasks_again_cause_no_search(fed: Federation,
                                                                    told: StoryLines) -> None:
    requests = _Requests(fed)
    requests.connect(NODES[0], log=False)
    requests.connect(NODES[1], log=False)
    later = _Later()

    def again() -> None:  # the found nodes' task requests, as each of their tasks is served
        _came(NODES[0])
        _came(NODES[1])

    for i in range(8):
        later.at(0.05 + i * 0.05, again)
    came: list[float] = []
    later.at(0.6, lambda: came.append(requests.connect(NODES[2])))
    waited = _wait(requests, fed, 4.0, told)
    later.join()

    assert waited.result is not None and len(waited.result) == 3
    assert [c.nodes for c in requests.calls] == [None, [NODES[2]]]
    assert waited.ended - came[0] < 0.3
    assert len(_answered(told)) == 3  # each told once


def test_at_the_deadline_the_missing_centre_is_named(fed: Federation, told: StoryLines) -> None:
    requests = _Requests(fed)
    requests.connect(NODES[0], log=False)
    requests.connect(NODES[1], log=False)
    waited = _wait(requests, fed, 0.5, told)

    assert waited.result is None
    assert 0.45 <= waited.took < 1.5, waited.took
    errors = [m for level, m in told.lines if level == "ERROR"]
    assert len(errors) == 1
    assert errors[0].startswith("FAILED: no answer from node-2 (University College London "
                                "Hospital)"), errors[0]
    assert "node-0" not in errors[0] and "node-1" not in errors[0]
    assert "docker compose logs node-2" in errors[0]


def test_an_unhealthy_node_ends_the_wait_after_the_grace(fed: Federation, told: StoryLines,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    monkeypatch.setattr(run, "BROKEN_GRACE_S", 0.3)
    requests = _Requests(fed, unhealthy={0: "no patients in /data"})
    requests.connect(NODES[0], log=False)
    requests.connect(NODES[1], log=False)
    waited = _wait(requests, fed, 5.0, told)

    assert waited.result is None
    assert 0.25 <= waited.took < 1.2, waited.took  # the grace, not the 5 s deadline
    assert ("INFO", "node-0 answered UNHEALTHY: no patients in /data") in told.lines
    errors = [m for level, m in told.lines if level == "ERROR"]
    assert len(errors) == 1
    assert "node-0 (Massachusetts General Hospital) cannot serve: no patients in /data" \
        in errors[0]
    assert "no answer from node-2 (University College London Hospital)" in errors[0]


def test_an_unhealthy_node_with_everyone_else_there_ends_the_wait_at_once(
        fed: Federation, told: StoryLines) -> None:
    requests = _Requests(fed, unhealthy={1: "spec mismatch"})
    for node_id in NODES.values():
        requests.connect(node_id, log=False)
    waited = _wait(requests, fed, 5.0, told)

    assert waited.result is None
    assert waited.took < 0.5
    assert [c.nodes for c in requests.calls] == [None]
    errors = [m for level, m in told.lines if level == "ERROR"]
    assert len(errors) == 1 and "node-1 (CHU de Lyon) cannot serve: spec mismatch" in errors[0]
    assert "no answer" not in errors[0]


def test_without_arrival_records_everyone_is_searched_again_on_a_timer(
        fed: Federation, told: StoryLines, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "SEARCH_AGAIN_S", 0.5)
    requests = _Requests(fed)
    requests.connect(NODES[0], log=False)
    requests.connect(NODES[1], log=False)
    later = _Later()

    def silently() -> None:  # its record lost
        requests.connect(NODES[2], log=False)

    later.at(0.2, silently)
    waited = _wait(requests, fed, 3.0, told)
    later.join()

    assert waited.result is not None and len(waited.result) == 3
    first = requests.calls[0]
    assert first.nodes is None and first.answered == {NODES[0], NODES[1]}
    found = requests.finder(NODES[2])
    assert found.nodes is None
    assert 0.45 <= found.at - waited.started < 0.9, found.at - waited.started
    assert [c.nodes for c in requests.calls] == [None, None]


def test_a_single_centre_federation_already_there_is_found_by_the_first_search(
        fed: Federation, told: StoryLines) -> None:
    one = replace(fed, centres=fed.centres[:1])
    handlers = list(FEDBIOMED.handlers)
    requests = _Requests(one)
    requests.connect(NODES[0], log=False)
    waited = _wait(requests, one, 3.0, told)

    assert waited.result is not None and list(waited.result) == [NODES[0]]
    assert waited.took < 0.3
    assert [c.nodes for c in requests.calls] == [None]
    assert FEDBIOMED.level == logging.WARNING and FEDBIOMED.handlers == handlers  # restored
