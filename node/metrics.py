"""Validation of the global model on the node's held-out patients (the plan's testing_step)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fedjourney.model import accuracy, auc
from fedjourney.story import narrator


def validation_metrics(output: Any, target: Any, settings: dict[str, Any],
                       round_: int | None) -> dict[str, float]:
    """BCE loss, AUC and accuracy of the global model on the held-out split; told."""
    import torch

    loss = float(torch.nn.functional.binary_cross_entropy(output, target))
    score = output.detach().numpy().ravel().astype(np.float32)
    truth = target.detach().numpy().ravel().astype(np.float32)
    metrics = {"loss": loss, "auc": auc(truth, score), "accuracy": accuracy(truth, score)}
    narrator().at(settings.get("run_id"), round_).info(
        f"validation on {len(truth)} held-out patients: loss {loss:.4f}, "
        f"AUC {metrics['auc']:.3f}, accuracy {metrics['accuracy']:.3f}")
    return metrics
