"""Turning a finished experiment into results/<run-id>/: metrics, curve, summary.

Pure functions over plain dicts, so they are tested without Fed-BioMed: the researcher
passes in Fed-BioMed's monitor store (`exp.monitor()._metric_store`) and training replies.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def _last(series: dict[Any, Any] | None, round_: int) -> float | None:
    entry = (series or {}).get(round_)
    values = entry.get("values") if isinstance(entry, dict) else None
    return float(values[-1]) if values else None


def _mean(series: dict[Any, Any] | None, round_: int) -> float | None:
    entry = (series or {}).get(round_)
    values = entry.get("values") if isinstance(entry, dict) else None
    return float(sum(values) / len(values)) if values else None


def metric_rows(run_id: str, rounds: int, metric_store: dict[str, Any],
                replies: dict[int, dict[str, Any]], node_names: dict[str, str],
                round_seconds: dict[int, float]) -> list[Row]:
    """One row per (round, node). Round r's validation is of the global model the node
    received at the start of round r; round rounds+1 is the final model's validation."""
    rows: list[Row] = []
    for r in range(1, rounds + 2):
        for node_id, name in sorted(node_names.items(), key=lambda kv: kv[1]):
            store = metric_store.get(node_id, {})
            training = store.get("training", {})
            testing = store.get("testing_global_updates", {})
            reply = replies.get(r - 1, {}).get(node_id, {}) if r <= rounds else {}
            timing = reply.get("timing", {}) if isinstance(reply, dict) else {}
            rows.append({
                "run_id": run_id,
                "round": r,
                "final": r == rounds + 1,
                "node": name,
                "train_loss": _last(training.get("Loss"), r) if r <= rounds else None,
                "train_loss_mean": _mean(training.get("Loss"), r) if r <= rounds else None,
                "validation_loss": _last(testing.get("loss"), r),
                "validation_auc": _last(testing.get("auc"), r),
                "validation_accuracy": _last(testing.get("accuracy"), r),
                "samples": reply.get("sample_size") if isinstance(reply, dict) else None,
                "training_seconds": timing.get("rtime_training"),
                "node_seconds": timing.get("rtime_total"),
                "round_seconds": round_seconds.get(r),
            })
    return rows


def write_jsonl(rows: list[Row], path: Path) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows),
                    encoding="utf-8")


def learning_curve(rows: list[Row], path: Path) -> None:
    """Training loss and validation AUC per round, one line per node."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for node in sorted({r["node"] for r in rows}):
        mine = [r for r in rows if r["node"] == node]
        train = [(r["round"], r["train_loss"]) for r in mine if r["train_loss"] is not None]
        auc = [(r["round"] - 1, r["validation_auc"]) for r in mine
               if r["validation_auc"] is not None and not math.isnan(r["validation_auc"])]
        if train:
            ax1.plot(*zip(*train, strict=True), marker="o", label=node)
        if auc:
            ax2.plot(*zip(*auc, strict=True), marker="o", label=node)
    ax1.set(title="training loss (last logged batch)", xlabel="round", ylabel="BCE")
    ax2.set(title="validation AUC of the global model", xlabel="rounds aggregated",
            ylabel="AUC")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def final_table(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """The final global model on each centre's held-out split."""
    return {r["node"]: {"auc": r["validation_auc"], "accuracy": r["validation_accuracy"],
                        "loss": r["validation_loss"]}
            for r in rows if r["final"]}


def summary_markdown(run_id: str, rows: list[Row], fingerprints: dict[str, str],
                     seconds: float, baselines: dict[str, Any] | None = None) -> str:
    """The run's summary; with the prototype's baselines, the comparison table."""
    final = final_table(rows)
    lines = [f"# fedjourney run {run_id}", "",
             f"FedAverage over {len(final)} centres, "
             f"{max(r['round'] for r in rows) - 1} rounds, {seconds:.1f} s.", "",
             "## Final global model on each centre's held-out split", "",
             "| centre | AUC | accuracy | BCE |", "|---|---|---|---|"]
    for node, m in final.items():
        lines.append(f"| {node} | {_fmt(m['auc'])} | {_fmt(m['accuracy'])} | "
                     f"{_fmt(m['loss'])} |")
    if baselines:
        table = baselines["baselines"]
        centres = list(next(iter(table.values())))
        lines += ["", "## Against the baselines (`fedjourney prototype`, same held-out "
                  "patients)", "", "AUC on each centre's held-out split:", "",
                  "| model | " + " | ".join(centres) + " |",
                  "|---|" + "---|" * len(centres)]
        for model, row in table.items():
            lines.append(f"| {model} | " + " | ".join(_fmt(row[c]["auc"]) for c in centres)
                         + " |")
        by_centre = {node.split(" ", 1)[-1]: m for node, m in final.items()}
        lines.append("| **federated (FedAverage)** | " + " | ".join(
            _fmt(by_centre.get(c, {}).get("auc")) for c in centres) + " |")
    lines += ["", "## Dataset fingerprints (sha256 of each centre's files, computed on its "
              "node)", ""]
    lines += [f"- {node}: `{fp}`" for node, fp in sorted(fingerprints.items())]
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}"
