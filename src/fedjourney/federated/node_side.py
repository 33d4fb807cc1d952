"""Helpers the training plan calls on the node (the plan's source must stay small: only its
own class travels to the nodes, everything else is imported from this installed package)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from fedjourney.federated.story import Story
from fedjourney.model import accuracy, auc

STATE_DIR = Path(os.environ.get("FEDJOURNEY_STATE_DIR", "/fbm"))
FINGERPRINT_FILE = "fedjourney/dataset.json"


def node_story() -> Story:
    return Story(os.environ.get("FEDJOURNEY_NODE_NAME", "node"),
                 STATE_DIR / "fedjourney" / "node.log")


def recorded_dataset() -> dict[str, Any]:
    """What the node's start-up recorded about its dataset (path, fingerprint)."""
    return dict(json.loads((STATE_DIR / FINGERPRINT_FILE).read_text(encoding="utf-8")))


def validation_metrics(output: Any, target: Any, settings: dict[str, Any],
                       round_: int | None) -> dict[str, float]:
    """BCE loss, AUC and accuracy of the global model on the held-out split; logged."""
    import torch

    loss = float(torch.nn.functional.binary_cross_entropy(output, target))
    score = output.detach().numpy().ravel().astype(np.float32)
    truth = target.detach().numpy().ravel().astype(np.float32)
    metrics = {"loss": loss, "auc": auc(truth, score), "accuracy": accuracy(truth, score)}
    node_story().say(f"validation on {len(truth)} held-out patients: loss {loss:.4f}, "
                     f"AUC {metrics['auc']:.3f}, accuracy {metrics['accuracy']:.3f}",
                     settings.get("run_id"), round_)
    return metrics
