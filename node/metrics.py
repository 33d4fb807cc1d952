"""Validation of the global model on the node's held-out patients (the plan's testing_step),
and the centre's posture for it under secure aggregation.

Fed-BioMed sends validation metrics in the clear even when the model updates are masked: a
per-centre loss and AUC the secure sum was meant to hide. A centre whose posture is
`metrics_under_secagg: withheld` (the default) sends, in a secure-aggregation request, only
the marker contract.METRICS_WITHHELD. Whether a request is under secure aggregation is the
node's own knowledge (component.RunningNode records it from each request Fed-BioMed
parses), not a claim of the researcher's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedjourney.contract import METRICS_WITHHELD
from fedjourney.model import accuracy, auc, auc_interval
from fedjourney.story import narrator


class _Posture:
    """This node's stance and whether the request being served is under secure aggregation
    (Fed-BioMed serves one request at a time, in its task thread)."""

    def __init__(self) -> None:
        self.withhold = True
        self.under_secagg = False


_POSTURE = _Posture()


def set_posture(metrics_under_secagg: str) -> None:
    """The centre's `metrics_under_secagg` (withheld | clear), set once at start-up."""
    _POSTURE.withhold = metrics_under_secagg != "clear"


def begin_request(under_secagg: bool) -> None:
    """Called as each training or validation request is parsed."""
    _POSTURE.under_secagg = under_secagg


def validation_metrics(output: Any, target: Any, settings: dict[str, Any],
                       round_: int | None) -> dict[str, float]:
    """BCE loss, AUC with its 95 % interval (auc_low, auc_high: model.auc_interval) and
    accuracy of the global model on the held-out split, with its size (n patients, of whom
    `positives` positive: aggregates, sent as numbers like the rest); told. Under secure
    aggregation, unless the centre sends them in the clear, only the marker."""
    import torch

    story = narrator().at(settings.get("run_id"), round_)
    if _POSTURE.withhold and _POSTURE.under_secagg:
        story.info(f"validation metrics withheld: secure aggregation round, and this centre "
                   f"sends its metrics in the clear only when its config says "
                   f"metrics_under_secagg: clear ({len(target)} held-out patients)")
        return {METRICS_WITHHELD: 1.0}
    loss = float(torch.nn.functional.binary_cross_entropy(output, target))
    score = output.detach().numpy().ravel().astype(np.float32)
    truth = target.detach().numpy().ravel().astype(np.float32)
    low, high = auc_interval(truth, score)
    positives = int((truth > 0.5).sum())
    metrics = {"loss": loss, "auc": auc(truth, score), "auc_low": low, "auc_high": high,
               "accuracy": accuracy(truth, score), "n": float(len(truth)),
               "positives": float(positives)}
    story.info(f"validation on {len(truth)} held-out patients: loss {loss:.4f}, "
               f"AUC {metrics['auc']:.3f} (95% CI {low:.2f}\u2013{high:.2f}, n={len(truth)}, "
               f"{positives} positive), accuracy {metrics['accuracy']:.3f}")
    return metrics
