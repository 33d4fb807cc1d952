"""What the researcher writes in results/<run-id>/: metrics, learning curve, summary.

Pure functions over plain data, tested without Fed-BioMed: the researcher passes in the
metrics its Experiment received and Fed-BioMed's training replies.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fedjourney.contract import METRICS_WITHHELD
from fedjourney.model import informative
from fedjourney.records import BASELINES, MetricRow
from fedjourney.researcher.experiment import Metrics


def _spent(total: dict[str, Any] | None) -> str:
    """"; 12.3 spent on its data (delta 1e-05) of its budget 20", or "" when not known."""
    if not total:
        return ""
    budget = total.get("budget")
    return (f"; {total['epsilon']:.3g} spent on its data (delta {total['delta']:g})"
            + (f" of its budget {budget:g}" if budget is not None else ", no budget"))

def _pick(values: list[float] | None, how: str) -> float | None:
    if not values:
        return None
    return values[-1] if how == "last" else sum(values) / len(values)


def _count(value: Any) -> int | None:
    """A count a node sent as a metric (Fed-BioMed sends numbers as floats)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return round(value)


def metric_rows(run_id: str, rounds: int, metrics: Metrics,
                replies: dict[int, dict[str, Any]], node_names: dict[str, str],
                round_seconds: dict[int, float],
                took_part: dict[int, list[str]] | None = None) -> list[MetricRow]:
    """One row per (round, node). Round r's validation is of the global model the node
    received at the start of round r; round rounds+1 is the final model's validation.
    `took_part`: the nodes each round aggregated (all, when not given)."""
    rows: list[MetricRow] = []
    for r in range(1, rounds + 2):
        for node_id, name in sorted(node_names.items(), key=lambda kv: kv[1]):
            losses = metrics.train_loss.get(node_id, {}).get(r) if r <= rounds else None
            valid = metrics.validation.get(node_id, {}).get(r, {})
            reply = replies.get(r - 1, {}).get(node_id, {}) if r <= rounds else {}
            timing = reply.get("timing", {}) if isinstance(reply, dict) else {}
            rows.append(MetricRow(
                run_id=run_id,
                round=r,
                final=r == rounds + 1,
                node=name,
                train_loss=_pick(losses, "last"),
                train_loss_mean=_pick(losses, "mean"),
                validation_loss=valid.get("loss"),
                validation_auc=valid.get("auc"),
                validation_accuracy=valid.get("accuracy"),
                validation_auc_low=valid.get("auc_low"),
                validation_auc_high=valid.get("auc_high"),
                validation_n=_count(valid.get("n")),
                validation_positives=_count(valid.get("positives")),
                # The centre's posture under secure aggregation kept them (node/metrics.py).
                validation_withheld=METRICS_WITHHELD in valid,
                samples=reply.get("sample_size") if isinstance(reply, dict) else None,
                training_seconds=timing.get("rtime_training"),
                training_cpu_seconds=timing.get("ptime_training"),
                node_seconds=timing.get("rtime_total"),
                round_seconds=round_seconds.get(r),
                took_part=r <= rounds and (took_part is None or
                                           node_id in took_part.get(r, [])),
            ))
    return rows


def learning_curve(rows: list[MetricRow], path: Path) -> None:
    """Training loss and validation AUC per round, one line per node."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for node in sorted({r.node for r in rows}):
        mine = [r for r in rows if r.node == node]
        train = [(r.round, r.train_loss) for r in mine if r.train_loss is not None]
        auc = [(r.round - 1, r.validation_auc) for r in mine
               if r.validation_auc is not None and not math.isnan(r.validation_auc)]
        if train:
            ax1.plot(*zip(*train, strict=True), marker="o", label=node)
        if auc:
            ax2.plot(*zip(*auc, strict=True), marker="o", label=node)
    ax1.set(title="training loss (mean of the last epoch)", xlabel="round", ylabel="BCE")
    ax2.set(title="validation AUC of the global model", xlabel="rounds aggregated",
            ylabel="AUC")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def final_table(rows: list[MetricRow]) -> dict[str, MetricRow]:
    """The final global model on each centre's held-out split: its row, by centre."""
    return {r.node: r for r in rows if r.final}


def summary_markdown(run_id: str, rows: list[MetricRow], fingerprints: dict[str, str],
                     seconds: float, resumed_after: list[int] | None = None,
                     experiment: dict[str, Any] | None = None,
                     privacy: dict[str, Any] | None = None,
                     heterogeneity: list[str] | None = None,
                     missed: dict[str, dict[str, str]] | None = None) -> str:
    """The run's summary: the experiment, the final model per centre, who took part (and
    why each missed what it missed: `missed`, {node: {round: why}}), the privacy spent
    (local DP), how the centres differ and their fingerprints."""
    final = final_table(rows)
    resumed = (f" Resumed from Fed-BioMed's breakpoint after round "
               f"{', '.join(map(str, resumed_after))}." if resumed_after else "")
    name = (experiment or {}).get("name", "default")
    lines = [f"# fedjourney run {run_id}", "",
             f"Experiment {name} ({settings(experiment)}) over {len(final)} centres, "
             f"{max(r.round for r in rows) - 1} rounds, {seconds:.1f} s.{resumed}", "",
             "## Final global model on each centre's held-out split", "",
             "| centre | AUC | 95% interval | held-out patients | positives | accuracy | BCE |",
             "|---|---|---|---|---|---|---|"]
    for node, m in final.items():
        cells = (" | ".join(["withheld"] * 6) if m.validation_withheld else
                 f"{fmt(m.validation_auc)} | {_interval_cell(m)} | {_int(m.validation_n)} | "
                 f"{_int(m.validation_positives)} | {fmt(m.validation_accuracy)} | "
                 f"{fmt(m.validation_loss)}")
        lines.append(f"| {node} | {cells} |")
    bounds = [(m.validation_auc_low, m.validation_auc_high) for m in final.values()
              if m.validation_auc_low is not None and m.validation_auc_high is not None
              and interval(m.validation_auc_low, m.validation_auc_high)]
    if bounds:
        lines += ["", "95% interval: DeLong's, of the AUC on that centre's held-out patients "
                  "alone (logit scale, Student t; `fedjourney.model.auc_interval`). Not "
                  "informative: the interval spans 0.5, so that centre's AUC does not tell "
                  "the model from chance (few positives leave it wide)."]
        if not any(informative(low, high) for low, high in bounds):
            lines += ["", "No centre's held-out split tells this model from chance."]
    if any(m.validation_withheld for m in final.values()):
        lines += ["", "withheld: under secure aggregation that centre's node sends no "
                  "validation metric (its config's `metrics_under_secagg`, `withheld` unless "
                  "it says `clear`)."]
    lines += ["", "## Rounds each centre took part in", "",
              "A round aggregates (sample-weighted FedAverage) the nodes that answered it.", ""]
    lines += [f"- {node}: {spans(rounds)}{_missed((missed or {}).get(node, {}))}"
              for node, rounds in participation(rows).items()]
    if privacy:
        lines += ["", "## Differential privacy", "",
                  f"{privacy['mechanism']}: sigma {privacy['sigma']:g}, clip "
                  f"{privacy['clip']:g}; epsilon at delta {privacy['delta']:g} "
                  f"({privacy['accountant']}, every round a centre was asked to train):", ""]
        spent = privacy.get("spent_per_centre") or {}
        lines += [f"- {node}: epsilon {eps:.3g}" + _spent(spent.get(node))
                  for node, eps in privacy["epsilon_per_centre"].items()]
        if spent:
            lines += ["", "Spent on a centre's data: over every run on it so far, this one "
                      "included (its node's privacy ledger as the run began, composed with "
                      "this run's rounds); each node refuses a round past its budget."]
        lines += ["", "Training losses and validation metrics are reported in the clear, "
                  "outside this budget."]
    if heterogeneity:
        lines += ["", *heterogeneity]
    lines += ["", f"Local-only and centralised baselines: `{BASELINES}` beside this file "
              "(written on the host by `fedjourney report`).", "",
              "## Dataset fingerprints (sha256 of each centre's files, computed on its "
              "node)", ""]
    lines += [f"- {node}: `{fp}`" for node, fp in sorted(fingerprints.items())]
    return "\n".join(lines) + "\n"


def _missed(why: dict[str, str]) -> str:
    """'; missed 3-4 (down: rounds 3-4, its schedule)', rounds of one reason together."""
    reasons: dict[str, list[int]] = {}
    for r, reason in sorted(why.items(), key=lambda kv: int(kv[0])):
        reasons.setdefault(reason, []).append(int(r))
    return "".join(f"; missed {spans(rounds)} ({reason})" for reason, rounds in reasons.items())


def participation(rows: list[MetricRow]) -> dict[str, list[int]]:
    """The rounds each node's update was aggregated in."""
    out: dict[str, list[int]] = {r.node: [] for r in rows}
    for r in rows:
        if r.took_part:
            out[r.node].append(r.round)
    return out


def spans(rounds: list[int]) -> str:
    """[1, 2, 3, 7, 8] -> '1-3, 7-8'."""
    if not rounds:
        return "none"
    parts, start = [], rounds[0]
    for prev, cur in zip(rounds, [*rounds[1:], None], strict=True):
        if cur != prev + 1:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
            start = cur if cur is not None else start
    return ", ".join(parts)


def fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and not math.isnan(value)


def _int(value: Any) -> str:
    return str(value) if _number(value) else "-"


def interval(low: Any, high: Any) -> str:
    """An AUC's interval, '[0.21, 0.72]'; '' without one (rows written before intervals,
    one class missing)."""
    return f"[{low:.2f}, {high:.2f}]" if _number(low) and _number(high) else ""


def _interval_cell(m: MetricRow) -> str:
    low, high = m.validation_auc_low, m.validation_auc_high
    if low is None or high is None or not interval(low, high):
        return "-"
    return interval(low, high) + ("" if informative(low, high) else
                                  " not informative (spans 0.5)")


def auc_cell(value: Any, low: Any = None, high: Any = None, n: Any = None,
             positives: Any = None) -> str:
    """An AUC in a table of many: '0.463 [0.21, 0.72] ~ (n=15, 2+)': its 95% interval, `~`
    when that spans 0.5 (not informative), the held-out patients and their positives; the
    AUC alone for rows without them (runs before intervals); '-' without an AUC."""
    text = fmt(value)
    if text == "-":
        return text
    if interval(low, high):
        text += f" {interval(low, high)}" + ("" if informative(low, high) else " ~")
    if _number(n):
        text += f" (n={n}, {positives}+)" if _number(positives) else f" (n={n})"
    return text


def row_auc_cell(m: MetricRow) -> str:
    """auc_cell of a metrics row."""
    return auc_cell(m.validation_auc, m.validation_auc_low, m.validation_auc_high,
                    m.validation_n, m.validation_positives)


# Runs from before run.json recorded its experiment were all this.
DEFAULT_EXPERIMENT = {"aggregator": "fedavg", "secagg": "off", "dp": "off"}


def settings(experiment: Any) -> str:
    """An experiment (run.json's `experiment`) in a few words: a text value starts a group,
    the numbers after it are its parameters, e.g. 'fedprox mu=0.01, secagg lom, dp local
    sigma=1 clip=1'."""
    experiment = experiment or {}
    if not isinstance(experiment, dict):
        experiment = {"name": experiment}
    # The aggregator leads; its numbers follow it when the mapping is flat (mu after fedprox).
    lead = {} if "aggregator" in experiment else {"aggregator": "fedavg"}
    merged = {**lead, **experiment, **{k: v for k, v in DEFAULT_EXPERIMENT.items()
                                       if k not in experiment and k not in lead}}
    groups: list[str] = []
    for key, value in merged.items():
        if key == "name" or value is None:
            continue
        if isinstance(value, dict):
            groups.append(" ".join([key, *(_word(k, v) for k, v in value.items())]))
        elif isinstance(value, str | bool) or not groups:
            groups.append(_text(value) if key == "aggregator" else f"{key} {_text(value)}")
        else:
            groups[-1] += " " + _word(key, value)
    name = experiment.get("name")
    text = ", ".join(groups)
    return f"{name}: {text}" if name and name != merged["aggregator"] else text


def _word(key: str, value: Any) -> str:
    return _text(value) if isinstance(value, str | bool) else f"{key}={_text(value)}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)
