"""The builtin engine: writes one centre's Synthea CSV export, streaming patient batches.

Memory stays flat whatever the population: each batch of patients is generated, appended
to the open CSV files and dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl

from fedjourney.config import Centre, Federation
from fedjourney.generator.cohort import draw_cohort
from fedjourney.generator.journeys import BatchGenerator
from fedjourney.generator.people import centre_tables, patients
from fedjourney.generator.synthea_format import (
    CENTRE_COLUMNS,
    synthea_headers,
    uuids,
    with_centre,
)
from fedjourney.generator.values import ValueModel, load_catalogue

BATCH_SIZE = 1000  # fixed: the random stream of batch k depends only on (seed, k)


def write_centre(fed: Federation, centre: Centre, folder: Path,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Write every Synthea CSV of one centre into folder; return row counts per file."""
    cohort = draw_cohort(fed, centre)
    rng0 = np.random.default_rng([centre.seed, 1])
    refs, tables = centre_tables(rng0, centre)
    gen = BatchGenerator(fed, centre, refs, ValueModel(load_catalogue()))
    headers = synthea_headers()
    counts = dict.fromkeys(headers, 0)
    handles: dict[str, BinaryIO] = {}
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-writer")
    pending: Future[None] | None = None
    try:
        for name, cols in headers.items():
            handles[name] = (folder / f"{name}.csv").open("wb")
            handles[name].write((",".join((*CENTRE_COLUMNS, *cols)) + "\n").encode())
        for name, frame in tables.items():
            _append(handles, counts, name, frame, centre)
        total = cohort.size
        for b, lo in enumerate(range(0, total, BATCH_SIZE)):
            co = cohort.take(slice(lo, lo + BATCH_SIZE))
            rng = np.random.default_rng([centre.seed, 2, b])
            ids = uuids(rng, co.size)
            payer_ix = rng.integers(0, len(refs.payers), co.size)
            people, names = patients(rng, centre, co, ids, payer_ix, refs, gen.ref)
            visits = gen.visits(rng, co)
            conditions, first_visit, which = gen.conditions(rng, co, visits, ids)
            devices, supplies = gen.devices_and_supplies(visits, ids, first_visit, which)
            batch = {
                "patients": people,
                "encounters": gen.encounters(rng, co, visits, ids, payer_ix),
                "conditions": conditions,
                "observations": gen.observations(rng, co, visits),
                "medications": gen.medications(rng, visits, ids, payer_ix),
                "procedures": gen.procedures(rng, co, visits, ids),
                "immunizations": gen.immunizations(rng, visits, ids),
                "careplans": gen.careplans(rng, visits, ids, first_visit, which),
                "allergies": gen.allergies(rng, co, visits, ids),
                "devices": devices,
                "supplies": supplies,
                "imaging_studies": gen.imaging_studies(rng, visits, ids),
                "payer_transitions": gen.payer_transitions(rng, co, ids, names, payer_ix),
            }
            batch["observations"] = batch["observations"].with_columns(
                pl.lit(pl.Series(ids, dtype=pl.String)).gather(pl.col("pix")).alias("PATIENT"))
            # Write batch k on a second thread while batch k+1 is generated: polars writes
            # without holding the GIL, so the two cores both work. One write at a time keeps
            # the row order.
            if pending is not None:
                pending.result()
            pending = writer.submit(_append_all, handles, counts, batch, centre)
            if progress is not None:
                progress(min(lo + BATCH_SIZE, total), total)
        if pending is not None:
            pending.result()
    finally:
        writer.shutdown(wait=True)
        for fh in handles.values():
            fh.close()
    return counts


def _append_all(handles: dict[str, BinaryIO], counts: dict[str, int],
                batch: dict[str, pl.DataFrame], centre: Centre) -> None:
    for name, frame in batch.items():
        _append(handles, counts, name, frame, centre)


def _append(handles: dict[str, BinaryIO], counts: dict[str, int], name: str,
            frame: pl.DataFrame, centre: Centre) -> None:
    out = with_centre(frame, name, centre.id, centre.name)
    out.write_csv(handles[name], include_header=False, quote_style="never", null_value="")
    counts[name] += out.height
