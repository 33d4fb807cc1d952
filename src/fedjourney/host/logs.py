"""`fedjourney logs`: the story lines of the stack's containers, or of a role's log file,
filtered by run, round and time, or merged into one timeline ordered by time."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fedjourney.contract import story_log
from fedjourney.errors import FedjourneyError
from fedjourney.settings import COMPOSE
from fedjourney.story import StoryRecord, parse

_SINCE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


COMPOSE_COMMANDS = ("docker compose", "docker-compose")  # v2 first, then 1.29


def _answers(command: list[str]) -> bool:
    """`docker compose version` succeeds; for docker-compose, being on PATH is enough."""
    if shutil.which(command[0]) is None:
        return False
    if len(command) == 1:
        return True
    probe = subprocess.run([*command, "version"], capture_output=True, check=False)
    return probe.returncode == 0


def compose_command() -> list[str]:
    """The Compose command that $FEDJOURNEY_COMPOSE names ("docker compose" or
    "docker-compose"), else `docker compose` (v2) when it answers, else `docker-compose`
    (1.29). The one Compose detection: fedjourney run, logs and the tests use it."""
    forced = " ".join(os.environ.get(COMPOSE.env, "").split())
    if forced:
        if forced not in COMPOSE_COMMANDS:
            raise FedjourneyError(f"{COMPOSE.env}={forced!r}: use 'docker compose' (v2) or "
                                  f"'docker-compose' (1.29), or unset it")
        if not _answers(forced.split()):
            raise FedjourneyError(f"{COMPOSE.env}={forced!r} but `{forced} version` fails: "
                                  f"install it (scripts/ensure-docker, as root) or unset "
                                  f"{COMPOSE.env}")
        return forced.split()
    for candidate in COMPOSE_COMMANDS:
        if _answers(candidate.split()):
            return candidate.split()
    raise FedjourneyError("neither `docker compose` nor `docker-compose` is installed; "
                          "run scripts/ensure-docker or install Docker Compose")


@dataclass(frozen=True)
class Filters:
    """Which story lines to keep."""

    service: str | None = None
    run: str | None = None
    round: int | None = None
    since: str | None = None  # "10m", "2h", or an ISO time (UTC)

    def cutoff(self, now: dt.datetime | None = None) -> str | None:
        """The earliest story time to keep, as text comparable with story times."""
        if self.since is None:
            return None
        m = _SINCE.match(self.since)
        if m:
            start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(
                seconds=int(m[1]) * _UNITS[m[2]])
        else:
            try:
                start = dt.datetime.fromisoformat(self.since.replace("Z", "+00:00"))
            except ValueError:
                raise FedjourneyError(f"--since {self.since!r}: use 30s, 10m, 2h, 1d or an "
                                      "ISO time such as 2026-11-28T10:00:00Z") from None
            if start.tzinfo is None:
                start = start.replace(tzinfo=dt.UTC)
        return start.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")

    def keep(self, record: StoryRecord, cutoff: str | None) -> bool:
        if self.service is not None and record.service != self.service:
            return False
        if self.run is not None and record.run != self.run:
            return False
        if self.round is not None and record.round != str(self.round):
            return False
        return cutoff is None or record.time >= cutoff


def select(lines: Iterable[str], filters: Filters) -> Iterator[StoryRecord]:
    """The story records among lines (compose output or log file) that pass the filters."""
    cutoff = filters.cutoff()
    for line in lines:
        record = parse(line)
        if record is not None and filters.keep(record, cutoff):
            yield record


def timeline(records: Iterable[StoryRecord]) -> list[StoryRecord]:
    """Every role's records in one list ordered by time (stable for equal times)."""
    return sorted(records, key=lambda r: r.time)


def compose_lines(compose: list[str], service: str | None, follow: bool) -> Iterator[str]:
    """Lines of `compose logs` for one service or all; an error when no stack is there."""
    ps = subprocess.run([*compose, "ps", "-a", "-q"], capture_output=True, text=True,
                        check=False)
    if ps.returncode != 0:
        last = (ps.stderr.strip().splitlines() or ["no output"])[-1]
        raise FedjourneyError(f"`{' '.join(compose)} ps` failed: {last}")
    if not ps.stdout.split():
        raise FedjourneyError("no fedjourney containers here: start the stack with "
                              "`docker compose up` or scripts/run (or pass -f/-p for another "
                              "compose project)")
    cmd = [*compose, "logs", "--no-color", *(["--follow"] if follow else []),
           *([service] if service else [])]
    # One pipe: compose's own messages are not story lines, and two pipes could fill up.
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace") as proc:
        assert proc.stdout is not None
        yield from proc.stdout
    if proc.returncode not in (0, None, -2) and not follow:
        raise FedjourneyError(f"`{' '.join(cmd)}` failed with status {proc.returncode}")


def file_lines(path: Path) -> Iterator[str]:
    """A role's own story log (e.g. copied from its state volume)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            yield from fh
    except FileNotFoundError:
        raise FedjourneyError(f"{path}: no such log file; a node keeps its story in its "
                              f"state volume at {story_log('node')}") from None


def describe(filters: Filters) -> str:
    parts = [f"{k} {v}" for k, v in (("service", filters.service), ("run", filters.run),
                                     ("round", filters.round), ("since", filters.since))
             if v is not None]
    return ", ".join(parts) or "no filter"

