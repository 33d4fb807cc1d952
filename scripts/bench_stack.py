"""Stack benchmark: `up` to results with the images built, time to all nodes healthy, and
per round the wall time and the part beyond the nodes' own training.

Runs the default federation (data/federation.yaml) as its own compose project, from
nothing (`down -v` first: data generation, component creation and plan approval included),
then tears it down.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.integration.stack import Stack  # noqa: E402

PLAIN_FEDBIOMED = ("plain Fed-BioMed, measured on this machine kind (CLI start-up, 3 nodes, "
                   "60-row CSV, same MLP, 10 rounds): 91 s up->exit, nodes ready at 50 s, "
                   "1.5 s per round")


def main() -> int:
    stack = Stack(ROOT / "docker-compose.yml", "fjbench")
    stack.compose("down", "-v")
    run_id = f"bench-{int(time.time())}"
    started = time.monotonic()
    stack.compose("up", "-d", env={"FEDJOURNEY_RUN_ID": run_id})
    up_returned = time.monotonic() - started
    nodes = [s for s in stack.compose("config", "--services").stdout.split()
             if s.startswith("node-")]
    healthy_at = None
    while True:
        if healthy_at is None and all(stack.health(n) == "healthy" for n in nodes):
            healthy_at = time.monotonic() - started
        state = subprocess.run(["docker", "inspect", "--format", "{{.State.Status}}",
                                stack.container("researcher")], capture_output=True, text=True,
                               check=True).stdout.strip()
        if state == "exited":
            break
        time.sleep(0.25)
    finished = time.monotonic() - started
    status = stack.wait_exit("researcher", timeout=10)
    out = Path("/tmp") / f"fedjourney-{run_id}"
    stack.copy_out("researcher", f"/results/{run_id}", out)
    run = json.loads((out / "run.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    stack.compose("down", "-v")
    print(f"status {status}; `up -d` returned after {up_returned:.1f} s (generators done)")
    healthy = f"{healthy_at:.1f} s" if healthy_at is not None else "not reached (run ended first)"
    print(f"all {len(nodes)} nodes healthy after {healthy}")
    print(f"up -> results: {finished:.1f} s (researcher's own run: {run['seconds']:.1f} s)")
    beyond_all = []
    for r_text, seconds in sorted(run["round_seconds"].items(), key=lambda kv: int(kv[0])):
        r = int(r_text)
        training = max((row["training_seconds"] or 0) for row in rows if row["round"] == r)
        beyond_all.append(seconds - training)
        print(f"  round {r:>2}: {seconds:5.2f} s wall, nodes' training {training:4.2f} s, "
              f"beyond it {seconds - training:4.2f} s")
    walls = [float(s) for s in run["round_seconds"].values()]
    print(f"per round: mean {sum(walls) / len(walls):.2f} s wall, "
          f"mean {sum(beyond_all) / len(beyond_all):.2f} s beyond the nodes' training")
    print(f"reference: {PLAIN_FEDBIOMED}")
    return status


if __name__ == "__main__":
    sys.exit(main())
