"""Step 1 of the node's start-up: the centre's data, checked, turned into features once.

The record written here (the centre's fingerprint among others) is what the node registers
and what the training plan's dataset reads back on every round.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import polars as pl

from fedjourney.config import Centre
from fedjourney.contract import OWN_FILES, DatasetRecord
from fedjourney.errors import FedjourneyError
from fedjourney.features import ConditionTarget, FeatureSpec, Target
from fedjourney.features.reading import (
    CONDITION_COLUMNS,
    checked_csv,
    conditions_csv,
    patient_columns,
    read_patients,
)
from fedjourney.fingerprint import dataset_fingerprint
from fedjourney.generator.output import read_meta
from fedjourney.node.cache import load_or_build
from fedjourney.node.profile import profile

RECORD = Path(OWN_FILES) / "dataset.json"
CACHE = Path(OWN_FILES) / "cache"


def check_data(folder: Path, centre: Centre, spec: FeatureSpec, backend: str = "polars",
               record_path: Path = RECORD, cache_dir: Path = CACHE
               ) -> tuple[DatasetRecord, int, bool]:
    """(the record, number of codes K, whether the cache answered); FedjourneyError when
    the centre is incomplete or its data is broken."""
    if read_meta(folder) is None:
        raise FedjourneyError(f"no complete centre at {folder} (did its generator finish?)")
    validate(folder, spec)
    fingerprint = dataset_fingerprint(folder)
    x, y, ids, hit = load_or_build(folder, spec, cache_dir, fingerprint, backend)
    record = DatasetRecord(centre_id=centre.id, centre=centre.name, country=centre.country,
                           region=centre.region, patients=len(ids), fingerprint=fingerprint,
                           spec_fingerprint=spec.fingerprint(),
                           secure_aggregation=centre.secure_aggregation,
                           metrics_under_secagg=centre.metrics_under_secagg,
                           profile=profile(x, y, ids, folder, spec))
    _write(record, record_path)
    return record, len(spec.vocabulary), hit


def broken(centre: Centre, spec: FeatureSpec, reason: str, record_path: Path = RECORD
           ) -> DatasetRecord:
    """The record of a centre the node cannot serve, saying why (no patient, no
    fingerprint): registered so the researcher can name it; the dataset refuses to load."""
    record = DatasetRecord(centre_id=centre.id, centre=centre.name, country=centre.country,
                           region=centre.region, patients=0, fingerprint="",
                           spec_fingerprint=spec.fingerprint(), unhealthy=reason,
                           secure_aggregation=centre.secure_aggregation,
                           metrics_under_secagg=centre.metrics_under_secagg)
    _write(record, record_path)
    return record


def _write(record: DatasetRecord, record_path: Path) -> None:
    record_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = record_path.with_name(f".{record_path.name}.partial")
    tmp.write_text(json.dumps(asdict(record), indent=1), encoding="utf-8")
    tmp.replace(record_path)


def validate(folder: Path, spec: FeatureSpec) -> None:
    """Refuse a centre a node must not train on, with one line naming the file and the
    problem — never a patient's identifier or a raw value (the line reaches the logs)."""
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() and not path.resolve().is_relative_to(folder.resolve()):
            raise FedjourneyError(f"{path}: a link pointing out of the centre folder; the "
                                  "node reads only its own centre")
    target = spec.target
    files = [("patients", ["Id", *patient_columns(spec)]),
             ("observations", ["PATIENT", "DATE", "CODE"])]
    if isinstance(target, ConditionTarget):
        conditions_csv(folder, target)  # missing: says the target needs it
        files.append(("conditions", CONDITION_COLUMNS))
    for name, columns in files:
        counts = _counts(checked_csv(folder, name, columns), spec, name == "patients")
        if lacking := max(counts[c] for c in columns):
            raise FedjourneyError(f"{folder / f'{name}.csv'}: {lacking} rows lack "
                                  f"{', '.join(columns)} (a ragged or truncated row)")
        if name == "patients" and isinstance(target, Target):
            _check_classes(folder / "patients.csv", counts["_rows"], counts["_positives"],
                           spec)
        elif name == "patients" and not counts["_rows"]:
            raise FedjourneyError(f"{folder / 'patients.csv'}: no patients")
    if isinstance(target, ConditionTarget):
        # The population and labels as the tensor will have them (the same code).
        labels = read_patients(folder, spec).target
        _check_classes(folder / "conditions.csv", labels.len(), int(labels.sum()), spec)


def _counts(path: Path, spec: FeatureSpec, patients: bool) -> dict[str, int]:
    """Rows, nulls per column and (patients.csv, column target) positives, every column
    parsed: a row with extra fields is only seen past the last one."""
    target = spec.target
    positive = ([(pl.col(target.column) == target.positive).sum().alias("_positives")]
                if patients and isinstance(target, Target) else [])
    try:
        row: dict[str, int] = pl.scan_csv(path, infer_schema=False).select(
            pl.len().alias("_rows"), *positive, pl.all().null_count()
        ).collect(engine="streaming").row(0, named=True)
    except pl.exceptions.ComputeError as exc:
        raise FedjourneyError(f"{path}: {_csv_problem(str(exc))}") from None
    return row


def _csv_problem(polars_message: str) -> str:
    if "utf-8" in polars_message.lower():
        return "not valid UTF-8 text"
    if "more fields" in polars_message:
        return "a row has more fields than the header (a ragged row)"
    return "not a readable CSV file"


def _check_classes(path: Path, rows: int, positives: int, spec: FeatureSpec) -> None:
    at = "" if spec.cutoff is None else " at the cutoff (alive, not yet diagnosed)"
    if rows == 0:
        raise FedjourneyError(f"{path}: no patients{at}")
    if positives in (0, rows):
        raise FedjourneyError(f"{path}: all {rows} patients{at} are in one class of the "
                              f"target ({spec.target.describe()}: "
                              f"{'all' if positives else 'none'}); a model needs both")


def recorded(record_path: Path = RECORD) -> DatasetRecord:
    """The record the node's start-up wrote."""
    return DatasetRecord(**json.loads(record_path.read_text(encoding="utf-8")))
