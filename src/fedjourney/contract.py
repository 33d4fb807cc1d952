"""What the containers and the host must agree on, spelled once.

Compose rendering, the node, the researcher, the host commands and the tests import these
names; none of them is re-typed or parsed back from free text elsewhere.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

# ---- services ---------------------------------------------------------------------------
RESEARCHER = "researcher"  # service, host name nodes dial, and its certificate's name
RESEARCHER_PORT = 50051
RESULTS_COLLECTOR = "results"  # copies finished runs to the host's ./results


def node_service(centre_id: int) -> str:
    return f"node-{centre_id}"


def link_service(centre_id: int) -> str:
    """A centre's link relay (link.py), which the researcher also reaches by this name."""
    return f"link-{centre_id}"


def generator_service(centre_id: int) -> str:
    return f"generator-{centre_id}"


def node_label(centre_id: int, centre_name: str) -> str:
    """How results and logs name a node: its service and its centre."""
    return f"{node_service(centre_id)} {centre_name}"


# ---- paths inside the containers --------------------------------------------------------
CONFIG = PurePosixPath("/etc/fedjourney/federation.yaml")
DATA = PurePosixPath("/data")  # a centre's volume (the node mounts it read-only)
SOURCE = PurePosixPath("/source")  # a user's own Synthea folder, read-only, for its generator
# A user's own training-plan files (training.plan, a centre's approved_plans), each mounted
# read-only under its file name.
PLANS = PurePosixPath("/etc/fedjourney/plans")
# The notebook researcher's shipped notebooks (read-only); its users save theirs in work/.
NOTEBOOKS = PurePosixPath("/home/fedjourney/notebooks")
STATE = PurePosixPath("/fbm")  # the role's state volume: Fed-BioMed component + our files
RESULTS = PurePosixPath("/results")  # the researcher's results volume
HOST_RESULTS = PurePosixPath("/host-results")  # the host's ./results, for the collector
# Written once the role is really ready; the images' health check reads it as
# $FEDJOURNEY_HEALTH_FILE (images/base/Dockerfile; tests/unit/test_compose.py checks both).
HEALTH = PurePosixPath("/tmp/fedjourney-health")
OWN_FILES = STATE / "fedjourney"  # our files in a state volume (logs, cache, records)
# A node's privacy ledger (node/ledger.py): the epsilon spent on its centre's data.
PRIVACY_LEDGER = OWN_FILES / "privacy-ledger.json"


def story_log(role: str) -> PurePosixPath:
    """A role's story log in its state volume ("node" or "researcher")."""
    return OWN_FILES / f"{role}.log"


def fedbiomed_log(role: str) -> PurePosixPath:
    """Fed-BioMed's own log lines, kept off stdout unless FEDJOURNEY_VERBOSE=1."""
    return OWN_FILES / f"{role}-fedbiomed.log"


# ---- the environment: every FEDJOURNEY_* setting is declared in fedjourney/settings.py ---
# Where the researcher's Fed-BioMed component keeps the certificate sites pin (its state
# volume; fedbiomed/researcher/config.py: etc/certs/<SERVER_certificate_prefix>.pem).
RESEARCHER_CERTIFICATE = STATE / "researcher" / "etc" / "certs" / "server_certificate.pem"


# ---- run ids ----------------------------------------------------------------------------
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # the whole id (fullmatch)


def new_run_id(now: dt.datetime | None = None) -> str:
    """A sortable, unique run id: UTC time and 4 hex digits, e.g. 20261128-030611-8f11."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def check_run_id(run_id: str) -> str:
    """The run id, or ValueError: it names a folder on the host, so no slashes or dots."""
    # fullmatch: `$` would let a final newline through, which forges a story line.
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or run_id in {".", ".."}:
        raise ValueError(f"invalid run id {repr(run_id)[:80]}: use letters, digits, '.', '_' "
                         "and '-' (at most 64)")
    return run_id


RUN_ENDED = ".ended"  # in the results volume, written last: {"run_id": ..., "status": ...}


def partial_results(run_id: str) -> str:
    """The hidden folder a run is written into before its atomic rename."""
    return f".{run_id}.partial"


# ---- story lines: the log-line format every role writes and `fedjourney logs` reads ----
STORY_FORMAT = "{time} [{who}] run={run} round={round} | {message}"
STORY_TIME = "%Y-%m-%dT%H:%M:%S"  # UTC, then .mmmZ
# Not anchored: compose prefixes lines with "node-1_1  | " (1.29) or "node-1-1  | " (v2).
STORY_LINE = re.compile(r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) "
                        r"\[(?P<who>[^\]]+)\] run=(?P<run>\S+) round=(?P<round>\S+) "
                        r"\| (?P<message>.*)$")
NO_VALUE = "-"  # run or round outside any run or round


# How a node's refusal of a request outside its centre's data-use policy starts, in the
# error reply Fed-BioMed carries to the researcher (node/component.py, researcher/run.py).
NODE_REFUSED = "REFUSED by "

# The only validation "metric" a node sends under secure aggregation when its centre
# withholds its metrics (node/metrics.py); the researcher reports them as withheld.
METRICS_WITHHELD = "withheld_under_secagg"


# ---- the dataset a node registers, as the researcher's search returns it ---------------
@dataclass(frozen=True)
class DatasetRecord:
    """What a node registers about its centre; travels as JSON in the dataset description."""

    centre_id: int
    centre: str
    country: str
    region: str
    patients: int
    fingerprint: str  # sha256 of the centre's files, computed on the node
    spec_fingerprint: str  # the FeatureSpec this hospital trains on (its own config's)
    # Why the node cannot serve (its data is broken), or "" when it can: a broken node still
    # registers so that the researcher fails at once, naming it, instead of at its deadline.
    unhealthy: str = ""
    # The hospital's secure-aggregation stance (allowed | required | refused), which its node
    # enforces; stated here so that the researcher refuses a mismatched run before round 1.
    secure_aggregation: str = "allowed"
    # Its validation metrics under secure aggregation: withheld (the default) or clear.
    metrics_under_secagg: str = "withheld"
    # Its data-use policy (policy.Policy.to_dict()), which its node enforces on every
    # request; stated here so that the researcher refuses a run outside it before round 1.
    policy: dict[str, Any] = field(default_factory=dict)
    # Its privacy ledger (node/ledger.py Ledger.spent): [sigma, sample rate, steps] per kind
    # of DP-SGD round trained on this centre's data so far, over every run; the researcher
    # composes it with its own run (budget pre-check, summary.md's total).
    privacy_spent: list[list[float]] = field(default_factory=list)
    # The centre in aggregates only (node/profile.py): the run's heterogeneity report.
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return node_service(self.centre_id)

    @property
    def label(self) -> str:
        return node_label(self.centre_id, self.centre)

    @property
    def name(self) -> str:
        """The dataset's human name in Fed-BioMed's registry."""
        return f"fedjourney {self.label}"

    def description(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_description(cls, text: str) -> DatasetRecord:
        """The record a node registered; ValueError when the text is not one."""
        try:
            raw: Any = json.loads(text)
            return cls(**raw)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a fedjourney dataset description: {text[:80]!r}") from exc
