"""Importing a centre's own Synthea CSV output (`source: {folder: ...}`) instead of generating.

The whole folder is checked before anything is written: a bad one stops the run with one
line naming the file and the fix. It is then converted to what the builtin engine writes:
Synthea 3.x's files and column order, CENTER_ID and CENTER_NAME first. Older Synthea output
is accepted: columns 3.x renamed get their new names, columns it lacks are left empty,
files it lacks are written header-only, and center_meta.yaml says which.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from fedjourney.config import Centre, Federation
from fedjourney.errors import FedjourneyError
from fedjourney.fingerprint import dataset_fingerprint
from fedjourney.generator.output import GENERATOR_VERSION, CentreResult, write_centre_atomically
from fedjourney.generator.synthea_format import CENTRE_COLUMNS, synthea_headers, with_centre

ENGINE = "import"
REQUIRED_FILES = ("patients", "observations")
# What the readers need (features, tanat-synthea), written by every Synthea version. Other
# files need their key: Id for the reference tables, PATIENT for per-patient records.
_KEYS = {"patients": ("Id", "BIRTHDATE", "GENDER"), "observations": ("PATIENT", "DATE", "CODE"),
         "organizations": ("Id",), "providers": ("Id",), "payers": ("Id",)}
# Older Synthea's names for columns 3.x renamed (same content: the old *_YEAR columns
# already held timestamps, and a provider's UTILIZATION counted its encounters).
_RENAMED = {
    "payer_transitions": {"START_YEAR": "START_DATE", "END_YEAR": "END_DATE",
                          "OWNERSHIP": "PLAN_OWNERSHIP", "OWNERNAME": "OWNER_NAME"},
    "providers": {"UTILIZATION": "ENCOUNTERS"},
}
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BATCH_ROWS = 100_000  # rows converted at a time: memory stays flat on large exports
_HEADER_LIMIT = 1 << 16  # a longer first line is not a Synthea header


@dataclass(frozen=True)
class Source:
    """A checked source folder: the header of each Synthea file it holds, and its hash."""

    centre: Centre
    folder: Path
    headers: dict[str, tuple[str, ...]]  # file stem -> columns with their 3.x names
    renames: dict[str, dict[str, str]]  # file stem -> {old name: 3.x name}
    digest: str  # of the folder's files (fedjourney.fingerprint)

    def fingerprint(self, fed: Federation) -> str:
        """The centre's settings and the source's content; not where the folder is, since
        the generator container reads the host's folder under another path."""
        settings = fed.centre_fingerprint(replace(self.centre, source_folder=None), ENGINE,
                                          GENERATOR_VERSION)
        return hashlib.sha256(f"{settings}:{self.digest}".encode()).hexdigest()[:16]

    def meta(self) -> dict[str, object]:
        """center_meta.yaml's additions: nobody was drawn, and what the source lacked."""
        expected = synthea_headers()
        return {
            "population": None, "seed": None, "age_range": None,
            "source": {
                "folder": str(self.folder),
                "fingerprint": self.digest,
                "header_only": [f"{n}.csv" for n in expected if n not in self.headers],
                "empty_columns": {f"{n}.csv": gap for n, cols in self.headers.items()
                                  if (gap := [c for c in expected[n] if c not in cols])},
                "renamed_columns": {f"{n}.csv": r for n, r in self.renames.items() if r},
            },
        }

    def write(self, centre: Centre, folder: Path) -> dict[str, int]:
        """Every Synthea 3.x file into folder (a Writer for write_centre_atomically)."""
        return {name: self._convert(name, folder / f"{name}.csv", centre)
                for name in synthea_headers()}

    def _convert(self, name: str, dst: Path, centre: Centre) -> int:
        src = self.folder / f"{name}.csv"
        with dst.open("wb") as out:
            out.write((",".join((*CENTRE_COLUMNS, *synthea_headers()[name])) + "\n").encode())
            if name not in self.headers:
                return 0
            rows = 0
            try:
                batches = (pl.scan_csv(src, infer_schema=False).rename(self.renames[name])
                           .collect_batches(chunk_size=_BATCH_ROWS))
                for batch in batches:
                    with_centre(batch, name, centre.id, centre.name).write_csv(
                        out, include_header=False, null_value="")
                    rows += batch.height
            except pl.exceptions.PolarsError as exc:
                reason = (str(exc).strip().splitlines() or ["unreadable"])[0]
                raise FedjourneyError(f"centre {centre.name!r}: {src}: not readable as CSV "
                                      f"({reason}); re-export it from Synthea") from None
        return rows


def check_sources(centres: Sequence[Centre], override: Path | None) -> dict[int, Source]:
    """Check the folder of every imported centre (by id) before anything is written;
    override replaces the configured folder (the generator container's mount)."""
    sources: dict[int, Source] = {}
    for centre in centres:
        if centre.source_folder is None:
            if override is not None:
                raise FedjourneyError(f"centre {centre.name!r} has no source in the config; "
                                      "--source only replaces a configured source.folder")
            continue
        sources[centre.id] = check_source(centre, override or centre.source_folder)
    return sources


def check_source(centre: Centre, folder: Path) -> Source:
    """The checked source, or a one-line FedjourneyError naming the file and the fix."""
    where = f"centre {centre.name!r}"
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "not found"
        raise FedjourneyError(f"{where}: source folder {folder} {state}; fix source.folder "
                              "in the config (or --source)")
    if not (folder / "patients.csv").exists() and (folder / "csv").is_dir():
        folder = folder / "csv"  # Synthea's output/ folder: the CSV export is in csv/
    if not any(folder.glob("*.csv")):
        raise FedjourneyError(f"{where}: source folder {folder} holds no CSV files; point "
                              "source.folder at Synthea's CSV output (output/csv)")
    for name in REQUIRED_FILES:
        if not (folder / f"{name}.csv").is_file():
            raise FedjourneyError(f"{where}: {folder / name}.csv not found; every Synthea CSV "
                                  "export has one (exporter.csv.export = true)")
    headers: dict[str, tuple[str, ...]] = {}
    renames: dict[str, dict[str, str]] = {}
    for name in synthea_headers():
        path = folder / f"{name}.csv"
        if not path.is_file():
            continue
        raw = _header(path, where)
        renames[name] = {old: new for old, new in _RENAMED.get(name, {}).items()
                         if old in raw and new not in raw}
        headers[name] = tuple(renames[name].get(c, c) for c in raw)
        for col in _KEYS.get(name, ("PATIENT",)):
            if col not in headers[name]:
                raise FedjourneyError(f"{where}: {path}: required column {col} missing; "
                                      "re-export the file from Synthea or add the column")
    if not _has_rows(folder / "patients.csv"):
        raise FedjourneyError(f"{where}: {folder / 'patients.csv'} has no patients (header "
                              "only); export a population > 0 with Synthea")
    return Source(centre, folder, headers, renames, dataset_fingerprint(folder))


def import_centre(fed: Federation, source: Source, out_dir: Path, force: bool
                  ) -> CentreResult:
    """Import one checked source into out_dir/center_<id>, or skip it when current."""
    return write_centre_atomically(fed, source.centre, out_dir, ENGINE, force, source.write,
                                   source.fingerprint(fed), source.meta())


def _header(path: Path, where: str) -> tuple[str, ...]:
    """The file's column names; Synthea writes plain comma-separated identifiers."""
    try:
        with path.open("rb") as fh:
            line = fh.readline(_HEADER_LIMIT).decode("utf-8-sig")
    except UnicodeDecodeError:
        line = "\0"  # not text: reported as unparseable below
    except OSError as exc:
        raise FedjourneyError(f"{where}: cannot read {path} ({exc.strerror}); "
                              "check its permissions") from None
    if not line.strip():
        raise FedjourneyError(f"{where}: {path} is empty (no CSV header); "
                              "re-export it from Synthea")
    cols = next(csv.reader([line.rstrip("\r\n")]))
    if not all(_COLUMN.fullmatch(c) for c in cols) or len(set(cols)) != len(cols):
        raise FedjourneyError(f"{where}: {path}: cannot parse its header as comma-separated "
                              "Synthea column names; re-export it from Synthea as UTF-8 CSV")
    return tuple(cols)


def _has_rows(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.readline()
        return any(line.strip() for line in fh)
