"""DP benchmark: why FedAverage + local DP ranked below chance on the study scenario, and
what makes it learn. Each variant of the study's `dp` experiment (no DP; DP as configured;
DP at sigma 1, clip 1 with no remedy, as it was shipped before; each remedy alone and
combined; other clips and noise multipliers) is trained by an in-process simulation of the
federation (fedjourney/dpsim.py: FedAverage over the five centres, each centre's round run by
Fed-BioMed's own training routine, so DP-SGD goes through its DPController and opacus as on
a node), on three data seeds. Printed: each variant's epsilon (the researcher's accountant,
max over centres), mean AUC over centres (mean ± sd over seeds), each centre's mean AUC, and
the local-only models (no DP, the baselines' training) for reference.

Seed k shifts every centre's seed by 1000 * k (bench_study.seeded; k = 0 is data/study.yaml
as shipped). The host generates each seed's centres into .cache/bench-dp/seed-k/data; then
one `docker run` of the researcher image per seed (no network, one CPU, the data read-only,
the image's own fedjourney) runs every variant. About 6 minutes a seed on one core for the
default variants; a figure from the simulation, not from the stack (`scripts/bench study
dp` measures the real one).

    scripts/bench dp [--seeds N] [VARIANT...]      (VARIANT: see fedjourney/dpsim.py)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_study
from bench_study import _cell

from fedjourney.config import Federation, load_federation
from fedjourney.contract import new_run_id
from fedjourney.dpsim import DEFAULT_VARIANTS, VARIANTS
from fedjourney.errors import FedjourneyError
from fedjourney.generator import generate
from fedjourney.host.deployment import RESEARCHER_IMAGE

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".cache" / "bench-dp"


def seed_data(config: Path, k: int) -> tuple[Federation, Path]:
    """Seed k's federation (bench_study.seeded, written under WORK) and its centres."""
    bench_study.WORK = WORK  # seeded() writes each seed's config under its module's WORK
    fed, _ = bench_study.seeded(config, k)
    data = WORK / f"seed-{k}" / "data"
    try:
        generate(fed, data)
    except FedjourneyError:  # an older generation in this cache folder: it is ours to redo
        generate(fed, data, force=True)
    return fed, data


def simulate(k: int, variants: list[str]) -> dict[str, Any]:
    """Every variant on seed k, in one container of the researcher image."""
    folder = WORK / f"seed-{k}"
    out = WORK / "out"
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o777)  # written by the calling user's uid inside the container
    (out / f"seed-{k}.json").unlink(missing_ok=True)
    cmd = ["docker", "run", "--rm", "--network", "none", "--cpus", "1", "--read-only",
           "--tmpfs", "/tmp", "--user", f"{os.getuid()}:{os.getgid()}",
           "--env", "HOME=/tmp", "--env", "MPLCONFIGDIR=/tmp",
           "--volume", f"{folder}:/sim:ro", "--volume", f"{out}:/out",
           RESEARCHER_IMAGE, "python3", "-W", "ignore", "-m", "fedjourney.dpsim",
           "--config", "/sim/federation.yaml", "--data", "/sim/data",
           "--out", f"/out/seed-{k}.json", "--seed", str(k),
           *[arg for v in variants for arg in ("--variant", v)]]
    if subprocess.run(cmd, check=False).returncode != 0:
        raise SystemExit(f"seed {k}: the simulation failed (see above)")
    result: dict[str, Any] = json.loads((out / f"seed-{k}.json").read_text())
    return result


SHORT = {"Massachusetts General Hospital": "MGH", "CHU de Lyon": "Lyon",
         "University College London Hospital": "UCLH", "Charite Berlin": "Charite",
         "Mercy Medical Center": "Mercy"}  # the study's centres, as the docs' tables name them


def markdown(fed: Federation, seeds: list[dict[str, Any]], variants: list[str]) -> str:
    """Epsilon, mean AUC over centres (mean ± sd over seeds), each centre's mean AUC, and
    how the model scores: the rank correlation of its score with record volume, its mean."""
    centres = [c.name for c in fed.centres]
    lines = ["| variant | epsilon | mean AUC | " + " | ".join(SHORT.get(c, c) for c in centres)
             + " | score ~ volume | mean score |", "|---|---|---|" + "---|" * (len(centres) + 2)]
    rows = [[s["variants"][v] for s in seeds] for v in variants]
    rows.append([{"label": "local only (no DP, own centre)", **s["local"]} for s in seeds])
    rows.append([{"label": "record volume alone (no model)", **s["volume"]} for s in seeds])
    for runs in rows:
        eps = [r["epsilon"] for r in runs if r.get("epsilon") is not None]
        means = [statistics.fmean(r["auc"].values()) for r in runs]
        cells = [f"{statistics.fmean(r['auc'][c] for r in runs):.3f}" for c in centres]
        how = [f"{statistics.fmean(r[k] for r in runs):{f}}" if k in runs[0] else "-"
               for k, f in (("volume_rho", "+.2f"), ("mean_score", ".3f"))]
        lines.append(f"| {runs[0]['label']} | {f'{statistics.fmean(eps):.1f}' if eps else '-'}"
                     f" | **{_cell(means)}** | " + " | ".join(cells + how) + " |")
    n = seeds[0]["centres"]
    lines += ["", "Centres: mean AUC over seeds. score ~ volume: Spearman correlation of the "
              "model's score with the patient's record volume (the sum of its inputs), on every "
              "held-out patient; mean score: the model's mean output (the positive rate is "
              "about 0.03). Held-out patients (positives), seed 0: " + ", ".join(
                  f"{SHORT.get(c, c)} {n[c]['held_out']} ({n[c]['positives']})"
                  for c in centres) + "."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "data" / "study.yaml")
    parser.add_argument("--seeds", type=int, default=3, help="data seeds (default 3)")
    parser.add_argument("--table", type=Path, metavar="JSON",
                        help="only print the table of an earlier run (results/dp-*.json)")
    parser.add_argument("variants", nargs="*", metavar="VARIANT",
                        help=f"variants to run (default: {' '.join(DEFAULT_VARIANTS)}; "
                        f"all: {' '.join(VARIANTS)})")
    args = parser.parse_args()
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"bench dp: no variant {', '.join(unknown)}; choose among "
                         f"{' '.join(VARIANTS)}")
    variants = args.variants or DEFAULT_VARIANTS
    if args.table:
        saved = json.loads(args.table.read_text())
        print(markdown(load_federation(args.config), saved,
                       args.variants or list(saved[0]["variants"])), end="")
        return 0
    started = time.monotonic()
    seeds, fed = [], load_federation(args.config)
    for k in range(args.seeds):
        print(f"seed {k}: generating the centres", flush=True)
        fed, _ = seed_data(args.config, k)
        print(f"seed {k}: {len(variants)} variants and the local-only models", flush=True)
        seeds.append(simulate(k, variants))
    text = markdown(fed, seeds, variants)
    (ROOT / "results").mkdir(exist_ok=True)
    out = ROOT / "results" / f"dp-{new_run_id()}.md"
    out.write_text(f"# DP benchmark (simulation): {args.config.name}, {args.seeds} seeds\n\n"
                   f"{text}")
    out.with_suffix(".json").write_text(json.dumps(seeds, indent=1) + "\n")
    print(f"\nFinal global model's AUC on each centre's held-out patients, mean over "
          f"{args.seeds} data seeds (mean AUC: over centres, ± sd over seeds):\n\n{text}")
    print(f"wrote {out} ({(time.monotonic() - started) / 60:.0f} min in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
