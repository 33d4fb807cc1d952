"""Shared fixtures: generated federations, built once per test session."""

from __future__ import annotations

import logging
import os
import tarfile
from pathlib import Path

import pytest
import yaml

from fedjourney.cli import main
from fedjourney.config import Federation, load_federation

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "data" / "federation.yaml"
STUDY_CONFIG = ROOT / "data" / "study.yaml"  # the study scenario
WAN_CONFIG = ROOT / "data" / "wan.yaml"  # the WAN scenario: links, a slow machine, an outage
# Real Synthea outputs (two small exports, claims files removed), the Synthea 3.x CSV headers
# and an observation-code catalogue, packed in the repository so that a clone runs the tests
# (537 kB; 11 MB unpacked). FEDJOURNEY_REFERENCE points to an unpacked folder instead.
REFERENCE_ARCHIVE = ROOT / "tests" / "reference" / "synthea-reference.tar.xz"


def write_config(path: Path, population: int | None = None, **centre_overrides: object) -> Path:
    """A copy of the default federation config with populations or fields changed."""
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for centre in cfg["centres"]:
        if population is not None:
            centre["population"] = population
        centre.update(centre_overrides)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def imported_centre(tmp_path: Path) -> tuple[Federation, Path]:
    """The default federation whose centre 1 imports an (empty) Synthea folder; the folder."""
    source = tmp_path / "synthea"
    source.mkdir()
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    del cfg["centres"][1]["population"]
    cfg["centres"][1]["source"] = {"folder": str(source)}
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_federation(path), source


@pytest.fixture(scope="session")
def default_federation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default config (3 centres x 50 living patients), generated once."""
    out = tmp_path_factory.mktemp("default") / "generated"
    assert main(["generate", "--config", str(DEFAULT_CONFIG), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def large_federation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default centres with 800 living patients each: enough for stable statistics."""
    base = tmp_path_factory.mktemp("large")
    cfg = write_config(base / "federation.yaml", population=800)
    out = base / "generated"
    assert main(["generate", "--config", str(cfg), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference folder: synthea3_csv_headers.json, observation_code_catalogue.csv and
    synthea-samples/{sample_ca,sample_ma10}/ (read-only, as shipped)."""
    given = os.environ.get("FEDJOURNEY_REFERENCE")
    if given:
        if not Path(given).is_dir():
            pytest.fail(f"FEDJOURNEY_REFERENCE={given} is not a folder; unset it to use "
                        f"{REFERENCE_ARCHIVE.relative_to(ROOT)}")
        return Path(given)
    out = tmp_path_factory.mktemp("reference")
    with tarfile.open(REFERENCE_ARCHIVE) as archive:
        archive.extractall(out, filter="data")
    return out


class StoryLines(logging.Handler):
    """A story's lines, as (level name, message): attach it to the logger a Story wraps."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelname, record.getMessage()))
