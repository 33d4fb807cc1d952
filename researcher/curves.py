"""TensorBoard event files of a run, written as its rounds complete: results/<run-id>/tensorboard/
holds one TensorBoard run per centre, so `tensorboard --logdir results/` shows the centres of
every run side by side, live while a run goes on (each update is flushed).

Scalars, by round r (Metrics' numbering, as in metrics.jsonl):
  train/loss            mean of the centre's batch losses in round r
  validation/auc, validation/loss, validation/accuracy
                        the global model the centre received at the start of round r; at
                        step rounds+1, the final model's (the last round reports it)
NaN values are left out, and so is the validation of a centre that withholds its metrics
under secure aggregation (contract.METRICS_WITHHELD): TensorBoard shows a gap, not a number.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from fedjourney.contract import METRICS_WITHHELD
from fedjourney.researcher.experiment import Metrics

VALIDATION = ("auc", "loss", "accuracy")


def slug(label: str) -> str:
    """A folder name for a centre's label: 'node-0 Massachusetts General Hospital' ->
    'node-0_Massachusetts_General_Hospital'."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", label).strip("._") or "centre"


class Curves:
    """One SummaryWriter per centre, in folder/<slug of its label>; `names`: node id ->
    label. torch's tensorboard writer is imported here, not by the module: the host's
    environment has no tensorboard package, the researcher image has."""

    def __init__(self, folder: Path, names: dict[str, str]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writers: dict[str, Any] = {}
        taken: set[str] = set()
        for node_id, label in sorted(names.items(), key=lambda kv: kv[1]):
            name = slug(label)
            while name in taken:  # labels differing only in punctuation
                name += "_"
            taken.add(name)
            self._writers[node_id] = SummaryWriter(log_dir=str(folder / name))
        self._written: set[tuple[str, str, int]] = set()  # (node id, what, step)

    def update(self, metrics: Metrics, rounds_done: int) -> None:
        """Write what is not yet written of rounds 1..rounds_done (all of them on the first
        call of a resumed run, whose Metrics are restored), and the final model's validation
        (step rounds_done+1) when the last round reported it; then flush."""
        for node_id, writer in self._writers.items():
            # Copies: the Metrics may receive a late scalar meanwhile (gRPC thread); .get
            # does not add the node to its defaultdicts.
            losses = dict(metrics.train_loss.get(node_id, {}))
            validation = dict(metrics.validation.get(node_id, {}))
            for r in range(1, rounds_done + 1):
                batch = losses.get(r)
                if batch and self._first(node_id, "train", r):
                    _scalar(writer, "train/loss", sum(batch) / len(batch), r)
            for r in range(1, rounds_done + 2):
                scores = validation.get(r)
                if not scores or not self._first(node_id, "validation", r):
                    continue
                if METRICS_WITHHELD in scores:
                    continue
                for key in VALIDATION:
                    if key in scores:
                        _scalar(writer, f"validation/{key}", scores[key], r)
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()

    def _first(self, node_id: str, what: str, step: int) -> bool:
        """Whether (node, what, step) is new, marking it written."""
        key = (node_id, what, step)
        if key in self._written:
            return False
        self._written.add(key)
        return True


def _scalar(writer: Any, tag: str, value: float, step: int) -> None:
    if not math.isnan(value):
        writer.add_scalar(tag, value, global_step=step)
