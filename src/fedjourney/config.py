"""The federation config: one YAML file that every role reads.

Validation is strict and early: a bad config stops the generator with one line naming the
field and the fix, before anything is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fedjourney.countries import COUNTRIES
from fedjourney.errors import FedjourneyError
from fedjourney.features.backends import check_backend
from fedjourney.features.spec import FeatureSpec, spec_from_dict

DEFAULT_CONFIG = Path("data/federation.yaml")
_AGE_RANGE = re.compile(r"^\s*(\d{1,3})\s*-\s*(\d{1,3})\s*$")
_MAX_AGE = 110


@dataclass(frozen=True)
class Centre:
    """One hospital centre: who it is, where it is, and how its patients are drawn.

    An imported centre (source_folder set) brings its own Synthea output: nobody is drawn,
    so population and seed are 0 and country and region empty unless the config gives them.
    """

    id: int
    name: str
    country: str
    region: str
    population: int
    seed: int
    age_min: int
    age_max: int
    city: str | None = None
    source_folder: Path | None = None  # existing Synthea CSV output (on the config's host)
    # The hospital's own stance (its node enforces it, through Fed-BioMed's settings):
    # allowed, required (a run in the clear is refused) or refused.
    secure_aggregation: str = "allowed"
    # Under secure aggregation, whether its node sends the global model's validation metrics
    # in the clear (Fed-BioMed always would) or withholds them: withheld unless it says so.
    metrics_under_secagg: str = "withheld"

    @property
    def folder_name(self) -> str:
        """The folder the centre's data lives in (tanat-synthea's convention)."""
        return f"center_{self.id}"

    @property
    def age_range(self) -> str:
        return f"{self.age_min}-{self.age_max}"


AGGREGATORS = ("fedavg", "fedprox", "scaffold")
# LOM runs offline here: its key exchange goes node to node through the researcher's gRPC
# server (Fed-BioMed's overlay), with no external binary. Joye-Libert would too, but 6.4.1
# opens its bundled biprime file read-write, which a non-root, read-only node cannot.
SECAGG_SCHEMES = ("off", "lom")
NOT_HERE = {"joye-libert": "Fed-BioMed 6.4.1 opens its bundled biprime file for writing, "
                           "which fails in fedjourney's non-root, read-only nodes; use lom"}
SECAGG_POSTURES = ("allowed", "required", "refused")  # a centre's own stance
METRICS_POSTURES = ("withheld", "clear")  # its validation metrics under secure aggregation
STANCE = ("secure_aggregation", "metrics_under_secagg")  # a centre's privacy stance
DEFAULT_EXPERIMENT = "default"  # the `training` section itself


@dataclass(frozen=True)
class Privacy:
    """Local differential privacy (DP-SGD on each node, Fed-BioMed's `dp_args`): per-sample
    gradients clipped to `clip`, Gaussian noise of std sigma * clip; epsilon is reported
    for `delta`."""

    sigma: float
    clip: float
    delta: float = 1e-5


@dataclass(frozen=True)
class Training:
    """The federated experiment: the tutorial's Stage B settings, and what a researcher
    varies (aggregator, secure aggregation, differential privacy)."""

    rounds: int = 10
    epochs: int = 5
    batch_size: int = 16
    learning_rate: float = 1e-3
    hidden: int = 32
    held_out_percent: int = 30
    tag: str = "fedjourney"
    min_nodes: int | None = None  # a round goes on with this many nodes; None: every centre
    round_deadline_s: int = 600  # a round past this fails (or drops its late nodes)
    node_deadline_s: int = 300  # nodes must be ready within this, at start-up
    aggregator: str = "fedavg"  # fedavg | fedprox | scaffold
    fedprox_mu: float = 0.01  # fedprox: weight of the proximal term
    num_updates: int | None = None  # local steps per round instead of epochs (scaffold)
    secagg: str = "off"  # secure aggregation: off | lom
    secagg_clip: int = 3  # secagg: parameters are clipped to +-this before quantization
    dp: Privacy | None = None  # local differential privacy, or none

    def describe(self) -> dict[str, Any]:
        """What distinguishes this experiment (run.json's `experiment`)."""
        out: dict[str, Any] = {"aggregator": self.aggregator}
        if self.aggregator == "fedprox":
            out["mu"] = self.fedprox_mu
        if self.num_updates:
            out["num_updates"] = self.num_updates
        out["secagg"] = self.secagg
        if self.secagg != "off":
            out["clipping_range"] = self.secagg_clip
        out["dp"] = "local" if self.dp else "off"
        if self.dp:
            out.update(sigma=self.dp.sigma, clip=self.dp.clip, delta=self.dp.delta)
        return out


@dataclass(frozen=True)
class Federation:
    """The whole federation: its name, the fixed reference date and its centres."""

    name: str
    reference_date: dt.date
    history_years: int
    centres: tuple[Centre, ...]
    source: Path | None = None
    features: FeatureSpec | None = None
    training: Training = Training()
    features_backend: str = "polars"  # how the nodes build X (features.backend)
    view: str | None = None  # the role this is a view for (host/views.py); None: the whole
    # Named variants of `training` (each already merged with it and validated).
    experiments: dict[str, Training] = field(default_factory=dict)

    def experiment(self, name: str | None) -> Training:
        """The named experiment's settings; `default` (or None) is `training` itself."""
        if name in (None, "", DEFAULT_EXPERIMENT):
            return self.training
        if name not in self.experiments:
            known = ", ".join([DEFAULT_EXPERIMENT, *sorted(self.experiments)])
            raise FedjourneyError(f"no experiment {name!r} in the federation config; known: "
                                  f"{known}")
        chosen = self.experiments[str(name)]
        _check_federation_wide(chosen, len(self.centres), f"experiment {name!r}")
        return chosen

    def feature_spec(self) -> FeatureSpec:
        """The researcher's FeatureSpec from the config's `features` section."""
        if self.features is None:
            where = self.source or "the federation config"
            raise FedjourneyError(f"{where} has no 'features' section; add one (see README)")
        return self.features

    def centre(self, key: str) -> Centre:
        """Find a centre by id or by (case-insensitive) name."""
        for c in self.centres:
            if key == str(c.id) or key.casefold() == c.name.casefold():
                return c
        known = ", ".join(f"{c.id} ({c.name})" for c in self.centres)
        raise FedjourneyError(f"no centre {key!r} in the federation config; known: {known}")

    def centre_fingerprint(self, centre: Centre, engine: str, generator_version: str) -> str:
        """A hash of everything that determines a centre's generated files."""
        payload = {
            # A centre's privacy stance does not change its records.
            "centre": {k: v for k, v in asdict(centre).items() if k not in STANCE},
            "reference_date": self.reference_date.isoformat(),
            "history_years": self.history_years,
            "engine": engine,
            "generator_version": generator_version,
        }
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def load_federation(path: Path | str = DEFAULT_CONFIG) -> Federation:
    """Read and validate a federation config; raise FedjourneyError with a one-line reason."""
    return parse_federation(load_raw(path), source=Path(path))


def load_raw(path: Path | str = DEFAULT_CONFIG) -> Any:
    """The config file's YAML, unvalidated (parse_federation validates it)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FedjourneyError(
            f"config file {path} not found; pass --config FILE (default: {DEFAULT_CONFIG})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FedjourneyError(f"cannot read config file {path}: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise FedjourneyError(f"config file {path} is not valid YAML{line}") from None
    return raw


def parse_federation(raw: Any, source: Path | None = None) -> Federation:
    """Validate an already-parsed config mapping (see load_federation)."""
    where = str(source) if source else "config"
    if not isinstance(raw, dict):
        raise FedjourneyError(f"{where}: expected a mapping with 'federation' and 'centres'")
    _no_unknown_keys(raw, {"version", "federation", "centres", "features", "training",
                           "experiments", "view"}, where)
    # A role's view (host/views.py): the researcher's lists centres without how they are drawn.
    view = raw.get("view")
    listed_only = view == "researcher"
    if raw.get("version", 1) != 1:
        raise FedjourneyError(f"{where}: unsupported config version {raw.get('version')!r}; use 1")

    fed = raw.get("federation") or {}
    if not isinstance(fed, dict):
        raise FedjourneyError(f"{where}: 'federation' must be a mapping")
    _no_unknown_keys(fed, {"name", "reference_date", "history_years"}, f"{where}: federation")
    name = str(fed.get("name", "fedjourney"))
    ref = _parse_date(fed.get("reference_date"), f"{where}: federation.reference_date")
    history = fed.get("history_years", 10)
    if not isinstance(history, int) or isinstance(history, bool) or not 1 <= history <= 100:
        raise FedjourneyError(
            f"{where}: federation.history_years must be a whole number from 1 to 100, "
            f"got {history!r}"
        )

    entries = raw.get("centres")
    if not isinstance(entries, list) or not entries:
        raise FedjourneyError(f"{where}: 'centres' must be a non-empty list of centres")
    base = source.parent if source else Path()  # relative source folders start here
    centres = tuple(_parse_centre(e, i, where, base, listed_only)
                    for i, e in enumerate(entries))
    _no_duplicates(centres, where)
    features, backend = None, "polars"
    if raw.get("features") is not None:
        section = raw["features"]
        if isinstance(section, dict):
            # How X is built, not what it is (the backends give equal tensors): kept out of
            # the FeatureSpec, so out of the fingerprint that keys caches and results.
            backend = check_backend(section.get("backend", backend),
                                    f"{where}: features.backend")
            section = {"end": ref,  # calendar bins end at the reference date
                       **{k: v for k, v in section.items() if k != "backend"}}
        features = spec_from_dict(section, f"{where}: features")
    training_raw = raw.get("training") or {}
    training = _parse_training(training_raw, f"{where}: training")
    experiments = _parse_experiments(raw.get("experiments"), training_raw, where)
    if view in (None, "researcher"):  # a node's or generator's view holds one centre
        # Named experiments are checked when chosen (Federation.experiment): one that
        # inherits a training.min_nodes it cannot use must not make the whole config invalid.
        _check_federation_wide(training, len(centres), f"{where}: training")
    return Federation(name, ref, history, centres, source, features, training,
                      features_backend=backend, view=str(view) if view else None,
                      experiments=experiments)


def _parse_experiments(raw: Any, training: dict[str, Any], where: str) -> dict[str, Training]:
    """`experiments: {name: {training settings that differ}}`, each merged with `training`."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise FedjourneyError(f"{where}: 'experiments' must be a mapping of names to training "
                              "settings, e.g. {fedprox: {aggregator: fedprox}}")
    out = {}
    for name, overrides in raw.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", name) \
                or name == DEFAULT_EXPERIMENT:
            raise FedjourneyError(f"{where}: experiment name {name!r} must be letters, digits, "
                                  f"'-' or '_' (at most 32), and not {DEFAULT_EXPERIMENT!r}")
        if not isinstance(overrides, dict):
            raise FedjourneyError(f"{where}: experiments.{name} must be a mapping of training "
                                  "settings")
        for fixed in ("tag", "node_deadline_s"):  # the nodes' own settings, one per node
            if fixed in overrides:
                raise FedjourneyError(f"{where}: experiments.{name} cannot change {fixed}; "
                                      "set it in training")
        out[name] = _parse_training({**training, **overrides}, f"{where}: experiments.{name}")
    return out


def _check_federation_wide(t: Training, centres: int, label: str) -> None:
    """Rules that need the number of centres (so not checked in a one-centre view)."""
    if t.min_nodes is not None and t.min_nodes > centres:
        raise FedjourneyError(f"{label}.min_nodes is {t.min_nodes} but the federation has "
                              f"{centres} centres; lower it")
    partial = t.min_nodes is not None and t.min_nodes < centres
    # Masks cancel only in the sum over every party; SCAFFOLD's control variates likewise
    # assume every node in every round (Fed-BioMed 6.4.1 crashes on a missing one).
    for needs_all, what in ((t.secagg != "off", f"secagg {t.secagg}"),
                            (t.aggregator == "scaffold", "aggregator scaffold")):
        if needs_all and partial:
            raise FedjourneyError(f"{label}: {what} needs every centre in every round; set "
                                  f"its min_nodes to {centres} or remove it (now "
                                  f"{t.min_nodes} of {centres})")
    if t.secagg != "off" and centres < 2:
        raise FedjourneyError(f"{label}: secagg needs at least 2 centres; this federation has "
                              f"{centres}")


def _parse_training(raw: Any, label: str) -> Training:
    if not isinstance(raw, dict):
        raise FedjourneyError(f"{label} must be a mapping (rounds, epochs, batch_size, ...)")
    defaults = asdict(Training())
    _no_unknown_keys(raw, set(defaults), label)
    values = {**defaults, **raw}
    limits = {"rounds": (1, 1000), "epochs": (1, 1000), "batch_size": (1, 100000),
              "hidden": (1, 4096), "held_out_percent": (1, 90), "min_nodes": (1, 10000),
              "round_deadline_s": (5, 86400), "node_deadline_s": (5, 86400),
              "num_updates": (1, 100000), "secagg_clip": (1, 1000)}
    for key, (lo, hi) in limits.items():
        v = values[key]
        if key in ("min_nodes", "num_updates") and v is None:
            continue
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise FedjourneyError(f"{label}.{key} must be a whole number from {lo} to {hi}, "
                                  f"got {v!r}")
    lr = _number(values["learning_rate"], f"{label}.learning_rate", 0, 10)
    mu = _number(values["fedprox_mu"], f"{label}.fedprox_mu", 0, 1000)
    if not isinstance(values["tag"], str) or not values["tag"].strip():
        raise FedjourneyError(f"{label}.tag must be a non-empty text")
    for key, allowed in (("aggregator", AGGREGATORS), ("secagg", SECAGG_SCHEMES)):
        if values[key] is False and key == "secagg":  # YAML reads a bare `off` as false
            values[key] = "off"
        if values[key] in NOT_HERE:
            raise FedjourneyError(f"{label}.{key}: {values[key]} does not run here: "
                                  f"{NOT_HERE[values[key]]}")
        if values[key] not in allowed:
            raise FedjourneyError(f"{label}.{key} must be one of {', '.join(allowed)}, got "
                                  f"{values[key]!r}")
    if values["aggregator"] == "scaffold" and values["num_updates"] is None:
        raise FedjourneyError(f"{label}: aggregator scaffold counts local steps, not epochs; "
                              "set num_updates (e.g. 20)")
    dp = _parse_dp(values["dp"], f"{label}.dp")
    if dp and values["aggregator"] != "fedavg":
        # Opacus recomputes gradients from per-sample ones: FedProx's term and SCAFFOLD's
        # correction would silently have no effect.
        raise FedjourneyError(f"{label}: dp works with aggregator fedavg only (DP-SGD drops "
                              f"{values['aggregator']}'s gradient term); choose one")
    return Training(**{**values, "learning_rate": lr, "fedprox_mu": mu, "dp": dp})


def _parse_dp(raw: Any, label: str) -> Privacy | None:
    if raw in (None, False, "off"):
        return None
    if isinstance(raw, Privacy):  # already parsed (an experiment merged with training)
        return raw
    if not isinstance(raw, dict):
        raise FedjourneyError(f"{label} must be off or a mapping {{sigma, clip, delta}}")
    _no_unknown_keys(raw, {"sigma", "clip", "delta"}, label)
    for key in ("sigma", "clip"):
        if key not in raw:
            raise FedjourneyError(f"{label} has no '{key}'; add it (e.g. sigma: 1.0, clip: 1.0)")
    return Privacy(sigma=_number(raw["sigma"], f"{label}.sigma", 0, 1000),
                   clip=_number(raw["clip"], f"{label}.clip", 0, 1000),
                   delta=_number(raw.get("delta", 1e-5), f"{label}.delta", 0, 1))


def _number(value: Any, label: str, lo: float, hi: float) -> float:
    """A float in the open interval (lo, hi)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not lo < value < hi:
        raise FedjourneyError(f"{label} must be a number in ({lo:g}, {hi:g}), got {value!r}")
    return float(value)


def _parse_centre(entry: Any, index: int, where: str, base: Path,
                  listed_only: bool = False) -> Centre:
    label = f"{where}: centres[{index}]"
    if not isinstance(entry, dict):
        raise FedjourneyError(f"{label} must be a mapping with name, country, population...")
    allowed = {"id", "name", "country", "region", "city", "population", "seed", "age_range",
               "source", *STANCE}
    _no_unknown_keys(entry, allowed, label)
    # An imported centre draws nobody: only its name is needed, the rest is checked if given.
    imported = "source" in entry or listed_only
    required = ("name",) if imported else ("name", "country", "region", "population", "seed")
    for key in required:
        if entry.get(key) in (None, ""):
            raise FedjourneyError(f"{label} has no '{key}'; add it")
    name = str(entry["name"]).strip()
    label = f"{where}: centre {name!r}"
    if "," in name or "\n" in name:
        raise FedjourneyError(f"{label}: a name may not contain commas or line breaks")
    cid = entry.get("id", index)
    if not isinstance(cid, int) or isinstance(cid, bool) or cid < 0:
        raise FedjourneyError(f"{label}: id must be a whole number >= 0, got {cid!r}")
    country = str(entry.get("country") or "").strip().lower()
    if country not in COUNTRIES and not (imported and not country):
        known = ", ".join(sorted(COUNTRIES))
        raise FedjourneyError(f"{label}: unknown country {entry['country']!r}; use one of {known}")
    population = entry.get("population", 0)
    if "population" in entry and (not isinstance(population, int)
                                  or isinstance(population, bool) or population <= 0):
        raise FedjourneyError(
            f"{label}: population must be a whole number > 0, got {population!r}"
        )
    seed = entry.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise FedjourneyError(f"{label}: seed must be a whole number >= 0, got {seed!r}")
    age_min, age_max = _parse_age_range(entry.get("age_range", "0-100"), label)
    posture = entry.get("secure_aggregation", "allowed")
    if posture not in SECAGG_POSTURES:
        raise FedjourneyError(f"{label}: secure_aggregation must be one of "
                              f"{', '.join(SECAGG_POSTURES)}, got {posture!r}")
    metrics = entry.get("metrics_under_secagg", "withheld")
    if metrics not in METRICS_POSTURES:
        raise FedjourneyError(f"{label}: metrics_under_secagg must be one of "
                              f"{', '.join(METRICS_POSTURES)}, got {metrics!r}")
    city = entry.get("city")
    return Centre(
        id=cid,
        name=name,
        country=country,
        region=str(entry.get("region") or "").strip(),
        city=str(city).strip() if city else None,
        population=population,
        seed=seed,
        age_min=age_min,
        age_max=age_max,
        source_folder=_parse_source(entry["source"], label, base) if "source" in entry
        else None,
        secure_aggregation=posture,
        metrics_under_secagg=metrics,
    )


def _parse_source(value: Any, label: str, base: Path) -> Path:
    """`source: {folder: PATH}`: absolute, relative paths taken from the config's folder
    (compose mounts it as is, and a relative bind path would name a volume instead)."""
    if not isinstance(value, dict):
        raise FedjourneyError(f"{label}: source must be a mapping like {{folder: path/to/csv}}")
    _no_unknown_keys(value, {"folder"}, f"{label}: source")
    folder = value.get("folder")
    if not isinstance(folder, str) or not folder.strip():
        raise FedjourneyError(
            f"{label}: source.folder must be the path of a Synthea CSV folder, got {folder!r}"
        )
    return (base / Path(folder.strip()).expanduser()).resolve()


def _parse_age_range(value: Any, label: str) -> tuple[int, int]:
    match = _AGE_RANGE.match(str(value))
    if not match:
        raise FedjourneyError(
            f"{label}: age_range {value!r} is malformed; write it as \"MIN-MAX\", e.g. \"20-80\""
        )
    lo, hi = int(match[1]), int(match[2])
    if lo > hi:
        raise FedjourneyError(f"{label}: age_range {value!r} is inverted; write \"{hi}-{lo}\"")
    if hi > _MAX_AGE:
        raise FedjourneyError(f"{label}: age_range {value!r} goes past {_MAX_AGE}; lower it")
    return lo, hi


def _parse_date(value: Any, label: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise FedjourneyError(f"{label} must be a date as YYYY-MM-DD, got {value!r}") from None


def _no_unknown_keys(mapping: dict[str, Any], allowed: set[str], label: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise FedjourneyError(
            f"{label}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(allowed))}"
        )


def _no_duplicates(centres: tuple[Centre, ...], where: str) -> None:
    seen_ids: dict[int, str] = {}
    seen_names: set[str] = set()
    for c in centres:
        if c.id in seen_ids:
            raise FedjourneyError(
                f"{where}: centres {seen_ids[c.id]!r} and {c.name!r} share id {c.id}; "
                "give each centre its own id"
            )
        if c.name.casefold() in seen_names:
            raise FedjourneyError(
                f"{where}: two centres are named {c.name!r}; give each centre its own name"
            )
        seen_ids[c.id] = c.name
        seen_names.add(c.name.casefold())
