"""How a node learns that the researcher has left (node/start.py): it holds an idle
connection that the researcher's kernel ends when its process exits, confirms with a probe
that nothing listens any more, and falls back to probing when no connection can be held.
Real sockets on 127.0.0.1; each wait runs in a daemon thread, joined with a timeout, so that
a broken implementation fails instead of hanging."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from fedjourney.node import start

HOST = "127.0.0.1"
PROMPT_S = 0.5  # "at once": well under the PROBE_EVERY_S a polling node would need


class Waiter:
    """`_wait_until_left` in a daemon thread; `returned_at` is when it returned."""

    def __init__(self, port: int) -> None:
        self.returned_at: float | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(port,), daemon=True)
        self.thread.start()

    def _run(self, port: int) -> None:
        try:
            start._wait_until_left(HOST, port, False)
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error
        finally:
            self.returned_at = time.monotonic()

    def left_within(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()


@pytest.fixture
def waiters() -> Iterator[list[Waiter]]:
    """Waiters to join at the end, whatever the test's outcome (bounded: a broken one may
    wait HOLD_S; it is a daemon)."""
    started: list[Waiter] = []
    yield started
    for waiter in started:
        waiter.thread.join(2.0)
        assert waiter.error is None, waiter.error


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """The researcher's listening socket, on an ephemeral port."""
    with socket.create_server((HOST, 0)) as server:
        server.settimeout(2.0)
        yield server


def _port(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def _free_port() -> int:
    """A port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return _port(sock)


def _probe_every(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    monkeypatch.setattr(start, "PROBE_EVERY_S", seconds)


def test_a_node_leaves_at_once_when_the_researchers_process_exits(
        monkeypatch: pytest.MonkeyPatch, listener: socket.socket,
        waiters: list[Waiter]) -> None:
    # At the real probe interval: a node that polled, or that needed a second miss after
    # its held connection ended, would take PROBE_EVERY_S or more to leave.
    _probe_every(monkeypatch, 1.0)
    waiters.append(waiter := Waiter(_port(listener)))
    connection, _ = listener.accept()
    with connection:
        assert not waiter.left_within(0.3), "left while the researcher was still there"
        listener.close()  # the researcher's process exits: its kernel closes everything
        connection.close()
        closed = time.monotonic()
    assert waiter.left_within(2.0), "still waiting after the researcher exited"
    assert waiter.returned_at is not None and waiter.returned_at - closed < PROMPT_S


def test_a_relay_that_ends_connections_does_not_make_the_node_leave(
        monkeypatch: pytest.MonkeyPatch, listener: socket.socket,
        waiters: list[Waiter]) -> None:
    _probe_every(monkeypatch, 0.05)
    accepted = 0
    stop = threading.Event()

    def relay() -> None:  # ends each connection at once, but keeps listening
        nonlocal accepted
        listener.settimeout(0.02)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.close()
            accepted += 1

    server = threading.Thread(target=relay, daemon=True)
    server.start()
    try:
        began = time.monotonic()
        waiters.append(waiter := Waiter(_port(listener)))
        assert not waiter.left_within(0.5), "left while the port still answered"
        count, elapsed = accepted, time.monotonic() - began
    finally:
        stop.set()
        server.join(2.0)
    assert not server.is_alive()
    # A held connection and its confirming probes per round, rounds no closer than
    # PROBE_EVERY_S apart: never a spin that reconnects as fast as the relay ends them.
    per_round = 1 + start.CONFIRMS
    assert 0 < count <= per_round * (elapsed / start.PROBE_EVERY_S + 1) + 2, count
    listener.close()  # now the researcher is gone
    closed = time.monotonic()
    assert waiter.left_within(2.0), "still waiting after the port stopped answering"
    assert waiter.returned_at is not None and waiter.returned_at - closed < 1.0


def test_without_a_researcher_the_node_leaves_after_its_probes_miss(
        monkeypatch: pytest.MonkeyPatch, waiters: list[Waiter]) -> None:
    _probe_every(monkeypatch, 0.1)
    began = time.monotonic()
    waiters.append(waiter := Waiter(_free_port()))
    assert waiter.left_within(2.0), "still waiting with nothing listening"
    assert waiter.returned_at is not None
    # A connection that never opened is no sign of an exit: LEFT_AFTER_MISSES probes,
    # PROBE_EVERY_S apart, decide.
    assert waiter.returned_at - began >= (start.LEFT_AFTER_MISSES - 1) * start.PROBE_EVERY_S


def _hold_against(listener: socket.socket, end: str) -> tuple[bool, float]:
    """`_hold`'s answer, and how long it took, against a server that accepts and then
    `end`s the connection: "keep" (open until `_hold` returns), "close" or "reset"."""
    held = threading.Event()

    def server() -> None:
        try:
            connection, _ = listener.accept()
        except TimeoutError:  # `_hold` never connected: its answer says so
            return
        with connection:
            if end == "keep":
                held.wait(5.0)
                return
            time.sleep(0.1)  # the node is in its recv by now
            if end == "reset":
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))

    thread = threading.Thread(target=server, daemon=True)
    thread.start()
    began = time.monotonic()
    try:
        ended = start._hold(HOST, _port(listener))
    finally:
        took = time.monotonic() - began
        held.set()
        thread.join(2.0)
    assert not thread.is_alive()
    return ended, took


def test_a_connection_still_open_after_hold_s_has_not_ended(
        monkeypatch: pytest.MonkeyPatch, listener: socket.socket) -> None:
    monkeypatch.setattr(start, "HOLD_S", 0.2)
    ended, took = _hold_against(listener, "keep")
    assert ended is False
    assert 0.2 <= took < 2.0


@pytest.mark.parametrize("end", ["close", "reset"])
def test_a_connection_the_researcher_ends_has_ended(
        monkeypatch: pytest.MonkeyPatch, listener: socket.socket, end: str) -> None:
    monkeypatch.setattr(start, "HOLD_S", 2.0)
    ended, took = _hold_against(listener, end)
    assert ended is True
    assert took < 1.0


def test_no_connection_has_not_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    _probe_every(monkeypatch, 0.1)
    assert start._hold(HOST, _free_port()) is False


def test_a_held_connection_sends_nothing(
        monkeypatch: pytest.MonkeyPatch, listener: socket.socket,
        waiters: list[Waiter]) -> None:
    # A relay or a tunnel passes bytes on; gRPC's server expects a TLS hello.
    _probe_every(monkeypatch, 0.05)
    waiters.append(waiter := Waiter(_port(listener)))
    connection, _ = listener.accept()
    with connection:
        connection.settimeout(0.3)
        with pytest.raises(TimeoutError):  # neither a byte nor an end of the connection
            connection.recv(1)
        assert waiter.thread.is_alive()
        listener.close()
    assert waiter.left_within(2.0)


# Before Fed-BioMed's client starts, the node waits for the researcher to listen: the client
# itself tries again only every 2 s.


class _Told:
    """A story that keeps its info lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


def test_a_node_starts_its_client_as_soon_as_the_researcher_listens(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(start, "LISTEN_EVERY_S", 0.05)
    port = _free_port()
    told = _Told()
    result: list[tuple[bool, float]] = []
    thread = threading.Thread(target=lambda: result.append(
        (start._listens(HOST, port, told, 10.0), time.monotonic())), daemon=True)  # type: ignore[arg-type]
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()  # nothing listens yet
    with socket.create_server((HOST, port)):
        listening = time.monotonic()
        thread.join(2.0)
        assert result and result[0][0] is True
        assert result[0][1] - listening < 0.25  # not Fed-BioMed's 2 s retry
    assert told.lines == []  # a short wait is not worth a story line


def test_no_researcher_within_the_deadline_is_told_once_then_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(start, "LISTEN_EVERY_S", 0.02)
    monkeypatch.setattr(start, "TELL_AFTER_S", 0.1)
    told, port = _Told(), _free_port()
    began = time.monotonic()
    assert start._listens(HOST, port, told, 0.4) is False  # type: ignore[arg-type]
    assert 0.35 < time.monotonic() - began < 2.0
    assert told.lines == [f"waiting for the researcher to listen at {HOST}:{port}"]


def test_a_name_that_never_resolves_is_told_at_once_then_refused_at_the_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(start, "PROBE_EVERY_S", 0.05)
    told = _Told()
    began = time.monotonic()
    assert start._resolves("no-such-host.invalid", told, 0.3) is False  # type: ignore[arg-type]
    assert 0.25 < time.monotonic() - began < 5.0
    assert told.lines == ["waiting for the researcher's address (no-such-host.invalid) to exist"]
    told.lines.clear()
    assert start._resolves("localhost", told, 0.3) is True  # type: ignore[arg-type]
    assert told.lines == []


def test_a_node_leaves_at_once_though_the_listener_outlives_the_connection_a_moment(
        monkeypatch: pytest.MonkeyPatch, listener: socket.socket,
        waiters: list[Waiter]) -> None:
    """An exiting process's sockets close one by one: the held connection first, the
    listening socket a moment later, so the first probe after the end may still connect
    (seen in traces: one node in three then left 3 s late, on the fallback probes)."""
    _probe_every(monkeypatch, 1.0)
    waiters.append(waiter := Waiter(_port(listener)))
    connection, _ = listener.accept()
    connection.close()  # the connection ends first...
    time.sleep(0.03)
    listener.close()  # ...the listener 30 ms later
    closed = time.monotonic()
    assert waiter.left_within(2.0), "still waiting after the port stopped answering"
    assert waiter.returned_at is not None and waiter.returned_at - closed < PROMPT_S
