"""Shared fixtures: generated federations, built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from fedjourney.cli import main
from fedjourney.config import Federation, load_federation

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "data" / "federation.yaml"
STUDY_CONFIG = ROOT / "data" / "study.yaml"  # the study scenario
# Real Synthea outputs and headers live outside the repository (the workplace's shared/,
# beside this checkout, also in CI); FEDJOURNEY_REFERENCE points elsewhere.
REFERENCE = Path(os.environ.get("FEDJOURNEY_REFERENCE", ROOT.parent / "shared" / "reference"))


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
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"shared reference data not found at {REFERENCE}; set "
                    "FEDJOURNEY_REFERENCE to the folder holding the real Synthea samples")
    return REFERENCE
