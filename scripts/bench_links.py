"""Link benchmark: what a centre's emulated link (link.py) does to its rounds, against a
stated prediction, and what the emulation costs.

For each profile, centre 1 of the demo federation gets that `link:` (the other centres keep
the engine's network), the MLP is made wide enough for the bytes to matter (`--hidden`),
and `docker compose up` runs the rounds to the results on the host (attached: it returns by
itself, nothing is polled). The network time of a round is the researcher's wall time of
the round minus the longest training on a node (Fed-BioMed's rtime_training), rounds 2 on
(round 1 also loads the plan and the data on each node).

Prediction, per round, of what the link adds to centre 1's path (rt: the round trip, the
two latencies; T: centre 1's own training time, measured): the request down, one latency
and the model's bytes at the down rate; then the node's messages in turn, since Fed-BioMed
6.4.1's node sends one at a time and waits for the researcher's answer before the next:
the global model's validation (sent as training starts, so it overlaps it), the epoch's
training loss (sent once training ends, or once the validation's answer is in), the reply
(its bytes at the up rate, one latency). That is 2 rt + max(0, rt - T) + bytes down / rate
+ bytes up / rate, plus with loss each chunk's chance of one retransmission timeout
(link.py's model). The predicted round time is the reference's (compute, no link) plus that.

The reference runs first: no link at all (today's stack, no relay). `off` is a relay whose
profile is all but perfect (100 Gbit/s): its ratio to the reference is the relay's own
cost. With every profile off there is no relay at all (the compose file is today's, byte
for byte: tests/unit/test_link_config.py), so the stack's overhead is nil by construction.

  scripts/bench links [--hidden 2048] [--rounds 6] [--population 60] [PROFILE ...]
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
    "national": {"rate_mbit": 10, "latency_ms": 50},
    "intercontinental": {"rate_mbit": 50, "latency_ms": 150, "jitter_ms": 10},
    "rural": {"up": {"rate_mbit": 2, "latency_ms": 60, "loss_pct": 1},
              "down": {"rate_mbit": 8, "latency_ms": 60, "loss_pct": 1}},
}


def predicted(link: dict[str, Any] | None, nbytes: int, training_s: float) -> float:
    """Seconds a round of one epoch gains on this link: see the module's docstring."""
    if link is None:
        return 0.0
    sides = {side: Direction(**(link.get(side, {}) if "up" in link or "down" in link
                                else link)) for side in ("down", "up")}
    trip = (sides["down"].latency_ms + sides["up"].latency_ms) / 1000
    total = 2 * trip + max(0.0, trip - training_s)
    for d in sides.values():
        if d.rate_mbit:
            total += nbytes * 8 / (d.rate_mbit * 1e6)
        chunks = -(-nbytes // CHUNK[d.rate_mbit is not None])
        total += d.loss_pct / 100 * chunks * (RTO_FLOOR_S + 2 * d.latency_ms / 1000)
    return total


def run(folder: Path, name: str, link: dict[str, Any] | None, args: argparse.Namespace
        ) -> tuple[list[float], float, float]:
    """(wall seconds per round, centre 1's median training seconds, up -> results seconds)
    of one profile, rounds 2 on (round 1 also loads the plan and the data on each node)."""
    config = folder / name / "source.yaml"
    config.parent.mkdir(parents=True)
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    if link is not None:
        raw["centres"][1]["link"] = link
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    _, compose_file = prepare(config.parent, config, population=args.population,
                              rounds=args.rounds, epochs=1, hidden=args.hidden)
    out, took = attached_run(compose_file, f"links-{name}")
    wall = records.read_run(out).round_seconds
    later = [r for r in sorted(wall) if r > 1]
    centre_1 = [row.training_seconds for row in records.read_rows(out)
                if row.round in later and not row.final and row.node.startswith("node-1 ")
                and row.training_seconds is not None]
    return [wall[r] for r in later], statistics.median(centre_1), took


def attached_run(compose_file: Path, name: str) -> tuple[Path, float]:
    """(the results folder, up -> results seconds) of an attached `docker compose up` of
    compose_file, which returns by itself (nothing polled); `down -v` after."""
    base = [*compose_command(), "-f", str(compose_file), "-p", f"fjbench{name}".replace("-", "")]
    run_id = f"bench-{name}-{new_run_id()}"
    env = {**os.environ, settings.RUN_ID.env: run_id, settings.KEEP.env: "0"}
    started = time.monotonic()
    try:
        subprocess.run([*base, "up", "--force-recreate"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        took = time.monotonic() - started
    finally:
        subprocess.run([*base, "down", "-v"], env=env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return compose_file.parent / "results" / run_id, took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=2048, help="the MLP's width")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--population", type=int, default=60)
    parser.add_argument("profiles", nargs="*", default=list(PROFILES),
                        help=f"which, in order; the first is the reference (default: "
                             f"{' '.join(PROFILES)})")
    args = parser.parse_args()
    unknown = [p for p in args.profiles if p not in PROFILES]
    if unknown:
        parser.error(f"unknown profile {unknown[0]!r}; use some of {', '.join(PROFILES)}")
    params = N_FEATURES * args.hidden + 2 * args.hidden + 1
    nbytes = 4 * params
    print(f"MLP {N_FEATURES} -> {args.hidden} -> 1: {params} parameters, {nbytes / 1e3:.0f} kB "
          f"as float32; {args.rounds} rounds of 1 epoch, {args.population} patients a centre, "
          f"centre 1 on the link; rounds 2..{args.rounds}, median (min-max); n = "
          f"{args.rounds - 1} rounds a profile")
    print("| profile | link of centre 1 | round s | predicted s | measured / predicted | "
          "added by the link s | predicted added s | up -> results s |")
    print("|---|---|---|---|---|---|---|---|")
    reference: float | None = None  # the first profile's round time
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.profiles:
            link = PROFILES[name]
            walls, training, took = run(Path(tmp), name, link, args)
            rounds = statistics.median(walls)
            reference = rounds if reference is None else reference
            added = predicted(link, nbytes, training)
            expect = reference + added
            print(f"| {name} | {_describe(link)} | {rounds:.2f} ({min(walls):.2f}-"
                  f"{max(walls):.2f}) | {expect:.2f} | {rounds / expect:.2f} | "
                  f"{rounds - reference:.2f} | {added:.2f} | {took:.0f} |", flush=True)
    return 0


def _describe(link: dict[str, Any] | None) -> str:
    if link is None:
        return "none (no relay)"
    if "up" in link or "down" in link:
        return "; ".join(f"{side} {Direction(**link[side]).describe()}"
                         for side in ("up", "down"))
    return Direction(**link).describe()


if __name__ == "__main__":
    sys.exit(main())
