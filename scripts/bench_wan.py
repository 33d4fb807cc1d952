"""WAN benchmark: what the WAN scenario's links, machines and outage (data/wan.yaml) do to
round time, participation and the final AUC, against the same federation on the engine's
own network with every centre whole (its `link`, `compute` and `schedule` taken out).

Each runs by an attached `docker compose up` to the results on the host (it returns by
itself, nothing is polled); the same data seeds, so the same patients, in both.

  scripts/bench wan [--config data/wan.yaml]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from bench_links import attached_run

from fedjourney import records
from fedjourney.config import STANCE
from fedjourney.researcher.results import fmt, interval, participation, spans
from fedjourney.testing import prepare

ROOT = Path(__file__).resolve().parents[1]
INFRASTRUCTURE = ("link", "compute", "schedule")
assert set(INFRASTRUCTURE) <= set(STANCE)


def run(folder: Path, name: str, raw: dict[str, Any]
        ) -> tuple[records.RunRecord, list[records.MetricRow], float]:
    """(run.json, metrics rows, up -> results seconds) of one attached `compose up`."""
    source = folder / name.split()[0].lower() / "source.yaml"
    source.parent.mkdir(parents=True)
    source.write_text(yaml.safe_dump(raw, sort_keys=False))
    _, compose_file = prepare(source.parent, source)
    out, took = attached_run(compose_file, f"wan-{name.split()[0].lower()}")
    return records.read_run(out), records.read_rows(out), took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "data" / "wan.yaml")
    args = parser.parse_args()
    raw = yaml.safe_load(args.config.read_text())
    whole = yaml.safe_load(args.config.read_text())
    for centre in whole["centres"]:
        for key in INFRASTRUCTURE:
            centre.pop(key, None)
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: run(Path(tmp), name, config)
                   for name, config in (("engine network", whole), ("WAN", raw))}
    print(f"{args.config.name}: {raw['training']['rounds']} rounds, min_nodes "
          f"{raw['training'].get('min_nodes')}, round deadline "
          f"{raw['training'].get('round_deadline_s')} s; rounds 2 on, median (min-max)")
    print("| federation | round s | up -> results s | final AUC by centre [95% interval] "
          "(n held out) | rounds each centre took part in |")
    print("|---|---|---|---|---|")
    for name, (record, rows, took) in results.items():
        walls = [s for r, s in record.round_seconds.items() if r > 1]
        finals = "; ".join(
            f"{row.node.split()[0]} {fmt(row.validation_auc)} "
            f"{interval(row.validation_auc_low, row.validation_auc_high)} "
            f"(n={row.validation_n})" for row in rows if row.final)
        took_part = "; ".join(f"{node.split()[0]} {spans(rounds)}"
                              for node, rounds in participation(rows).items())
        print(f"| {name} | {statistics.median(walls):.2f} ({min(walls):.2f}-"
              f"{max(walls):.2f}) | {took:.0f} | {finals} | {took_part} |")
        for r, s in sorted(record.round_seconds.items()):
            print(f"  {name} round {r}: {s:.2f} s", file=sys.stderr)
        if record.missed:
            print(f"  {name} missed: {record.missed}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
