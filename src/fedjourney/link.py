"""A centre's network link, emulated by a relay between its node and the researcher.

The node dials `researcher:50051`, which is this relay; the relay connects to the real
researcher and forwards both directions, delaying, rate-limiting and "losing" data as the
centre's link profile says. It sees bytes only: Fed-BioMed's gRPC TLS passes through
untouched. It needs no `netem` and no NET_ADMIN, since it shapes a TCP stream, not packets.

The model, per connection: two independent pumps, client -> upstream shaped by `link.up`
(the node's upload: its model updates) and upstream -> client by `link.down` (the global
model). A pump reads chunks (at most 16 KiB when its direction has a rate, else 64 KiB) and
gives each a release time:

- rate: chunks are serialised at `rate_mbit` megabits (1e6 bits) per second,
  `sent = max(arrival, previous sent) + 8 * bytes / (rate_mbit * 1e6)`: a token bucket
  with no burst beyond one chunk;
- latency and jitter: `release = sent + (latency_ms + u) / 1000`, with u uniform in
  [-jitter_ms, +jitter_ms] and the delay never below 0; a chunk is never released before
  the previous one, so jitter never reorders (TCP delivers in order);
- loss: with probability `loss_pct / 100` a chunk is held for one retransmission timeout
  more, RTO = 0.2 s + 2 * latency_ms / 1000 of that direction (Linux's minimum RTO is
  200 ms). Over TCP a lost segment is retransmitted, and that delay (with the chunks
  behind it waiting, in order) is what the application sees. This is a model of what loss
  costs a TCP stream, not packet loss: `loss_pct=100` delays every chunk by an RTO, it
  does not cut the link.

A writer task sleeps until each chunk's release time and writes it. The pump stops reading
while more than `queue_limit(direction)` bytes wait (4 bandwidth-delay products, at least
256 KiB, at most 64 MiB), so memory stays bounded and backpressure reaches the sender
through TCP. At end of stream the queued data is delivered, then the other side is
half-closed; when both directions are done the connection closes. A socket error on
either side closes both. A perfect direction is a plain copy, with no scheduling at all,
so an all-perfect link costs only the extra hop; except on a relay that takes commands
(below), whose every direction is scheduled, since a `loss` may come at any time. A delay
is kept to within about 1 ms (asyncio's timers wake up to a millisecond late, never
early).

Randomness: each direction of each connection has its own `random.Random`, seeded from
(seed, connection number, direction), so the same seed gives the same delays and losses
for the same chunks. How a stream splits into chunks depends on the sender's timing, so
two runs match exactly only when their chunks do.

Outages and flaky rounds (a centre's scheduled `down` and `flaky`, schedule.py): with
`--control PORT` the relay takes one-line commands on that port, one a connection, from its
upstream's side only (a connection that came in on the address the relay has towards the
upstream: the node cannot cut, restore or degrade its own link). Each is answered in one
line, `ok <the command>`, or `refused: <why>` (and then changes nothing):

- `down` (`ok down`) ends every open connection and holds new ones, unanswered, as an
  outage would; `up` (`ok up`) lets the held ones through.
- `loss PCT` (`ok loss PCT`, 0 < PCT <= 100, PCT as sent) adds PCT percent of loss to
  every chunk read from then on, in both directions of every connection, open or new;
  `loss off` (`ok loss off`) takes it away (chunks already queued keep their times). The
  added loss and a direction's own combine as two independent losses on one path,
  `1 - (1 - own/100) * (1 - PCT/100)`: a chunk gets through on time only if neither
  loses it (so the event is "on top of" the link's own loss, as schedule.py says, rather
  than hidden under a larger one as a max would). A lost chunk is held one RTO more, as
  above, whichever loss took it. Each chunk's draw is made whatever the loss, so which
  chunks a loss takes still follows from the seed.

The researcher sends them, since it alone knows the rounds.

Run one relay per centre: `python3 -m fedjourney.link --listen 50051 --connect
researcher:50051 --up rate_mbit=10,latency_ms=20 --down latency_ms=20 --seed 1 --label
"link node-1"`. SIGTERM or SIGINT stops it at once, with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import random
import signal
import socket
import struct
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields

log = logging.getLogger("fedjourney.link")
PROBE_S = 0.5  # how often `relay` checks that the upstream answers
# Unanswered probes in a row after which the relay stops listening: at once, since a
# connection it accepts with no upstream gets a reset, which Fed-BioMed's client dies of,
# while one refused by a needless pause is retried. And after which the upstream has left.
PAUSING = 1
LEAVING = 3

PERFECT_CHUNK = 64 * 1024
SHAPED_CHUNK = 16 * 1024
MIN_QUEUE = 256 * 1024
MAX_QUEUE = 64 * 1024 * 1024
# The rate an unlimited direction is sized for when it has latency: its queue then holds
# 4 x (1 Gbit/s x delay), so the queue caps it near 4 Gbit/s rather than at 256 KiB/delay.
UNLIMITED_SIZING_MBIT = 1000.0
MIN_RTO_S = 0.2  # Linux's TCP_RTO_MIN

# field: (lowest, highest, whether the lowest itself is allowed)
_BOUNDS = {
    "rate_mbit": (0.0, 100_000.0, False),
    "latency_ms": (0.0, 60_000.0, True),
    "jitter_ms": (0.0, 60_000.0, True),
    "loss_pct": (0.0, 100.0, True),
}


@dataclass(frozen=True)
class Direction:
    """One direction of a link: None/0 = perfect.

    rate_mbit: megabits (1e6 bits) per second, None for unlimited; latency_ms: added
    one-way delay; jitter_ms: each chunk's delay varies by up to +/- this (uniform), never
    below 0, order kept; loss_pct: percent of chunks held one retransmission timeout more.
    Out-of-range values raise ValueError: rate in (0, 100000], latency and jitter in
    [0, 60000], loss in [0, 100].
    """

    rate_mbit: float | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0

    def __post_init__(self) -> None:
        for name, (low, high, low_ok) in _BOUNDS.items():
            value = getattr(self, name)
            if value is None and name == "rate_mbit":
                continue
            # Written so that NaN fails too.
            if not ((low <= value if low_ok else low < value) and value <= high):
                above = f"at least {low:g}" if low_ok else f"above {low:g}"
                raise ValueError(f"{name} must be {above} and at most {high:g}, not {value}")

    @property
    def perfect(self) -> bool:
        """No rate limit, delay, jitter or loss: the relay copies this direction as is."""
        return self == Direction()

    def describe(self) -> str:
        """E.g. "10 Mbit/s, 20 ms ± 5 ms, 1% loss" or "unlimited, no delay"."""
        parts = ["unlimited" if self.rate_mbit is None else f"{self.rate_mbit:g} Mbit/s"]
        if self.latency_ms or self.jitter_ms:
            jitter = f" ± {self.jitter_ms:g} ms" if self.jitter_ms else ""
            parts.append(f"{self.latency_ms:g} ms{jitter}")
        elif not self.loss_pct:
            parts.append("no delay")
        if self.loss_pct:
            parts.append(f"{self.loss_pct:g}% loss")
        return ", ".join(parts)

    def spec(self) -> str:
        """The command line's SPEC for this direction ("" when perfect): parse_direction's
        inverse."""
        default = Direction()
        return ",".join(
            f"{f.name}={_number(getattr(self, f.name))}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        )


def _number(value: float) -> str:
    """The shortest text that reads back as value: "10", "0.5", "12.345678"."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


@dataclass(frozen=True)
class Link:
    """A centre's link: `up` node -> researcher (its model updates), `down` researcher ->
    node (the global model)."""

    up: Direction
    down: Direction

    def describe(self) -> str:
        """E.g. "up 10 Mbit/s, 20 ms; down unlimited, no delay"."""
        return f"up {self.up.describe()}; down {self.down.describe()}"


class Schedule:
    """The release times of one direction's chunks (the module docstring's model), as a
    pure computation: times are in seconds on any monotonic clock."""

    def __init__(self, direction: Direction, rng: random.Random,
                 loss: Callable[[], float] | None = None) -> None:
        """`loss`, when given, is read at each chunk: the percent of loss commanded now
        (`loss PCT`, 0 when off), combined with the direction's own."""
        self.direction = direction
        self._rng = rng
        self._loss = loss
        self._sent = float("-inf")
        self._released = float("-inf")

    def release(self, now: float, nbytes: int) -> float:
        """When a chunk of nbytes that arrived at `now` may be delivered."""
        d = self.direction
        sent = now
        if d.rate_mbit is not None:
            sent = max(now, self._sent) + 8 * nbytes / (d.rate_mbit * 1e6)
            self._sent = sent
        # Both draws are made whatever the settings, so that changing the jitter does not
        # change which chunks are lost, and the reverse.
        lost = self._rng.random() * 100 < combined_loss(d.loss_pct,
                                                        self._loss() if self._loss else 0.0)
        delay_ms = max(0.0, d.latency_ms + self._rng.uniform(-d.jitter_ms, d.jitter_ms))
        if lost:
            delay_ms += 1000 * MIN_RTO_S + 2 * d.latency_ms
        self._released = max(self._released, sent + delay_ms / 1000)
        return self._released


def combined_loss(own_pct: float, added_pct: float) -> float:
    """The loss percent of a direction with its own loss and an added one (`loss PCT`),
    taken as independent: `100 - (100 - own) * (100 - added) / 100`; exactly `own` when
    nothing is added."""
    if not added_pct:
        return own_pct
    return 100 - (100 - own_pct) * (100 - added_pct) / 100


def queue_limit(direction: Direction) -> int:
    """Bytes a pump holds before it stops reading: 4 bandwidth-delay products, within
    [256 KiB, 64 MiB]; an unlimited direction is sized as 1 Gbit/s."""
    mbit = UNLIMITED_SIZING_MBIT if direction.rate_mbit is None else direction.rate_mbit
    bdp = mbit * 1e6 / 8 * (direction.latency_ms + direction.jitter_ms) / 1000
    return int(min(MAX_QUEUE, max(MIN_QUEUE, 4 * bdp)))


async def _copy(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, moved: dict[str, int], name: str
) -> None:
    """A perfect direction: copy until end of stream, then half-close."""
    while data := await reader.read(PERFECT_CHUNK):
        writer.write(data)
        await writer.drain()
        moved[name] += len(data)
    if writer.can_write_eof():
        writer.write_eof()


async def _shape(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    schedule: Schedule,
    moved: dict[str, int],
    name: str,
) -> None:
    """A shaped direction: read and schedule chunks, deliver each at its release time,
    then half-close."""
    loop = asyncio.get_running_loop()
    chunk = PERFECT_CHUNK if schedule.direction.rate_mbit is None else SHAPED_CHUNK
    limit = queue_limit(schedule.direction)
    queue: deque[tuple[float, bytes]] = deque()
    queued = 0
    room = asyncio.Event()  # set while queued <= limit
    room.set()
    waiting = asyncio.Event()  # set while the queue is not empty, or at end of stream
    ended = False

    async def read() -> None:
        nonlocal queued, ended
        while True:
            await room.wait()
            data = await reader.read(chunk)
            if not data:
                break
            queue.append((schedule.release(loop.time(), len(data)), data))
            queued += len(data)
            if queued > limit:
                room.clear()
            waiting.set()
        ended = True
        waiting.set()

    async def deliver() -> None:
        nonlocal queued
        while True:
            await waiting.wait()
            if not queue:
                if ended:
                    break
                waiting.clear()
                continue
            release, data = queue.popleft()
            delay = release - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
            moved[name] += len(data)
            queued -= len(data)
            if queued <= limit:
                room.set()
        if writer.can_write_eof():
            writer.write_eof()

    async with asyncio.TaskGroup() as pump:
        pump.create_task(read())
        pump.create_task(deliver())


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset, as a refused or failed connection looks to its peer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _first(error: BaseException) -> str:
    """The name of the first exception in a (nested) exception group."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return type(error).__name__


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Outage:
    """What the control port's commands set (start_control): whether the link is cut, the
    open connections a cut ends, and the loss added to every chunk (`loss`, 0 when off). A
    relay given one schedules every direction, perfect or not, so that an added loss
    reaches them all."""

    def __init__(self) -> None:
        self.up = asyncio.Event()
        self.up.set()
        self.open: set[asyncio.StreamWriter] = set()
        self.loss_pct = 0.0
        # This host's address towards the upstream, once known: where commands may come in.
        self.towards: str | None = None

    def cut(self) -> None:
        self.up.clear()
        for writer in list(self.open):
            writer.transport.abort()

    def restore(self) -> None:
        self.up.set()


async def _connection(
    number: int,
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
    upstream: tuple[str, int],
    link: Link,
    seed: int,
    outage: Outage | None = None,
) -> None:
    """Relay one client's connection through link, logging its opening and closing; while
    `outage` is cut, held unanswered, and ended by a cut once open; with `outage`, every
    direction scheduled, its loss added."""
    peer = _address(*client_w.get_extra_info("peername")[:2])
    if outage is not None and not outage.up.is_set():
        log.info("connection %d from %s held: the link is down", number, peer)
        await outage.up.wait()
        if client_r.at_eof():
            client_w.close()  # it gave up while the link was down
            return
    try:
        upstream_r, upstream_w = await asyncio.open_connection(*upstream)
    except OSError as exc:  # refused, unreachable or unresolvable (gaierror)
        log.warning(
            "connection %d from %s: cannot reach %s (%s); closed it",
            number, peer, _address(*upstream), exc,
        )
        _reset(client_w)
        return
    log.info("connection %d from %s opened", number, peer)
    if outage is not None:
        outage.open.update((client_w, upstream_w))
    opened = asyncio.get_running_loop().time()
    moved = {"up": 0, "down": 0}
    loss = (lambda: outage.loss_pct) if outage is not None else None
    outcome = " as the relay stopped"  # unless the pumps finish or fail
    try:
        async with asyncio.TaskGroup() as pumps:
            for name, src, dst, direction in (
                ("up", client_r, upstream_w, link.up),
                ("down", upstream_r, client_w, link.down),
            ):
                if direction.perfect and outage is None:
                    pumps.create_task(_copy(src, dst, moved, name))
                else:
                    rng = random.Random(f"{seed}/{number}/{name}")
                    schedule = Schedule(direction, rng, loss)
                    pumps.create_task(_shape(src, dst, schedule, moved, name))
        outcome = ""
    except* OSError as errors:  # a reset, a broken pipe: either side's
        outcome = f" by {_first(errors)}"
    except* Exception:
        outcome = " by an unexpected error"
        raise
    finally:
        if outage is not None:
            outage.open.difference_update((client_w, upstream_w))
            if not outage.up.is_set():
                outcome = " by the link going down"
        for writer in (client_w, upstream_w):
            if outcome:
                writer.transport.abort()
            writer.close()
        log.info(
            "connection %d closed%s after %.1f s: %d bytes up, %d bytes down",
            number, outcome, asyncio.get_running_loop().time() - opened,
            moved["up"], moved["down"],
        )


async def start_relay(
    listen_port: int,
    upstream: tuple[str, int],
    link: Link,
    seed: int,
    host: str = "0.0.0.0",
    outage: Outage | None = None,
) -> asyncio.Server:
    """Listen on host:listen_port (0: any free port, read it from the returned server's
    `sockets[0].getsockname()[1]`) and relay each connection to upstream through `link`;
    the server serves until closed."""
    numbers = itertools.count(1)

    async def connection(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            await _connection(next(numbers), client_r, client_w, upstream, link, seed,
                              outage)
        except asyncio.CancelledError:
            # The relay is stopping. This task ends normally rather than cancelled, since
            # Python 3.11's start_server logs a cancelled handler as an error, traceback and all.
            client_w.transport.abort()

    server = await asyncio.start_server(connection, host, listen_port)
    port = server.sockets[0].getsockname()[1]
    log.info("emulating %s; forwarding :%d to %s", link.describe(), port, _address(*upstream))
    return server


async def relay(
    listen_port: int,
    upstream: tuple[str, int],
    link: Link,
    seed: int,
    ready: asyncio.Event | None = None,
    probe_s: float = PROBE_S,
    keep: bool = True,
    outage: Outage | None = None,
) -> None:
    """Serve on 0.0.0.0:listen_port (start_relay's server) while the upstream accepts
    connections, and not while it does not: a client then meets a refused connection, as
    it would without the relay. (Fed-BioMed's client checks that a TCP connection opens
    before it fetches the server's certificate, and dies of a reset there.) The upstream is
    probed every `probe_s`; open connections outlive a pause. `ready` is set once it first
    listens. Unless `keep`, it returns once the upstream, having answered, has not for
    LEAVING probes in a row: the researcher has left, the run is over (as its node does).
    To learn the port chosen for listen_port 0, use start_relay instead."""
    server: asyncio.Server | None = None
    silent = 0  # probes in a row the upstream did not answer since it last did
    try:
        while True:
            answers = await _answers(upstream, probe_s)
            silent = 0 if answers else silent + 1
            if not keep and ready is not None and ready.is_set() and silent >= LEAVING:
                log.info("%s has left: the run is over; stopping (FEDJOURNEY_KEEP=1 keeps "
                         "the relay)", _address(*upstream))
                return
            if answers and outage is not None and outage.towards is None:
                outage.towards = await _towards(upstream)  # it resolves now
            if answers and server is None:
                server = await start_relay(listen_port, upstream, link, seed,
                                           outage=outage)
                if ready is not None:
                    ready.set()
            elif silent >= PAUSING and server is not None:
                server.close()  # no more accepts; the connections it has go on
                server = None
                log.info("%s does not answer: not listening until it does", _address(*upstream))
            await asyncio.sleep(probe_s)
    finally:
        if server is not None:
            server.close()


async def start_control(port: int, upstream: tuple[str, int], outage: Outage
                        ) -> asyncio.Server:
    """Serve `down`, `up`, `loss PCT` and `loss off` on port (0: any free one), one command
    a connection, each answered `ok <command>` (the module docstring), from connections
    that came in on the address this host has towards `upstream`; any other, or a bad
    percent, is refused in one line and changes nothing."""

    async def command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                line = (await reader.readline()).decode(errors="replace")
            word = line.strip()
            here = writer.get_extra_info("sockname")[0]
            if outage.towards is None:  # the network's address does not change: once
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        outage.towards = await _towards(upstream)
            parts = word.split()
            done = ""  # what an accepted command did, for the log
            if here != outage.towards:
                answer = "refused: only the upstream's side may cut or restore this link"
            elif word == "down":
                outage.cut()
                answer, done = "ok down", "link down (open connections ended, new ones held)"
            elif word == "up":
                outage.restore()
                answer, done = "ok up", "link up"
            elif parts[:1] == ["loss"]:
                pct = _loss_command(parts[1:])
                if pct is None:
                    answer = (f"refused: {word[:40]!r}: loss takes a percent above 0 and at "
                              "most 100, or off")
                else:
                    outage.loss_pct = pct
                    answer = f"ok loss {parts[1]}"
                    done = (f"link loss {pct:g}% added to every chunk, both directions" if pct
                            else "link loss off: each direction's own loss only")
            else:
                answer = (f"refused: {word[:40]!r} is not a command; send down, up, loss PCT "
                          "or loss off")
            log.info("control from %s: %s", _address(*writer.get_extra_info("peername")[:2]),
                     done or answer)
            writer.write(f"{answer}\n".encode())
            await writer.drain()
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(command, "0.0.0.0", port)


def _loss_command(args: list[str]) -> float | None:
    """The loss percent `loss` sets from its arguments ("off": 0), None when they are not
    one percent above 0 and at most 100, or "off"."""
    if args == ["off"]:
        return 0.0
    if len(args) != 1:
        return None
    try:
        pct = float(args[0])
    except ValueError:
        return None
    return pct if 0 < pct <= 100 else None  # NaN fails too


async def _towards(upstream: tuple[str, int]) -> str | None:
    """The local address this host sends from to reach upstream (None: not resolvable)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            upstream[0], upstream[1], family=socket.AF_INET, type=socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(infos[0][4])  # UDP: no packet is sent, the route is chosen
            return str(probe.getsockname()[0])
    except OSError:
        return None


async def _answers(upstream: tuple[str, int], timeout: float) -> bool:
    """Whether a TCP connection to upstream opens within `timeout` seconds."""
    try:
        # Not wait_for: in 3.11 it can swallow a cancellation that meets the connection
        # opening, and the relay would not stop.
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(*upstream)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True


@dataclass(frozen=True)
class Options:
    """The command line, parsed."""

    listen: int
    upstream: tuple[str, int]
    link: Link
    seed: int
    label: str
    keep: bool = True
    control: int | None = None


def parse_direction(spec: str) -> Direction:
    """A Direction from "rate_mbit=10,latency_ms=20,jitter_ms=5,loss_pct=1" (any subset;
    "" is perfect); ValueError says what is wrong and what is expected."""
    names = [f.name for f in fields(Direction)]
    values: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, eq, text = item.partition("=")
        name = name.strip()
        if not eq or name not in names:
            raise ValueError(f"{item!r} is not KEY=NUMBER with KEY one of {', '.join(names)}")
        if name in values:
            raise ValueError(f"{name} is given twice")
        try:
            values[name] = float(text)
        except ValueError:
            raise ValueError(f"{name}={text.strip()} is not a number, e.g. {name}=10") from None
    return Direction(**values)


def _port(text: str, lowest: int = 1) -> int:
    if not text.isdigit() or not lowest <= int(text) <= 65535:
        raise ValueError(f"{text!r} is not a port number ({lowest} to 65535)")
    return int(text)


def parse_args(argv: list[str] | None = None) -> Options:
    """The command line's options; a bad one exits with status 2 and one line naming it."""

    def direction(text: str) -> Direction:
        try:
            return parse_direction(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def listen(text: str) -> int:
        try:
            return _port(text, lowest=0)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{exc}; 0 picks a free one") from None

    def endpoint(text: str) -> tuple[str, int]:
        host, colon, port = text.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        try:
            if not colon or not host:
                raise ValueError(f"{text!r} is not HOST:PORT, e.g. researcher:50051")
            return host, _port(port)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    spec_help = "rate_mbit=10,latency_ms=20,jitter_ms=5,loss_pct=1 (any subset; '' = perfect)"
    parser = argparse.ArgumentParser(
        prog="python3 -m fedjourney.link",
        description="Relay TCP connections through an emulated network link.",
    )
    parser.add_argument("--listen", type=listen, required=True, metavar="PORT")
    parser.add_argument("--connect", type=endpoint, required=True, metavar="HOST:PORT")
    parser.add_argument("--up", type=direction, default=Direction(), metavar="SPEC",
                        help=f"node -> researcher: {spec_help}")
    parser.add_argument("--down", type=direction, default=Direction(), metavar="SPEC",
                        help="researcher -> node, as --up")
    parser.add_argument("--seed", type=int, default=0, metavar="N")
    parser.add_argument("--label", default="link", metavar="TEXT",
                        help="the name in each log line, e.g. 'link node-1 CHU de Lyon'")
    parser.add_argument("--keep", choices=("0", "1"), default="1",
                        help="0: stop once the upstream has answered and then left (the "
                             "run is over); 1 (default): wait for it to answer again")
    parser.add_argument("--control", type=listen, metavar="PORT",
                        help="take `down`, `up`, `loss PCT` and `loss off` on this port, "
                             "from the upstream's side")
    args = parser.parse_args(argv)
    return Options(args.listen, args.connect, Link(args.up, args.down), args.seed, args.label,
                   args.keep == "1", args.control)


async def _serve(options: Options) -> None:
    """Relay until SIGTERM or SIGINT, or (unless kept) until the upstream has left."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Only a relay that takes commands has an Outage: it schedules every direction.
    outage = Outage() if options.control is not None else None
    control = (await start_control(options.control, options.upstream, outage)
               if outage is not None and options.control is not None else None)
    serving = asyncio.create_task(relay(options.listen, options.upstream, options.link,
                                        options.seed, asyncio.Event(), keep=options.keep,
                                        outage=outage))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if control is not None:
        control.close()
    if serving.done():
        serving.result()  # it could not listen: raise why; or the upstream has left
        return
    # asyncio.run then cancels the open connections, which reset both their sides.
    serving.cancel()
    log.info("stopped by a signal")


def main(argv: list[str] | None = None) -> int:
    """`python3 -m fedjourney.link`: 0 when stopped by a signal, 1 when it cannot listen,
    2 for a bad argument."""
    options = parse_args(argv)
    label = options.label.replace("%", "%%")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s [{label}] %(message)s")
    try:
        asyncio.run(_serve(options))
    except OSError as exc:
        log.error("cannot listen on :%d: %s", options.listen, exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
