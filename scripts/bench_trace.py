"""Trace benchmark: where the seconds of one attached `docker compose up` go, from nothing to
results on the host, as a timeline (t = 0 at `up`).

Measured without disturbing what it measures: each container's start and exit as the
engine recorded them (`docker inspect`) and the roles' story lines, whose timestamps the
roles write themselves (`compose logs`), both read once `up` returned. Nothing polls.

Prints the milestones and each container's life, and writes the picture as an SVG beside
the run's results (results/trace-<id>.svg) and its data as JSON: docs/benchmarks.md shows one.
Runs the repository's docker-compose.yml (the default federation) as its own compose project.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from bench_stack import compose, story_lines, story_time

from fedjourney import settings
from fedjourney.contract import new_run_id

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "fjtrace"

# Story lines worth a mark on the timeline: (what the line says, the mark's label). The
# first line of a service that matches names the mark; a node's marks carry its service.
MILESTONES = (
    ("data checked", "data checked"),
    ("start-up took", "started"),
    ("connected to the researcher", "connected"),
    ("experiment ", "imports done"),
    ("nodes answered", "all nodes found"),
    ("round 1/", "round 1"),
    ("results written", "results written"),
    ("copied to the host", "copied"),
    ("the researcher has left", "leaving"),
)


@dataclass
class Life:
    """One container's life on the timeline, in seconds from `up`."""

    service: str
    started: float | None = None
    exited: float | None = None


@dataclass
class Mark:
    service: str
    label: str
    at: float
    message: str


def lives(since: float) -> list[Life]:
    """Each of the project's containers' start and exit, in seconds from `since`, as the
    engine recorded them (State.StartedAt and FinishedAt, read once after `up` returned)."""
    ids = compose("ps", "-a", "-q", project=PROJECT).stdout.split()
    found = json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True,
                                      text=True, check=True, timeout=60).stdout)
    out = []
    for container in found:
        state = container["State"]
        out.append(Life(container["Config"]["Labels"]["com.docker.compose.service"],
                        _stamp(state["StartedAt"], since), _stamp(state["FinishedAt"], since)))
    return sorted(out, key=lambda life: (life.started or 0, life.service))


def _stamp(value: str, zero: float) -> float | None:
    """Docker's RFC 3339 time with nanoseconds, in seconds from zero (None: never)."""
    if value.startswith("0001-"):
        return None
    seconds, _, rest = value.rstrip("Z").partition(".")
    fraction = float("0." + rest) if rest else 0.0
    return dt.datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=dt.UTC).timestamp() + fraction - zero


def story(zero: float) -> list[Mark]:
    """Every role's story lines, in seconds from `zero`, in time order."""
    return sorted((Mark(r.service, "", story_time(r.time) - zero, r.message)
                   for r in story_lines(project=PROJECT)), key=lambda m: m.at)


def marks(lines: list[Mark]) -> list[Mark]:
    """The milestones among the story lines, first occurrence per service."""
    seen: set[tuple[str, str]] = set()
    out = []
    for record in lines:
        for text, label in MILESTONES:
            if text in record.message and (record.service, label) not in seen:
                seen.add((record.service, label))
                out.append(Mark(record.service, label, record.at, record.message))
    return out


def svg(lives_: list[Life], marks_: list[Mark], returned: float) -> str:
    """The timeline: one bar per container (start to exit), its milestones as ticks, and
    the moment `up` returned."""
    left, row, scale = 150, 34, 40.0  # pixels: labels, per container, per second
    width = left + int(returned * scale) + 60
    height = row * (len(lives_) + 2) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>']
    for second in range(int(returned) + 1):
        x = left + second * scale
        parts.append(f'<line x1="{x}" y1="14" x2="{x}" y2="{height - 20}" stroke="#eee"/>')
        if second % 2 == 0:
            parts.append(f'<text x="{x}" y="{height - 6}" text-anchor="middle">{second}s</text>')
    for i, life in enumerate(lives_):
        y = 20 + i * row
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">'
                     f'{escape(life.service)}</text>')
        start, end = life.started or 0.0, life.exited if life.exited is not None else returned
        parts.append(f'<rect x="{left + start * scale:.1f}" y="{y + 3}" '
                     f'width="{max((end - start) * scale, 1):.1f}" height="{row - 8}" '
                     'fill="#cfe0f5" stroke="#5b8bc9"/>')
        free = [0.0, 0.0]  # where each of the bar's two label lines is free again
        for mark in sorted((m for m in marks_ if m.service == life.service),
                           key=lambda m: m.at):
            x = left + mark.at * scale
            line = 0 if x + 3 >= free[0] else 1  # close marks: the second line
            free[line] = x + 3 + 5 * len(mark.label)  # about 5 px a character at 9 px
            parts.append(f'<line x1="{x:.1f}" y1="{y + 1}" x2="{x:.1f}" y2="{y + row - 3}" '
                         'stroke="#c0392b" stroke-width="2"/>')
            parts.append(f'<text x="{x + 3:.1f}" y="{y + 12 + 11 * line}" font-size="9">'
                         f'{escape(mark.label)}</text>')
    x = left + returned * scale
    parts.append(f'<line x1="{x:.1f}" y1="10" x2="{x:.1f}" y2="{height - 20}" '
                 'stroke="black" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{x - 3:.1f}" y="{height - 20}" text-anchor="end">up returned '
                 f'{returned:.1f}s</text>')
    return "\n".join([*parts, "</svg>"]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="print every story line too")
    parser.add_argument("--redraw", type=Path, metavar="JSON",
                        help="draw a trace this script wrote again (its SVG beside it), "
                             "running nothing")
    args = parser.parse_args()
    if args.redraw is not None:
        saved = json.loads(args.redraw.read_text())
        lines = [Mark(**m) for m in saved["story"]]
        drawn = args.redraw.with_suffix(".svg")
        drawn.write_text(svg([Life(**c) for c in saved["containers"]], marks(lines),
                             saved["returned_s"]))
        print(f"wrote {drawn}")
        return 0
    (ROOT / "results").mkdir(exist_ok=True)
    compose("down", "-v", project=PROJECT)
    run_id = f"trace-{new_run_id()}"
    zero = time.time()
    compose("up", project=PROJECT, env={settings.RUN_ID.env: run_id, settings.KEEP.env: "0"})
    returned = time.time() - zero
    if not (ROOT / "results" / run_id).is_dir():
        print(f"no results for {run_id}: see `docker compose -p {PROJECT} logs`")
        return 1
    lives_ = lives(zero)
    lines = story(zero)
    marks_ = marks(lines)
    compose("down", "-v", project=PROJECT)
    if args.all:
        for line in lines:
            print(f"{line.at:7.2f}  {line.service:<16} {line.message[:110]}")
        print()
    print(f"docker compose up -> returned with results: {returned:.1f} s (t = 0 at `up`)\n")
    print(f"{'container':<16} {'start':>7} {'exit':>7}")
    for life in lives_:
        start = f"{life.started:.2f}" if life.started is not None else "-"
        end = f"{life.exited:.2f}" if life.exited is not None else "-"
        print(f"{life.service:<16} {start:>7} {end:>7}")
    print(f"\n{'at':>7}  {'who':<16} milestone")
    for mark in marks_:
        print(f"{mark.at:7.2f}  {mark.service:<16} {mark.label}: {mark.message[:70]}")
    out = ROOT / "results" / f"{run_id}.svg"
    out.write_text(svg(lives_, marks_, returned))
    out.with_suffix(".json").write_text(json.dumps(
        {"returned_s": returned, "containers": [asdict(life) for life in lives_],
         "milestones": [asdict(m) for m in marks_], "story": [asdict(m) for m in lines]},
        indent=1) + "\n")
    print(f"\nwrote {out} and {out.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
