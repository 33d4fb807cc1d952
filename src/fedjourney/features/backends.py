"""The two interchangeable ways to turn a centre folder into X (N, M, K).

Both share the spec's time grid (bin = floor((t - origin) / bin_days), computed once here,
so "calendar" and "patient" alignment mean the same thing in both) and differ in who builds
the grid of one-hot counts:
- `polars`: a lazy scan of three columns and a group-by, straight into numpy;
- `tanat`: the tutorial's pipeline on TanaT 0.10.4 (build_events, filter_entities,
  cast_features, to_tensor with one-hot encoding, apply), hardened: a private workspace per
  call, no network call at import, only the needed columns, its output re-indexed onto the
  spec's patients, bins and vocabulary (TanaT emits only locally present codes and starts
  time at the pool's earliest bin).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from fedjourney.errors import FedjourneyError
from fedjourney.features.reading import Patients, check_dates, read_patients, scan_events
from fedjourney.features.spec import FeatureSpec

DAY_S = 86400
BACKENDS = ("polars", "tanat")


@dataclass(frozen=True)
class BinnedEvents:
    """Events inside the spec's grid: patient index, bin index, code index."""

    patients: Patients
    frame: pl.DataFrame  # columns pix (UInt32), bin (Int64), cix (UInt32), PATIENT, CODE
    events_total: int
    events_outside_vocabulary: int
    events_outside_window: int


def binned_events(folder: Path, spec: FeatureSpec) -> BinnedEvents:
    """Read the centre and place each in-vocabulary event on the spec's time grid."""
    patients = read_patients(folder, spec)
    events = scan_events(folder)
    bin_s = spec.bin_days * DAY_S
    vocab = pl.Series("CODE", list(spec.vocabulary), dtype=pl.String)
    if spec.alignment == "calendar":
        origin = int(pl.Series([spec.start]).cast(pl.Datetime("us", "UTC")).dt.epoch("s")[0])
        origin_expr: pl.Expr = pl.lit(origin)
    else:  # the patient's first observation of any code
        origin_expr = pl.col("t").min().over("PATIENT")
    frame = events.with_columns(((pl.col("t") - origin_expr) // bin_s).alias("bin")).collect()
    check_dates(frame, folder)
    total = frame.height
    in_vocab = frame.filter(pl.col("CODE").is_in(vocab.implode()))
    in_grid = in_vocab.filter((pl.col("bin") >= 0) & (pl.col("bin") < spec.n_bins))
    index = pl.DataFrame({"PATIENT": patients.ids,
                          "pix": pl.arange(0, patients.ids.len(), eager=True, dtype=pl.UInt32)})
    codes = pl.DataFrame({"CODE": vocab,
                          "cix": pl.arange(0, vocab.len(), eager=True, dtype=pl.UInt32)})
    placed = in_grid.join(index, on="PATIENT", how="left").join(codes, on="CODE", how="left")
    orphans = placed.filter(pl.col("pix").is_null())
    if orphans.height:
        raise FedjourneyError(
            f"{folder / 'observations.csv'}: patient {orphans['PATIENT'][0]} is not in "
            f"patients.csv ({orphans['PATIENT'].n_unique()} such patients)"
        )
    return BinnedEvents(
        patients=patients,
        frame=placed.select("pix", "bin", "cix", "PATIENT", "CODE"),
        events_total=total,
        events_outside_vocabulary=total - in_vocab.height,
        events_outside_window=in_vocab.height - in_grid.height,
    )


def polars_tensor(binned: BinnedEvents, spec: FeatureSpec) -> npt.NDArray[np.float32]:
    """X (N, M, K) from the binned events with a plain group-by."""
    n = binned.patients.ids.len()
    m, k = spec.shape
    cells = binned.frame.group_by("pix", "bin", "cix").len()
    x = np.zeros((n, m, k), dtype=np.float32)
    values = cells["len"].to_numpy().astype(np.float32)
    if spec.values == "presence":
        values = np.minimum(values, 1.0)
    x[cells["pix"].to_numpy(), cells["bin"].to_numpy(), cells["cix"].to_numpy()] = values
    return x


def tanat_tensor(binned: BinnedEvents, spec: FeatureSpec) -> npt.NDArray[np.float32]:
    """X (N, M, K) through TanaT's event pool and one-hot tensor."""
    tanat, criterion = _import_tanat()
    n = binned.patients.ids.len()
    m, k = spec.shape
    x = np.zeros((n, m, k), dtype=np.float32)
    events = binned.frame.select("PATIENT", "bin", "CODE")
    if events.height == 0:
        return x  # documented: patients without events are zero rows
    with (tempfile.TemporaryDirectory(prefix="fedjourney-tanat-") as workspace,
          contextlib.redirect_stdout(io.StringIO())):  # TanaT narrates its store builds
        # Its own store per call: TanaT otherwise shares ~/.tanat between processes, and
        # two nodes on one host would read each other's pools.
        tanat.set_workspace(workspace)
        pool = tanat.build_events(events, id_column="PATIENT", time_column="bin",
                                  store_name="centre")
        pool = pool.filter_entities(criterion(query=pl.col("CODE").is_in(list(spec.vocabulary))),
                                    verbose=False)
        pool.cast_features({"CODE": pl.Categorical})
        rule = "max" if spec.values == "presence" else "sum"
        arr, ids, names = pool.to_tensor(features="CODE", bin_size=1, fill_value=0, ohe=True,
                                         overlap_rule=rule)
        # TanaT's time axis starts at the pool's earliest bin: find it to shift back.
        first_bin = pool.apply(pl.col("bin").min().alias("first"), fmt="polars")["first"].min()
    column = {name: i for i, name in enumerate(spec.feature_names)}
    cols = np.array([column[name] for name in names])
    rows = pl.DataFrame({"PATIENT": list(ids)}).join(
        pl.DataFrame({"PATIENT": binned.patients.ids,
                      "pix": np.arange(n)}), on="PATIENT", how="left",
        maintain_order="left")["pix"].to_numpy()
    offset = int(first_bin)
    width = min(arr.shape[1], m - offset)
    block = np.zeros((len(rows), m, k), dtype=np.float32)
    block[:, offset:offset + width, :][:, :, cols] = arr[:, :width, :]
    x[rows] = block
    return x


def _import_tanat() -> tuple[Any, Any]:
    """Import TanaT without its release check (a network call at import time)."""
    import tanat_utils
    import tanat_utils.check_version

    def _offline(_package: str) -> None:
        return None

    tanat_utils.check_latest_version = _offline
    tanat_utils.check_version.check_latest_version = _offline
    try:
        import tanat
        from tanat.criterion.type.entity import EntityCriterion
    except ImportError:
        raise FedjourneyError(
            "the tanat backend needs TanaT: pip install 'fedjourney[tanat]' "
            "(or use --backend polars)"
        ) from None
    return tanat, EntityCriterion
