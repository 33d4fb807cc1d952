"""Features computed once per (FeatureSpec, data fingerprint) on the node.

Fed-BioMed calls training_data() on every round; building the tensor each time would read
every CSV ten times. The cache lives in the node's state volume (the data mount is
read-only) and is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fedjourney.features import FeatureSpec, build, model_input


def cache_path(cache_dir: Path, spec: FeatureSpec, data_fingerprint: str) -> Path:
    # The fingerprint covers the target: a condition and cutoff get their own file.
    return cache_dir / f"features-{spec.fingerprint()}-{data_fingerprint[:16]}.npz"


def load_or_build(folder: Path, spec: FeatureSpec, cache_dir: Path, data_fingerprint: str,
                  backend: str = "polars"
                  ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32],
                             npt.NDArray[np.str_], bool]:
    """(model input X, y, patient ids, whether the cache answered)."""
    path = cache_path(cache_dir, spec, data_fingerprint)
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            return saved["x"], saved["y"], saved["patient_ids"], True
    features = build(folder, spec, backend)
    x = model_input(features.X, spec).reshape(len(features.y), -1)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial.npz")
    np.savez(tmp, x=x, y=features.y, patient_ids=features.patient_ids)
    tmp.replace(path)
    return x, features.y, features.patient_ids, False
