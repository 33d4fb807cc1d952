"""Stage A: the tutorial's local prototype, and the baselines federation is judged against.

For one centre: build the tensor and print what the tutorial prints. Then the question a
user has: what does federation buy? One model per centre on its own data and one on all
centres pooled, each evaluated on every centre's held-out split. They are the experiment's
own plan, trained with its settings the way its nodes train (fedjourney/baselines.py, run in
the researcher image: host/baselines.py), so `fedjourney report` gives a run the same table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fedjourney.config import Centre, Federation
from fedjourney.features import build
from fedjourney.records import write_atomically
from fedjourney.researcher.results import auc_cell


def run_prototype(fed: Federation, config: Path, data_dir: Path, focus: Centre,
                  experiment: str | None, backend: str, out: Path, log: Any = print
                  ) -> dict[str, Any]:
    """Stage A end to end; writes the baselines as JSON to out."""
    from fedjourney.host.baselines import compute

    spec = fed.feature_spec()
    sets = {c.name: build(data_dir / c.folder_name, spec, backend) for c in fed.centres}
    summary = sets[focus.name].summary()
    log(f"Stage A on {focus.name} ({backend} backend, spec {spec.fingerprint()})")
    log(f"  {'target':<22} {spec.target.describe()}")
    for key in ("shape", "patients", "patients_excluded", "time_bins", "features",
                "sparsity", "non_zero_cells", "patients_with_events", "positive_rate"):
        if key in summary:  # patients_excluded: a condition target's only
            log(f"  {key:<22} {summary[key]}")
    result = compute(fed, config, experiment, data_dir, backend, focus.id, log)
    result = {"spec": spec.to_dict(), **result, "experiment": experiment,
              "centres": {c.name: sets[c.name].summary() for c in fed.centres}}
    log("")
    log(render_table(result["baselines"]))
    log("")
    log(render_together(result["held_out_together"]))
    for difference in result["differences"]:
        log(f"unlike the federated run, {difference}")
    write_atomically(out, json.dumps(result, indent=2) + "\n")
    log(f"\nwrote {out}")
    return result


def render_together(together: dict[str, dict[str, Any]]) -> str:
    """AUC of each model on every centre's held-out patients together (the headline)."""
    first = next(iter(together.values()))
    lines = [f"AUC on every centre's held-out patients together (n={first['n']}, "
             f"{first['positives']} positive):"]
    width = max(map(len, together)) + 2
    lines += [f"  {name:<{width}}{_auc(r)}" for name, r in together.items()]
    return "\n".join(lines)


def _auc(r: dict[str, Any]) -> str:
    text = auc_cell(r.get("auc"), r.get("auc_low"), r.get("auc_high"))
    return text.replace(" ~", " not informative (spans 0.5)")


def _cell(r: dict[str, Any]) -> str:
    text = auc_cell(r.get("auc"), r.get("auc_low"), r.get("auc_high"), r.get("n"),
                    r.get("positives"))
    return f"{text:>36}"  # room for n in the thousands: a condition target needs them


def render_table(table: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Models in rows, held-out centres in columns: AUC [95% interval] (n, positives)."""
    centres = list(next(iter(table.values())))
    width = max(len(m) for m in table) + 2
    head = "model".ljust(width) + "".join(f"{c[:34]:>36}" for c in centres)
    lines = [head, "-" * len(head)]
    for model, row in table.items():
        cells = "".join(_cell(r) for r in row.values())
        lines.append(model.ljust(width) + cells)
    lines.append("AUC [95% interval, DeLong] (held-out patients, positives); ~: the interval "
                 "spans 0.5 (not informative)")
    return "\n".join(lines)
