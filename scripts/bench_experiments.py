"""Experiment benchmark: for each experiment of the config (the default, then every named
one), `docker compose up` (attached, containers recreated, data and node state kept) until
it returns with the results on the host, and the mean round wall time against the default
experiment's (run.json); epsilon under DP. Nothing is polled: `compose up` returns by
itself. Runs the repository's docker-compose.yml as its own compose project and removes it.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench_stack import PROJECT, ROOT, compose

from fedjourney import records, settings
from fedjourney.config import DEFAULT_EXPERIMENT, load_federation
from fedjourney.contract import new_run_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*", metavar="NAME",
                        help="experiments to run (default: all of data/federation.yaml)")
    args = parser.parse_args()
    fed = load_federation(ROOT / "data" / "federation.yaml")
    names = args.experiments or [DEFAULT_EXPERIMENT, *fed.experiments]
    for name in names:
        fed.experiment(name)  # an unknown name stops here, in one line
    (ROOT / "results").mkdir(exist_ok=True)
    compose("down", "-v")
    base = f"bench-{new_run_id()}"
    print(f"{'experiment':<12} {'up->results':>12} {'round (mean)':>13} {'vs default':>11} "
          f"{'epsilon':>8}  settings")
    reference = None
    for i, name in enumerate(names):
        run_id = f"{base}-{name}"
        started = time.monotonic()
        compose("up", "--force-recreate", env={settings.RUN_ID.env: run_id,
                                               settings.EXPERIMENT.env: name,
                                               settings.KEEP.env: "0"})
        up_s = time.monotonic() - started
        out = ROOT / "results" / run_id
        if not out.is_dir():
            print(f"{name}: no results (see `docker compose -p {PROJECT} logs researcher`)")
            return 1
        run = records.read_run(out)
        rounds = list(run.round_seconds.values())
        mean = sum(rounds) / len(rounds)
        reference = mean if i == 0 else reference
        ratio = f"x{mean / reference:.2f}" if reference else "-"
        eps = (run.privacy or {}).get("epsilon")
        described = ", ".join(f"{k}={v}" for k, v in (run.experiment or {}).items()
                             if k != "name")
        print(f"{name:<12} {up_s:>10.1f} s {mean:>11.2f} s {ratio:>11} "
              f"{eps if eps is not None else '-':>8}  {described}", flush=True)
    compose("down", "-v")
    print(f"(first run generates the data; 'vs default': mean round wall time against "
          f"{names[0]}'s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
