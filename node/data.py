"""Step 1 of the node's start-up: the centre's data, checked, turned into features once.

The record written here (the centre's fingerprint among others) is what the node registers
and what the training plan's dataset reads back on every round.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from fedjourney.config import Centre
from fedjourney.contract import OWN_FILES, DatasetRecord
from fedjourney.errors import FedjourneyError
from fedjourney.features import FeatureSpec
from fedjourney.fingerprint import dataset_fingerprint
from fedjourney.generator.output import read_meta
from fedjourney.node.cache import load_or_build

RECORD = Path(OWN_FILES) / "dataset.json"
CACHE = Path(OWN_FILES) / "cache"


def check_data(folder: Path, centre: Centre, spec: FeatureSpec, backend: str = "polars",
               record_path: Path = RECORD, cache_dir: Path = CACHE
               ) -> tuple[DatasetRecord, int, bool]:
    """(the record, number of features, whether the cache answered); FedjourneyError when
    the centre is incomplete or its data is broken."""
    if read_meta(folder) is None:
        raise FedjourneyError(f"no complete centre at {folder} (did its generator finish?)")
    fingerprint = dataset_fingerprint(folder)
    x, _, ids, hit = load_or_build(folder, spec, cache_dir, fingerprint, backend)
    record = DatasetRecord(centre_id=centre.id, centre=centre.name, country=centre.country,
                           region=centre.region, patients=len(ids), fingerprint=fingerprint,
                           spec_fingerprint=spec.fingerprint())
    record_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = record_path.with_name(f".{record_path.name}.partial")
    tmp.write_text(json.dumps(asdict(record), indent=1), encoding="utf-8")
    tmp.replace(record_path)
    return record, int(x.shape[1]), hit


def recorded(record_path: Path = RECORD) -> DatasetRecord:
    """The record the node's start-up wrote."""
    return DatasetRecord(**json.loads(record_path.read_text(encoding="utf-8")))
