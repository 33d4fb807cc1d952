"""Choosing the shared vocabulary from aggregates only: no record leaves a centre.

Each centre reports, per observation code, how many of its patients have it and how many
events there are — with small cells suppressed (codes seen in fewer than `min_patients`
patients are not reported). The researcher merges the reports and keeps the top K codes by
patients across centres. Ties break on the code, so the result is deterministic. Given
`before` (a condition target's cutoff), a report counts only the observations dated before
it: a code recorded once the outcome may be known cannot win a place in the vocabulary.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl

from fedjourney.errors import FedjourneyError
from fedjourney.features.reading import scan_events

MIN_PATIENTS = 5


def code_counts(folder: Path, min_patients: int = MIN_PATIENTS, before: dt.date | None = None
                ) -> dict[str, dict[str, int]]:
    """A centre's aggregate report: {code: {"patients": n, "events": n}}, from the
    observations dated before `before` when given."""
    counts = (scan_events(folder, before).group_by("CODE")
              .agg(pl.col("PATIENT").n_unique().alias("patients"), pl.len().alias("events"))
              .filter(pl.col("patients") >= min_patients).sort("CODE").collect())
    return {row["CODE"]: {"patients": row["patients"], "events": row["events"]}
            for row in counts.iter_rows(named=True)}


def load_report(path: Path) -> dict[str, dict[str, int]]:
    """A report saved as JSON by `fedjourney vocabulary --report`."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(c): {"patients": int(v["patients"]), "events": int(v["events"])}
                for c, v in raw["codes"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FedjourneyError(f"{path}: not a code-count report ({exc})") from None


def top_codes(reports: list[dict[str, dict[str, int]]], k: int) -> list[str]:
    """The k codes present in most patients across all reports."""
    if k <= 0:
        raise FedjourneyError(f"--top must be > 0, got {k}")
    total: dict[str, tuple[int, int]] = {}
    for report in reports:
        for code, c in report.items():
            p, e = total.get(code, (0, 0))
            total[code] = (p + c["patients"], e + c["events"])
    ranked = sorted(total.items(), key=lambda item: (-item[1][0], -item[1][1], item[0]))
    return [code for code, _ in ranked[:k]]
