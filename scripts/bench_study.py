"""Study benchmark: every experiment of the study scenario over several data seeds, against
the local-only and centralised baselines: AUC per centre, mean +- sd over seeds with the
95% interval of that mean (from each run's DeLong interval), each centre's held-out patients
and positives, and each experiment's time from `up` to results.

Seed k shifts every centre's seed by 1000 * k (k = 0 is data/study.yaml as shipped); each
seed is its own compose project, rendered into .cache/bench-study/seed-k/. Each experiment
is one attached `docker compose up` (containers recreated, the centres' data kept), which
returns by itself with the results in ./results/. The baselines are `fedjourney report`'s
for the first experiment: its plan and settings trained on each centre alone and on all
pooled, as its nodes train them (in the researcher image), on data regenerated from the same
config (checked against the nodes' fingerprints).

Each finished experiment is kept in .cache/bench-study/seed-k/partial.json, and a finished
seed in seed.json with what it ran (the commit and the images): a later call with the same
config, experiments and images reuses them and runs only what is missing, so a study of
several hours can be stopped (Ctrl-C, or kill) and taken up again, losing at most the
experiment that was running. `--fresh` starts over.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_stack import compose, rendered

from fedjourney import records, settings
from fedjourney.config import DEFAULT_EXPERIMENT, Federation, load_federation, load_raw
from fedjourney.contract import new_run_id
from fedjourney.host.report import report
from fedjourney.model import informative
from fedjourney.researcher.results import final_table

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".cache" / "bench-study"
LABELS = {"local": "local only (own centre, mlp)", "centralised": "centralised (pooled, mlp)",
          DEFAULT_EXPERIMENT: "FedAverage (mlp plan)", "fedprox": "FedProx",
          "scaffold": "SCAFFOLD",
          "secagg": "FedAverage + secagg (LOM)", "dp": "FedAverage + local DP",
          "logistic": "FedAverage, logistic plan", "gru": "FedAverage, GRU plan"}


def seeded(config: Path, k: int) -> tuple[Federation, Path]:
    """The config with every centre's seed shifted by 1000 * k, and its compose file."""
    raw = load_raw(config)
    for centre in raw["centres"]:
        centre["seed"] += 1000 * k
    return rendered(raw, WORK / f"seed-{k}")


def _commit() -> str:
    """The commit the study ran from, with '+changes' when the tree differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    return (git("rev-parse", "--short", "HEAD") or "unknown") + (
        "+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


IMAGES: dict[str, str] = {}  # this call's, read once at its start (main)


def _images() -> dict[str, str]:
    """What the experiments run: each image's build hash (scripts/build-images labels an
    image with the hash of everything it is built from, so a rebuild of the same source,
    in another clone too, keeps it), else its id."""
    built = {}
    for role in ("node", "researcher", "generator"):
        found = subprocess.run(
            ["docker", "image", "inspect", "-f",
             '{{index .Config.Labels "org.fedjourney.build-hash"}} {{.Id}}',
             f"fedjourney/{role}:latest"], capture_output=True, text=True).stdout.split()
        built[role] = found[0][:16] if len(found) == 2 else (found or ["?"])[-1][7:23]
    return built


def study_key(config: Path, k: int, names: list[str]) -> str:
    """What a kept seed must match to be reused: the seeded config's text, the experiments
    in order, and the images that run them (new code runs every seed again)."""
    text = json.dumps([load_raw(config), k, names, IMAGES], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def kept_seed(config: Path, k: int, names: list[str]) -> dict[str, Any] | None:
    """Seed k's results from an earlier call with the same config and experiments, if any."""
    path = WORK / f"seed-{k}" / "seed.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return saved["result"] if saved.get("key") == study_key(config, k, names) else None


def keep_seed(config: Path, k: int, names: list[str], result: dict[str, Any],
              commit: str) -> None:
    """Seed k's results, kept for a later call (a half-written seed.json never looks
    finished)."""
    _write_whole(WORK / f"seed-{k}" / "seed.json",
                 {"key": study_key(config, k, names), "commit": commit, "images": IMAGES,
                  "finished": time.time(), "result": result})


def _write_whole(path: Path, data: Any) -> None:
    """JSON written to a temporary file, then renamed: never seen half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(data, indent=1) + "\n")
    part.replace(path)


def run_seed(k: int, config: Path, names: list[str]) -> dict[str, Any]:
    """Every experiment on seed k, then the baselines: AUC per centre with its 95% interval,
    each centre's held-out patients and positives, and timings. Each finished experiment is
    kept in seed-k/partial.json, so that a stopped seed goes on from the next one (its data
    generated again, byte for byte the same from the same seeds)."""
    fed, file = seeded(config, k)
    project = f"fjstudy{k}"
    compose("down", "-v", file=file, project=project)
    partial = WORK / f"seed-{k}" / "partial.json"
    key = study_key(config, k, names)
    out: dict[str, Any] = {}
    try:
        saved = json.loads(partial.read_text())
        out = saved["result"] if saved.get("key") == key else {}
    except (OSError, ValueError):
        pass
    if not out:
        out = {"auc": {}, "interval": {}, "split": {}, "up_s": {}, "round_s": {},
               "privacy": None, "run": {}}
    base = f"study-{new_run_id()}-s{k}"
    try:
        for name in names:
            if name in out["run"]:
                print(f"  seed {k} {name:<9} kept from an earlier call ({out['run'][name]})",
                      flush=True)
                continue
            run_id = f"{base}-{name}"
            started = time.monotonic()
            compose("up", "--force-recreate", file=file, project=project,
                    env={settings.RUN_ID.env: run_id, settings.EXPERIMENT.env: name,
                         settings.KEEP.env: "0"})
            run_dir = ROOT / "results" / run_id
            if not run_dir.is_dir():
                raise SystemExit(f"seed {k}, {name}: no results (docker compose -p {project} "
                                 f"-f {file} logs researcher)")
            out["up_s"][name] = time.monotonic() - started
            run = records.read_run(run_dir)
            rounds = list(run.round_seconds.values())
            out["round_s"][name] = sum(rounds) / len(rounds)
            if run.privacy:
                out["privacy"] = run.privacy
            final = {node.split(" ", 1)[1]: m
                     for node, m in final_table(records.read_rows(run_dir)).items()}
            out["auc"][name] = {c: m.validation_auc for c, m in final.items()}
            out["interval"][name] = {c: [m.validation_auc_low, m.validation_auc_high]
                                     for c, m in final.items()}
            # Every experiment validates on the same held-out patients.
            out["split"] = {c: [m.validation_n, m.validation_positives]
                            for c, m in final.items()}
            out["run"][name] = run_id
            _write_whole(partial, {"key": key, "result": out})
            print(f"  seed {k} {name:<9} up->results {out['up_s'][name]:6.1f} s, "
                  f"round {out['round_s'][name]:.2f} s, mean AUC "
                  f"{statistics.fmean(out['auc'][name].values()):.3f}", flush=True)
    finally:
        compose("down", "-v", file=file, project=project)
    # The baselines of the first experiment: its plan and settings (the MLP's, for the
    # default experiment), trained the way its nodes train.
    first = ROOT / "results" / out["run"][names[0]]
    report(fed, WORK / f"seed-{k}" / "federation.yaml", first, WORK / f"seed-{k}" / "data",
           WORK / f"seed-{k}" / "baselines.json")
    table = json.loads((WORK / f"seed-{k}" / "baselines.json").read_text())["baselines"]
    out["auc"]["local"] = {c.name: table[f"local: {c.name}"][c.name]["auc"]
                           for c in fed.centres}
    out["auc"]["centralised"] = {c.name: table["centralised (pooled)"][c.name]["auc"]
                                 for c in fed.centres}
    for method, row in (("local", None), ("centralised", "centralised (pooled)")):
        out["interval"][method] = {
            c.name: [table[row or f"local: {c.name}"][c.name].get(bound)
                     for bound in ("auc_low", "auc_high")] for c in fed.centres}
    return out


def _cell(values: list[Any]) -> str:
    kept = [v for v in values if _number(v)]  # None or NaN: no AUC (one class held out)
    missing = f" ({len(kept)} of {len(values)} seeds)" if len(kept) < len(values) else ""
    if len(kept) < 2:
        return f"{kept[0]:.3f}{missing}" if kept else "-"
    return f"{statistics.fmean(kept):.3f} ± {statistics.stdev(kept):.3f}{missing}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def pooled(points: list[tuple[Any, Any, Any]]) -> tuple[float, float] | None:
    """The 95% interval of the mean AUC over seeds from each seed's (auc, low, high): each
    side's half-widths combined as independent errors (root sum of squares over the number
    of seeds). It is the sampling of held-out patients only; the seeds' spread is the sd.
    None when a seed has no interval (runs or baselines from before intervals)."""
    if not points or not all(_number(v) for point in points for v in point):
        return None
    k = len(points)
    mean = statistics.fmean(a for a, _, _ in points)
    below = math.sqrt(sum((a - low) ** 2 for a, low, _ in points)) / k
    above = math.sqrt(sum((high - a) ** 2 for a, _, high in points)) / k
    return max(mean - below, 0.0), min(mean + above, 1.0)


def _header(centre: str, seeds: list[dict[str, Any]]) -> str:
    """'UCLH (n=300, 8+)': held-out patients and positives, the mean over seeds."""
    split = [s.get("split", {}).get(centre, [None, None]) for s in seeds]
    if not split or not all(_number(v) for pair in split for v in pair):
        return centre
    n, positives = (statistics.fmean(pair[i] for pair in split) for i in (0, 1))
    return f"{centre} (n={n:.0f}, {positives:.0f}+)"


def markdown(fed: Federation, seeds: list[dict[str, Any]], names: list[str]) -> str:
    """AUC per centre and over centres (mean ± sd over seeds, and the 95% interval of the
    mean per centre), then the timings."""
    centres = [c.name for c in fed.centres]
    lines = ["| model | " + " | ".join(_header(c, seeds) for c in centres)
             + " | mean of centres |", "|---|" + "---|" * (len(centres) + 1)]
    shown = False
    for method in ["local", "centralised", *names]:
        cells = []
        for c in centres:
            cell = _cell([s["auc"][method][c] for s in seeds])
            interval = pooled([(s["auc"][method][c],
                                *s.get("interval", {}).get(method, {}).get(c, [None, None]))
                               for s in seeds])
            if interval is not None:
                shown = True
                cell += f" [{interval[0]:.2f}, {interval[1]:.2f}]"
                cell += "" if informative(*interval) else " ~"
            cells.append(cell)
        means = [statistics.fmean(s["auc"][method][c] if _number(s["auc"][method][c])
                                  else math.nan for c in centres) for s in seeds]
        lines.append(f"| {LABELS.get(method, method)} | " + " | ".join(cells)
                     + f" | **{_cell(means)}** |")
    if shown:
        lines += ["", "Each centre: mean ± sd over seeds [95% interval of that mean, pooling "
                  "each run's DeLong interval: the sampling of held-out patients, not the "
                  "spread between seeds]; ~: that interval spans 0.5, not informative. "
                  "n: held-out patients, +: of whom positive (mean over seeds)."]
    lines += ["", "| experiment | up -> results | mean round | vs FedAverage |",
              "|---|---|---|---|"]
    reference = statistics.fmean(s["round_s"][names[0]] for s in seeds)
    for name in names:
        up = statistics.fmean(s["up_s"][name] for s in seeds)
        round_s = statistics.fmean(s["round_s"][name] for s in seeds)
        lines.append(f"| {LABELS.get(name, name)} | {up:.0f} s | {round_s:.2f} s | "
                     f"x{round_s / reference:.2f} |")
    spent = [s["privacy"] for s in seeds if (s["privacy"] or {}).get("epsilon") is not None]
    if spent:
        lines.append(f"\nLocal DP: epsilon {statistics.fmean(p['epsilon'] for p in spent):.1f} "
                     f"at delta {spent[0].get('delta')} (mean over seeds).")
    return "\n".join(lines) + "\n"


def provenance(count: int) -> str:
    """Which commit and images each seed ran: one line, or one per group when a resumed study
    mixed them (the AUCs do not depend on the machine; the timings do)."""
    groups: dict[str, list[int]] = {}
    for k in range(count):
        saved = json.loads((WORK / f"seed-{k}" / "seed.json").read_text())
        images = saved.get("images", {})
        label = f"commit {saved.get('commit')}, node image build {images.get('node', '?')}"
        groups.setdefault(label, []).append(k)
    return "\n" + "\n".join(f"Seeds {', '.join(map(str, ks))}: {label}."
                             for label, ks in groups.items()) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "data" / "study.yaml")
    parser.add_argument("--seeds", type=int, default=3, help="data seeds (default 3)")
    parser.add_argument("--fresh", action="store_true",
                        help="run every seed again, even those kept from an earlier call")
    parser.add_argument("experiments", nargs="*", metavar="NAME",
                        help="experiments to run (default: all of the config's)")
    args = parser.parse_args()
    # Stopped by Ctrl-C or `kill` (even started in the background, where SIGINT comes
    # ignored), the running seed's containers and volumes are removed on the way out.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    fed = load_federation(args.config)
    names = args.experiments or [DEFAULT_EXPERIMENT, *fed.experiments]
    for name in names:
        fed.experiment(name)  # an unknown name stops here, in one line
    (ROOT / "results").mkdir(exist_ok=True)
    if args.fresh:
        shutil.rmtree(WORK, ignore_errors=True)
    started = time.monotonic()
    commit = _commit()  # at the start: the code this call loaded, whatever is committed later
    IMAGES.update(_images())
    seeds = []
    for k in range(args.seeds):
        kept = kept_seed(args.config, k, names)
        if kept is not None:
            print(f"seed {k}: kept from an earlier call ({WORK / f'seed-{k}' / 'seed.json'}; "
                  "--fresh runs it again)", flush=True)
            seeds.append(kept)
            continue
        print(f"seed {k} ({len(fed.centres)} centres, {len(names)} experiments)", flush=True)
        seeds.append(run_seed(k, args.config, names))
        keep_seed(args.config, k, names, seeds[-1], commit)
    text = markdown(fed, seeds, names) + provenance(args.seeds)
    out = ROOT / "results" / f"study-{new_run_id()}.md"
    out.write_text(f"# Study benchmark: {args.config.name}, {args.seeds} seeds\n\n{text}")
    (out.with_suffix(".json")).write_text(json.dumps(seeds, indent=1) + "\n")
    print(f"\nAUC on each centre's held-out patients, mean ± sd over {args.seeds} data seeds "
          f"(final global model; baselines trained rounds x epochs epochs):\n\n{text}")
    print(f"wrote {out} ({(time.monotonic() - started) / 60:.0f} min in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
