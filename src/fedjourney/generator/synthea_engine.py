"""The `synthea` engine: real Synthea through tanat-synthea, with a user-supplied JAR.

tanat-synthea builds the Java command; we add the fixed reference date (-r) and a clinician
seed so output does not depend on today's date, never let it download anything, and apply
the same post-processing as the builtin engine (centre columns first, claims dropped).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from fedjourney.config import Centre, Federation
from fedjourney.errors import FedjourneyError
from fedjourney.generator.synthea_format import CENTRE_COLUMNS, synthea_headers

JAR_ENV = "FEDJOURNEY_SYNTHEA_JAR"


def find_jar(option: str | None) -> Path | None:
    """The Synthea JAR from --synthea-jar or $FEDJOURNEY_SYNTHEA_JAR, if any is named."""
    value = option or os.environ.get(JAR_ENV)
    return Path(value).expanduser() if value else None


def synthea_available(jar: Path | None) -> bool:
    """True when a JAR file exists and Java answers: what `--engine auto` needs."""
    return jar is not None and jar.is_file() and shutil.which("java") is not None


def require_synthea(jar: Path | None) -> Path:
    """The JAR to use, or a one-line error saying how to supply one."""
    if jar is None:
        raise FedjourneyError(
            "the synthea engine needs a Synthea JAR: pass --synthea-jar FILE or set "
            f"{JAR_ENV} (or use --engine builtin)"
        )
    if not jar.is_file():
        raise FedjourneyError(f"Synthea JAR {jar} not found; check --synthea-jar / {JAR_ENV}")
    if shutil.which("java") is None:
        raise FedjourneyError("the synthea engine needs Java 11+ on PATH; install a JRE")
    return jar


def write_centre_with_synthea(fed: Federation, centre: Centre, folder: Path, jar: Path
                              ) -> dict[str, int]:
    """Run Synthea for one centre and post-process its CSVs into folder."""
    from tanat_synthea import PatientJourneySettings
    from tanat_synthea.synthea.runner import build_synthea_command

    settings = PatientJourneySettings(
        name=centre.name, country_code=centre.country, state=centre.region, city=centre.city,
        population=centre.population, seed=centre.seed, age_range=centre.age_range,
    )
    with tempfile.TemporaryDirectory() as raw_dir:
        cmd = build_synthea_command(jar.resolve(), settings, Path(raw_dir))
        at = cmd.index("-s")
        cmd[at:at] = ["-r", fed.reference_date.strftime("%Y%m%d"), "-cs", str(centre.seed),
                      f"--exporter.years_of_history={fed.history_years}"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              cwd=jar.resolve().parent)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise FedjourneyError(f"Synthea failed for {centre.name!r} "
                                  f"(exit {done.returncode}): {last}")
        return add_centre_columns(Path(raw_dir) / "csv", folder, centre)


def add_centre_columns(csv_dir: Path, folder: Path, centre: Centre) -> dict[str, int]:
    """Copy Synthea's CSVs with CENTER_ID, CENTER_NAME first; bytes otherwise unchanged."""
    rows: dict[str, int] = {}
    for name in synthea_headers():
        src = csv_dir / f"{name}.csv"
        if not src.exists():
            raise FedjourneyError(f"Synthea wrote no {src.name}; is the JAR a Synthea 3.x build?")
        prefix = f"{centre.id},{centre.name},".encode()
        with src.open("rb") as fin, (folder / src.name).open("wb") as fout:
            header = fin.readline()
            fout.write(",".join(CENTRE_COLUMNS).encode() + b"," + header)
            n = 0
            for line in fin:
                fout.write(prefix + line)
                n += 1
        rows[name] = n
    return rows
