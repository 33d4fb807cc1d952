"""FeatureSpec: what a patient's temporal tensor means, decided once by the researcher.

The same spec object travels to every node, so every centre produces X with the same shape
(N, n_bins, len(vocabulary)) and the same meaning: same codes in the same order, same time
bins on the same calendar, same target. FedAverage then averages like with like.

Time alignment (`alignment`):
- "calendar" (default): bins count back from `end` (the federation's reference date):
  bin m covers [end - (n_bins - m) * bin_days, end - (n_bins - m - 1) * bin_days).
  Every centre's bin m is the same stretch of calendar time, whatever its data holds; TanaT's
  default (time starts at the pool's earliest event) gives each centre its own origin.
- "patient": bin m covers [first + m * bin_days, first + (m + 1) * bin_days), where `first`
  is the patient's first observation of any code: trajectories aligned on entry into care.

Targets (`target`): `{column, positive}` reads patients.csv (the tutorial's GENDER == M);
`{condition, cutoff}` is a clinical prediction made at `cutoff` (see ConditionTarget). For
the latter the calendar grid ends at the cutoff instead of `end`, and observations dated on
or after it are never read (reading.scan_events): nothing recorded once the outcome may be
known can reach X.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from fedjourney.errors import FedjourneyError
from fedjourney.yaml_input import ConfigLoader, Refused

SPEC_VERSION = 1
ALIGNMENTS = ("calendar", "patient")
VALUE_MODES = ("presence", "counts")
AGGREGATIONS = ("mean", "sequence")


@dataclass(frozen=True)
class Target:
    """Binary target: 1 when patients.csv's `column` equals `positive`."""

    column: str = "GENDER"
    positive: str = "M"

    @property
    def name(self) -> str:
        """What the target is, in a few words (logs, refusals)."""
        return self.column

    def describe(self) -> str:
        return f"{self.column} == {self.positive}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ConditionTarget:
    """A clinical target, predicted at `cutoff` from what is recorded before it.

    Label 1 when the patient's first diagnosis of `condition` (conditions.csv: rows with
    that CODE, earliest START) falls in [cutoff, end), 0 when it is never recorded (or only
    from `end` on). The population is the patients alive at the cutoff (BIRTHDATE before it,
    no DEATHDATE before it) and not yet diagnosed: a patient diagnosed before the cutoff is
    left out, as the diagnosis and its follow-up would be in the features.
    """

    condition: str  # a SNOMED code of conditions.csv's CODE column, e.g. 44054006
    cutoff: dt.date

    @property
    def name(self) -> str:
        return f"condition {self.condition} at {self.cutoff.isoformat()}"

    def describe(self) -> str:
        return f"condition {self.condition} first diagnosed on or after {self.cutoff}"

    def to_dict(self) -> dict[str, Any]:
        return {"condition": self.condition, "cutoff": self.cutoff.isoformat()}


@dataclass(frozen=True)
class FeatureSpec:
    """An explicit, versioned, serialisable description of the features."""

    vocabulary: tuple[str, ...]
    end: dt.date
    bin_days: int = 360
    n_bins: int = 10
    alignment: str = "calendar"
    values: str = "counts"
    aggregation: str = "mean"
    target: Target | ConditionTarget = field(default_factory=Target)
    source: str = "observations"
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        problems = []
        if not self.vocabulary:
            problems.append("vocabulary is empty; list the codes or use vocabulary_size")
        if len(set(self.vocabulary)) != len(self.vocabulary):
            dup = next(c for c in self.vocabulary if self.vocabulary.count(c) > 1)
            problems.append(f"vocabulary lists code {dup!r} twice")
        if not 1 <= self.bin_days <= 36500:
            problems.append(f"bin_days must be 1..36500, got {self.bin_days}")
        if not 1 <= self.n_bins <= 1000:
            problems.append(f"n_bins must be 1..1000, got {self.n_bins}")
        for name, value, allowed in (("alignment", self.alignment, ALIGNMENTS),
                                     ("values", self.values, VALUE_MODES),
                                     ("aggregation", self.aggregation, AGGREGATIONS)):
            if value not in allowed:
                problems.append(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if isinstance(self.target, ConditionTarget):
            problems += _condition_problems(self.target, self.end)
        if self.source != "observations":
            problems.append(f"source must be 'observations', got {self.source!r}")
        if self.version != SPEC_VERSION:
            problems.append(f"spec version {self.version} is not supported (use {SPEC_VERSION})")
        if problems:
            raise FedjourneyError(f"invalid feature spec: {problems[0]}")

    @property
    def shape(self) -> tuple[int, int]:
        """(M time bins, K codes) of every patient's tensor."""
        return self.n_bins, len(self.vocabulary)

    @property
    def feature_names(self) -> list[str]:
        """Column names, TanaT's one-hot convention: CODE_<code>."""
        return [f"CODE_{c}" for c in self.vocabulary]

    @property
    def cutoff(self) -> dt.date | None:
        """A condition target's prediction date: no observation from it on is read."""
        return self.target.cutoff if isinstance(self.target, ConditionTarget) else None

    @property
    def start(self) -> dt.date:
        """First day covered by calendar bins (they end at the cutoff, else at `end`)."""
        last = self.cutoff or self.end
        return last - dt.timedelta(days=self.bin_days * self.n_bins)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["vocabulary"] = list(self.vocabulary)
        out["end"] = self.end.isoformat()
        # GENDER's form is asdict's, as before condition targets: its fingerprint is kept.
        out["target"] = self.target.to_dict()
        return out

    def fingerprint(self) -> str:
        """Short hash of the spec: keys caches and shows up in results."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def dump(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")

    def with_vocabulary(self, vocabulary: list[str]) -> FeatureSpec:
        return replace(self, vocabulary=tuple(vocabulary))


def spec_from_dict(raw: Any, where: str = "feature spec") -> FeatureSpec:
    """Build and validate a FeatureSpec from a mapping (config section or spec file)."""
    if not isinstance(raw, dict):
        raise FedjourneyError(f"{where}: expected a mapping of feature settings")
    allowed = {"version", "source", "vocabulary", "end", "bin_days", "n_bins", "alignment",
               "values", "aggregation", "target"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise FedjourneyError(f"{where}: unknown key {unknown[0]!r}; allowed: "
                              f"{', '.join(sorted(allowed))}")
    vocab = raw.get("vocabulary")
    if not isinstance(vocab, list) or not all(isinstance(c, str | int) for c in vocab):
        raise FedjourneyError(f"{where}: vocabulary must be a list of observation codes")
    try:
        end = raw["end"] if isinstance(raw.get("end"), dt.date) else dt.date.fromisoformat(
            str(raw.get("end")))
    except ValueError:
        raise FedjourneyError(f"{where}: end must be a date YYYY-MM-DD, got {raw.get('end')!r}"
                              ) from None
    ints = {}
    for key, default in (("bin_days", 360), ("n_bins", 10), ("version", SPEC_VERSION)):
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise FedjourneyError(f"{where}: {key} must be a whole number, got {value!r}")
        ints[key] = value
    return FeatureSpec(
        vocabulary=tuple(str(c) for c in vocab),
        end=end,
        alignment=str(raw.get("alignment", "calendar")),
        values=str(raw.get("values", "counts")),
        aggregation=str(raw.get("aggregation", "mean")),
        target=_target(raw.get("target") or {}, where),
        source=str(raw.get("source", "observations")),
        **ints,
    )


def _target(raw: Any, where: str) -> Target | ConditionTarget:
    """`{column: ..., positive: ...}` or `{condition: <SNOMED code>, cutoff: YYYY-MM-DD}`."""
    forms = ("target must be {column: GENDER, positive: M} or "
             "{condition: <SNOMED code of conditions.csv>, cutoff: YYYY-MM-DD}")
    if not isinstance(raw, dict):
        raise FedjourneyError(f"{where}: {forms}")
    if set(raw) <= {"column", "positive"}:
        return Target(**{k: str(v) for k, v in raw.items()})
    if set(raw) != {"condition", "cutoff"}:
        raise FedjourneyError(f"{where}: {forms}")
    cutoff = raw["cutoff"]
    try:  # YAML reads an unquoted date as a date already
        day = cutoff if type(cutoff) is dt.date else dt.date.fromisoformat(str(cutoff))
    except ValueError:
        raise FedjourneyError(f"{where}: target.cutoff must be a date YYYY-MM-DD, got "
                              f"{cutoff!r}") from None
    code = raw["condition"]  # unquoted in YAML, a SNOMED code reads as a number
    valid = isinstance(code, str | int) and not isinstance(code, bool)
    return ConditionTarget(condition=str(code).strip() if valid else "", cutoff=day)


def _condition_problems(target: ConditionTarget, end: dt.date) -> list[str]:
    problems = []
    if not target.condition or any(c.isspace() for c in target.condition):
        problems.append(f"target.condition must be one code of conditions.csv (e.g. "
                        f"44054006), got {target.condition!r}")
    if not target.cutoff < end:
        problems.append(f"target.cutoff {target.cutoff} must be before end {end} (the "
                        "reference date), the outcome being looked for between the two; "
                        "choose an earlier cutoff")
    return problems


def load_spec(path: Path) -> FeatureSpec:
    """Read a spec file written by FeatureSpec.dump (YAML or JSON)."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=ConfigLoader)
    except FileNotFoundError:
        raise FedjourneyError(f"spec file {path} not found") from None
    except Refused as exc:
        raise FedjourneyError(f"spec file {path}: {exc.problem}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise FedjourneyError(f"cannot read spec file {path}: {exc}") from None
    return spec_from_dict(raw, str(path))
