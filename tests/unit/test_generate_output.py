"""The generator's files: Synthea 3.x's format, tanat-synthea's loader, determinism, safety."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import polars as pl
import pytest

from fedjourney.cli import main
from fedjourney.config import load_federation
from fedjourney.generator import generate
from tests.conftest import DEFAULT_CONFIG, write_config

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ONE_DECIMAL = re.compile(r"^-?\d+\.\d$")
MONEY = re.compile(r"^-?\d+\.\d{2}$")
# Which fields Synthea writes as full timestamps and which as dates (Synthea 3.x CSV export).
TIMESTAMP_FIELDS = {
    "encounters": ("START", "STOP"), "observations": ("DATE",),
    "medications": ("START", "STOP"), "procedures": ("START", "STOP"),
    "immunizations": ("DATE",), "devices": ("START",), "imaging_studies": ("DATE",),
    "payer_transitions": ("START_DATE", "END_DATE"),
}
DATE_FIELDS = {
    "patients": ("BIRTHDATE", "DEATHDATE"), "conditions": ("START", "STOP"),
    "allergies": ("START",), "careplans": ("START",), "supplies": ("DATE",),
}


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _read(folder: Path, name: str) -> pl.DataFrame:
    return pl.read_csv(folder / f"{name}.csv", infer_schema=False)


def test_files_and_columns_equal_synthea3_plus_centre_columns(
    default_federation: Path, reference: Path
) -> None:
    headers = json.loads((reference / "synthea3_csv_headers.json").read_text())
    for centre in sorted(default_federation.glob("center_*")):
        csvs = {p.stem for p in centre.glob("*.csv")}
        assert csvs == set(headers), centre
        for name, cols in headers.items():
            first = (centre / f"{name}.csv").read_text().split("\n", 1)[0]
            assert first.split(",") == ["CENTER_ID", "CENTER_NAME", *cols], name


def test_synthea_formatting(default_federation: Path) -> None:
    centre = default_federation / "center_0"
    for path in centre.glob("*.csv"):
        text = path.read_text()
        assert '"' not in text, f"{path.name}: Synthea never quotes"
        assert text.endswith("\n") and "\r" not in text
    for name, fields in TIMESTAMP_FIELDS.items():
        frame = _read(centre, name)
        for f in fields:
            values = frame[f].drop_nulls()
            assert values.str.contains(TIMESTAMP.pattern).all(), (name, f)
    for name, fields in DATE_FIELDS.items():
        frame = _read(centre, name)
        for f in fields:
            assert frame[f].drop_nulls().str.contains(DATE.pattern).all(), (name, f)
    obs = _read(centre, "observations")
    numeric = obs.filter(pl.col("TYPE") == "numeric")["VALUE"]
    assert numeric.str.contains(ONE_DECIMAL.pattern).all()
    assert not numeric.str.starts_with("-0.0").any()
    assert set(obs["TYPE"].unique()) == {"numeric", "text"}
    for name, col in (("patients", "Id"), ("encounters", "Id"), ("encounters", "PATIENT"),
                      ("observations", "PATIENT"), ("careplans", "Id")):
        assert _read(centre, name)[col].str.contains(UUID.pattern).all(), (name, col)
    enc = _read(centre, "encounters")
    for col in ("BASE_ENCOUNTER_COST", "TOTAL_CLAIM_COST", "PAYER_COVERAGE"):
        assert enc[col].str.contains(MONEY.pattern).all(), col
    # Empty field = missing: QALY rows have no encounter and no category, as in Synthea.
    qaly = obs.filter(pl.col("CODE") == "QALY")
    assert qaly.height > 0 and qaly["ENCOUNTER"].is_null().all()
    assert qaly["CATEGORY"].is_null().all()
    assert (obs["CENTER_ID"] == "0").all()
    assert (obs["CENTER_NAME"] == "Massachusetts General Hospital").all()


def test_loads_unchanged_with_tanat_synthea(default_federation: Path) -> None:
    tanat_synthea = pytest.importorskip("tanat_synthea")
    for centre in sorted(default_federation.glob("center_*")):
        journey = tanat_synthea.PatientJourney(centre)
        static = journey.static_data()
        temporal = journey.temporal_data()
        patients = _read(centre, "patients")
        assert len(static) == patients.height
        assert list(static.columns[:3]) == ["CENTER_ID", "CENTER_NAME", "PATIENT"]
        assert set(temporal["RECORD_TYPE"]) >= {"encounter", "observation", "condition"}
        assert temporal["PATIENT"].isin(set(static["PATIENT"])).all()
        assert static["BIRTHDATE"].notna().all()
        assert temporal["START"].notna().sum() > 0


def test_centre_meta_and_dataset_readme(default_federation: Path) -> None:
    import yaml

    meta = yaml.safe_load((default_federation / "center_1" / "center_meta.yaml").read_text())
    assert meta["center_name"] == "CHU de Lyon" and meta["country_code"] == "fr"
    assert meta["population"] == 50 and meta["seed"] == 123 and meta["age_range"] == "40-85"
    readme = (default_federation / "README.md").read_text()
    for name in ("Massachusetts General Hospital", "CHU de Lyon", "University College London"):
        assert name in readme


def test_population_counts_the_living_and_the_dead_come_on_top(default_federation: Path
                                                               ) -> None:
    fed = load_federation(DEFAULT_CONFIG)
    for centre in fed.centres:
        patients = _read(default_federation / centre.folder_name, "patients")
        alive = patients.filter(pl.col("DEATHDATE").is_null()).height
        assert alive == centre.population
        ages = patients.filter(pl.col("DEATHDATE").is_null()).select(
            (pl.lit("2025-01-01").str.to_date() - pl.col("BIRTHDATE").str.to_date())
            .dt.total_days() / 365.2425)["literal"]
        assert ages.min() >= centre.age_min and ages.max() < centre.age_max + 1


def test_same_config_gives_byte_identical_files(default_federation: Path, tmp_path: Path
                                                ) -> None:
    again = tmp_path / "again"
    assert main(["generate", "--config", str(DEFAULT_CONFIG), "--out", str(again)]) == 0
    assert _digest(again) == _digest(default_federation)


def test_seed_changes_the_data(tmp_path: Path) -> None:
    a = write_config(tmp_path / "a.yaml")
    b = write_config(tmp_path / "b.yaml", seed=9)
    for config, out in ((a, "A"), (b, "B")):
        assert main(["generate", "--config", str(config), "--out", str(tmp_path / out),
                     "--centre", "0"]) == 0
    assert (_digest(tmp_path / "A" / "center_0")["patients.csv"]
            != _digest(tmp_path / "B" / "center_0")["patients.csv"])


def test_complete_centre_is_skipped_and_force_regenerates(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    out = tmp_path / "out"
    assert main(["generate", "--out", str(out), "--centre", "2"]) == 0
    before = _digest(out)
    stamp = (out / "center_2" / "observations.csv").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["generate", "--out", str(out), "--centre", "2"]) == 0
    assert "skipped" in capsys.readouterr().out
    assert (out / "center_2" / "observations.csv").stat().st_mtime_ns == stamp
    assert main(["generate", "--out", str(out), "--centre", "2", "--force"]) == 0
    assert "regenerated" in capsys.readouterr().out
    assert (out / "center_2" / "observations.csv").stat().st_mtime_ns != stamp
    assert _digest(out) == before


def test_changed_settings_are_not_silently_skipped(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["generate", "--out", str(out), "--centre", "0"]) == 0
    before = _digest(out / "center_0")
    changed = write_config(tmp_path / "changed.yaml", population=60)
    assert main(["generate", "--config", str(changed), "--out", str(out), "--centre", "0"]) == 2
    assert "--force" in capsys.readouterr().err
    assert _digest(out / "center_0") == before


def test_interrupted_run_leaves_nothing_that_looks_complete(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from fedjourney.generator import builtin

    fed = load_federation(DEFAULT_CONFIG)
    real = builtin.write_centre

    def crash(*args: object, **kwargs: object) -> dict[str, int]:
        real(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(builtin, "write_centre", crash)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        generate(fed, out, centres=[fed.centres[0]])
    assert not (out / "center_0").exists()
    assert list(out.iterdir()) == []


def test_forced_regeneration_keeps_old_data_if_interrupted(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from fedjourney.generator import builtin

    fed = load_federation(DEFAULT_CONFIG)
    out = tmp_path / "out"
    generate(fed, out, centres=[fed.centres[2]])
    before = _digest(out / "center_2")

    def crash(*args: object, **kwargs: object) -> dict[str, int]:
        raise OSError("disk full")

    monkeypatch.setattr(builtin, "write_centre", crash)
    with pytest.raises(OSError):
        generate(fed, out, centres=[fed.centres[2]], force=True)
    assert _digest(out / "center_2") == before
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "center_2"]


def test_folder_without_meta_is_not_overwritten(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    (out / "center_0").mkdir(parents=True)
    (out / "center_0" / "mine.txt").write_text("keep me")
    assert main(["generate", "--out", str(out), "--centre", "0"]) == 2
    assert "not a complete centre" in capsys.readouterr().err
    assert (out / "center_0" / "mine.txt").read_text() == "keep me"
