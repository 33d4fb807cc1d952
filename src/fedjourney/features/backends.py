"""The two interchangeable ways to turn a centre folder into X (N, M, K).

Both read the same rows and put them on the same clock (`_events`): in-vocabulary
observations of the population (with a condition target: dated before its cutoff, of
patients at risk then), DATE parsed, and under "patient" alignment each patient's events
moved so that their first observation falls on spec.start. On that clock every grid is
[spec.start, spec.start + n_bins * bin_days) and bin m is the m-th `bin_days` stretch of it,
for both alignments. They differ in who builds the tensor from there:
- `polars`: integer bin and code indices and a group-by, straight into numpy;
- `tanat`: the tutorial's pipeline on TanaT 0.10.4 (see `tanat_tensor`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from fedjourney.errors import FedjourneyError
from fedjourney.features.reading import Patients, parse_timestamp, read_patients, scan_events
from fedjourney.features.spec import FeatureSpec

DAY_US = 86_400_000_000
# The anchor event's patient id; read_patients rejects empty ids, so no patient has it.
ANCHOR = ""


@dataclass(frozen=True)
class Tensor:
    """A centre's X (N, M, K) and what was left out of it."""

    patients: Patients
    x: npt.NDArray[np.float32]
    events_in_vocabulary: int
    events_outside_window: int  # in the vocabulary, but before or after the grid


def _datetime(day: dt.date) -> pl.Expr:
    """Midnight UTC of `day`, as the clock's Datetime."""
    return pl.lit(day).cast(pl.Datetime("us", "UTC"))


def _index(patients: Patients) -> pl.DataFrame:
    """Patient id -> pix, the patient's row in X (null for one outside the population),
    and `known` (in patients.csv)."""
    n, ids = patients.ids.len(), pl.concat([patients.ids, patients.excluded])
    pix = pl.arange(0, ids.len(), eager=True, dtype=pl.UInt32)
    return pl.DataFrame({"PATIENT": ids, "pix": pix, "known": True}).with_columns(
        pl.when(pl.col("pix") < n).then(pl.col("pix")).alias("pix"))


def _events(folder: Path, spec: FeatureSpec) -> tuple[Patients, pl.LazyFrame]:
    """The centre's patients and its in-vocabulary events on the spec's clock, lazily.

    Columns: PATIENT, CODE, cix (code index), DATE and DATE0 (text as recorded; DATE0 is
    the patient's first observation of any code under "patient" alignment), t (DATE on the
    clock), pix, known (null when the patient is not in patients.csv) and bad (t or known is
    null). Rows of patients outside the population are dropped, unless bad. Without a
    cutoff, codes are filtered before any date is parsed: a 10,000-patient centre is 6.5 M
    rows.
    """
    patients = read_patients(folder, spec)
    events = scan_events(folder, before=spec.cutoff)  # nothing from the cutoff on
    codes = pl.LazyFrame({"CODE": list(spec.vocabulary), "cix": pl.arange(
        0, len(spec.vocabulary), eager=True, dtype=pl.UInt32)})
    used = events.join(codes, on="CODE", how="inner")
    if spec.alignment == "calendar":
        used = used.with_columns(pl.col("DATE").alias("DATE0"),
                                 parse_timestamp(pl.col("DATE")).alias("t"))
    else:  # the patient's first observation of any code (ISO timestamps sort as text)
        first = events.group_by("PATIENT").agg(pl.col("DATE").min().alias("DATE0"))
        used = used.join(first, on="PATIENT", how="left").with_columns(
            (parse_timestamp(pl.col("DATE")) - parse_timestamp(pl.col("DATE0"))
             + _datetime(spec.start)).alias("t"))
    used = used.join(_index(patients).lazy(), on="PATIENT", how="left").with_columns(
        (pl.col("t").is_null() | pl.col("known").is_null()).alias("bad"))
    return patients, used.filter(pl.col("bad") | pl.col("pix").is_not_null())


def _stop_on_problems(found: bool, used: pl.LazyFrame, folder: Path) -> None:
    """Say how many rows name unknown patients or carry unparseable dates (a second,
    targeted scan). Counts only: these messages reach a node's logs, which must never hold a
    patient's identifier or a raw value of a record."""
    if not found:
        return
    bad = used.filter(pl.col("bad")).select("PATIENT", "known").collect()
    path = folder / "observations.csv"
    unknown = bad.filter(pl.col("known").is_null())
    if unknown.height:
        raise FedjourneyError(f"{path}: {unknown['PATIENT'].n_unique()} patients "
                              f"({unknown.height} rows) are not in patients.csv")
    raise FedjourneyError(f"{path}: {bad.height} rows have an unparseable DATE; expected "
                          "yyyy-MM-ddTHH:mm:ssZ")


def polars_tensor(folder: Path, spec: FeatureSpec) -> Tensor:
    """X from one streaming scan and a group-by on (patient, bin, code)."""
    patients, used = _events(folder, spec)
    keys = ["pix", "bin", "cix"]
    cells = used.with_columns(
        ((pl.col("t") - _datetime(spec.start)).dt.total_microseconds()
         // (spec.bin_days * DAY_US)).alias("bin")
    ).group_by([*keys, "bad"]).len().collect(engine="streaming")
    _stop_on_problems(bool(cells["bad"].any()), used, folder)
    total = int(cells["len"].sum())
    cells = cells.filter((pl.col("bin") >= 0) & (pl.col("bin") < spec.n_bins))
    x = np.zeros((patients.ids.len(), *spec.shape), dtype=np.float32)
    values = cells["len"].to_numpy().astype(np.float32)
    if spec.values == "presence":
        values = np.minimum(values, 1.0)
    x[cells["pix"].to_numpy(), cells["bin"].to_numpy(), cells["cix"].to_numpy()] = values
    return Tensor(patients, x, total, total - int(cells["len"].sum()))


def tanat_tensor(folder: Path, spec: FeatureSpec) -> Tensor:
    """X through the tutorial's TanaT pipeline.

    Polars reads the observation rows (PATIENT, DATE, CODE; in-vocabulary codes only), parses
    DATE onto the spec's clock and keeps the grid's window. TanaT then does the tutorial's
    work: build_events (the event pool), cast_features (CODE categorical) and to_tensor with
    ohe=True (one-hot codes), bin_size="<bin_days>D" (time binning) and overlap_rule "sum"
    (counts: the sum of a bin's one-hot rows is its number of events) or "max" (presence).
    Under "patient" alignment the per-patient shift is polars' (TanaT 0.10.4's to_tensor
    ignores set_t0 and has one time axis for the whole pool); the binning is still TanaT's.
    The mean over time is `model_input`'s numpy mean on this tensor, as in the tutorial.
    Hardened: a private workspace per call, no release check over the network, and the
    output re-indexed onto the spec's patients and vocabulary (TanaT emits locally present
    codes and patients with events only).
    """
    tanat = _import_tanat()
    patients, used = _events(folder, spec)
    start = _datetime(spec.start)
    end = start + pl.duration(days=spec.bin_days * spec.n_bins)
    # PATIENT as categorical: TanaT sorts and groups by id, about twice as fast as on text.
    rows = used.select(pl.col("PATIENT").cast(pl.Categorical), pl.col("t").alias("DATE"),
                       "CODE", "bad").collect(engine="streaming")
    _stop_on_problems(bool(rows["bad"].any()), used, folder)
    total = rows.height
    rows = rows.filter((pl.col("DATE") >= start) & (pl.col("DATE") < end)).drop("bad")
    # TanaT's time axis starts at the pool's earliest event. Anchoring makes that spec.start:
    # events before it are out of the pool (outside the window anyway), and one event at
    # exactly spec.start, under a patient id no patient has, is added; its row is dropped
    # when re-indexing. max_bins=n_bins cuts the axis at the grid's end.
    anchor = pl.DataFrame({"PATIENT": [ANCHOR], "CODE": [spec.vocabulary[0]]}).select(
        pl.col("PATIENT").cast(pl.Categorical), start.alias("DATE"), "CODE")
    with (tempfile.TemporaryDirectory(prefix="fedjourney-tanat-") as workspace,
          contextlib.redirect_stdout(io.StringIO())):  # TanaT narrates its store builds
        # Its own store per call: TanaT otherwise shares ~/.tanat between processes, and
        # two nodes on one host would read each other's pools.
        tanat.set_workspace(workspace)
        pool = tanat.build_events(pl.concat([anchor, rows]), id_column="PATIENT",
                                  time_column="DATE", store_name="centre")
        pool.cast_features({"CODE": pl.Categorical})
        arr, ids, names = pool.to_tensor(
            features="CODE", bin_size=f"{spec.bin_days}D", max_bins=spec.n_bins,
            fill_value=0, ohe=True, overlap_rule="sum" if spec.values == "counts" else "max")
    column = {name: i for i, name in enumerate(spec.feature_names)}
    pix = pl.DataFrame({"PATIENT": [str(i) for i in ids]}).join(
        _index(patients), on="PATIENT", how="left", maintain_order="left")["pix"]
    known = pix.is_not_null().to_numpy()  # every id but the anchor's
    block = np.zeros((len(ids), *spec.shape), dtype=np.float32)
    block[:, :, [column[name] for name in names]] = arr
    x = np.zeros((patients.ids.len(), *spec.shape), dtype=np.float32)
    x[pix.drop_nulls().to_numpy()] = block[known]
    return Tensor(patients, x, total, total - rows.height)


BACKENDS: dict[str, Callable[[Path, FeatureSpec], Tensor]] = {
    "polars": polars_tensor, "tanat": tanat_tensor}


def check_backend(name: object, where: str | None = None) -> str:
    """`name` if it is a backend; else a one-line error, prefixed with `where` if given."""
    if not isinstance(name, str) or name not in BACKENDS:
        prefix = f"{where}: " if where else ""
        raise FedjourneyError(f"{prefix}unknown backend {name!r}; use one of "
                              f"{', '.join(BACKENDS)}")
    return name


def _import_tanat() -> Any:
    """Import TanaT without its release check (a network call at import time)."""
    def _offline(_package: str) -> None:
        return None

    try:
        import tanat_utils
        import tanat_utils.check_version

        tanat_utils.check_latest_version = _offline
        tanat_utils.check_version.check_latest_version = _offline
        import tanat
    except ImportError:
        raise FedjourneyError(
            "the tanat backend needs TanaT: pip install 'fedjourney[tanat]' "
            "(or use --backend polars)"
        ) from None
    return tanat
