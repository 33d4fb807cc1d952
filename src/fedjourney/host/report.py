"""`fedjourney report`: the local-only and centralised baselines of a finished run, trained
from the host in the researcher image (host/baselines.py) and written to
results/<run-id>/baselines.md, beside the researcher's summary (each file has one writer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fedjourney import contract, records
from fedjourney.config import Federation
from fedjourney.errors import FedjourneyError
from fedjourney.fingerprint import dataset_fingerprint
from fedjourney.records import MetricRow
from fedjourney.researcher.results import auc_cell, final_table, row_auc_cell, settings


def report(fed: Federation, config: Path, run_dir: Path, data_dir: Path,
           baselines_path: Path) -> Path:
    """Write run_dir/baselines.md: the run's own plan and settings trained on each centre
    alone and on all pooled (fedjourney/baselines.py), beside the federated model, on data
    regenerated on the host and checked against the nodes' fingerprints. baselines_path
    caches the last result, keyed by everything it depends on (host/baselines.cache_key)."""
    from fedjourney.generator import generate
    from fedjourney.host.baselines import cache_key, compute, image_id

    if not (run_dir / records.METRICS).is_file():
        raise FedjourneyError(f"{run_dir} is not a finished run (no {records.METRICS})")
    run = records.read_run(run_dir)
    rows = records.read_rows(run_dir)
    fingerprints = records.read_fingerprints(run_dir)
    try:
        generate(fed, data_dir)
    except FedjourneyError:  # an older generation in this cache folder: it is ours to redo
        generate(fed, data_dir, force=True)
    host = {contract.node_label(c.id, c.name): dataset_fingerprint(data_dir / c.folder_name)
            for c in fed.centres}
    experiment = (run.experiment or {}).get("name")
    key = cache_key(fed, experiment, "polars", host, image_id())
    baselines: dict[str, Any] | None = None
    if baselines_path.is_file():
        baselines = json.loads(baselines_path.read_text())
        if baselines.get("key") != key:
            baselines = None
    if baselines is None:
        baselines = {**compute(fed, config, experiment, data_dir, log=lambda _line: None),
                     "key": key, "fingerprints": host}
        records.write_atomically(baselines_path, json.dumps(baselines, indent=2) + "\n")
    text = baselines_markdown(run.run_id, rows, baselines, run.experiment)
    same = all(host.get(node) == fp for node, fp in fingerprints.items())
    text += ("\nThe host regenerated the same data from the config: every centre's fingerprint "
             "matches its node's.\n" if same else
             "\nWARNING: data regenerated on the host differs from the nodes' (fingerprints "
             f"in {records.SUMMARY}): the baselines were not computed on the same records.\n")
    out = run_dir / records.BASELINES
    records.write_atomically(out, text)
    return out


def _cell(r: dict[str, Any]) -> str:
    """A baselines.json cell as summary.md shows an AUC (results.auc_cell)."""
    return auc_cell(r.get("auc"), r.get("auc_low"), r.get("auc_high"), r.get("n"),
                    r.get("positives"))


def baselines_markdown(run_id: str, rows: list[MetricRow], baselines: dict[str, Any],
                       experiment: dict[str, Any] | None = None) -> str:
    """AUC per centre of every baseline model and of the federated model (named by the run's
    experiment: run.json's `experiment`), the settings both used and what differs."""
    table = baselines["baselines"]
    centres = list(next(iter(table.values())))
    used = baselines.get("settings", {})
    shown = ", ".join(f"{k} {v}" for k, v in used.items() if v not in (None, {}))
    lines = [f"# Baselines for run {run_id}", "",
             "Each centre's model trained on its own patients, and one on all centres' pooled, "
             "with the run's plan and settings the way its nodes train "
             f"({shown}); AUC with its 95% interval (DeLong) on each centre's held-out split "
             "(the patients the nodes validate on), n patients and their positives. "
             "`~`: the interval spans 0.5, so that figure does not tell the model from chance.",
             ""]
    lines += [f"Unlike the federated run, {d}." for d in baselines.get("differences", [])]
    lines += ["", "| model | " + " | ".join(centres) + " |", "|---|" + "---|" * len(centres)]
    for model, row in table.items():
        lines.append(f"| {model} | " + " | ".join(_cell(row[c]) for c in centres) + " |")
    final = {node.split(" ", 1)[-1]: m for node, m in final_table(rows).items()}
    lines.append(f"| **federated ({settings(experiment)})** | " + " | ".join(
        row_auc_cell(final[c]) if c in final else "n/a" for c in centres) + " |")
    together = baselines.get("held_out_together")
    if together:
        first = next(iter(together.values()))
        lines += ["", f"On every centre's held-out patients together (n={first['n']}, "
                  f"{first.get('positives', '?')} positive): "
                  + "; ".join(f"{m} {_cell(r).split(' (n=')[0]}" for m, r in together.items())
                  + "."]
    return "\n".join(lines) + "\n"
