"""The federation config: one YAML file that every role reads.

Validation is strict and early: a bad config stops the generator with one line naming the
field and the fix, before anything is written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from fedjourney.countries import COUNTRIES
from fedjourney.errors import FedjourneyError
from fedjourney.features.backends import check_backend
from fedjourney.features.spec import FeatureSpec, spec_from_dict
from fedjourney.link import Direction, Link
from fedjourney.planfile import DEFAULT as DEFAULT_PLAN
from fedjourney.planfile import PlanFile, check_input, resolve
from fedjourney.policy import Policy, parse_policy
from fedjourney.schedule import EVENTS, MAX_FACTOR, MAX_SECONDS, Event, may_miss
from fedjourney.yaml_input import EXPONENT_FLOAT, ConfigLoader, Refused

DEFAULT_CONFIG = Path("data/federation.yaml")
_AGE_RANGE = re.compile(r"^\s*(\d{1,3})\s*-\s*(\d{1,3})\s*$")
_MAX_AGE = 110
# Bounds of what the tools can do, not of taste:
MAX_CENTRE_ID = 9999  # node-N, centre-N-data: short service, volume and network names
# The generator holds a centre's cohort in memory and writes ~150 KB per patient: 10^6
# patients is ~150 GB and half an hour here; 10^9 crashes it.
MAX_POPULATION = 1_000_000
MAX_RATE_MBIT = 100_000.0  # a link's rate: up to 100 Gbit/s
MAX_DELAY_MS = 60_000.0  # a link's latency or jitter: up to a minute
MAX_ROUNDS = 1000  # a training's rounds, and so the last round a schedule can name
MAX_SEED = 2**32 - 1  # numpy's legacy seed range; default_rng and Synthea's -s take more
# Records start up to 210 years before the reference date (ages, history) and run up to a
# year past it; before 1900 they mean little, past 9998 their years have five digits.
EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date(9998, 12, 31)
MAX_NAME = 100  # a centre's name is repeated on every CSV row of its data
# A centre's name goes unquoted into CSV rows (CENTER_NAME) and between brackets into story
# lines ("[node-0 NAME]"), which `fedjourney logs` parses back.
NAME_FORBIDDEN = ',"[]'
# A source folder becomes a bind mount "HOST:CONTAINER:ro", in files Compose interpolates.
PATH_FORBIDDEN = ":$"
_MAX_DEPTH = 8  # the config nests 4 deep; deeper is a mistake or an attack on the parser


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
    # The training plans its node approves at start-up (Fed-BioMed's approval registry); an
    # administrator may approve more on a running node (`fedjourney approve`).
    approved_plans: tuple[PlanFile, ...] = ()
    # Its data-use policy (policy.py): what its node accepts beside an approved plan.
    policy: Policy = field(default_factory=Policy)
    # What its node may use of its machine (None: no limit).
    compute: Compute | None = None
    # Its network link to the researcher, emulated by a relay on the path (link.py); None:
    # the engine's own network, as fast as the host.
    link: Link | None = None
    # Its faults by round (schedule.py), carried out by the stack: () when it has none.
    schedule: tuple[Event, ...] = ()

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
# A centre's own stance, its node's compute and link, and its schedule: its node's (or the
# researcher's) business, not its generator's, and no part of its records.
STANCE = ("secure_aggregation", "metrics_under_secagg", "approved_plans", "policy", "compute",
          "link", "schedule")
# A node holds ~510 MiB at rest (PyTorch, Fed-BioMed: docs/benchmarks.md); below this it
# would be killed while importing, which reads as a crash, not as a small machine.
MIN_NODE_MEMORY_MIB = 768
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([mg])b?$", re.IGNORECASE)
DEFAULT_EXPERIMENT = "default"  # the `training` section itself
# Model arguments fedjourney gives every plan (researcher/experiment.py): not the config's.
RESERVED_MODEL_ARGS = ("n_features", "n_bins", "input", "spec", "run_id", "held_out_percent",
                       "optimizer", "hidden", "seed", "run_started")


@dataclass(frozen=True)
class Compute:
    """What a centre's node may use of its machine, as the container engine enforces it
    (compose `cpus`/`mem_limit`, Swarm `deploy.resources.limits`): a hospital's node that
    shares a small server. None: no limit."""

    cpus: float | None = None
    memory: str | None = None  # Docker's notation, e.g. "1g", "768m"

    @property
    def memory_mib(self) -> float | None:
        if self.memory is None:
            return None
        match = _MEMORY.match(self.memory)
        assert match is not None  # parse_compute checked it
        return float(match[1]) * (1024 if match[2].lower() == "g" else 1)


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
    # Seeds the initial model and each epoch's batch order (model.training_orders); DP-SGD's
    # noise stays unseeded. Same config and seed: same batches, same metrics.
    seed: int = 0
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
    plan: PlanFile = field(default_factory=lambda: resolve(DEFAULT_PLAN, Path(), "plan"))
    # Passed to the plan's init_model beside what fedjourney sets (RESERVED_MODEL_ARGS).
    model_args: dict[str, Any] = field(default_factory=dict)

    @property
    def optimizer(self) -> str:
        """The local optimizer the shipped plans use: SCAFFOLD's correction assumes plain
        SGD steps, everything else trains with Adam."""
        return "sgd" if self.aggregator == "scaffold" else "adam"

    def describe(self) -> dict[str, Any]:
        """What distinguishes this experiment (run.json's `experiment`)."""
        out: dict[str, Any] = {"plan": self.plan.name}
        if self.model_args:
            out["model_args"] = dict(self.model_args)
        out["aggregator"] = self.aggregator
        if self.seed:
            out["seed"] = self.seed
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
        if self.view in (None, "researcher"):  # a node's or generator's view holds one centre
            _check_schedules(chosen, self.centres, str(self.source or "config"),
                             f"experiments.{name}")
        _check_policies(self, chosen, f"experiment {name!r}")
        return chosen

    def feature_spec(self) -> FeatureSpec:
        """The researcher's FeatureSpec from the config's `features` section."""
        if self.features is None:
            where = self.source or "the federation config"
            raise FedjourneyError(f"{where} has no 'features' section; add one "
                                  "(see docs/data/features.md)")
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
        raw = yaml.load(text, Loader=ConfigLoader)
    except Refused as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise FedjourneyError(f"config file {path}, line {line}: {exc.problem}") from None
    except RecursionError:
        raise FedjourneyError(f"config file {path} nests too deeply; a config needs "
                              f"at most {_MAX_DEPTH} levels") from None
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
    _check_values(raw, where)
    _no_unknown_keys(raw, {"version", "federation", "centres", "features", "training",
                           "experiments", "view"}, where)
    # A role's view (host/views.py): the researcher's lists centres without how they are drawn.
    view = raw.get("view")
    if view is not None and not isinstance(view, str):
        raise FedjourneyError(f"{where}: view must be a role's name, got {_shown(view)}")
    listed_only = view == "researcher"
    version = raw.get("version", 1)
    if type(version) is not int or version != 1:
        raise FedjourneyError(f"{where}: unsupported config version {_shown(version)}; use 1")

    fed = raw.get("federation") or {}
    if not isinstance(fed, dict):
        raise FedjourneyError(f"{where}: 'federation' must be a mapping")
    _no_unknown_keys(fed, {"name", "reference_date", "history_years"}, f"{where}: federation")
    name = _text(fed.get("name", "fedjourney"), f"{where}: federation.name", required=True)
    ref = _parse_date(fed.get("reference_date"), f"{where}: federation.reference_date")
    history = _whole(fed.get("history_years", 10), f"{where}: federation.history_years", 1, 100)

    entries = raw.get("centres")
    if not isinstance(entries, list) or not entries:
        raise FedjourneyError(f"{where}: 'centres' must be a non-empty list of centres")
    base = source.parent if source else Path()  # relative source folders start here
    centres = tuple(_parse_centre(e, i, where, base, listed_only)
                    for i, e in enumerate(entries))
    _no_duplicates(centres, where)
    if view is None and len(centres) > 1:
        # A centre masks with the whole federation unless its policy says fewer; its node's
        # view (one centre) states the number (host/views.py).
        centres = tuple(c if c.policy.secagg_min_parties is not None else dataclasses.replace(
            c, policy=dataclasses.replace(c.policy, secagg_min_parties=len(centres)))
            for c in centres)
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
        _check_window(features, f"{where}: features")
    training_raw = raw.get("training") or {}
    aggregation = features.aggregation if features is not None else None
    training = _parse_training(training_raw, f"{where}: training", base, aggregation)
    experiments = _parse_experiments(raw.get("experiments"), training_raw, where, base,
                                     aggregation)
    _one_file_per_name(centres, (training, *experiments.values()), where)
    if view in (None, "researcher"):  # a node's or generator's view holds one centre
        # Named experiments are checked when chosen (Federation.experiment): one that
        # inherits a training.min_nodes it cannot use must not make the whole config invalid.
        _check_federation_wide(training, len(centres), f"{where}: training")
        _check_schedules(training, centres, where, "training")
    federation = Federation(name, ref, history, centres, source, features, training,
                            features_backend=backend, view=str(view) if view else None,
                            experiments=experiments)
    _check_policies(federation, training, f"{where}: training")
    return federation


def _check_policies(fed: Federation, t: Training, label: str) -> None:
    """The whole config's centres' policies against experiment `t`, as their nodes will
    judge its requests (policy.refusals): the first refusal, in one line. A role's view
    holds at most one centre's policy: its node (or the researcher) judges there."""
    if fed.view is not None:
        return
    for c in fed.centres:
        parties = c.policy.secagg_min_parties
        if parties is not None and parties > len(fed.centres):
            raise FedjourneyError(f"{label}: centre {c.name!r} masks with at least {parties} "
                                  f"nodes (policy.secagg_min_parties) but the federation has "
                                  f"{len(fed.centres)}; lower it")
    if fed.features is None:  # nothing can train: the nodes say so
        return
    from fedjourney.policy import experiment_refusals

    stated = [(c.name, c.policy, t.held_out_percent) for c in fed.centres]
    refused = experiment_refusals(fed, t, stated)
    if refused:
        raise FedjourneyError(f"{label}: centre {refused[0]}; change the experiment or the "
                              "centre's policy")


def _one_file_per_name(centres: tuple[Centre, ...], trainings: tuple[Training, ...],
                       where: str) -> None:
    """Users' plan files are mounted by file name: two files may not share one."""
    files = [p for c in centres for p in c.approved_plans] + [t.plan for t in trainings]
    by_name: dict[str, Path] = {}
    for plan in files:
        if plan.shipped:
            continue
        other = by_name.setdefault(plan.path.name, plan.path)
        if other != plan.path:
            raise FedjourneyError(f"{where}: plan files {other} and {plan.path} share the name "
                                  f"{plan.path.name!r} (each is mounted by its name); rename one")


def _parse_experiments(raw: Any, training: dict[str, Any], where: str, base: Path,
                       aggregation: str | None) -> dict[str, Training]:
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
        # The nodes' own settings, one per node (each holds out its own share of patients,
        # whatever an experiment asks: policy.py).
        for fixed in ("tag", "node_deadline_s", "held_out_percent"):
            if fixed in overrides:
                raise FedjourneyError(f"{where}: experiments.{name} cannot change {fixed}; "
                                      "set it in training")
        out[name] = _parse_training({**training, **overrides}, f"{where}: experiments.{name}",
                                    base, aggregation)
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


def _check_schedules(t: Training, centres: tuple[Centre, ...], where: str,
                     section: str) -> None:
    """The centres' schedules against experiment `t` (`section`: training or
    experiments.NAME): every event by round within its rounds, and enough centres up in each
    round, whatever second of the run it falls at."""
    for i, c in enumerate(centres):
        for j, e in enumerate(c.schedule):
            if not e.by_time and e.last > t.rounds:
                raise FedjourneyError(f"{where}: centres[{i}].schedule[{j}] is {e.describe()} "
                                      f"but {section}.rounds is {t.rounds}; end it by round "
                                      f"{t.rounds} or raise rounds")
    by_round = {r: frozenset(c.name for c in centres if may_miss(c.schedule, r))
                for r in sorted({r for c in centres for e in c.schedule
                                 for r in range(e.first, e.last + 1) if may_miss(c.schedule, r)})}
    # Which round runs at which second is known only as the run goes: every second's
    # outages are checked with every round's.
    away = _away_by_time(t, centres)
    by_time = {s: frozenset(c.name for c, windows in away if any(a <= s < b for a, b in windows))
               for s in sorted({a for _, windows in away for a, _ in windows})}
    for r, down_r in [*by_round.items(), (None, frozenset())]:
        for s, down_s in [*by_time.items(), (None, frozenset())]:
            if down_r or down_s:
                _check_round(t, centres, r, s, down_r | down_s, where, section)


def _away_by_time(t: Training, centres: tuple[Centre, ...]
                  ) -> list[tuple[Centre, list[tuple[int, float]]]]:
    """Each centre's seconds away by its events by time: down windows, and a restart from its
    second for up to node_deadline_s (the researcher's wait for a node to come back)."""
    out = []
    for c in centres:
        windows: list[tuple[int, float]] = [
            (e.first, e.last if e.kind == "down" else e.first + t.node_deadline_s)
            for e in c.schedule if e.by_time and e.kind in ("down", "restart")]
        if windows:
            out.append((c, windows))
    return out


def _check_round(t: Training, centres: tuple[Centre, ...], r: int | None, second: int | None,
                 down: frozenset[str], where: str, section: str) -> None:
    """A round can go on without the centres its schedules take down: round `r`'s, and
    those away at `second` of the run (if round r, or any round, runs then)."""
    # A restart may cost its round too (the node may not be back in time): counted as down.
    names = [c.name for c in centres if c.name in down]
    named = f"centre{'s' if len(names) > 1 else ''} {', '.join(repr(n) for n in names)} down"
    when = (f"round {r}" if second is None else f"second {second} of the run" if r is None
            else f"round {r}, should it run at second {second},")
    # Masks cancel, and SCAFFOLD's variates hold, only with every node (_check_federation_wide).
    if t.secagg != "off" or t.aggregator == "scaffold":
        what = f"secagg {t.secagg}" if t.secagg != "off" else "aggregator scaffold"
        raise FedjourneyError(f"{where}: {section} uses {what}, which needs every centre in "
                              f"every round, but {when} has {named} (schedule); remove "
                              f"the event or choose an experiment without {what}")
    up = len(centres) - len(names)
    if up == 0:
        raise FedjourneyError(f"{where}: {when} has every centre down (schedule) and a "
                              "round needs at least one; move an event")
    need = t.min_nodes if t.min_nodes is not None else len(centres)
    if up < need:
        needs = (f"{section}.min_nodes is {need}" if t.min_nodes is not None
                 else f"{section}.min_nodes is unset (every centre)")
        raise FedjourneyError(f"{where}: {when} has {named} (schedule), leaving {up} of "
                              f"{len(centres)}, but {needs}; set {section}.min_nodes to at "
                              f"most {up} or move the event")


def _parse_training(raw: Any, label: str, base: Path = Path(),
                    aggregation: str | None = None) -> Training:
    """A training section (or an experiment merged with it); plan files are relative to
    `base`, and a plan must take what features.aggregation gives (when there are features)."""
    if not isinstance(raw, dict):
        raise FedjourneyError(f"{label} must be a mapping (rounds, epochs, batch_size, ...)")
    defaults = {f.name: getattr(Training(), f.name) for f in fields(Training)}
    _no_unknown_keys(raw, set(defaults), label)
    values = {**defaults, **raw}
    limits = {"rounds": (1, MAX_ROUNDS), "epochs": (1, 1000), "batch_size": (1, 100000),
              "hidden": (1, 4096), "held_out_percent": (1, 90), "min_nodes": (1, 10000),
              "round_deadline_s": (5, 86400), "node_deadline_s": (5, 86400),
              "num_updates": (1, 100000), "secagg_clip": (1, 1000), "seed": (0, MAX_SEED)}
    for key, (lo, hi) in limits.items():
        v = values[key]
        if not (key in ("min_nodes", "num_updates") and v is None):
            _whole(v, f"{label}.{key}", lo, hi)
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
    plan = values["plan"] if isinstance(values["plan"], PlanFile) else resolve(
        values["plan"], base, f"{label}.plan")
    if aggregation is not None:
        check_input(plan, aggregation, f"{label}.plan")
    model_args = _model_args(values["model_args"], f"{label}.model_args")
    return Training(**{**values, "learning_rate": lr, "fedprox_mu": mu, "dp": dp,
                       "plan": plan, "model_args": model_args})


def _model_args(raw: Any, label: str) -> dict[str, Any]:
    """`model_args: {name: value}` for the plan's init_model; fedjourney's own are refused."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise FedjourneyError(f"{label} must be a mapping of names to values, e.g. "
                              "{dropout: 0.2}")
    for key in raw:
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", key):
            raise FedjourneyError(f"{label}: {key!r} is not a Python name")
        if key in RESERVED_MODEL_ARGS:
            fix = "set training.hidden" if key == "hidden" else "choose another name"
            raise FedjourneyError(f"{label}.{key} is set by fedjourney for every plan; {fix}")
    return dict(raw)


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
        raise FedjourneyError(f"{label} must be a number in ({lo:g}, {hi:g}), got "
                              f"{_shown(value)}")
    return float(value)


def _is_whole(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _whole(value: Any, label: str, lo: int, hi: int) -> int:
    if not _is_whole(value, lo, hi):
        raise FedjourneyError(f"{label} must be a whole number from {lo} to {hi}, got "
                              f"{_shown(value)}")
    return int(value)


def _text(value: Any, label: str, required: bool = False) -> str:
    """A text setting, stripped ("" when absent and not required)."""
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise FedjourneyError(f"{label} must be {'a non-empty' if required else 'a'} text, "
                              f"got {_shown(value)}"
                              + ("; quote it" if isinstance(value, int | float) else ""))
    return value.strip()


def _shown(value: Any) -> str:
    """A value and what YAML made of it, for an error line: 'ten' (text)."""
    kinds = {bool: "true/false", str: "text", int: "a number", float: "a number",
             list: "a list", dict: "a mapping", dt.date: "a date", type(None): "nothing"}
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"{shown} ({kinds.get(type(value), type(value).__name__)})"


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
    name = _centre_name(entry["name"], f"{label}.name")
    cid = _whole(entry.get("id", index), f"{label}.id", 0, MAX_CENTRE_ID)
    country = _text(entry.get("country"), f"{label}.country").lower()
    if country not in COUNTRIES and not (imported and not country):
        known = ", ".join(sorted(COUNTRIES))
        raise FedjourneyError(f"{label}: unknown country {entry['country']!r}; use one of {known}")
    population = entry.get("population", 0)
    if "population" in entry and not _is_whole(population, 1, MAX_POPULATION):
        raise FedjourneyError(f"{label}.population must be a whole number > 0, at most "
                              f"{MAX_POPULATION}, got {_shown(population)}")
    seed = _whole(entry.get("seed", 0), f"{label}.seed", 0, MAX_SEED)
    age_min, age_max = _parse_age_range(entry.get("age_range", "0-100"), label)
    posture = entry.get("secure_aggregation", "allowed")
    if posture not in SECAGG_POSTURES:
        raise FedjourneyError(f"{label}: secure_aggregation must be one of "
                              f"{', '.join(SECAGG_POSTURES)}, got {posture!r}")
    metrics = entry.get("metrics_under_secagg", "withheld")
    if metrics not in METRICS_POSTURES:
        raise FedjourneyError(f"{label}: metrics_under_secagg must be one of "
                              f"{', '.join(METRICS_POSTURES)}, got {metrics!r}")
    return Centre(
        id=cid,
        name=name,
        country=country,
        region=_text(entry.get("region"), f"{label}.region"),
        city=_text(entry.get("city"), f"{label}.city") or None,
        population=population,
        seed=seed,
        age_min=age_min,
        age_max=age_max,
        source_folder=_parse_source(entry["source"], label, base) if "source" in entry
        else None,
        secure_aggregation=posture,
        metrics_under_secagg=metrics,
        approved_plans=_approved_plans(entry.get("approved_plans", [DEFAULT_PLAN]), label,
                                       base),
        policy=parse_policy(entry.get("policy"), f"{label}.policy"),
        compute=_parse_compute(entry.get("compute"), f"{label}.compute"),
        link=_parse_link(entry.get("link"), f"{label}.link"),
        schedule=_parse_schedule(entry.get("schedule"), f"{label}.schedule"),
    )


SCHEDULE_EXAMPLE = "[{event: down, rounds: [3, 4]}, {event: flaky, rounds: 6, loss_pct: 20}]"


def _parse_schedule(raw: Any, label: str) -> tuple[Event, ...]:
    """`schedule: [{event: down, rounds: [3, 4]}, {event: slow, rounds: 6, factor: 3}]`, as listed;
    () when absent or empty."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise FedjourneyError(f"{label} must be a list like {SCHEDULE_EXAMPLE}, got "
                              f"{_shown(raw)}")
    events = tuple(_parse_event(e, f"{label}[{i}]") for i, e in enumerate(raw))
    _no_overlap(events, label)
    return events


def _parse_event(raw: Any, label: str) -> Event:
    """`{event: down, rounds: 3}`, `{event: flaky, rounds: [3, 4], loss_pct: 20}`,
    `{event: slow, rounds: [2, 5], factor: 3}` or `{event: restart, rounds: 4}`; or by time,
    `seconds` for `rounds`: `{event: down, seconds: [30, 90]}`, `{event: restart, seconds: 40}`."""
    if not isinstance(raw, dict):
        raise FedjourneyError(f"{label} must be a mapping like {{event: down, rounds: [3, 4]}}, "
                              f"got {_shown(raw)}")
    if "event" not in raw:
        raise FedjourneyError(f"{label} has no 'event'; add it, e.g. event: down")
    kind = raw["event"]
    if not isinstance(kind, str) or kind not in EVENTS:
        raise FedjourneyError(f"{label}.event must be one of {', '.join(EVENTS)} (the events a "
                              f"schedule can hold), got {_shown(kind)}")
    clocks = [key for key in ("rounds", "seconds") if key in raw]
    if len(clocks) != 1:
        got = "both" if clocks else "neither"
        raise FedjourneyError(f"{label} needs its rounds or its seconds, got {got}; write e.g. "
                              "rounds: [3, 4] (by round) or seconds: [30, 90] (by time)")
    by_time = clocks[0] == "seconds"
    setting = EVENTS[kind]
    _no_unknown_keys(raw, {"event", clocks[0]} | ({setting} if setting else set()), label)
    if by_time:
        first, last = _parse_seconds(raw["seconds"], f"{label}.seconds", kind == "restart")
    else:
        first, last = _parse_rounds(raw["rounds"], f"{label}.rounds")
        if kind == "restart" and first != last:
            raise FedjourneyError(f"{label} restarts the node in one round, got rounds "
                                  f"[{first}, {last}]; list one restart event per round")
    value: float | None = None
    if setting == "loss_pct":
        value = _event_number(raw, setting, label, "loss_pct: 20 (percent, above 0, at most "
                              "100)", lambda v: 0 < v <= 100)
    elif setting == "factor":
        value = _event_number(raw, setting, label, f"factor: 3 (training takes 3 times as "
                              f"long; above 1, at most {MAX_FACTOR:g})",
                              lambda v: 1 < v <= MAX_FACTOR)
    return Event(kind, first, last, value, by_time)


def _parse_seconds(raw: Any, label: str, instant: bool) -> tuple[int, int]:
    """A restart's second (40), or a window [30, 90] of whole seconds from the run's start,
    its end excluded."""
    if instant:
        if _is_whole(raw, 0, MAX_SECONDS):
            return raw, raw
        raise FedjourneyError(f"{label} must be the second of the run the node restarts at, "
                              f"like 40 (0 to {MAX_SECONDS}), got {_shown(raw)}")
    if isinstance(raw, list) and len(raw) == 2 and all(_is_whole(v, 0, MAX_SECONDS)
                                                       for v in raw):
        first, last = raw
        if first >= last:
            raise FedjourneyError(f"{label} [{first}, {last}] must end after it starts (the "
                                  f"end second is excluded); write e.g. [{first}, {first + 60}]")
        return first, last
    raise FedjourneyError(f"{label} must be a window of whole seconds from the run's start "
                          f"like [30, 90] (0 to {MAX_SECONDS}), got {_shown(raw)}")


def _event_number(raw: dict[str, Any], key: str, label: str, example: str,
                  valid: Callable[[float], bool]) -> float:
    """An event's own setting, e.g. a flaky event's loss_pct."""
    if key not in raw:
        raise FedjourneyError(f"{label} ({raw['event']}) has no '{key}'; add it, e.g. {example}")
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not valid(value):
        raise FedjourneyError(f"{label}.{key} must be a number like {example}, got "
                              f"{_shown(value)}")
    return float(value)


def _parse_rounds(raw: Any, label: str) -> tuple[int, int]:
    """One round (3) or an inclusive range ([3, 4]), rounds counted from 1."""
    if _is_whole(raw, 1, MAX_ROUNDS):
        return raw, raw
    if isinstance(raw, list) and len(raw) == 2 and all(_is_whole(r, 1, MAX_ROUNDS)
                                                       for r in raw):
        first, last = raw
        if first > last:
            raise FedjourneyError(f"{label} [{first}, {last}] ends before it starts; write "
                                  f"[{last}, {first}]")
        return first, last
    raise FedjourneyError(f"{label} must be a round like 3 or a range like [3, 4] (rounds "
                          f"count from 1, up to {MAX_ROUNDS}), got {_shown(raw)}")


def _no_overlap(events: tuple[Event, ...], label: str) -> None:
    """Two events of one kind may not share a round or a second (one would hide the other's
    end), nor use different clocks (a round's seconds are known only as it runs)."""
    for i, a in enumerate(events):
        for j, b in enumerate(events[i + 1:], i + 1):
            if a.kind == b.kind and a.by_time != b.by_time:
                raise FedjourneyError(f"{label}[{j}] ({b.describe()}) and its schedule[{i}] "
                                      f"({a.describe()}) time one kind by different clocks; "
                                      f"give both rounds or both seconds")
    ordered = sorted(enumerate(events), key=lambda ie: (ie[1].kind, ie[1].first))
    for one, other in pairwise(ordered):
        # A window by time excludes its end second; a restart's one second is its own.
        end = one[1].last - (1 if one[1].by_time and one[1].last > one[1].first else 0)
        if one[1].kind == other[1].kind and other[1].first <= end:
            (i, a), (j, b) = sorted((one, other), key=lambda ie: ie[0])  # as listed
            raise FedjourneyError(f"{label}[{j}] ({b.describe()}) overlaps its schedule[{i}] "
                                  f"({a.describe()}); merge them into one event or move one")


def _parse_compute(raw: Any, label: str) -> Compute | None:
    """`compute: {cpus: 0.5, memory: 1g}` (either may be left out); None when absent."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw:
        raise FedjourneyError(f"{label} must be a mapping like {{cpus: 0.5, memory: 1g}}")
    _no_unknown_keys(raw, {"cpus", "memory"}, label)
    cpus = raw.get("cpus")
    if cpus is not None:
        cpus = _number(cpus, f"{label}.cpus", 0, 1024)
        if cpus < 0.01:
            raise FedjourneyError(f"{label}.cpus must be at least 0.01 (a hundredth of a "
                                  f"core), got {cpus:g}")
    memory = raw.get("memory")
    if memory is not None:
        match = _MEMORY.match(str(memory)) if isinstance(memory, str) else None
        if match is None:
            raise FedjourneyError(f"{label}.memory must be an amount like 1g or 768m, got "
                                  f"{_shown(memory)}")
        compute = Compute(memory=f"{match[1]}{match[2].lower()}")  # as Docker writes it
        if (compute.memory_mib or 0) < MIN_NODE_MEMORY_MIB:
            raise FedjourneyError(f"{label}.memory {memory} is below what a node needs "
                                  f"({MIN_NODE_MEMORY_MIB}m: PyTorch and Fed-BioMed alone "
                                  "hold about 510 MiB); raise it")
        memory = compute.memory
    return Compute(cpus=cpus, memory=memory)


LINK_KEYS = {"rate_mbit": MAX_RATE_MBIT, "latency_ms": MAX_DELAY_MS,
             "jitter_ms": MAX_DELAY_MS, "loss_pct": 100.0}


def _parse_link(raw: Any, label: str) -> Link | None:
    """`link: {rate_mbit: 10, latency_ms: 20, jitter_ms: 5, loss_pct: 1}` for both directions,
    or `link: {up: {...}, down: {...}}`; None when absent or perfect."""
    if raw is None:
        return None
    example = "{rate_mbit: 10, latency_ms: 20} or {up: {...}, down: {...}}"
    if not isinstance(raw, dict) or not raw:
        raise FedjourneyError(f"{label} must be a mapping like {example}")
    if set(raw) & {"up", "down"}:
        _no_unknown_keys(raw, {"up", "down"}, label)
        up, down = (_parse_direction(raw.get(d), f"{label}.{d}") for d in ("up", "down"))
    else:
        up = down = _parse_direction(raw, label)
    link = Link(up=up, down=down)
    return None if link.up.perfect and link.down.perfect else link


def _parse_direction(raw: Any, label: str) -> Direction:
    if raw is None:
        return Direction()
    if not isinstance(raw, dict):
        raise FedjourneyError(f"{label} must be a mapping like {{rate_mbit: 10, latency_ms: "
                              "20, jitter_ms: 5, loss_pct: 1}}")
    _no_unknown_keys(raw, set(LINK_KEYS), label)
    values: dict[str, float] = {}
    for key, top in LINK_KEYS.items():
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or \
                not 0 <= value <= top or (key == "rate_mbit" and value == 0):
            low = "above 0" if key == "rate_mbit" else "from 0"
            raise FedjourneyError(f"{label}.{key} must be a number {low} to {top:g}, got "
                                  f"{_shown(value)}")
        values[key] = float(value)
    if values.get("jitter_ms", 0) > values.get("latency_ms", 0):
        raise FedjourneyError(f"{label}.jitter_ms {values['jitter_ms']:g} is more than its "
                              f"latency_ms {values.get('latency_ms', 0):g}: a delay varies "
                              "around the latency and cannot go below 0; raise latency_ms")
    return Direction(rate_mbit=values.get("rate_mbit"),
                     latency_ms=values.get("latency_ms", 0.0),
                     jitter_ms=values.get("jitter_ms", 0.0),
                     loss_pct=values.get("loss_pct", 0.0))


def _approved_plans(raw: Any, label: str, base: Path) -> tuple[PlanFile, ...]:
    """`approved_plans: [mlp, gru, path/to/plan.py]` (default: [mlp]; [] approves none)."""
    if not isinstance(raw, list):
        raise FedjourneyError(f"{label}.approved_plans must be a list of plans, e.g. "
                              f"[{DEFAULT_PLAN}, gru, plans/my_plan.py]")
    plans = tuple(resolve(ref, base, f"{label}.approved_plans[{i}]")
                  for i, ref in enumerate(raw))
    return tuple(dict.fromkeys(plans))  # each once, in order


def _centre_name(value: Any, label: str) -> str:
    """A name as every file and line that carries it can hold it."""
    name = _text(value, label, required=True)
    bad = [ch for ch in NAME_FORBIDDEN if ch in name]
    if bad:
        raise FedjourneyError(f"{label} {name!r} holds {bad[0]!r}; leave out commas, double "
                              "quotes and brackets (CSV rows and log lines carry the name)")
    if len(name) > MAX_NAME:
        raise FedjourneyError(f"{label} is {len(name)} characters long; shorten it to "
                              f"{MAX_NAME} at most")
    return name


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
    path = (base / Path(folder.strip()).expanduser()).resolve()
    # Checked once resolved: the config's own folder or a symbolic link may add them.
    bad = [ch for ch in PATH_FORBIDDEN if ch in str(path)] or _odd_characters(str(path))
    if bad:
        raise FedjourneyError(f"{label}: source.folder {str(path)!r} holds {bad[0]!r}, which "
                              "breaks its bind mount (HOST:CONTAINER:ro); move or rename it")
    return path


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
    try:
        day = value if type(value) is dt.date else dt.date.fromisoformat(str(value))
    except ValueError:
        raise FedjourneyError(f"{label} must be a date as YYYY-MM-DD, got {value!r}") from None
    if not EARLIEST <= day <= LATEST:
        raise FedjourneyError(f"{label} must be from {EARLIEST} to {LATEST}, got {day}")
    return day


def _check_window(spec: FeatureSpec, label: str) -> None:
    """The bins' first day (n_bins x bin_days before the cutoff or end) from 1900 on:
    earlier dates mean nothing here and soon overflow Python's (year 1)."""
    last = spec.cutoff or spec.end
    if last.toordinal() - spec.n_bins * spec.bin_days < EARLIEST.toordinal():
        raise FedjourneyError(f"{label}: {spec.n_bins} bins of {spec.bin_days} days before "
                              f"{last} start before {EARLIEST}; lower n_bins or bin_days")


def _odd_characters(text: str) -> list[str]:
    """Characters no config text needs: control characters (\\r, \\t, NUL, C1), line and
    paragraph separators (YAML and log readers break lines there), lone surrogates (not
    writable as UTF-8) and bidirectional overrides (text that reads other than it is)."""
    return [ch for ch in text if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")
            or "\u202a" <= ch <= "\u202e" or "\u2066" <= ch <= "\u2069"]


def _check_values(raw: Any, where: str, path: str = "", depth: int = 0) -> None:
    """Every key and value of the config, once, before any is read: one line of plain text
    each (they are copied into compose files, CSV rows and log lines) and plain YAML types."""
    here = path or "the top level"
    if depth > _MAX_DEPTH:
        raise FedjourneyError(f"{where}: {here} nests more than {_MAX_DEPTH} levels deep")
    if isinstance(raw, dict):
        for key, value in raw.items():
            _check_values(key, where, f"{here}: key {key!r}", depth + 1)
            _check_values(value, where, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            _check_values(item, where, f"{path}[{i}]", depth + 1)
    elif isinstance(raw, str):
        odd = _odd_characters(raw)
        if odd:
            what = unicodedata.name(odd[0], "a control character")
            raise FedjourneyError(f"{where}: {here} holds U+{ord(odd[0]):04X} ({what}); "
                                  "write it as one line of plain text")
        if EXPONENT_FLOAT.match(raw):  # the role views would write it unquoted: a number
            raise FedjourneyError(f"{where}: {here} is the text {raw!r}, which reads back as "
                                  "a number; write a number without quotes, or other text")
    elif isinstance(raw, dt.datetime):
        raise FedjourneyError(f"{where}: {here} must be a date as YYYY-MM-DD, without a time; "
                              f"got {raw}")
    elif not isinstance(raw, int | float | dt.date | None):
        raise FedjourneyError(f"{where}: {here} is {_shown(raw)}; write a text, number, date, "
                              "list or mapping")


def _no_unknown_keys(mapping: dict[str, Any], allowed: set[str], label: str) -> None:
    unknown = sorted(set(mapping) - allowed, key=str)
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
