"""`fedjourney report`: the local-only and centralised baselines of a finished run, computed
on the host and written to results/<run-id>/baselines.md, beside the researcher's summary
(each file has one writer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fedjourney import contract, records
from fedjourney.config import Federation
from fedjourney.errors import FedjourneyError
from fedjourney.fingerprint import dataset_fingerprint
from fedjourney.records import MetricRow
from fedjourney.researcher.results import final_table, fmt, settings


def report(fed: Federation, run_dir: Path, data_dir: Path, baselines_path: Path) -> Path:
    """Write run_dir/baselines.md: the prototype's baselines beside the federated model,
    computing them (same spec, same held-out patients, rounds x epochs epochs) on
    data regenerated on the host, and checking it matches the nodes' fingerprints."""
    from fedjourney.generator import generate
    from fedjourney.prototype import run_prototype

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
    # The run's own experiment: its rounds and epochs set the baselines' training length.
    t = fed.experiment((run.experiment or {}).get("name"))
    epochs = t.rounds * t.epochs
    spec = fed.feature_spec()
    baselines: dict[str, Any] | None = None
    if baselines_path.is_file():
        baselines = json.loads(baselines_path.read_text())
        if baselines.get("spec_fingerprint") != spec.fingerprint() or \
                baselines.get("epochs") != epochs or baselines.get("fingerprints") != host:
            baselines = None
    if baselines is None:
        baselines = run_prototype(fed, data_dir, fed.centres[0], epochs, "polars",
                                  baselines_path, log=lambda _msg: None)
        baselines["fingerprints"] = host
        baselines_path.write_text(json.dumps(baselines, indent=2) + "\n")
    text = baselines_markdown(run.run_id, rows, baselines, run.experiment)
    same = all(host.get(node) == fp for node, fp in fingerprints.items())
    text += ("\nThe host regenerated the same data from the config: every centre's fingerprint "
             "matches its node's.\n" if same else
             "\nWARNING: data regenerated on the host differs from the nodes' (fingerprints "
             f"in {records.SUMMARY}): the baselines were not computed on the same records.\n")
    out = run_dir / records.BASELINES
    tmp = run_dir / f".{records.BASELINES}.partial"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


def baselines_markdown(run_id: str, rows: list[MetricRow], baselines: dict[str, Any],
                       experiment: dict[str, Any] | None = None) -> str:
    """AUC per centre of every baseline model and of the federated model (named by the run's
    experiment: run.json's `experiment`)."""
    table = baselines["baselines"]
    centres = list(next(iter(table.values())))
    lines = [f"# Baselines for run {run_id}", "",
             "`fedjourney prototype`'s models, same FeatureSpec, same held-out patients, "
             "rounds x epochs epochs. AUC on each centre's held-out split:", "",
             "| model | " + " | ".join(centres) + " |", "|---|" + "---|" * len(centres)]
    for model, row in table.items():
        lines.append(f"| {model} | " + " | ".join(fmt(row[c]["auc"]) for c in centres) + " |")
    by_centre = {node.split(" ", 1)[-1]: m.validation_auc
                 for node, m in final_table(rows).items()}
    lines.append(f"| **federated ({settings(experiment)})** | " + " | ".join(
        fmt(by_centre.get(c)) for c in centres) + " |")
    return "\n".join(lines) + "\n"
