"""Reading a centre folder: only the columns the features need, with clear errors.

Works on what the generator writes and on real Synthea output (any 3.x schema: columns are
selected by name, CENTER_* columns are optional). Error messages give counts, never a
patient's identifier or a raw value of a record: they reach a node's logs.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from fedjourney.errors import FedjourneyError
from fedjourney.features.spec import ConditionTarget, FeatureSpec

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
CONDITION_COLUMNS = ["PATIENT", "START", "CODE"]


def _no_ids() -> pl.Series:
    return pl.Series("Id", [], dtype=pl.String)


@dataclass(frozen=True)
class Patients:
    """The population (X's rows, in patients.csv order) and its binary target."""

    ids: pl.Series
    target: pl.Series  # Float32 0/1
    # In patients.csv but outside the population (a condition target's already diagnosed,
    # unborn or dead at the cutoff): their observations are known, and left out.
    excluded: pl.Series = field(default_factory=_no_ids)


def _csv(folder: Path, name: str, columns: list[str], needed_for: str | None = None
         ) -> pl.LazyFrame:
    path = checked_csv(folder, name, columns, needed_for)
    return pl.scan_csv(path, infer_schema=False).select(columns)


def checked_csv(folder: Path, name: str, columns: list[str], needed_for: str | None = None
                ) -> Path:
    """FOLDER/NAME.csv, once it exists and its header has the columns (else one line)."""
    path = folder / f"{name}.csv"
    if not folder.is_dir():
        raise FedjourneyError(f"centre folder {folder} not found")
    if not path.is_file():
        why = needed_for or f"is {folder} a Synthea CSV export?"
        raise FedjourneyError(f"{path}: file missing; {why}")
    try:
        header = pl.read_csv(path, n_rows=0, infer_schema=False).columns
    except (pl.exceptions.NoDataError, pl.exceptions.ComputeError):
        raise FedjourneyError(f"{path}: empty file, no CSV header") from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise FedjourneyError(f"{path}: column {missing[0]} missing ({_header_shown(header)})")
    return path


# What a column name looks like in Synthea's CSV format. A file without its header row has a
# record as its first line: only fields shaped like names are quoted, never values (dates,
# ids, names with digits, one-letter codes).
_COLUMN_NAME = re.compile(r"Id|[A-Z][A-Z_]+")


def _header_shown(header: list[str]) -> str:
    names = [h for h in header if _COLUMN_NAME.fullmatch(h)]
    others = len(header) - len(names)
    text = f"has {', '.join(names)}" if names else "no field of its first line is a column name"
    if others:
        text += f"; {others} other field{'s' if others > 1 else ''} not shown"
    if not names or others > len(names):
        text += "; is its first line a header?"
    return text


def patient_columns(spec: FeatureSpec) -> list[str]:
    """The patients.csv columns the target reads (beside Id) that every row must fill."""
    if isinstance(spec.target, ConditionTarget):
        return ["BIRTHDATE"]  # DEATHDATE too, but it is empty for the living
    return [spec.target.column]


def conditions_csv(folder: Path, target: ConditionTarget) -> Path:
    """conditions.csv, which a condition target cannot do without (else one line)."""
    return checked_csv(folder, "conditions", CONDITION_COLUMNS,
                       f"the target (condition {target.condition}) needs the centre's "
                       "conditions")


def read_patients(folder: Path, spec: FeatureSpec) -> Patients:
    """Patient ids and labels, joined later by id (never by row position)."""
    if isinstance(spec.target, ConditionTarget):
        return _at_cutoff(folder, spec.target, spec.end)
    column = spec.target.column
    frame = _csv(folder, "patients", ["Id", column]).collect()
    _check_ids(frame, folder)
    target = (frame[column] == spec.target.positive).fill_null(False).cast(pl.Float32)
    return Patients(ids=frame["Id"], target=target)


def _check_ids(frame: pl.DataFrame, folder: Path) -> None:
    if (frame["Id"].null_count() or (frame["Id"] == "").any()
            or frame["Id"].n_unique() != frame.height):
        raise FedjourneyError(f"{folder / 'patients.csv'}: Id must be unique and non-empty")


def _at_cutoff(folder: Path, target: ConditionTarget, end: dt.date) -> Patients:
    """The patients a prediction at the cutoff is about, and whether each is diagnosed
    with the condition between the cutoff and `end` (see ConditionTarget)."""
    frame = _csv(folder, "patients", ["Id", "BIRTHDATE", "DEATHDATE"]).collect()
    _check_ids(frame, folder)
    frame = frame.with_columns(_date(folder / "patients.csv", frame, "BIRTHDATE"),
                               _date(folder / "patients.csv", frame, "DEATHDATE"))
    frame = frame.join(_first_onsets(folder, target, frame["Id"]), left_on="Id",
                       right_on="PATIENT", how="left", maintain_order="left")
    cutoff, onset = pl.lit(target.cutoff), pl.col("ONSET")
    at_risk = ((pl.col("BIRTHDATE") < cutoff)
               & (pl.col("DEATHDATE").is_null() | (pl.col("DEATHDATE") >= cutoff))
               & (onset.is_null() | (onset >= cutoff)))
    frame = frame.with_columns(at_risk.fill_null(False).alias("_in"))
    kept = frame.filter(pl.col("_in"))
    label = (kept["ONSET"] < end).fill_null(False).cast(pl.Float32)  # never: 0
    return Patients(ids=kept["Id"], target=label, excluded=frame.filter(~pl.col("_in"))["Id"])


def _first_onsets(folder: Path, target: ConditionTarget, known: pl.Series) -> pl.DataFrame:
    """PATIENT, ONSET: each patient's first diagnosis of the condition (earliest START)."""
    path = conditions_csv(folder, target)
    rows = (pl.scan_csv(path, infer_schema=False).select(CONDITION_COLUMNS)
            .filter(pl.col("CODE") == target.condition).collect())
    rows = rows.with_columns(_date(path, rows, "START", f"of condition {target.condition}"))
    unknown = rows.filter(~pl.col("PATIENT").is_in(known.implode()))
    if unknown.height:
        raise FedjourneyError(f"{path}: {unknown['PATIENT'].n_unique()} patients with "
                              f"condition {target.condition} are not in patients.csv")
    return rows.group_by("PATIENT").agg(pl.col("START").min().alias("ONSET"))


def _date(path: Path, frame: pl.DataFrame, column: str, which: str = "") -> pl.Series:
    """A date column (yyyy-MM-dd; a timestamp's day also reads) parsed, empty cells null;
    one line with a count when a filled cell does not parse."""
    parsed = frame[column].str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    bad = int((parsed.is_null() & frame[column].is_not_null()).sum())
    if bad:
        raise FedjourneyError(f"{path}: {bad} rows {which + ' ' if which else ''}have an "
                              f"unparseable {column}; expected yyyy-MM-dd")
    return parsed


def scan_events(folder: Path, before: dt.date | None = None) -> pl.LazyFrame:
    """PATIENT, DATE and CODE of every observation, lazily, as text.

    With `before` (a condition target's cutoff) only the observations dated before that day
    are kept: the one place the features and the vocabulary reports read observations, so
    nothing recorded from the cutoff on — when the outcome may be known — gets past it.
    Rows whose DATE does not parse stay, for the features to report them as broken.
    """
    events = _csv(folder, "observations", ["PATIENT", "DATE", "CODE"])
    if before is None:
        return events
    at = parse_timestamp(pl.col("DATE"))
    return events.filter(at.is_null() | (at < pl.lit(before).cast(pl.Datetime("us", "UTC"))))


def parse_timestamp(text: pl.Expr) -> pl.Expr:
    """Synthea's UTC timestamp text -> Datetime (µs, UTC; null where it does not parse)."""
    return text.str.strptime(pl.Datetime("us", "UTC"), TIMESTAMP_FORMAT, strict=False)
