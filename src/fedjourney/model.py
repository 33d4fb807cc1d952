"""The tutorial's model and its metrics, shared by the prototype and the nodes' plan."""

from __future__ import annotations

import hashlib
import math
from statistics import NormalDist

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
    return order, held_out_count(len(patient_ids), percent)


def held_out_count(patients: int, percent: int = HELD_OUT_PERCENT) -> int:
    """How many of a centre's patients are held out: Fed-BioMed's floor(N * test_ratio)."""
    return math.floor(patients * (percent / 100))


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


def auc_interval(y: npt.NDArray[np.float32], score: npt.NDArray[np.float32],
                 level: float = 0.95) -> tuple[float, float]:
    """The `level` confidence interval of auc(y, score): DeLong's variance, on the logit
    scale, with a Student t quantile; (nan, nan) when one class is missing (or a score is
    not finite). Inside [0, 1], and it contains auc(y, score).

    DeLong's structural components are each patient's placement: for a positive, the share
    of negatives it outscores (ties half); for a negative, the share of positives that
    outscore it. Their means are the AUC, and var(AUC) = S10/m + S01/n (sample variances of
    the m positives' and n negatives' placements). Choices, each for small held-out splits:
    - Logit scale rather than plain normal: the interval stays inside (0, 1) without
      clipping and is asymmetric near 1, where a plain interval runs past 1 and covers too
      little (Pepe 2003; Qin & Hotilovac 2008).
    - Student t with Welch-Satterthwaite degrees of freedom, as Brunner and Munzel's test of
      the same placements, rather than the normal quantile: with 2 positives among 15, the
      normal one covered a chance-level AUC 88 % of the time in our simulation instead of
      95 % (t: 96 %), so that one such centre in eight would read as informative.
    - One patient in a class: its placement variance cannot be estimated from one value;
      its bound A(1 - A) (a variable in [0, 1] of mean A) is used, with one degree of
      freedom, so that one positive yields a wide interval.
    - No variance at all (perfect separation, every score tied): the variance is taken as
      that of half a discordant pair, and A moved by as much off 0 or 1 for the logit; the
      interval is then widened to contain the observed AUC.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), not {level}")
    values = np.asarray(score, dtype=np.float64).ravel()
    positive = np.asarray(y).ravel() > 0.5
    pos, neg = values[positive], values[~positive]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0 or not np.isfinite(values).all():
        return (math.nan, math.nan)
    # Placements from midranks: a positive's rank among all, less its rank among positives,
    # is the number of negatives below it (ties half).
    ranks = _midranks(np.concatenate([pos, neg]))
    v10 = (ranks[:m] - _midranks(pos)) / n
    v01 = 1 - (ranks[m:] - _midranks(neg)) / m
    observed = float(v10.mean())
    half = 0.5 / (m * n)  # half a pair, in AUC
    a = min(max(observed, half), 1 - half)
    s10 = float(v10.var(ddof=1)) if m > 1 else a * (1 - a)
    s01 = float(v01.var(ddof=1)) if n > 1 else a * (1 - a)
    var10, var01 = s10 / m, s01 / n
    if var10 + var01 < 2 * half ** 2:
        var10 = var01 = half ** 2
    df = (var10 + var01) ** 2 / (var10 ** 2 / max(m - 1, 1) + var01 ** 2 / max(n - 1, 1))
    width = _t_quantile(0.5 + level / 2, df) * math.sqrt(var10 + var01) / (a * (1 - a))
    centre = math.log(a / (1 - a))
    low, high = (1 / (1 + math.exp(-(centre + d))) for d in (-width, width))
    return (min(low, observed), max(high, observed))


def informative(low: float, high: float) -> bool:
    """Whether an AUC interval lies entirely above or below 0.5 (chance); False for NaN."""
    return low > 0.5 or high < 0.5


def _midranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Ranks from 1, ties given their mean rank (as auc's)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ends = np.append(starts[1:], len(values))
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + 1 + ends) / 2, ends - starts)
    return ranks


def _t_quantile(p: float, df: float) -> float:
    """Student t's p-quantile (p > 0.5) for a real df >= 1, without scipy: with
    t = sqrt(df) tan(theta), t's density over theta in [0, pi/2) is proportional to
    cos(theta)^(df - 1), whose integral is inverted on a grid (within 0.3 % of scipy's);
    beyond 100 degrees of freedom, the Cornish-Fisher expansion around the normal."""
    df = max(df, 1.0)
    if df > 100:
        z = NormalDist().inv_cdf(p)
        return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
                + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))
    theta = np.linspace(0.0, math.pi / 2, 4097)
    density = np.cos(theta) ** (df - 1)
    mass = np.concatenate([[0.0], np.cumsum(density[1:] + density[:-1])])
    return math.sqrt(df) * math.tan(float(np.interp((2 * p - 1) * mass[-1], mass, theta)))


def make_mlp(n_features: int, hidden: int = 32):  # type: ignore[no-untyped-def]
    """The tutorial's MLP: K -> 32 -> 1, ReLU, sigmoid output."""
    import torch.nn as nn

    return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1),
                         nn.Sigmoid())


def round_seed(seed: int, round_: int) -> int:
    """The seed of a round's batch order: the experiment's seed and the round, mixed."""
    return int(np.random.SeedSequence([seed, round_]).generate_state(1, np.uint64)[0])


def training_orders(n_train: int, seed: int, round_: int):  # type: ignore[no-untyped-def]
    """The training patients' order in each epoch of a round: a fresh permutation of
    range(n_train) per epoch, from the round's seed, so that the same config and seed give
    the same batches (node/dataset.py's sampler; the baselines take the same)."""
    import torch

    generator = torch.Generator().manual_seed(round_seed(seed, round_))
    while True:
        yield torch.randperm(n_train, generator=generator)
