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
from fedjourney.features.reading import Patients, parse_timestamp, read_patients, scan_events
from fedjourney.features.spec import FeatureSpec

DAY_S = 86400
BACKENDS = ("polars", "tanat")


@dataclass(frozen=True)
class BinnedEvents:
    """In-vocabulary events placed on the spec's grid, as integer indices.

    frame has columns pix (patient index), bin, cix (code index) and, when aggregated,
    len (events in that cell). Rows outside the grid (before/after the window) are dropped
    and counted.
    """

    patients: Patients
    frame: pl.DataFrame
    events_in_vocabulary: int
    events_outside_window: int


def binned_events(folder: Path, spec: FeatureSpec, aggregate: bool) -> BinnedEvents:
    """Read the centre and place each in-vocabulary event on the spec's time grid.

    One lazy, streaming scan of three columns; codes are filtered before any date is parsed
    and only integer indices come out (a 10,000-patient centre is 6.5 M rows, 1.5 GB).
    """
    patients = read_patients(folder, spec)
    events = scan_events(folder)
    bin_s = spec.bin_days * DAY_S
    vocab = pl.Series("CODE", list(spec.vocabulary), dtype=pl.String)
    index = pl.LazyFrame({"PATIENT": patients.ids,
                          "pix": pl.arange(0, patients.ids.len(), eager=True, dtype=pl.UInt32)})
    codes = pl.LazyFrame({"CODE": vocab,
                          "cix": pl.arange(0, vocab.len(), eager=True, dtype=pl.UInt32)})
    used = events.join(codes, on="CODE", how="inner")
    if spec.alignment == "calendar":
        origin = int(pl.Series([spec.start]).cast(pl.Datetime("us", "UTC")).dt.epoch("s")[0])
        used = used.with_columns(pl.lit(origin, dtype=pl.Int64).alias("t0"),
                                 pl.col("DATE").alias("DATE0"))
    else:  # the patient's first observation of any code (ISO timestamps sort as text)
        first = events.group_by("PATIENT").agg(pl.col("DATE").min().alias("DATE0"))
        used = used.join(first, on="PATIENT", how="left").with_columns(
            parse_timestamp(pl.col("DATE0")).alias("t0"))
    used = used.with_columns(parse_timestamp(pl.col("DATE")).alias("t")).with_columns(
        ((pl.col("t") - pl.col("t0")) // bin_s).alias("bin")
    ).join(index, on="PATIENT", how="left")
    # Problems travel in the same scan: unparseable dates and unknown patients.
    keys = ["pix", "bin", "cix"]
    problem = pl.col("t").is_null() | pl.col("t0").is_null() | pl.col("pix").is_null()
    if aggregate:
        query = used.group_by([*keys, problem.alias("bad")]).len()
    else:
        query = used.select(*keys, problem.alias("bad"), pl.lit(1, pl.UInt32).alias("len"))
    frame = query.collect(engine="streaming")
    if frame["bad"].any():  # rare: a second, targeted scan finds an example to name
        _raise_problem(used.filter(problem).select("PATIENT", "DATE", "DATE0", "pix")
                       .collect(), folder)
    total = int(frame["len"].sum())
    in_grid = frame.filter((pl.col("bin") >= 0) & (pl.col("bin") < spec.n_bins)).select(
        *keys, "len")
    return BinnedEvents(
        patients=patients,
        frame=in_grid,
        events_in_vocabulary=total,
        events_outside_window=total - int(in_grid["len"].sum()),
    )


def _raise_problem(bad: pl.DataFrame, folder: Path) -> None:
    path = folder / "observations.csv"
    unknown = bad.filter(pl.col("pix").is_null())
    if unknown.height:
        raise FedjourneyError(f"{path}: patient {unknown['PATIENT'][0]} is not in patients.csv "
                              f"({unknown['PATIENT'].n_unique()} such patients)")
    row = bad.row(0, named=True)
    parses = pl.select(parse_timestamp(pl.lit(row["DATE"], pl.String))).item() is not None
    value = row["DATE0"] if parses else row["DATE"]
    raise FedjourneyError(f"{path}: unparseable DATE {value!r} ({bad.height} rows); "
                          "expected yyyy-MM-ddTHH:mm:ssZ")


def polars_tensor(binned: BinnedEvents, spec: FeatureSpec) -> npt.NDArray[np.float32]:
    """X (N, M, K) from the aggregated cells."""
    n = binned.patients.ids.len()
    m, k = spec.shape
    cells = binned.frame
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
    vocab = pl.Series(list(spec.vocabulary), dtype=pl.String)
    events = binned.frame.select(pl.col("pix").alias("PATIENT"), "bin",
                                 pl.lit(vocab).gather(pl.col("cix")).alias("CODE"))
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
    rows = np.asarray(ids, dtype=np.int64)  # TanaT's ids are our patient indices
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
