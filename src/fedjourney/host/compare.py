"""`fedjourney compare`: finished runs side by side — their settings, timings and final AUC
per centre (with its 95% interval and held-out patients) in one table, their validation AUC
curves in one PNG."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedjourney import records
from fedjourney.errors import FedjourneyError
from fedjourney.records import MetricRow, RunRecord
from fedjourney.researcher.results import final_table, fmt, row_auc_cell, settings


@dataclass(frozen=True)
class Run:
    """One finished run, as its results folder records it."""

    run_id: str
    info: RunRecord  # run.json
    rows: list[MetricRow]  # metrics.jsonl

    @property
    def final(self) -> dict[str, MetricRow]:
        return final_table(self.rows)

    def curves(self) -> dict[str, list[tuple[int, float]]]:
        """Validation AUC per node against the rounds aggregated before it (0 = the
        initial model, `rounds` = the final one), as learning_curve.png plots it."""
        out: dict[str, list[tuple[int, float]]] = {}
        for r in sorted(self.rows, key=lambda r: r.round):
            if r.validation_auc is not None and _number(r.validation_auc):
                out.setdefault(r.node, []).append((r.round - 1, r.validation_auc))
        return out


def load_run(path: Path) -> Run:
    """The finished run in `path`, or FedjourneyError naming what is wrong with it."""
    if not path.is_dir():
        raise FedjourneyError(f"{'not a' if path.exists() else 'no such'} directory: {path}")
    name = path.resolve().name
    if name.startswith(".") and name.endswith(".partial"):
        raise FedjourneyError(f"{path} is a run still being written (or abandoned half-way); "
                              "finished runs are renamed to results/<run-id>/")
    for needed in (records.RUN, records.METRICS):
        if not (path / needed).is_file():
            raise FedjourneyError(f"not a finished fedjourney run: {path} (no {needed}); "
                                  "runs are in results/<run-id>/")
    try:  # a malformed or newer-format file is a ResultsError, already one line
        info = records.read_run(path)
        rows = records.read_rows(path)
    except OSError as exc:
        raise FedjourneyError(f"unreadable run {path}: {exc.strerror or exc}") from exc
    if not info.finished:
        raise FedjourneyError(f"run {path} did not finish (status {info.status!r}); "
                              "only finished runs compare")
    return Run(info.run_id, info, rows)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def _mean(values: list[Any]) -> float | None:
    kept = [v for v in values if _number(v)]
    return sum(kept) / len(kept) if kept else None


def _seconds(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if _number(value) else "-"


def _epsilon(info: RunRecord) -> str:
    value = (info.privacy or {}).get("epsilon")
    return "-" if value is None else f"{value:.3g}" if _number(value) else str(value)


def short_names(centres: list[str]) -> dict[str, str]:
    """'node-0 Massachusetts General Hospital' -> 'node-0', when every service is distinct."""
    short = {c: c.split(" ", 1)[0] for c in centres}
    return short if len(set(short.values())) == len(short) else {c: c for c in centres}


def table(runs: list[Run]) -> str:
    """One aligned markdown row per run, then what the columns mean."""
    centres = sorted({node for run in runs for node in run.final})
    short = short_names(centres)
    privacy = any(run.info.privacy is not None for run in runs)
    header = ["run", "settings", "rounds", "seconds", "s/round",
              *(["ε"] if privacy else []), *(short[c] for c in centres),
              "mean AUC (unweighted)", "mean val loss (unweighted)"]
    body = []
    for run in runs:
        final = run.final
        body.append([run.run_id, settings(run.info.experiment),
                     str(run.info.rounds),
                     _seconds(run.info.seconds, 1),
                     _seconds(_mean(list(run.info.round_seconds.values())), 2),
                     *([_epsilon(run.info)] if privacy else []),
                     *(row_auc_cell(final[c]) if c in final else "-" for c in centres),
                     fmt(_mean([m.validation_auc for m in final.values()])),
                     fmt(_mean([m.validation_loss for m in final.values()]))])
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths, strict=True))
                                 ) + " |"

    rule = "|" + "|".join("-" * (w + 2) if i < 2 else "-" * (w + 1) + ":"
                          for i, w in enumerate(widths)) + "|"
    notes = ["", "Final global model on each centre's held-out split: AUC per centre, then",
             "plain means over the run's centres (not weighted by patients); - = no value."]
    if any(r.validation_n is not None for run in runs for r in run.final.values()):
        notes += ["AUC [95% interval, DeLong] (n=held-out patients, positives+); ~: the "
                  "interval spans 0.5,", "not informative. Runs from before intervals show "
                  "the AUC alone."]
    notes += [f"{short[c]}: {c.split(' ', 1)[-1]}" for c in centres if short[c] != c]
    return "\n".join([line(header), rule, *map(line, body), *notes]) + "\n"


def draw(runs: list[Run], path: Path) -> None:
    """Validation AUC per round, one subplot per run (shared y axis): each node thin, their
    plain mean thick. Written under a hidden name, then renamed."""
    try:
        import matplotlib
    except ImportError as exc:
        raise FedjourneyError("compare draws with matplotlib, which is not installed: "
                              "pip install -e '.[tanat]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = sorted({r.node for run in runs for r in run.rows})
    colour = {c: f"C{i % 10}" for i, c in enumerate(centres)}
    fig, axes = plt.subplots(1, len(runs), figsize=(1 + 4 * len(runs), 4), sharey=True,
                             squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        by_round: dict[int, list[float]] = {}
        for node, points in run.curves().items():
            ax.plot(*zip(*points, strict=True), lw=0.8, alpha=0.7, color=colour[node],
                    label=node)
            for x, auc in points:
                by_round.setdefault(x, []).append(auc)
        mean = sorted((x, sum(v) / len(v)) for x, v in by_round.items())
        if mean:
            ax.plot(*zip(*mean, strict=True), lw=2.5, color="black", marker="o", ms=3,
                    label="mean of centres")
        ax.axhline(0.5, color="grey", lw=0.5, ls=":")
        ax.set_title(f"{run.run_id}\n{settings(run.info.experiment)}", fontsize=8)
        ax.set_xlabel("rounds aggregated")
    axes[0][0].set_ylabel("validation AUC of the global model")
    legend = {label: handle for ax in axes[0]  # every run's centres, once each
              for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    if legend:
        fig.legend(legend.values(), legend.keys(), fontsize=7, loc="lower center",
                   ncol=min(len(legend), 4), frameon=False)
    fig.tight_layout(rect=(0, 0.06 * math.ceil(len(legend) / 4), 1, 1))  # room for it
    tmp = path.with_name(f".{path.name}.partial")
    try:
        fig.savefig(tmp, format="png", dpi=100)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FedjourneyError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        plt.close(fig)


def compare(run_dirs: list[Path], png: Path) -> str:
    """Check every run, draw their curves to `png`, and return the table. Nothing is
    written when a run is refused."""
    if not run_dirs:
        raise FedjourneyError("give at least one RUN_DIR (runs are in results/<run-id>/)")
    runs = [load_run(p) for p in run_dirs]
    if png.is_dir() or not png.parent.is_dir():
        raise FedjourneyError(f"cannot write {png}: give a file in an existing folder")
    draw(runs, png)
    return table(runs)
