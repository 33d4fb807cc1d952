"""Link benchmark: what a centre's emulated link (link.py) does to its rounds, against a
stated prediction, and what the emulation costs.

For each profile, centre 1 of the demo federation gets that `link:` (the other centres keep
the engine's network), the MLP is made wide enough for the bytes to matter (`--hidden`),
and `docker compose up` runs the rounds to the results on the host (attached: it returns by
itself, nothing is polled). The network time of a round is the researcher's wall time of
the round minus the slowest node's own time (Fed-BioMed's rtime_total). Prediction, per
round: the model's float32 bytes down and up at each direction's rate, plus one one-way
latency each way (the request down, the reply up), plus, with loss, each chunk's chance of
one retransmission timeout (link.py's model). The reference runs first: no link at all
(today's stack, no relay); `off` is a relay whose profile is all but perfect (100 Gbit/s),
its ratio to the reference is the relay's own cost; with every profile off there is no
relay, so the stack is today's exactly.

  scripts/bench links [--hidden 2048] [--rounds 5] [--population 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from fedjourney import records, settings
from fedjourney.config import DEFAULT_CONFIG
from fedjourney.contract import new_run_id
from fedjourney.host.logs import compose_command
from fedjourney.link import Direction
from fedjourney.testing import prepare

N_FEATURES = 30  # the default feature spec's K
CHUNK = {True: 16 * 1024, False: 64 * 1024}  # link.py: with a rate, without
RTO_FLOOR_S = 0.2
PROFILES: dict[str, dict[str, Any] | None] = {
    "none": None,
    "off": {"rate_mbit": 100_000},
    "lan": {"rate_mbit": 100, "latency_ms": 2},
    "city": {"rate_mbit": 20, "latency_ms": 20, "jitter_ms": 5},
    "rural": {"up": {"rate_mbit": 2, "latency_ms": 60, "loss_pct": 1},
              "down": {"rate_mbit": 8, "latency_ms": 60, "loss_pct": 1}},
}


def predicted(link: dict[str, Any] | None, nbytes: int) -> float:
    """Seconds of network a round costs on this link: see the module's docstring."""
    if link is None:
        return 0.0
    total = 0.0
    for side in ("down", "up"):
        d = Direction(**(link.get(side, {}) if "up" in link or "down" in link else link))
        if d.rate_mbit:
            total += nbytes * 8 / (d.rate_mbit * 1e6)
        total += d.latency_ms / 1000
        chunks = -(-nbytes // CHUNK[d.rate_mbit is not None])
        total += d.loss_pct / 100 * chunks * (RTO_FLOOR_S + 2 * d.latency_ms / 1000)
    return total


def run(folder: Path, name: str, link: dict[str, Any] | None, args: argparse.Namespace
        ) -> tuple[list[float], list[float], float]:
    """(network seconds per round, wall seconds per round, up -> results seconds) of one
    profile, rounds 2 on (round 1 also loads the plan and the data on each node)."""
    config = folder / name / "source.yaml"
    config.parent.mkdir(parents=True)
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    if link is not None:
        raw["centres"][1]["link"] = link
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    _, compose_file = prepare(config.parent, config, population=args.population,
                              rounds=args.rounds, epochs=1, hidden=args.hidden)
    project = f"fjbenchlinks{name}"
    base = [*compose_command(), "-f", str(compose_file), "-p", project]
    run_id = f"bench-links-{name}-{new_run_id()}"
    env = {**os.environ, settings.RUN_ID.env: run_id, settings.KEEP.env: "0"}
    started = time.monotonic()
    try:
        subprocess.run([*base, "up", "--force-recreate"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        took = time.monotonic() - started
    finally:
        subprocess.run([*base, "down", "-v"], env=env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = compose_file.parent / "results" / run_id
    rows = records.read_rows(out)
    wall = records.read_run(out).round_seconds
    nodes: dict[int, list[float]] = {}
    for row in rows:
        if not row.final and row.node_seconds is not None:
            nodes.setdefault(row.round, []).append(row.node_seconds)
    later = [r for r in sorted(nodes) if r > 1]
    return [wall[r] - max(nodes[r]) for r in later], [wall[r] for r in later], took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=2048, help="the MLP's width")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--population", type=int, default=60)
    parser.add_argument("profiles", nargs="*", default=list(PROFILES),
                        help=f"which, in order (default: {' '.join(PROFILES)})")
    args = parser.parse_args()
    params = N_FEATURES * args.hidden + 2 * args.hidden + 1
    nbytes = 4 * params
    print(f"MLP {N_FEATURES} -> {args.hidden} -> 1: {params} parameters, {nbytes / 1e3:.0f} kB "
          f"as float32; {args.rounds} rounds of 1 epoch, {args.population} patients a centre; "
          f"centre 1 on the link; network time a round = round wall - slowest node's own, "
          f"rounds 2..{args.rounds} (median, min-max)")
    print("| profile | link of centre 1 | network s a round | predicted s | measured / "
          "predicted | round s (median) | vs none | up -> results s |")
    print("|---|---|---|---|---|---|---|---|")
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.profiles:
            link = PROFILES[name]
            extra, walls, took = run(Path(tmp), name, link, args)
            median = statistics.median(extra)
            expect = predicted(link, nbytes)
            rounds = statistics.median(walls)
            reference = rounds if reference is None else reference
            ratio = f"{median / expect:.2f}" if expect > 0.05 else "-"
            print(f"| {name} | {link or 'none (no relay)'} | {median:.2f} "
                  f"({min(extra):.2f}-{max(extra):.2f}) | {expect:.2f} | {ratio} | "
                  f"{rounds:.2f} | x{rounds / reference:.2f} | {took:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
