"""Scale benchmark: the default federation's experiment over N centres on this one host, for
each N given (default 3, 10, 20): time until every node is connected, `up` -> results,
mean round wall time, and each node container's memory: idle (the nodes kept up after the
run, between experiments) and peak over its life, plus the total of every container.

Centre i of N copies one of the default config's centres (countries and age mixes cycle),
with its own seed; populations and training are the default config's. Each N is its own
compose project, rendered into .cache/bench-scale/n-N/. Nothing is polled: `docker wait`
on the researcher and the collector, the nodes' own log timestamps for readiness, and one
reading of each container's memory and CPU cgroups (v1 or v2) once the run is over: `rss`/
`anon` is the container's anonymous memory (what it holds on its own), `usage` adds the
page cache it brought in (image files, mostly shared between nodes); the CPU time is all a
node used from its start to the end of the run (start-up, then training).

Where a node's start CPU goes is read from its own story: its start-up line gives the CPU of
each step (the interpreter and fedjourney, the data check, Fed-BioMed's imports, its
component, the dataset's registration, the plan approvals) and its "healthy" line the CPU
spent until connected. The container engine's own CPU over the run is read from /proc:
dockerd and containerd before and after, and each node's shim after (with the `runc` of
every health check it ran); the host's busy CPU from /proc/stat. The shims of the
containers that have exited (generators, researcher, collector) are gone by then: their
engine CPU falls in "the rest".
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench_stack import ROOT, compose, connected_at, container, host_busy, rendered, story_lines

from fedjourney import records, settings
from fedjourney.config import load_raw
from fedjourney.contract import new_run_id

WORK = ROOT / ".cache" / "bench-scale"
MIB = 2 ** 20
# cgroup v2 then v1: the usage, peak and stat files, and the stat key of anonymous memory.
CGROUPS = (("memory.current", "memory.peak", "memory.stat", "anon"),
           ("memory/memory.usage_in_bytes", "memory/memory.max_usage_in_bytes",
            "memory/memory.stat", "rss"))


def memory(container: str) -> dict[str, float]:
    """{"anon", "usage", "peak"} in MiB, read once inside the container's cgroup."""
    for usage, peak, stat, anon in CGROUPS:
        out = subprocess.run(["docker", "exec", container, "sh", "-c",
                              f"cd /sys/fs/cgroup && cat {usage} {peak} {stat}"],
                             capture_output=True, text=True, check=False)
        if out.returncode == 0:
            lines = out.stdout.splitlines()
            values = dict(line.split() for line in lines[2:] if " " in line)
            return {"usage": int(lines[0]) / MIB, "peak": int(lines[1]) / MIB,
                    "anon": int(values[anon]) / MIB}
    raise SystemExit(f"no memory cgroup readable in {container}")


def cpu_seconds(container: str) -> float:
    """The CPU time the container has used since it started (start-up, training and idle),
    read once from its cgroup: v2's cpu.stat usage_usec, else v1's cpuacct.usage (ns)."""
    out = subprocess.run(["docker", "exec", container, "sh", "-c",
                          "cd /sys/fs/cgroup && (grep '^usage_usec' cpu.stat 2>/dev/null || "
                          "echo ns $(cat cpuacct/cpuacct.usage 2>/dev/null || "
                          "cat cpuacct.usage))"],
                         capture_output=True, text=True, check=False)
    unit, _, value = out.stdout.strip().partition(" ")
    if out.returncode != 0 or not value.isdigit():
        raise SystemExit(f"no CPU cgroup readable in {container}")
    return int(value) / (1e6 if unit == "usage_usec" else 1e9)


def _stat(pid: int | str) -> tuple[str, int, float]:
    """A process's name, parent pid and CPU seconds, with its reaped children's;
    ("", 0, 0) once gone."""
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return "", 0, 0.0
    fields = text[text.rindex(")") + 2:].split()  # state, ppid, ...
    seconds = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # u s cu cs
    return text[text.index("(") + 1:text.rindex(")")], int(fields[1]), seconds


def daemons_cpu() -> float:
    """CPU seconds used so far by dockerd and containerd (and what they reaped)."""
    found = (_stat(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat"))
    return sum(seconds for name, _, seconds in found if name in ("dockerd", "containerd"))


def shim_cpu(container: str) -> float:
    """CPU seconds of a running container's shim, with the processes it reaped: the `runc`
    of each health check and `docker exec` (the container's own processes are in its
    cgroup, counted apart while they run)."""
    pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container],
                         capture_output=True, text=True, check=True).stdout.strip()
    _, shim, _ = _stat(pid)
    return _stat(shim)[2] if shim else 0.0


STEP = re.compile(r"([a-zA-Z][\w -]*) (\d+\.\d+)s$")
CONNECTED_CPU = re.compile(r": healthy \((\d+\.\d+)s of CPU")


def start_steps(lines: Iterable[tuple[str, str]]) -> dict[str, float]:
    """Each step of a node's start, its CPU seconds averaged over the nodes, from their
    (service, story message) lines: the steps of their start-up lines, and "connecting"
    from the start-up line to the healthy one."""
    steps: dict[str, list[float]] = defaultdict(list)
    started: dict[str, float] = {}
    for service, message in lines:
        if message.startswith("start-up took") and "since the process began (" in message:
            inside = message.split("began (", 1)[1].split(")", 1)[0]
            found = [(m[1], float(m[2])) for m in map(STEP.match, inside.split(", ")) if m]
            for step, seconds in found:
                steps[step].append(seconds)
            started[service] = sum(seconds for _, seconds in found)
        elif service in started and (m := CONNECTED_CPU.search(message)):
            steps["connecting"].append(float(m[1]) - started[service])
    return {step: statistics.fmean(v) for step, v in steps.items()}


def federation(n: int) -> dict[str, Any]:
    """The default config with n centres (the default three, cycled, each with its seed)."""
    raw: dict[str, Any] = load_raw(ROOT / "data" / "federation.yaml")
    base = raw["centres"]
    raw["centres"] = []
    for i in range(n):
        centre = copy.deepcopy(base[i % len(base)])
        centre.update(id=i, seed=centre["seed"] + 1000 * (i // len(base)),
                      name=centre["name"] if i < len(base) else f"{centre['name']} {i}")
        raw["centres"].append(centre)
    raw.pop("experiments", None)
    return raw


def measure(n: int) -> dict[str, Any]:
    _, file = rendered(federation(n), WORK / f"n-{n}")
    project = f"fjscale{n}"

    def ids(service: str) -> str:
        return container(service, file, project)

    compose("down", "-v", file=file, project=project)
    run_id = f"scale-{new_run_id()}-n{n}"
    try:
        daemons, busy = daemons_cpu(), host_busy()
        wall, started = time.time(), time.monotonic()
        compose("up", "-d", file=file, project=project,
                env={settings.RUN_ID.env: run_id, settings.KEEP.env: "1"})
        for service in ("researcher", "results"):
            subprocess.run(["docker", "wait", ids(service)], check=True, capture_output=True)
        up_s = time.monotonic() - started
        daemons, busy = daemons_cpu() - daemons, host_busy() - busy
        run_dir = ROOT / "results" / run_id
        if not run_dir.is_dir():
            raise SystemExit(f"n={n}: no results (docker compose -p {project} -f {file} logs)")
        rounds = list(records.read_run(run_dir).round_seconds.values())
        lines = story_lines(file, project)
        ready = connected_at(wall, lines)
        nodes = [memory(ids(f"node-{i}")) for i in range(n)]
        cpu = [cpu_seconds(ids(f"node-{i}")) for i in range(n)]
        engine = daemons + sum(shim_cpu(ids(f"node-{i}")) for i in range(n))
        steps = start_steps((r.service, r.message) for r in lines)
    finally:
        compose("down", "-v", file=file, project=project)
    return {"n": n, "ready_s": ready or float("nan"), "up_s": up_s,
            "round_s": statistics.fmean(rounds),
            "idle_anon": statistics.fmean(m["anon"] for m in nodes),
            "idle_usage": statistics.fmean(m["usage"] for m in nodes),
            "peak": max(m["peak"] for m in nodes),
            "total": sum(m["usage"] for m in nodes),
            "cpu": statistics.fmean(cpu), "cpu_min": min(cpu), "cpu_max": max(cpu),
            "nodes_cpu": sum(cpu), "engine_cpu": engine, "busy": busy, "steps": steps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[3, 10, 20], metavar="N",
                        help="numbers of centres (default 3 10 20)")
    args = parser.parse_args()
    if any(n < 1 for n in args.sizes):
        parser.error("every N must be at least 1")
    (ROOT / "results").mkdir(exist_ok=True)
    print("| centres | all nodes connected | up -> results | mean round | idle node (anon / "
          "with cache) | peak node | all nodes, idle | CPU a node used, mean (min-max) |\n"
          "|---|---|---|---|---|---|---|---|", flush=True)
    measured = []
    for n in args.sizes:
        r = measure(n)
        measured.append(r)
        print(f"| {n} | {r['ready_s']:.1f} s | {r['up_s']:.1f} s | {r['round_s']:.2f} s | "
              f"{r['idle_anon']:.0f} / {r['idle_usage']:.0f} MiB | {r['peak']:.0f} MiB | "
              f"{r['total'] / 1024:.1f} GiB | {r['cpu']:.1f} s ({r['cpu_min']:.1f}-"
              f"{r['cpu_max']:.1f}) |", flush=True)
    cores = os.cpu_count() or 1
    print(f"\nWhere the CPU went from `up` to results ({cores} cores), CPU seconds:\n\n"
          "| centres | host busy (of cores x time) | all nodes | engine (dockerd, containerd, "
          "shims) | the rest (researcher, generators, collector, compose) |\n|---|---|---|---|---|")
    for r in measured:
        rest = r["busy"] - r["nodes_cpu"] - r["engine_cpu"]
        print(f"| {r['n']} | {r['busy']:.0f} ({cores * r['up_s']:.0f}) | {r['nodes_cpu']:.0f} | "
              f"{r['engine_cpu']:.0f} | {rest:.0f} |")
    steps = list(dict.fromkeys(s for r in measured for s in r["steps"]))
    if not steps:
        print("\nNo node wrote its start-up steps' CPU (images from before 5591efd).")
        return 0
    print("\nA node's start, CPU seconds by step (mean over the nodes):\n\n| centres | "
          + " | ".join(steps) + " | total |\n|---" + "|---" * (len(steps) + 1) + "|")
    for r in measured:
        print(f"| {r['n']} | " + " | ".join(f"{r['steps'].get(s, float('nan')):.2f}"
                                           for s in steps)
              + f" | {sum(r['steps'].values()):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
