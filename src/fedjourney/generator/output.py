"""Writing centres safely: temporary folder, then rename; complete centres are skipped.

A centre folder is complete when it holds center_meta.yaml, which is written last, inside
the temporary folder, before the rename. An interrupted run leaves only a hidden
`.center_N.partial-*` folder, never a `center_N` that looks complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from fedjourney import __version__
from fedjourney.config import Centre, Federation
from fedjourney.errors import FedjourneyError

META_FILE = "center_meta.yaml"
GENERATOR_VERSION = f"{__version__}/1"  # bump the suffix when output for a config changes

Writer = Callable[[Centre, Path], dict[str, int]]


@dataclass(frozen=True)
class CentreResult:
    """What happened to one centre: 'generated', 'regenerated' or 'skipped'."""

    centre: Centre
    folder: Path
    status: str
    rows: dict[str, int]


def check_writable(out_dir: Path) -> None:
    """Fail early, before any work, when out_dir cannot hold our folders."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FedjourneyError(
            f"cannot create output folder {out_dir}: {exc.strerror}; choose another with --out"
        ) from None
    if not out_dir.is_dir():
        raise FedjourneyError(f"output path {out_dir} is not a folder; choose another with --out")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise FedjourneyError(
            f"output folder {out_dir} is not writable; fix its permissions or use --out"
        )


def read_meta(folder: Path) -> dict[str, object] | None:
    """The centre's metadata, or None when the folder is not a complete centre."""
    try:
        meta = yaml.safe_load((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return meta if isinstance(meta, dict) else None


def write_centre_atomically(fed: Federation, centre: Centre, out_dir: Path, engine: str,
                            force: bool, writer: Writer) -> CentreResult:
    """Generate one centre into out_dir/center_<id>, or skip it when already complete."""
    final = out_dir / centre.folder_name
    fingerprint = fed.centre_fingerprint(centre, engine, GENERATOR_VERSION)
    existed = final.exists()
    if existed and not force:
        meta = read_meta(final)
        if meta is None:
            raise FedjourneyError(
                f"{final} exists but is not a complete centre (no {META_FILE}); "
                "remove it or pass --force"
            )
        if meta.get("fingerprint") != fingerprint:
            raise FedjourneyError(
                f"{final} was generated from other settings than {centre.name!r} has now; "
                "pass --force to regenerate it"
            )
        return CentreResult(centre, final, "skipped", {})

    tmp = Path(tempfile.mkdtemp(prefix=f".{centre.folder_name}.partial-", dir=out_dir))
    try:
        rows = writer(centre, tmp)
        _write_meta(fed, centre, tmp, engine, fingerprint, rows)
        _swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return CentreResult(centre, final, "regenerated" if existed else "generated", rows)


def _write_meta(fed: Federation, centre: Centre, folder: Path, engine: str, fingerprint: str,
                rows: dict[str, int]) -> None:
    meta = {
        "center_id": centre.id,
        "center_name": centre.name,
        "country_code": centre.country,
        "state": centre.region,
        "city": centre.city,
        "population": centre.population,
        "seed": centre.seed,
        "age_range": centre.age_range,
        "reference_date": fed.reference_date.isoformat(),
        "history_years": fed.history_years,
        "engine": engine,
        "generator_version": GENERATOR_VERSION,
        "fingerprint": fingerprint,
        "files": sorted(f"{name}.csv" for name in rows),
        "rows": dict(sorted(rows.items())),
    }
    text = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    (folder / META_FILE).write_text(text, encoding="utf-8")


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace final by tmp; the old folder is removed only once the new one is in place."""
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; readers in other containers need to list it
    if not final.exists():
        tmp.rename(final)
        return
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    final.rename(old)
    try:
        tmp.rename(final)
    except OSError:
        old.rename(final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def remove_stale_partials(out_dir: Path) -> None:
    """Delete leftovers of interrupted runs (hidden .center_*.partial-* folders)."""
    for leftover in out_dir.glob(".center_*.partial-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def write_dataset_readme(fed: Federation, out_dir: Path) -> None:
    """The dataset README tanat-synthea writes beside the centre folders (atomically)."""
    rows = "\n".join(
        f"| {c.id} | {c.name} | {c.country.upper()} | {c.region} | {c.city or '-'} | "
        f"{c.population} | {c.seed} | {c.age_range} |"
        for c in fed.centres
    )
    text = (
        "# FedPatientJourney - Generated datasets\n\n"
        f"Federation: {fed.name}; reference date {fed.reference_date.isoformat()}; "
        f"{fed.history_years} years of history. Generated by fedjourney "
        f"{GENERATOR_VERSION}.\n\n"
        "## Centers\n\n"
        "| ID | Name | Country | Region/State | City | Population | Seed | Ages |\n"
        "|----|------|---------|-------------|------|-----------|------|------|\n"
        f"{rows}\n\n"
        "## Files per center\n\n"
        "Each `center_N/` contains Synthea 3.x CSV files with `CENTER_ID` and `CENTER_NAME`\n"
        "columns first, and `center_meta.yaml` (written last: its presence marks the centre\n"
        "complete).\n\n"
        "### Static — `static_data()` : patients.csv\n\n"
        "### Temporal — `temporal_data()` (12 dimensions)\n"
        "encounters, conditions, observations, medications, procedures,\n"
        "allergies, immunizations, careplans, imaging_studies, devices,\n"
        "supplies, payer_transitions\n\n"
        "### Reference — `load_file()` only\n"
        "organizations, providers, payers\n"
    )
    tmp = out_dir / ".README.md.partial"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out_dir / "README.md")
