"""Step 1 of the node's start-up: the centre's data, checked, turned into features once;
and again at an experiment's request when the data changed under the running node.

The record written here (the centre's fingerprint among others) is what the node registers
and what the training plan's dataset reads back on every round. Beside it goes the stat
signature of the centre's files taken before that check (fingerprint.stat_signature): a
request whose folder still has it trains on the record as it is; one whose folder does not
has the data checked again first (current()).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
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
from fedjourney.fingerprint import dataset_fingerprint, stat_signature
from fedjourney.generator.output import read_meta
from fedjourney.node.cache import load_or_build
from fedjourney.node.profile import profile

RECORD = Path(OWN_FILES) / "dataset.json"
CACHE = Path(OWN_FILES) / "cache"
SIGNATURE = "data_signature"  # the record file's key for it, beside the record's fields


def check_data(folder: Path, centre: Centre, spec: FeatureSpec, backend: str = "polars",
               record_path: Path = RECORD, cache_dir: Path = CACHE
               ) -> tuple[DatasetRecord, int, bool]:
    """(the record, number of codes K, whether the cache answered); FedjourneyError when
    the centre is incomplete or its data is broken."""
    return _checked(folder, centre, spec, backend, record_path, cache_dir,
                    stat_signature(folder))


def _checked(folder: Path, centre: Centre, spec: FeatureSpec, backend: str,
             record_path: Path, cache_dir: Path, signature: str
             ) -> tuple[DatasetRecord, int, bool]:
    """check_data, recording `signature`, the files' stat signature taken before they were
    read: a change while they are read shows at the next comparison."""
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
                           policy=centre.policy.to_dict(),
                           profile=profile(x, y, ids, folder, spec))
    _write(record, record_path, signature)
    return record, len(spec.vocabulary), hit


def broken_reason(exc: Exception) -> str:
    """Why check_data refused a centre, as the node's UNHEALTHY line and record say it: a
    FedjourneyError's one line, else only the kind of a reader's own error (its message
    may quote records)."""
    if isinstance(exc, FedjourneyError):
        return f"the centre's data is broken: {exc}"
    return f"the centre's data is unreadable ({type(exc).__name__} while reading it)"


def broken(centre: Centre, spec: FeatureSpec, reason: str, record_path: Path = RECORD,
           signature: str = "") -> DatasetRecord:
    """The record of a centre the node cannot serve, saying why (no patient, no
    fingerprint): registered so the researcher can name it; the dataset refuses to load.
    `signature`: the broken files' stat signature ("" when unknown: checked again at the
    next request)."""
    record = DatasetRecord(centre_id=centre.id, centre=centre.name, country=centre.country,
                           region=centre.region, patients=0, fingerprint="",
                           spec_fingerprint=spec.fingerprint(), unhealthy=reason,
                           secure_aggregation=centre.secure_aggregation,
                           metrics_under_secagg=centre.metrics_under_secagg,
                           policy=centre.policy.to_dict())
    _write(record, record_path, signature)
    return record


def _write(record: DatasetRecord, record_path: Path, signature: str = "") -> None:
    """The record and the signature of the files it describes, in one file replaced at
    once: never one without the other."""
    record_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = record_path.with_name(f".{record_path.name}.partial")
    tmp.write_text(json.dumps({**asdict(record), SIGNATURE: signature}, indent=1),
                   encoding="utf-8")
    tmp.replace(record_path)


@dataclass(frozen=True)
class Current:
    """The centre's record as a request finds it: `said`, the one story line of a check
    run again ("" when the files were not touched); `changed`, whether the record differs
    from the one before (its fingerprint, patients or health: register it again)."""

    record: DatasetRecord
    said: str = ""
    changed: bool = False


Own = Callable[[], tuple[Centre, FeatureSpec, str]]  # the node's own centre, spec, backend


def current(folder: Path, own: Own, record_path: Path = RECORD, cache_dir: Path = CACHE
            ) -> Current:
    """The node's record of the centre, checked again first when the centre's files are
    not those of the last check (their stat signature differs): a new extract, a broken
    file. Unchanged files cost a stat of each, nothing is read. Changed ones are checked as
    at start-up (check_data, with the node's own config: `own`, called only then), their
    features built for the new fingerprint and the record replaced; broken ones recorded
    UNHEALTHY with start-up's reason (the dataset refuses them)."""
    before, recorded_signature = _read(record_path)
    signature = stat_signature(folder)
    if signature == recorded_signature:
        return Current(before)
    centre, spec, backend = own()
    try:
        record, _, _ = _checked(folder, centre, spec, backend, record_path, cache_dir,
                                signature)
    except Exception as exc:
        why = broken_reason(exc)
        record = broken(centre, spec, why, record_path, signature)
        return Current(record, f"UNHEALTHY: {why}; the data changed since the last check: "
                               "this node refuses to train on it", record != before)
    if record.fingerprint == before.fingerprint:
        said = (f"data checked again (its files were touched): unchanged, sha256 "
                f"{record.fingerprint[:16]}, {record.patients} patients")
    else:
        was = (f"{before.fingerprint[:16]} ({before.patients} patients)"
               if before.fingerprint else "none (broken)")
        said = (f"data changed since the last check: fingerprint {was} -> "
                f"{record.fingerprint[:16]}, {record.patients} patients")
    return Current(record, said, record != before)


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
    """The record the node's last check wrote (at start-up, or at a request: current())."""
    return _read(record_path)[0]


def _read(record_path: Path) -> tuple[DatasetRecord, str]:
    """(the record, the stat signature of the files it describes; "" in a record written
    before signatures were: its files are checked again at the next request)."""
    fields = json.loads(record_path.read_text(encoding="utf-8"))
    signature = str(fields.pop(SIGNATURE, ""))
    return DatasetRecord(**fields), signature
