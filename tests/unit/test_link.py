"""The network-link relay (fedjourney/link.py): its schedule's maths as pure functions, and
the relay itself with real sockets on loopback (a relay in its own thread and event loop,
upstream servers in threads, clients with plain blocking sockets). Timing bounds are
generous, for a loaded 2-core machine, but each still fails if the effect is missing."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest

from fedjourney import link
from fedjourney.link import Direction, Link, Schedule

PERFECT = Direction()
EOF_MARK = b"<eof>"


# Upstream servers ------------------------------------------------------------------------

def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        part = sock.recv(min(n - len(data), 1 << 20))
        if not part:
            raise ConnectionError(f"end of stream after {len(data)} of {n} bytes")
        data += part
    return bytes(data)


def _recv_all(sock: socket.socket) -> bytes:
    data = bytearray()
    while part := sock.recv(1 << 20):
        data += part
    return bytes(data)


def _echo(sock: socket.socket) -> None:
    """Echo until end of stream, then send EOF_MARK: data flowing after the client's
    half-close shows the relay half-closes rather than closes."""
    while data := sock.recv(1 << 16):
        sock.sendall(data)
    sock.sendall(EOF_MARK)
    sock.shutdown(socket.SHUT_WR)


def _bulk(sock: socket.socket) -> None:
    """b"U<n>\\n" then n bytes: answers b"ok" once all arrived; b"D<n>\\n": sends n bytes."""
    header = bytearray()
    while not header.endswith(b"\n"):
        header += _recv_exactly(sock, 1)
    n = int(header[1:])
    if header.startswith(b"U"):
        _recv_exactly(sock, n)
        sock.sendall(b"ok")
    else:
        sock.sendall(bytes(n))


@contextmanager
def _server(handle: Callable[[socket.socket], None], port: int = 0) -> Iterator[int]:
    """A threaded TCP server on 127.0.0.1 running handle per connection; its port."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with suppress(OSError):  # a client that left early
                handle(self.request)

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler) as server:
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()
            thread.join(5)


@contextmanager
def _relay(the_link: Link, upstream_port: int, seed: int = 0) -> Iterator[int]:
    """start_relay's server in its own thread and event loop; its port."""
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        link.start_relay(0, ("127.0.0.1", upstream_port), the_link, seed, host="127.0.0.1"))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.close()

        async def cancel_connections() -> None:
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        loop.run_until_complete(cancel_connections())
        loop.close()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _median_rtt(port: int, rounds: int = 15) -> float:
    """The median time for one byte to go to the echo server and back, in seconds."""
    with _connect(port) as sock:
        times = []
        for _ in range(rounds + 1):
            start = time.perf_counter()
            sock.sendall(b"x")
            assert _recv_exactly(sock, 1) == b"x"
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])  # the first also paid for connecting upstream


def _send_in_thread(sock: socket.socket, payload: bytes, pace_s: float = 0.0,
                    pieces: int = 1) -> threading.Thread:
    """Send payload in `pieces` pieces, pace_s apart, then half-close; reading meanwhile
    is the caller's."""

    def send() -> None:
        size = -(-len(payload) // pieces)
        for i in range(0, len(payload), size):
            sock.sendall(payload[i:i + size])
            time.sleep(pace_s)
        sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


# The schedule's maths ----------------------------------------------------------------------

def test_rate_serialises_chunks_back_to_back_and_restarts_after_idle() -> None:
    schedule = Schedule(Direction(rate_mbit=16), random.Random(0))
    per_chunk = 16384 * 8 / 16e6  # 8.192 ms
    releases = [schedule.release(0.0, 16384) for _ in range(10)]
    assert releases == pytest.approx([(k + 1) * per_chunk for k in range(10)])
    # After an idle second, a chunk starts at its arrival, not at the previous one's end.
    assert schedule.release(2.0, 16384) == pytest.approx(2.0 + per_chunk)


def test_jitter_varies_each_delay_but_never_reorders() -> None:
    jittery = Direction(latency_ms=20, jitter_ms=20)
    # Chunks far apart: each delay is drawn in 20 ± 20 ms, and they do vary.
    schedule = Schedule(jittery, random.Random(1))
    delays = [schedule.release(t, 100) - t for t in range(200)]
    assert 0 <= min(delays) < 0.005 and 0.035 < max(delays) <= 0.040
    # Chunks 1 ms apart: a raw draw would often overtake the previous chunk; the release
    # times are held back instead, so they never decrease.
    schedule = Schedule(jittery, random.Random(1))
    releases = [schedule.release(t / 1000, 100) for t in range(200)]
    assert releases == sorted(releases)
    held = sum(a == b for a, b in itertools.pairwise(releases))
    assert held > 20  # the clamp did engage: this test exercises reordering


def test_loss_costs_one_retransmission_timeout_per_lost_chunk_reproducibly() -> None:
    def extras(direction: Direction, seed: str) -> list[float]:
        # Request/response traffic: each chunk arrives once the previous one was delivered.
        schedule = Schedule(direction, random.Random(seed))
        now, out = 0.0, []
        for _ in range(400):
            release = schedule.release(now, 1000)
            out.append(release - now - direction.latency_ms / 1000)
            now = release + 0.001
        return out

    lossy = extras(Direction(loss_pct=50), "7/1/up")
    lost = [e for e in lossy if e > 0]
    assert 140 < len(lost) < 260  # about half of 400
    assert lost == pytest.approx([0.2] * len(lost))  # each costs exactly the 200 ms RTO
    assert sum(lossy) == pytest.approx(len(lost) * 0.2)
    # The RTO grows with the direction's latency: 0.2 s + 2 x 30 ms.
    assert set(map(round5, extras(Direction(latency_ms=30, loss_pct=50), "x"))) == {0, 0.26}
    # The same seed gives the same losses; another seed, others.
    assert extras(Direction(loss_pct=50), "7/1/up") == lossy
    assert extras(Direction(loss_pct=50), "8/1/up") != lossy
    # 100% delays every chunk by an RTO; it does not cut the link.
    assert set(map(round5, extras(Direction(loss_pct=100), "x"))) == {0.2}


def round5(x: float) -> float:
    return round(x, 5)


def test_an_added_loss_combines_with_the_directions_own_and_keeps_the_draws() -> None:
    """A flaky event's `loss PCT`: independent of the link's own loss, read at each chunk,
    and drawn from the same numbers, so the seed still decides which chunks are lost."""
    assert link.combined_loss(0, 20) == pytest.approx(20)
    assert link.combined_loss(50, 20) == pytest.approx(60)  # 1 - 0.5 * 0.8
    assert link.combined_loss(10, 100) == 100 and link.combined_loss(7.5, 0) == 7.5
    added = [0.0]

    def releases(loss: Callable[[], float] | None) -> list[float]:
        schedule = Schedule(Direction(loss_pct=30), random.Random("5/2/down"), loss)
        out = []
        for t in range(300):
            added[0] = 100.0 if 100 <= t < 200 else 0.0  # `loss 100`, then `loss off`
            out.append(round5(schedule.release(float(t), 10) - t))
        return out

    plain, flaky = releases(None), releases(lambda: added[0])
    assert flaky[:100] == plain[:100] and flaky[200:] == plain[200:]
    assert set(flaky[100:200]) == {0.2}  # every chunk lost while the loss is on
    assert 0 < plain[100:200].count(0.2) < 60  # the link's own 30%, not all




def test_the_queue_is_four_bandwidth_delay_products_within_bounds() -> None:
    assert link.queue_limit(PERFECT) == 256 * 1024
    assert link.queue_limit(Direction(rate_mbit=100, latency_ms=40, jitter_ms=10)) == \
        4 * 100e6 / 8 * 0.050
    assert link.queue_limit(Direction(latency_ms=60_000)) == 64 * 1024 * 1024


# The directions' bounds, descriptions and specs ---------------------------------------------

@pytest.mark.parametrize("values", [
    {"rate_mbit": 0}, {"rate_mbit": -1}, {"rate_mbit": 100_001}, {"latency_ms": -1},
    {"jitter_ms": 60_001}, {"loss_pct": 100.5}, {"latency_ms": float("nan")},
])
def test_a_direction_out_of_bounds_is_refused(values: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(values))):
        Direction(**values)


def test_directions_describe_themselves_and_round_trip_their_spec() -> None:
    full = Direction(rate_mbit=10, latency_ms=20, jitter_ms=5, loss_pct=1)
    assert full.describe() == "10 Mbit/s, 20 ms ± 5 ms, 1% loss"
    assert PERFECT.describe() == "unlimited, no delay" and PERFECT.perfect
    assert Direction(loss_pct=100).describe() == "unlimited, 100% loss"
    assert not Direction(loss_pct=100).perfect
    assert Link(full, Direction(latency_ms=20)).describe() == \
        "up 10 Mbit/s, 20 ms ± 5 ms, 1% loss; down unlimited, 20 ms"
    assert full.spec() == "rate_mbit=10,latency_ms=20,jitter_ms=5,loss_pct=1"
    odd = Direction(rate_mbit=0.125, latency_ms=12.3456789, loss_pct=100)
    for direction in (full, odd, PERFECT, Direction(rate_mbit=100_000, jitter_ms=60_000)):
        assert link.parse_direction(direction.spec()) == direction


# The relay on loopback ---------------------------------------------------------------------

@pytest.mark.parametrize("the_link", [
    Link(PERFECT, PERFECT),
    Link(Direction(rate_mbit=400, latency_ms=5, jitter_ms=2, loss_pct=5),
         Direction(rate_mbit=400, latency_ms=5, jitter_ms=2, loss_pct=5)),
], ids=["perfect", "shaped"])
def test_the_relay_forwards_bytes_unchanged_both_ways_and_half_closes(the_link: Link) -> None:
    payload = random.Random(3).randbytes(1_000_000)
    with _server(_echo) as upstream, _relay(the_link, upstream) as port, \
            _connect(port) as sock:
        sender = _send_in_thread(sock, payload, pieces=50)
        # The echo answers only after our half-close went through, then closes its side.
        assert _recv_all(sock) == payload + EOF_MARK
        sender.join(5)


def test_latency_adds_its_round_trip() -> None:
    thirty = Direction(latency_ms=30)
    with _server(_echo) as upstream:
        direct = _median_rtt(upstream)
        with _relay(Link(thirty, thirty), upstream) as port:
            relayed = _median_rtt(port)
    added_ms = (relayed - direct) * 1000
    print(f"direct RTT {direct * 1000:.2f} ms, relayed {relayed * 1000:.2f} ms")
    assert 59 <= added_ms <= 120


def test_rate_limits_its_direction_only() -> None:
    size = 2_000_000  # 16 Mbit: one second at 16 Mbit/s
    with _server(_bulk) as upstream, \
            _relay(Link(Direction(rate_mbit=16), PERFECT), upstream) as port:
        with _connect(port) as sock:
            start = time.perf_counter()
            sock.sendall(b"U%d\n" % size + bytes(size))
            assert _recv_exactly(sock, 2) == b"ok"
            up = time.perf_counter() - start
        with _connect(port) as sock:
            start = time.perf_counter()
            sock.sendall(b"D%d\n" % size)
            _recv_exactly(sock, size)
            down = time.perf_counter() - start
    print(f"2 MB up at 16 Mbit/s: {up:.3f} s; down unlimited: {down:.3f} s")
    assert 0.85 <= up <= 1.3
    assert down < 0.4  # at 16 Mbit/s it would take a second too


def test_a_slow_link_pushes_back_on_the_sender() -> None:
    """The relay stops reading once its queue is full: a sender cannot push tens of MB into
    a 1 Mbit/s link (the kernel's socket buffers take a few)."""
    with _server(_bulk) as upstream, \
            _relay(Link(Direction(rate_mbit=1), PERFECT), upstream) as port, \
            _connect(port) as sock:
        sock.sendall(b"U%d\n" % (64 << 20))
        sock.settimeout(0.05)
        block, sent = bytes(1 << 16), 0
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline and sent < 64 << 20:
            with suppress(TimeoutError):
                sent += sock.send(block)
    print(f"a sender got {sent / 1e6:.1f} MB into a 1 Mbit/s link in 1.5 s")
    assert sent < 24 << 20


def test_jitter_keeps_the_stream_in_order() -> None:
    lines = b"".join(b"%05d\n" % i for i in range(300))
    jittery = Direction(latency_ms=15, jitter_ms=15)
    with _server(_echo) as upstream, _relay(Link(jittery, jittery), upstream) as port, \
            _connect(port) as sock:
        sender = _send_in_thread(sock, lines, pace_s=0.001, pieces=300)
        assert _recv_all(sock) == lines + EOF_MARK
        sender.join(5)


def test_loss_delays_each_lost_chunk_by_a_retransmission_timeout() -> None:
    with _server(_echo) as upstream, \
            _relay(Link(Direction(loss_pct=100), PERFECT), upstream) as port, \
            _connect(port) as sock:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            sock.sendall(b"x")
            assert _recv_exactly(sock, 1) == b"x"
            times.append(time.perf_counter() - start)
    assert min(times) >= 0.2 and sum(times) < 2.5


class _Lines(logging.Handler):
    """The messages of a logger, whatever another test did to its propagation."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_refused_upstream_closes_the_client_and_the_relay_keeps_serving() -> None:
    with socket.create_server(("127.0.0.1", 0)) as spare:
        down_port = spare.getsockname()[1]  # nothing listens there once it is closed
    caplog = _Lines()
    logger = logging.getLogger("fedjourney.link")
    level = logger.level
    logger.addHandler(caplog)
    logger.setLevel(logging.INFO)
    try:
        _refused_then_served(caplog, down_port)
    finally:
        logger.removeHandler(caplog)
        logger.setLevel(level)


def _refused_then_served(caplog: _Lines, down_port: int) -> None:
    with _relay(Link(PERFECT, Direction(latency_ms=1)), down_port) as port:
        start = time.perf_counter()
        # The relay resets it, as a refusal looks: the reset can even beat connect's return.
        with suppress(ConnectionResetError), _connect(port) as sock:
            assert sock.recv(10) == b""
        assert time.perf_counter() - start < 2.0
        # The relay logs after it has reset the client: wait for its line, not a fixed time.
        until = time.monotonic() + 5
        while not (refusals := [r.getMessage() for r in caplog.records
                                if "cannot reach" in r.getMessage()]) and \
                time.monotonic() < until:
            time.sleep(0.02)
        assert len(refusals) == 1 and f"127.0.0.1:{down_port}" in refusals[0]
        with _server(_echo, port=down_port), _connect(port) as sock:
            sock.sendall(b"back")
            assert _recv_exactly(sock, 4) == b"back"


# The command line --------------------------------------------------------------------------

GOOD = ["--listen", "50051", "--connect", "researcher:50051"]


@pytest.mark.parametrize(("args", "named", "says"), [
    (["--up", "rate_mbit=-1"], "--up", "rate_mbit must be above 0"),
    (["--up", "latency_ms=abc"], "--up", "latency_ms=abc is not a number"),
    (["--up", "colour=3"], "--up", "KEY one of rate_mbit, latency_ms"),
    (["--down", "loss_pct=101"], "--down", "loss_pct must be at least 0 and at most 100"),
    (["--connect", "nohost"], "--connect", "is not HOST:PORT, e.g. researcher:50051"),
    (["--connect", "researcher:http"], "--connect", "is not a port number"),
    (["--listen", "70000"], "--listen", "is not a port number"),
])
def test_main_refuses_a_bad_argument_in_one_line(
        args: list[str], named: str, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        link.main([*GOOD, *args])
    assert stopped.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"argument {named}" in errors[0] and says in errors[0]


def test_parse_args_reads_the_whole_command_line() -> None:
    options = link.parse_args([*GOOD, "--up", "rate_mbit=10, latency_ms=20", "--down", "",
                                      "--seed", "4", "--label", "link node-1"])
    assert options == link.Options(50051, ("researcher", 50051),
                                   Link(Direction(rate_mbit=10, latency_ms=20), PERFECT),
                                   4, "link node-1")
    assert link.parse_args(["--listen", "0", "--connect", "[::1]:5"]).upstream == ("::1", 5)


def test_main_relays_logs_each_connection_and_stops_at_once_on_sigterm() -> None:
    with _server(_echo) as upstream:
        process = subprocess.Popen(
            [sys.executable, "-m", "fedjourney.link", "--listen", "0", "--connect",
             f"127.0.0.1:{upstream}", "--up", "latency_ms=1", "--seed", "3",
             "--label", "link node-1 CHU de Lyon"],
            stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        killer = threading.Timer(20, process.kill)  # a hung relay fails, never hangs
        killer.start()
        try:
            first = process.stderr.readline()
            assert "[link node-1 CHU de Lyon] emulating up unlimited, 1 ms; down unlimited, " \
                   "no delay; forwarding :" in first and f"to 127.0.0.1:{upstream}" in first
            port = int(first.split("forwarding :")[1].split()[0])
            with _connect(port) as sock:
                sock.sendall(b"hello")
                sock.shutdown(socket.SHUT_WR)
                assert _recv_all(sock) == b"hello" + EOF_MARK
            idle = _connect(port)  # still open when the signal comes
            time.sleep(0.2)
            start = time.perf_counter()
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0
            assert time.perf_counter() - start < 2.0
            idle.close()
            log = first + process.stderr.read()
        finally:
            killer.cancel()
            process.kill()
            process.wait()
    assert "connection 1 from 127.0.0.1:" in log
    assert "bytes" in log and "5 bytes up, 10 bytes down" in log
    assert "connection 2 closed as the relay stopped" in log
    assert "hello" not in log and "Traceback" not in log


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as spare:
        return int(spare.getsockname()[1])


def _refused(port: int) -> bool:
    """Whether a connection is refused; a reset (the relay accepted it in the moment before
    its probe saw the upstream go) is not, yet."""
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False
    return False


def _until(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


@contextmanager
def _in_a_thread(relay: Coroutine[Any, Any, None]) -> Iterator[asyncio.AbstractEventLoop]:
    """Run `relay` on an event loop of its own in a thread (its loop); cancelled after."""
    loop = asyncio.new_event_loop()
    serving = loop.create_task(relay)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        async def stop() -> None:
            serving.cancel()
            with suppress(asyncio.CancelledError):
                await serving

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_the_relay_listens_only_while_the_researcher_answers() -> None:
    """Without a researcher a node's connection is refused, as on the engine's network:
    Fed-BioMed's client checks that first, and would die of a reset after it."""
    listen, upstream = _free_port(), _free_port()
    with _in_a_thread(link.relay(listen, ("127.0.0.1", upstream),
                                 Link(PERFECT, Direction(latency_ms=1)), 0, probe_s=0.05)):
        time.sleep(0.3)  # several probes: the upstream is not there
        assert _refused(listen)
        with _server(_echo, port=upstream):
            assert _until(lambda: not _refused(listen)), "the relay never listened"
            with _connect(listen) as sock:
                sock.sendall(b"back")
                assert _recv_exactly(sock, 4) == b"back"
        assert _until(lambda: _refused(listen)), "the relay kept listening"


def test_a_relay_not_kept_stops_once_the_researcher_has_left() -> None:
    """As its node: the run is over when the researcher leaves, and `compose up` returns
    only once every container has; before the researcher first answers it waits."""
    listen, upstream = _free_port(), _free_port()

    async def scenario() -> tuple[bool, float]:
        ready = asyncio.Event()
        serving = asyncio.create_task(link.relay(listen, ("127.0.0.1", upstream),
                                                 Link(PERFECT, PERFECT), 0, ready,
                                                 probe_s=0.05, keep=False))
        await asyncio.sleep(0.3)  # no researcher yet: waiting, not gone
        waited = not serving.done()
        with _server(_echo, port=upstream):
            await asyncio.wait_for(ready.wait(), 5)
        left = time.monotonic()
        await asyncio.wait_for(serving, 5)  # returns by itself
        return waited, time.monotonic() - left

    waited, took = asyncio.run(scenario())
    assert waited, "the relay stopped before the researcher ever answered"
    assert took < 2.0, took


def _command(port: int, word: str, host: str = "127.0.0.1") -> str:
    with socket.create_connection((host, port), 5) as sock:
        sock.sendall(f"{word}\n".encode())
        return sock.makefile().readline().strip()


def test_down_ends_open_connections_holds_new_ones_and_up_lets_them_through() -> None:
    """A scheduled outage, as the researcher carries it out through the control port."""
    listen, upstream, control = _free_port(), _free_port(), _free_port()
    outage = link.Outage()
    with _in_a_thread(link.relay(listen, ("127.0.0.1", upstream), Link(PERFECT, PERFECT), 0,
                                 asyncio.Event(), probe_s=0.05, outage=outage)) as loop:
        asyncio.run_coroutine_threadsafe(
            link.start_control(control, ("127.0.0.1", upstream), outage), loop).result(5)
        with _server(_echo, port=upstream):
            assert _until(lambda: not _refused(listen)), "the relay never listened"
            with _connect(listen) as before:
                before.sendall(b"ping")
                assert _recv_exactly(before, 4) == b"ping"
                assert _command(control, "down") == "ok down"
                assert _until(lambda: _ended(before)), "an open connection outlived the cut"
            held = _connect(listen)  # accepted, as an outage's SYN is not refused here
            held.settimeout(0.5)
            held.sendall(b"wait")
            with pytest.raises(TimeoutError):
                held.recv(4)  # nothing goes through while the link is down
            assert _command(control, "nonsense") == \
                "refused: 'nonsense' is not a command; send down, up, loss PCT or loss off"
            assert _command(control, "up") == "ok up"
            held.settimeout(5)
            assert _recv_exactly(held, 4) == b"wait"  # what it sent in the outage, now
            held.close()


def test_only_the_upstreams_side_may_cut_or_restore_the_link() -> None:
    """A command that comes in on another address than the one towards the upstream (the
    node's side, in a deployment) is refused, and changes nothing."""
    upstream, control = _free_port(), _free_port()

    async def scenario() -> tuple[str, bool]:
        outage = link.Outage()
        server = await link.start_control(control, ("127.0.0.1", upstream), outage)
        try:
            answer = await asyncio.to_thread(_command, control, "down", "127.0.0.2")
            return answer, outage.up.is_set()
        finally:
            server.close()

    answer, still_up = asyncio.run(scenario())
    assert answer == "refused: only the upstream's side may cut or restore this link"
    assert still_up


def _rtt(sock: socket.socket) -> float:
    """Seconds for one byte to go to the echo server and back."""
    start = time.perf_counter()
    sock.sendall(b"x")
    assert _recv_exactly(sock, 1) == b"x"
    return time.perf_counter() - start


def test_loss_delays_every_chunk_of_a_perfect_link_by_a_timeout_until_loss_off() -> None:
    """A flaky round on a relay that takes commands: its perfect directions are scheduled,
    so a `loss 100` reaches an open connection and a new one, both ways: each byte's round
    trip then costs two RTOs of 200 ms; `loss off` makes it prompt again."""
    listen, upstream, control = _free_port(), _free_port(), _free_port()
    outage = link.Outage()
    with _in_a_thread(link.relay(listen, ("127.0.0.1", upstream), Link(PERFECT, PERFECT), 0,
                                 asyncio.Event(), probe_s=0.05, outage=outage)) as loop:
        commands = asyncio.run_coroutine_threadsafe(
            link.start_control(control, ("127.0.0.1", upstream), outage), loop).result(5)
        with _server(_echo, port=upstream):
            assert _until(lambda: not _refused(listen)), "the relay never listened"
            with _connect(listen) as before:
                _rtt(before)  # connected upstream
                assert _rtt(before) < 0.15
                assert _command(control, "loss 100") == "ok loss 100"
                lossy = [_rtt(before) for _ in range(3)]
                with _connect(listen) as new:
                    lossy += [_rtt(new) for _ in range(3)]
                assert min(lossy) >= 0.39 and max(lossy) < 1.5, lossy
                assert _command(control, "loss off") == "ok loss off"
                steady = [_rtt(before) for _ in range(5)]
                assert statistics.median(steady) < 0.15, steady
                assert _command(control, "loss 0.5") == "ok loss 0.5"
            assert outage.loss_pct == 0.5 and outage.up.is_set()
            assert _until(lambda: not outage.open), "a connection outlived its client"
        loop.call_soon_threadsafe(commands.close)


@pytest.mark.parametrize("word", [
    "loss", "loss 0", "loss -5", "loss 100.5", "loss nan", "loss inf", "loss abc",
    "loss 20 30", "loss OFF", "loss 20%"])
def test_a_bad_loss_is_refused_and_changes_nothing(word: str) -> None:
    upstream, control = _free_port(), _free_port()

    async def scenario() -> tuple[str, str, float]:
        outage = link.Outage()
        server = await link.start_control(control, ("127.0.0.1", upstream), outage)
        try:
            good = await asyncio.to_thread(_command, control, "loss 20")
            bad = await asyncio.to_thread(_command, control, word)
            return good, bad, outage.loss_pct
        finally:
            server.close()

    good, bad, pct = asyncio.run(scenario())
    assert good == "ok loss 20"
    assert bad == f"refused: {word!r}: loss takes a percent above 0 and at most 100, or off"
    assert pct == 20


def test_only_the_upstreams_side_may_add_loss() -> None:
    upstream, control = _free_port(), _free_port()

    async def scenario() -> tuple[str, str, float]:
        outage = link.Outage()
        server = await link.start_control(control, ("127.0.0.1", upstream), outage)
        try:
            node_side = await asyncio.to_thread(_command, control, "loss 50", "127.0.0.2")
            ours = await asyncio.to_thread(_command, control, "loss off")
            return node_side, ours, outage.loss_pct
        finally:
            server.close()

    node_side, ours, pct = asyncio.run(scenario())
    assert node_side == "refused: only the upstream's side may cut or restore this link"
    assert ours == "ok loss off" and pct == 0


def _ended(sock: socket.socket) -> bool:
    sock.settimeout(0.1)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True
