"""Synthetic patient journeys in Synthea's CSV format, one folder per hospital centre."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from fedjourney.config import Centre, Federation
from fedjourney.errors import FedjourneyError
from fedjourney.generator.imported import check_sources, import_centre
from fedjourney.generator.output import (
    CentreResult,
    check_writable,
    remove_stale_partials,
    write_centre_atomically,
    write_dataset_readme,
)
from fedjourney.generator.synthea_engine import find_jar, require_synthea, synthea_available

ENGINES = ("builtin", "synthea", "auto")
Progress = Callable[[Centre, int, int], None]


def choose_engine(engine: str, jar: Path | None) -> str:
    """Resolve 'auto' to 'synthea' when a JAR and Java are present, else 'builtin'."""
    if engine not in ENGINES:
        raise FedjourneyError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine == "auto":
        return "synthea" if synthea_available(jar) else "builtin"
    return engine


def generate(fed: Federation, out_dir: Path, centres: Sequence[Centre] | None = None,
             force: bool = False, engine: str = "builtin", synthea_jar: str | None = None,
             progress: Progress | None = None, source_override: Path | None = None
             ) -> list[CentreResult]:
    """Generate (or skip, when complete) each centre's folder under out_dir. Centres with a
    source folder are imported from it instead; source_override replaces that folder for
    the one centre given (the generator container's read-only mount)."""
    if source_override is not None and (centres is None or len(centres) != 1):
        raise FedjourneyError("--source replaces one centre's source folder; "
                              "pass exactly one --centre")
    chosen = tuple(centres if centres is not None else fed.centres)
    jar = find_jar(synthea_jar)
    engine = choose_engine(engine, jar)
    sources = check_sources(chosen, source_override)
    if engine == "synthea" and len(sources) < len(chosen):
        jar = require_synthea(jar)
    check_writable(out_dir)
    remove_stale_partials(out_dir)

    def writer(centre: Centre, folder: Path) -> dict[str, int]:
        if engine == "synthea":
            from fedjourney.generator.synthea_engine import write_centre_with_synthea

            assert jar is not None
            return write_centre_with_synthea(fed, centre, folder, jar)
        from fedjourney.generator.builtin import write_centre

        report = (lambda done, total: progress(centre, done, total)) if progress else None
        return write_centre(fed, centre, folder, report)

    results = [import_centre(fed, sources[c.id], out_dir, force) if c.id in sources
               else write_centre_atomically(fed, c, out_dir, engine, force, writer)
               for c in chosen]
    write_dataset_readme(fed, out_dir)
    return results
