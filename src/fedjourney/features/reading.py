"""Reading a centre folder: only the columns the features need, with clear errors.

Works on what the generator writes and on real Synthea output (any 3.x schema: columns are
selected by name, CENTER_* columns are optional).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fedjourney.errors import FedjourneyError
from fedjourney.features.spec import FeatureSpec

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Patients:
    """Patient ids in file order and the binary target."""

    ids: pl.Series
    target: pl.Series  # Float32 0/1


def _csv(folder: Path, name: str, columns: list[str]) -> pl.LazyFrame:
    return pl.scan_csv(checked_csv(folder, name, columns), infer_schema=False).select(columns)


def checked_csv(folder: Path, name: str, columns: list[str]) -> Path:
    """FOLDER/NAME.csv, once it exists and its header has the columns (else one line)."""
    path = folder / f"{name}.csv"
    if not folder.is_dir():
        raise FedjourneyError(f"centre folder {folder} not found")
    if not path.is_file():
        raise FedjourneyError(f"{path}: file missing; is {folder} a Synthea CSV export?")
    try:
        header = pl.read_csv(path, n_rows=0, infer_schema=False).columns
    except (pl.exceptions.NoDataError, pl.exceptions.ComputeError):
        raise FedjourneyError(f"{path}: empty file, no CSV header") from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise FedjourneyError(f"{path}: column {missing[0]} missing (has {', '.join(header)})")
    return path


def read_patients(folder: Path, spec: FeatureSpec) -> Patients:
    """Patient ids and labels, joined later by id (never by row position)."""
    column = spec.target.column
    frame = _csv(folder, "patients", ["Id", column]).collect()
    if (frame["Id"].null_count() or (frame["Id"] == "").any()
            or frame["Id"].n_unique() != frame.height):
        raise FedjourneyError(f"{folder / 'patients.csv'}: Id must be unique and non-empty")
    target = (frame[column] == spec.target.positive).fill_null(False).cast(pl.Float32)
    return Patients(ids=frame["Id"], target=target)


def scan_events(folder: Path) -> pl.LazyFrame:
    """PATIENT, DATE and CODE of every observation, lazily, as text."""
    return _csv(folder, "observations", ["PATIENT", "DATE", "CODE"])


def parse_timestamp(text: pl.Expr) -> pl.Expr:
    """Synthea's UTC timestamp text -> Datetime (µs, UTC; null where it does not parse)."""
    return text.str.strptime(pl.Datetime("us", "UTC"), TIMESTAMP_FORMAT, strict=False)
