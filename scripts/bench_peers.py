"""Peers benchmark: fedjourney's attached `docker compose up`, plain Fed-BioMed through its
CLI and Flower's simulation engine on the same workload, alternating in one session: each
system's time from nothing to results (median, min-max, n), its final mean AUC, and its
median's ratio to Flower's.

The workload is the default federation (data/federation.yaml), prepared once before any
measurement: its centres' records generated on the host (fedjourney.generator.generate),
each centre's tensor built and split as its node does (fedjourney.baselines.centre_split:
build, model_input, plan_input, then the node's held-out split), written as
.cache/bench-peers/centre-<id>.npz with settings.json beside them (the `training:`
settings). Every system trains the same MLP (K -> hidden -> 1) with FedAvg and Adam for
the same rounds, epochs, batch size, learning rate and seed.

What each time runs from and to (nothing is polled: each system's process returns by
itself, or `docker wait` does):
- fedjourney: attached `docker compose up` of the repository's docker-compose.yml from
  nothing (`down -v` first, untimed) until it returns with the results on the host: data
  generation, component creation and plan approval are inside (scripts/bench_stack.py's
  `compose`). AUC: the final model's on each centre's held-out split (metrics.jsonl).
- plain: scripts/bench_plain_fedbiomed.py's own measurement (its `attempt`), `up -d` to the
  researcher's exit; its CSVs are written during the preparation (untimed). Its researcher
  reports BCE and accuracy, not AUC.
- flower: the Flower venv's python starting scripts/peers/flower_app.py until that process
  exits, its results JSON written (subprocess wait): the interpreter's start, importing
  flwr and torch, Ray's start-up (its local head node and the ClientApp actors), the rounds
  with an evaluation of each round's model, Ray's shutdown. Flower's defaults otherwise
  (2 CPUs reserved per ClientApp: one actor on this 2-core machine); its telemetry and
  Ray's usage statistics are off, since the other two send nothing out either.
The final mean AUC is the plain mean over centres (as `fedjourney compare`), of one run
when all runs agree. The systems' order rotates from one repetition to the next, so that
none always runs first, or right after the same other one. Each run starts on a quiet host
(bench_stack.settle, at most 30 s): plain Fed-BioMed's nodes outlive its researcher and
are brought down, untimed, right after its measurement, and Ray's processes may still be
ending when Flower's process has returned.

The Flower venv (.cache/flower-venv, FLOWER_PINS below) is made when missing or when the
pins changed, before the preparation; its pip log is .cache/bench-peers/flower-venv-pip.log.
`--only flower` runs no container (scripts/bench then builds no image either).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import bench_plain_fedbiomed as plain
import numpy as np
import yaml
from bench_stack import ROOT, compose, rounds_report, settle

from fedjourney import records, settings
from fedjourney.baselines import centre_split
from fedjourney.config import Federation, load_federation
from fedjourney.contract import new_run_id
from fedjourney.generator import generate
from fedjourney.host.logs import compose_command

SYSTEMS = ("fedjourney", "plain", "flower")
CACHE = ROOT / ".cache" / "bench-peers"
VENV = ROOT / ".cache" / "flower-venv"
APP = ROOT / "scripts" / "peers" / "flower_app.py"
FLOWER_PINS = [
    # The release issue 22 names. Its `simulation` extra pins Ray itself (ray==2.55.1 on
    # Python 3.11), and Flower's other dependencies are ranges: pip resolves them.
    "flwr[simulation]==1.42.0",
    # The host venv's torch (pyproject's `train` extra): this machine's pip finds its CPU
    # build (2.13.0+cpu) among its local wheels, as for .venv; PyPI alone would bring the
    # CUDA build and its libraries.
    "torch==2.13.0",
    # The host venv's numpy (pyproject), which writes the .npz files the app reads and whose
    # arithmetic fedjourney.model's AUC runs on there too.
    "numpy==2.4.6",
]
PINS_STAMP = VENV / ".fedjourney-pins"
APP_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Outcome:
    """One measurement: seconds from nothing to results (None: it failed) and the final
    model's mean AUC over centres (None: not reported)."""

    seconds: float | None
    auc: float | None = None


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"bench peers: error: {message} (see --help)\n")


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, not {text!r}")
    return value


def mean_auc(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else None


# --- the workload ---------------------------------------------------------------------------

def check_default(fed: Federation) -> None:
    """The Flower app implements the default experiment only: refuse anything else."""
    t = fed.training
    other = [what for what, differs in [
        (f"plan {t.plan.name}", t.plan.name != "mlp" or t.plan.input != "vector"),
        (f"aggregator {t.aggregator}", t.aggregator != "fedavg"),
        ("num_updates", bool(t.num_updates)), ("dp", t.dp is not None),
        (f"secagg {t.secagg}", t.secagg != "off"), ("model_args", bool(t.model_args))]
        if differs]
    if other:
        raise SystemExit(f"bench peers: error: the Flower app trains the default experiment "
                         f"(mlp, fedavg, Adam) only; the config sets {', '.join(other)}")


def write_workload(fed: Federation, data: Path, folder: Path) -> dict[str, Any]:
    """Each centre's split tensors as folder/centre-<id>.npz, and folder/settings.json."""
    spec, t = fed.feature_spec(), fed.training
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("centre-*.npz"):
        old.unlink()
    centres = []
    for c in fed.centres:
        s = centre_split(data / c.folder_name, spec, t, fed.features_backend)
        name = f"centre-{c.id}.npz"
        np.savez(folder / name, x_train=s.x_train, y_train=s.y_train, x_test=s.x_test,
                 y_test=s.y_test)
        centres.append({"id": c.id, "name": c.name, "file": name, "train": len(s.y_train),
                        "held_out": len(s.y_test),
                        "held_out_positives": int((s.y_test > 0.5).sum()),
                        "n_features": int(s.x_train.shape[1])})
    workload = {"n_features": centres[0]["n_features"], "hidden": t.hidden,
                "rounds": t.rounds, "epochs": t.epochs, "batch_size": t.batch_size,
                "lr": t.learning_rate, "seed": t.seed,
                "held_out_percent": t.held_out_percent, "centres": centres}
    (folder / "settings.json").write_text(json.dumps(workload, indent=1) + "\n",
                                          encoding="utf-8")
    return workload


# --- the Flower venv ------------------------------------------------------------------------

def ensure_flower_venv() -> None:
    """.cache/flower-venv with FLOWER_PINS, made (again) when missing or the pins changed."""
    want = "\n".join(FLOWER_PINS) + "\n"
    python = VENV / "bin" / "python"
    if python.is_file() and PINS_STAMP.is_file() and PINS_STAMP.read_text() == want:
        return
    base = os.environ.get("PYTHON", "python3.11")
    if shutil.which(base) is None:
        raise SystemExit(f"bench peers: error: no {base} to make the Flower venv with; set "
                         "PYTHON=/path/to/python3.11")
    CACHE.mkdir(parents=True, exist_ok=True)
    log = CACHE / "flower-venv-pip.log"
    started = time.monotonic()
    print(f"flower venv: making {VENV.relative_to(ROOT)} with {' '.join(FLOWER_PINS)} "
          f"(log: {log.relative_to(ROOT)})", flush=True)
    if VENV.exists():
        shutil.rmtree(VENV)
    subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    with log.open("w") as sink:
        done = subprocess.run([str(python), "-m", "pip", "install",
                               "--disable-pip-version-check", *FLOWER_PINS],
                              stdout=sink, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = "\n  ".join(log.read_text(errors="replace").splitlines()[-20:])
        raise SystemExit(f"bench peers: error: pip install failed (log: {log}):\n  {tail}")
    PINS_STAMP.write_text(want)
    print(f"flower venv: ready in {time.monotonic() - started:.0f} s", flush=True)


# --- one measurement per system -------------------------------------------------------------

def fedjourney_once(n: int) -> Outcome:
    """Attached `docker compose up` of the default federation, from nothing, to results."""
    (ROOT / "results").mkdir(exist_ok=True)
    compose("down", "-v")
    run_id = f"bench-{new_run_id()}"
    started = time.monotonic()
    compose("up", env={settings.RUN_ID.env: run_id, settings.KEEP.env: "0"})
    seconds = time.monotonic() - started
    compose("down", "-v")
    out = ROOT / "results" / run_id
    if not out.is_dir():
        print(f"[{n}] fedjourney: FAILED: no results for {run_id} after {seconds:.1f} s")
        return Outcome(None)
    auc = mean_auc([r.validation_auc for r in records.read_rows(out) if r.final])
    print(f"[{n}] fedjourney: docker compose up -> returned with results: {seconds:.1f} s; "
          f"{rounds_report(out)}; final mean AUC {fmt(auc)}", flush=True)
    return Outcome(seconds, auc)


class Plain:
    """scripts/bench_plain_fedbiomed.py's stack, set up as its main does, measured by its
    `attempt` (whose report is passed on, indented)."""

    def __init__(self, work: Path) -> None:
        work.chmod(0o755)  # the containers' user (10001) reads ./in
        (work / "in").mkdir(mode=0o755)
        self.settings = plain.prepare(work)
        self.nodes = int(self.settings["nodes"])
        (work / "docker-compose.yml").write_text(
            yaml.safe_dump(plain.compose_file(self.nodes)))
        self.compose = [*compose_command(), "-f", str(work / "docker-compose.yml"), "-p",
                        plain.PROJECT]

    def once(self, n: int) -> Outcome:
        report = io.StringIO()
        with contextlib.redirect_stdout(report):
            ok = plain.attempt(self.compose, n, self.nodes)
        text = report.getvalue()
        print("\n".join(f"[{n}] plain: {line.removeprefix(f'[{n}]').strip()}"
                        for line in text.splitlines()), flush=True)
        found = re.search(r"up -d -> researcher exit: ([0-9.]+) s", text)
        # Its nodes outlive its researcher: down now, untimed, not during the next system.
        subprocess.run([*self.compose, "down", "-v"], capture_output=True, check=False)
        return Outcome(float(found[1]) if ok and found else None)

    def close(self) -> None:
        subprocess.run([*self.compose, "down", "-v"], capture_output=True, check=False)


def flower_once(n: int) -> Outcome:
    """The Flower venv's python running flower_app.py, from its start to its exit."""
    out, log = CACHE / f"flower-{n}.json", CACHE / f"flower-{n}.log"
    out.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(FLWR_TELEMETRY_ENABLED="0", RAY_USAGE_STATS_ENABLED="0")
    command = [str(VENV / "bin" / "python"), str(APP), "--data", str(CACHE), "--out", str(out)]
    started = time.time()
    with log.open("w") as sink:
        code = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, env=env,
                              check=False, timeout=APP_TIMEOUT_S).returncode
    seconds = time.time() - started
    if code != 0 or not out.is_file():
        tail = "\n  ".join(log.read_text(errors="replace").splitlines()[-15:])
        print(f"[{n}] flower: FAILED: exit {code} after {seconds:.1f} s (log: {log}):\n  {tail}")
        return Outcome(None)
    result = json.loads(out.read_text(encoding="utf-8"))
    at = {k: v - started for k, v in result["t"].items()}
    rounds = [r["seconds"] for r in result["rounds"]]
    later = rounds[1:] or rounds
    auc = result["final_mean_auc"]
    per_centre = ", ".join(f"{c} {fmt(a)}" for c, a in sorted(result["final_auc"].items()))
    print(f"[{n}] flower: process start -> exit: {seconds:.1f} s (python running at "
          f"{at['started']:.1f} s, flwr and torch imported at {at['imported']:.1f} s, round 1 "
          f"sent at {at['first_round']:.1f} s, rounds done at {at['strategy_done']:.1f} s, "
          f"simulation returned at {at['simulation_returned']:.1f} s)", flush=True)
    print(f"[{n}] flower:   {len(rounds)} rounds: round 1 {rounds[0]:.2f} s (Ray's actors "
          f"starting), then mean {sum(later) / len(later):.2f} s, min {min(later):.2f} s, max "
          f"{max(later):.2f} s; final mean AUC {fmt(auc)} ({per_centre})", flush=True)
    return Outcome(seconds, None if auc is None else float(auc))


# --- the report -----------------------------------------------------------------------------

def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def table(outcomes: dict[str, list[Outcome]], runs: int) -> str:
    medians = {name: statistics.median(s) if (s := [o.seconds for o in got
                                                       if o.seconds is not None]) else None
               for name, got in outcomes.items()}
    flower = medians.get("flower")
    rows = [["system", "n", "median s", "min-max s", "final mean AUC", "median / Flower's"]]
    for name, got in outcomes.items():
        times = [o.seconds for o in got if o.seconds is not None]
        aucs = sorted({round(o.auc, 4) for o in got if o.auc is not None})
        median = medians[name]
        rows.append([
            name, f"{len(times)}" + (f" ({runs - len(times)} failed)" if len(times) < runs
                                     else ""),
            fmt(median, 1), f"{min(times):.1f}-{max(times):.1f}" if times else "-",
            ("- (not reported)" if name == "plain" else "-") if not aucs
            else f"{aucs[0]:.3f}" if len(aucs) == 1 else f"{aucs[0]:.3f}-{aucs[-1]:.3f}",
            "-" if median is None or not flower else f"{median / flower:.2f}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in rows]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def main() -> int:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=positive, default=3,
                        help="repetitions of each system, alternating (default 3)")
    parser.add_argument("--only", choices=SYSTEMS, help="run this system only")
    args = parser.parse_args()
    chosen = [args.only] if args.only else list(SYSTEMS)

    fed = load_federation(ROOT / "data" / "federation.yaml")
    check_default(fed)
    if "flower" in chosen:
        ensure_flower_venv()
    outcomes: dict[str, list[Outcome]] = {name: [] for name in chosen}
    ok = True
    with tempfile.TemporaryDirectory(prefix="fjpeers-") as tmp:
        work = Path(tmp)
        stack = None
        try:
            if "plain" in chosen:
                stack = Plain(work)  # generates work/records, as its main does
            else:
                generate(fed, work / "records")
            w = write_workload(fed, work / "records", CACHE)
            c = w["centres"]
            print(f"workload: {fed.name}, {len(c)} centres ("
                  + ", ".join(f"{x['train']} + {x['held_out']} held out" for x in c)
                  + f" patients), MLP {w['n_features']}->{w['hidden']}->1, {w['rounds']} "
                  f"rounds x {w['epochs']} epochs, batch {w['batch_size']}, Adam lr "
                  f"{w['lr']}, seed {w['seed']}; {args.runs} run(s) of "
                  f"{', '.join(chosen)}", flush=True)
            for n in range(1, args.runs + 1):
                shift = (n - 1) % len(chosen)
                for name in chosen[shift:] + chosen[:shift]:
                    waited = settle()
                    if waited > 2:
                        print(f"[{n}] {name}: waited {waited:.1f} s for the host to go quiet "
                              "first", flush=True)
                    try:
                        if name == "fedjourney":
                            got = fedjourney_once(n)
                        elif name == "plain":
                            assert stack is not None
                            got = stack.once(n)
                        else:
                            got = flower_once(n)
                    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                        err = exc.stderr.decode(errors="replace") if isinstance(
                            exc.stderr, bytes) else str(exc.stderr or "")
                        print(f"[{n}] {name}: FAILED: `{' '.join(map(str, exc.cmd))}`: "
                              f"{err.strip()[-500:] or exc}")
                        got = Outcome(None)
                    ok = ok and got.seconds is not None
                    outcomes[name].append(got)
        finally:
            if stack is not None:
                stack.close()
            if "fedjourney" in chosen:
                with contextlib.suppress(subprocess.CalledProcessError):
                    compose("down", "-v")
    print()
    print(table(outcomes, args.runs))
    print("from nothing to results: fedjourney `docker compose up` (data generation "
          "inside); plain `up -d` -> researcher exit; flower process start -> exit (Ray "
          "included). AUC: final model, plain mean over centres' held-out splits.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
