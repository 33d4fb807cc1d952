"""A run's progress, kept beside Fed-BioMed's breakpoints in the researcher's state volume,
so that a researcher restarted with the same run id continues from its last completed
round (`scripts/run --resume RUN_ID`).

Fed-BioMed's breakpoint restores the experiment (global model, aggregator, strategy,
training replies); this file adds what fedjourney's results need and Fed-BioMed does not
keep: the nodes' metrics, the round times, who took part, and what the run began with
(the config and the centres' data), so that a resume on changed inputs is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fedjourney.contract import OWN_FILES
from fedjourney.researcher.experiment import Metrics

FOLDER = Path(OWN_FILES) / "runs"


@dataclass
class Progress:
    """Where a run stands after its last completed round."""

    run_id: str
    config_sha256: str  # the researcher's view of the federation the run began with
    fingerprints: dict[str, str]  # node label -> its data's fingerprint at the start
    rounds_done: int = 0
    breakpoint: str = ""  # Fed-BioMed's breakpoint folder after rounds_done
    seconds: float = 0.0  # time spent running, over every attempt
    resumed_after: list[int] = field(default_factory=list)
    round_seconds: dict[int, float] = field(default_factory=dict)
    took_part: dict[int, list[str]] = field(default_factory=dict)
    dropped: dict[int, dict[str, str]] = field(default_factory=dict)
    train_loss: dict[str, dict[int, list[float]]] = field(default_factory=dict)
    validation: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)

    def record(self, metrics: Metrics) -> None:
        self.train_loss = {n: dict(by_round) for n, by_round in metrics.train_loss.items()}
        self.validation = {n: dict(by_round) for n, by_round in metrics.validation.items()}

    def restore(self, metrics: Metrics) -> None:
        for node, losses in self.train_loss.items():
            metrics.train_loss[node].update(losses)
        for node, scores in self.validation.items():
            metrics.validation[node].update(scores)


def config_digest(path: Path, experiment: str) -> str:
    """What a run began with: the researcher's view of the config and the experiment."""
    return hashlib.sha256(path.read_bytes() + b"\0" + experiment.encode()).hexdigest()


def path_of(run_id: str, folder: Path = FOLDER) -> Path:
    return folder / f"{run_id}.json"


def save(progress: Progress, folder: Path = FOLDER) -> None:
    """Atomically: a kill mid-write leaves the previous round's progress."""
    target = path_of(progress.run_id, folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial")
    tmp.write_text(json.dumps(asdict(progress), indent=1) + "\n", encoding="utf-8")
    tmp.replace(target)


def load(run_id: str, folder: Path = FOLDER) -> Progress | None:
    """The run's progress, or None when no round of it completed here."""
    try:
        raw: dict[str, Any] = json.loads(path_of(run_id, folder).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    # JSON keys are strings: rounds back to ints.
    for key in ("round_seconds", "took_part", "dropped"):
        raw[key] = {int(r): v for r, v in raw[key].items()}
    for key in ("train_loss", "validation"):
        raw[key] = {n: {int(r): v for r, v in by_round.items()}
                    for n, by_round in raw[key].items()}
    return Progress(**raw)


def forget(run_id: str, folder: Path = FOLDER) -> None:
    path_of(run_id, folder).unlink(missing_ok=True)
