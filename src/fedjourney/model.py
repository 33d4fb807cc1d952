"""The tutorial's model and its metrics, shared by the prototype and the nodes' plan."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import numpy.typing as npt

HELD_OUT_PERCENT = 30


def split_order(patient_ids: npt.NDArray[np.str_], percent: int = HELD_OUT_PERCENT
                ) -> tuple[npt.NDArray[np.int64], int]:
    """Patients ordered by a hash of their id, and how many (the last ones) are held out.

    The count is Fed-BioMed's: floor(N * test_ratio). A node that hands Fed-BioMed its
    patients in this order, with loader shuffle off, gets exactly these patients as its
    validation split: the same ones the prototype holds out, in every run.
    """
    keys = np.array([hashlib.sha256(p.encode()).hexdigest() for p in patient_ids])
    order = np.lexsort((np.asarray(patient_ids), keys)).astype(np.int64)
    return order, math.floor(len(patient_ids) * (percent / 100))


def held_out(patient_ids: npt.NDArray[np.str_], percent: int = HELD_OUT_PERCENT
             ) -> npt.NDArray[np.bool_]:
    """True for the patients in the held-out (validation) split; see split_order."""
    order, n_test = split_order(patient_ids, percent)
    mask = np.zeros(len(patient_ids), dtype=bool)
    if n_test:
        mask[order[len(order) - n_test:]] = True
    return mask


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
