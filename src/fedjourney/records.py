"""The results' format: the files of results/<run-id>/, its metric rows and run record.

The researcher writes them and every reader (`compare`, `report`, the benchmarks, the tests)
reads them through this module. Standard library only (and fedjourney's one error type): the
host and the containers both import it.

Versioning: run.json's "format" is the version of the whole folder. Runs written before it
existed have the same keys and read as version 1. Bump FORMAT_VERSION when a reader of the
current version would misread a new file (a field removed, renamed, or changing type or
meaning); an added field needs no bump when it has a default, since readers ignore keys they
do not know. A folder of a version above FORMAT_VERSION is refused with one line.
"""

from __future__ import annotations

import json
import types
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from fedjourney.errors import FedjourneyError

# The files of a finished run. The researcher writes all but BASELINES (`fedjourney report`
# writes that one, on the host: each file has one writer).
METRICS = "metrics.jsonl"
RUN = "run.json"
SUMMARY = "summary.md"
MODEL = "model.pt"
LEARNING_CURVE = "learning_curve.png"
FEDERATION = "federation.yaml"
FEATURE_SPEC = "feature_spec.yaml"
FINGERPRINTS = "fingerprints.json"
BASELINES = "baselines.md"
# A folder: TensorBoard event files, one subfolder per centre (researcher/curves.py).
TENSORBOARD = "tensorboard"
RESEARCHER_FILES = frozenset({METRICS, RUN, SUMMARY, MODEL, LEARNING_CURVE, FEDERATION,
                              FEATURE_SPEC, FINGERPRINTS, TENSORBOARD})
# What a user opens first, in that order (named when a run ends).
HEADLINE_FILES = (SUMMARY, BASELINES, METRICS, MODEL, LEARNING_CURVE)

FORMAT_VERSION = 1
FORMAT_KEY = "format"  # in run.json
FINISHED = "finished"  # run.json's status once the folder is complete


class ResultsError(FedjourneyError, ValueError):
    """A results file this fedjourney cannot read; the message names the file."""


@dataclass(frozen=True)
class MetricRow:
    """One line of metrics.jsonl: a node's numbers in one round. Round r's validation is of
    the global model the node received at the start of round r; the row with `final` set
    (round rounds+1) is the final model's validation."""

    run_id: str
    round: int
    final: bool
    node: str  # the centre's label, 'node-0 MGH'
    train_loss: float | None  # the last epoch's mean (node/rules.py: what a centre sends)
    train_loss_mean: float | None
    validation_loss: float | None
    validation_auc: float | None
    validation_accuracy: float | None
    samples: int | None
    training_seconds: float | None
    node_seconds: float | None
    round_seconds: float | None
    # Added after the first runs: their rows have neither.
    validation_withheld: bool = False  # the centre's posture under secure aggregation
    took_part: bool = False  # this round aggregated the node's update
    # Added with the AUC's uncertainty (model.auc_interval); None in rows written before,
    # and where the node sent no validation. NaN bounds: one class missing from the split.
    validation_auc_low: float | None = None  # the AUC's 95% interval (DeLong)
    validation_auc_high: float | None = None
    validation_n: int | None = None  # held-out patients
    validation_positives: int | None = None  # of whom positive
    # Added with per-centre compute: the CPU time of the node's training (all its threads),
    # beside training_seconds, its wall time; their ratio is the share of a core it had.
    training_cpu_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> MetricRow:
        """The row in `data` (a parsed JSON line); ValueError naming what is missing or
        mistyped."""
        return _build(cls, data, "a metrics row")


@dataclass(frozen=True)
class RunRecord:
    """run.json: what the researcher records of a finished run."""

    run_id: str
    seconds: float
    rounds: int
    round_seconds: dict[int, float]  # wall time per round
    spec_fingerprint: str
    status: str
    # Added after the first runs (None / empty when absent).
    experiment: dict[str, Any] | None = None  # Training.describe() and its name
    privacy: dict[str, Any] | None = None  # under local DP: sigma, clip, epsilon...
    resumed_after: list[int] = field(default_factory=list)
    # Why each node missed the rounds it missed: {node: {round: why}} (a late reply, a
    # failed one, its scheduled outage); only nodes that missed one.
    missed: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    def to_json(self) -> dict[str, Any]:
        """run.json's mapping, its keys in the order the researcher has always written."""
        out: dict[str, Any] = {
            FORMAT_KEY: FORMAT_VERSION, "run_id": self.run_id, "seconds": self.seconds,
            "rounds": self.rounds,
            "round_seconds": {str(r): s for r, s in self.round_seconds.items()},
            "spec_fingerprint": self.spec_fingerprint}
        # Runs before experiments existed have none; privacy is only there under DP.
        out.update({k: v for k, v in (("experiment", self.experiment),
                                      ("privacy", self.privacy)) if v is not None})
        missed = {"missed": self.missed} if self.missed else {}
        return {**out, "resumed_after": self.resumed_after, **missed, "status": self.status}

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        """The record in `data` (parsed run.json); ValueError naming what is missing or
        mistyped. Its "format" is checked by read_run, which knows the file."""
        record = _build(cls, data, "a run record")
        try:  # JSON object keys are text; rounds are numbers
            by_round = {int(r): s for r, s in record.round_seconds.items()}
        except ValueError as exc:
            raise ValueError(f"a run record's round_seconds has a key that is not a "
                             f"round: {exc}") from None
        if not all(_fits(s, float) for s in by_round.values()):
            raise ValueError("a run record's round_seconds has a value that is not a number")
        return replace(record, round_seconds=by_round)


Record = TypeVar("Record", MetricRow, RunRecord)


def _build(cls: type[Record], data: Any, what: str) -> Record:
    """cls from a JSON mapping: every field without a default present, each of its type;
    keys cls does not know are ignored (a newer writer's additions)."""
    if not isinstance(data, dict):
        raise ValueError(f"{what} is not a JSON object")
    known = fields(cls)
    missing = [f.name for f in known if f.name not in data
               and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(missing)}")
    hints = get_type_hints(cls)
    for f in known:
        if f.name in data and not _fits(data[f.name], hints[f.name]):
            raise ValueError(f"{what}: {f.name} is {data[f.name]!r}, not "
                             f"{_type_name(hints[f.name])}")
    return cls(**{f.name: data[f.name] for f in known if f.name in data})


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's annotation (containers: by their kind only)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg) for arg in get_args(hint))
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin is not None:
        return isinstance(value, origin)
    if hint in (int, float) and isinstance(value, bool):  # JSON true is not a number
        return False
    return isinstance(value, int | float) if hint is float else isinstance(value, hint)


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def read_run(folder: Path) -> RunRecord:
    """results/<run-id>/run.json; ResultsError naming the file when it is unreadable or of a
    newer format (OSError when it cannot be opened)."""
    path = folder / RUN
    data = _json(path)
    _check_format(path, data)
    try:
        return RunRecord.from_json(data)
    except ValueError as exc:
        raise ResultsError(f"unreadable run file {path}: {exc}") from None


def read_rows(folder: Path) -> list[MetricRow]:
    """results/<run-id>/metrics.jsonl, refused like read_run (its format is run.json's)."""
    if (folder / RUN).is_file():
        _check_format(folder / RUN, _json(folder / RUN))
    path = folder / METRICS
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(MetricRow.from_json(json.loads(line)))
            except ValueError as exc:  # JSONDecodeError is one
                raise ResultsError(f"unreadable run file {path} line {n}: {exc}") from None
    return rows


def write_rows(folder: Path, rows: list[MetricRow]) -> None:
    """metrics.jsonl: one JSON object a line, keys sorted."""
    (folder / METRICS).write_text(
        "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in rows),
        encoding="utf-8")


def write_run(folder: Path, record: RunRecord) -> None:
    (folder / RUN).write_text(json.dumps(record.to_json(), indent=1) + "\n", encoding="utf-8")


def read_fingerprints(folder: Path) -> dict[str, str]:
    """fingerprints.json: each centre's dataset fingerprint, by centre label."""
    path = folder / FINGERPRINTS
    data = _json(path)
    if not (isinstance(data, dict) and all(isinstance(v, str) for v in data.values())):
        raise ResultsError(f"unreadable run file {path}: not a mapping of centre to "
                           "fingerprint")
    return data


def write_fingerprints(folder: Path, fingerprints: dict[str, str]) -> None:
    (folder / FINGERPRINTS).write_text(json.dumps(fingerprints, indent=1) + "\n",
                                       encoding="utf-8")


def write_atomically(path: Path, text: str) -> None:
    """path's new text, written beside it under a hidden name and renamed: a reader never
    sees it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ResultsError(f"unreadable run file {path}: {exc}") from None


def _check_format(path: Path, data: Any) -> None:
    """Refuse a run.json of a format this version does not know (none recorded: 1)."""
    version = data.get(FORMAT_KEY, 1) if isinstance(data, dict) else 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ResultsError(f"unreadable run file {path}: format {version!r} is not a "
                           "fedjourney results format")
    if version > FORMAT_VERSION:
        raise ResultsError(
            f"{path} is in results format {version}, newer than this fedjourney reads "
            f"(up to {FORMAT_VERSION}): update fedjourney (git pull, then pip install -e .)")
