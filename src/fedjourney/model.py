"""The tutorial's model and its metrics, shared by the prototype and the nodes' plan."""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

HELD_OUT_PERCENT = 30


def held_out(patient_ids: npt.NDArray[np.str_], percent: int = HELD_OUT_PERCENT
             ) -> npt.NDArray[np.bool_]:
    """True for patients in the held-out split: a hash of the id, so the split is the
    same in the prototype, on the node and in every run, whatever the row order."""
    return np.array([int(hashlib.sha256(p.encode()).hexdigest()[:8], 16) % 100 < percent
                     for p in patient_ids], dtype=bool)


def auc(y: npt.NDArray[np.float32], score: npt.NDArray[np.float32]) -> float:
    """ROC AUC (Mann-Whitney, ties counted half); NaN when one class is missing."""
    pos, neg = score[y > 0.5], score[y <= 0.5]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    values = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(values))
    ranks[order] = _average_ranks(values)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2)
                 / (len(pos) * len(neg)))


def _average_ranks(sorted_values: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    ranks = np.arange(1, len(sorted_values) + 1, dtype=np.float64)
    start = 0
    for i in range(1, len(sorted_values) + 1):
        if i == len(sorted_values) or sorted_values[i] != sorted_values[start]:
            ranks[start:i] = (start + 1 + i) / 2
            start = i
    return ranks


def accuracy(y: npt.NDArray[np.float32], score: npt.NDArray[np.float32]) -> float:
    return float(((score >= 0.5) == (y > 0.5)).mean()) if len(y) else float("nan")


def make_mlp(n_features: int, hidden: int = 32):  # type: ignore[no-untyped-def]
    """The tutorial's MLP: K -> 32 -> 1, ReLU, sigmoid output."""
    import torch.nn as nn

    return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1),
                         nn.Sigmoid())
