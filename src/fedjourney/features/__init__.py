"""Patient-journey features: a centre folder + a FeatureSpec -> X (N, M, K), y."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fedjourney.features.backends import BACKENDS, check_backend
from fedjourney.features.spec import (
    ConditionTarget,
    FeatureSpec,
    Target,
    load_spec,
    spec_from_dict,
)

__all__ = ["BACKENDS", "ConditionTarget", "FeatureSet", "FeatureSpec", "Target", "build",
           "check_backend", "load_spec", "model_input", "plan_input", "spec_from_dict"]


@dataclass(frozen=True)
class FeatureSet:
    """What a node trains on. Patients without events in the grid are all-zero rows."""

    X: npt.NDArray[np.float32]  # (N patients, M bins, K codes)
    y: npt.NDArray[np.float32]  # (N,) 1.0 where the target holds
    patient_ids: npt.NDArray[np.str_]
    feature_names: list[str]
    events_in_vocabulary: int
    events_outside_window: int
    # A condition target's patients left out (diagnosed before the cutoff, unborn or dead
    # then); None for a patients.csv target, whose population is every patient.
    patients_excluded: int | None = None

    def summary(self) -> dict[str, object]:
        """The figures the tutorial prints about its tensor."""
        n, m, k = self.X.shape
        nonzero = int(np.count_nonzero(self.X))
        with_events = int(np.count_nonzero(self.X.reshape(n, -1).any(axis=1))) if n else 0
        excluded = {} if self.patients_excluded is None else {
            "patients_excluded": self.patients_excluded}
        return {
            "shape": [n, m, k],
            "patients": n,
            "time_bins": m,
            "features": k,
            "non_zero_cells": nonzero,
            "sparsity": round(1.0 - nonzero / max(self.X.size, 1), 4),
            "patients_with_events": with_events,
            "positive_rate": round(float(self.y.mean()), 4) if n else 0.0,
            "events_in_vocabulary": self.events_in_vocabulary,
            "events_outside_window": self.events_outside_window,
            **excluded,
        }


def build(folder: Path | str, spec: FeatureSpec, backend: str = "polars") -> FeatureSet:
    """Read one centre folder and build its tensor as the spec says (same X either backend)."""
    built = BACKENDS[check_backend(backend)](Path(folder), spec)
    return FeatureSet(
        X=built.x,
        y=built.patients.target.to_numpy().astype(np.float32),
        patient_ids=built.patients.ids.to_numpy().astype(str),
        feature_names=spec.feature_names,
        events_in_vocabulary=built.events_in_vocabulary,
        events_outside_window=built.events_outside_window,
        patients_excluded=None if spec.cutoff is None else built.patients.excluded.len(),
    )


def model_input(x: npt.NDArray[np.float32], spec: FeatureSpec) -> npt.NDArray[np.float32]:
    """What the spec gives: the tutorial's mean over time bins (N, K), or the sequence."""
    if spec.aggregation == "mean":
        mean: npt.NDArray[np.float32] = x.mean(axis=1).astype(np.float32)
        return mean
    return x


def plan_input(x: npt.NDArray[np.float32], spec: FeatureSpec, kind: str
               ) -> npt.NDArray[np.float32]:
    """What a plan taking `kind` (vector | sequence) gets from model_input's output `x`
    (N first, any layout): (N, K), the mean over bins of a sequence; or (N, M, K).
    ValueError for a sequence plan on a spec that only gives the mean (the config refuses
    that pairing first)."""
    n = len(x)
    if kind == "sequence":
        if spec.aggregation != "sequence":
            raise ValueError("a sequence plan needs features.aggregation: sequence")
        return x.reshape(n, spec.n_bins, len(spec.vocabulary))
    if spec.aggregation == "sequence":
        # model_input's own mean for a "mean" spec: equal features either way.
        mean: npt.NDArray[np.float32] = x.reshape(n, spec.n_bins, len(spec.vocabulary)).mean(
            axis=1).astype(np.float32)
        return mean
    return x.reshape(n, len(spec.vocabulary))
