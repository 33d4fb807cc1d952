"""A centre that brings its own Synthea output (`source: {folder: ...}`): import, checks,
idempotence, --source, and config validation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from fedjourney.cli import main
from fedjourney.config import load_federation, parse_federation
from fedjourney.errors import FedjourneyError
from fedjourney.features import build
from tests.conftest import DEFAULT_CONFIG

SAMPLES = ("sample_ca", "sample_ma10")  # older schema (no MIDDLE/FIPS/INCOME) and 3.x


def _config(path: Path, folder: str | Path, **extra: Any) -> Path:
    """A one-centre federation importing folder, with the default features."""
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg["centres"] = [{"id": 1, "name": "CHU de Lyon", "source": {"folder": str(folder)},
                       **extra}]
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _generate(config: Path, out: Path, *args: str) -> int:
    return main(["generate", "--config", str(config), "--out", str(out), *args])


def _copy_sample(reference: Path, name: str, to: Path) -> Path:
    shutil.copytree(reference / "synthea-samples" / name, to)
    for path in to.iterdir():
        path.chmod(0o644)  # the shared samples are read-only
    to.chmod(0o755)
    return to


@pytest.mark.parametrize("sample", SAMPLES)
def test_real_synthea_output_imports_and_loads(sample: str, reference: Path, tmp_path: Path
                                               ) -> None:
    source = reference / "synthea-samples" / sample
    out = tmp_path / "out"
    assert _generate(_config(tmp_path / "fed.yaml", source), out) == 0
    centre = out / "center_1"
    headers = json.loads((reference / "synthea3_csv_headers.json").read_text())
    assert {p.stem for p in centre.glob("*.csv")} == set(headers)
    for name, cols in headers.items():
        first = (centre / f"{name}.csv").read_text().split("\n", 1)[0]
        assert first.split(",") == ["CENTER_ID", "CENTER_NAME", *cols], name
        src_rows = len((source / f"{name}.csv").read_text().splitlines()) - 1
        assert pl.read_csv(centre / f"{name}.csv", infer_schema=False).height == src_rows
    meta = yaml.safe_load((centre / "center_meta.yaml").read_text())
    assert meta["engine"] == "import" and meta["population"] is None
    assert meta["source"]["header_only"] == []
    if sample == "sample_ca":
        assert meta["source"]["empty_columns"]["patients.csv"] == ["MIDDLE", "FIPS", "INCOME"]
        transitions = pl.read_csv(centre / "payer_transitions.csv", infer_schema=False)
        assert transitions["START_DATE"].drop_nulls().len() == transitions.height

    spec = load_federation(DEFAULT_CONFIG).feature_spec()
    features = build(centre, spec)
    patients = pl.read_csv(source / "patients.csv", infer_schema=False)
    assert features.X.shape[0] == patients.height and features.X.any()

    tanat_synthea = pytest.importorskip("tanat_synthea")
    journey = tanat_synthea.PatientJourney(centre)
    static = journey.static_data()
    temporal = journey.temporal_data()
    assert len(static) == patients.height
    assert list(static.columns[:3]) == ["CENTER_ID", "CENTER_NAME", "PATIENT"]
    assert set(temporal["RECORD_TYPE"]) >= {"encounter", "observation", "condition"}
    assert temporal["PATIENT"].isin(set(static["PATIENT"])).all()


def test_missing_optional_files_are_written_header_only(reference: Path, tmp_path: Path
                                                        ) -> None:
    source = _copy_sample(reference, "sample_ma10", tmp_path / "src")
    (source / "allergies.csv").unlink()
    (source / "devices.csv").unlink()
    out = tmp_path / "out"
    assert _generate(_config(tmp_path / "fed.yaml", source), out) == 0
    assert (out / "center_1" / "allergies.csv").read_text().count("\n") == 1
    meta = yaml.safe_load((out / "center_1" / "center_meta.yaml").read_text())
    assert meta["source"]["header_only"] == ["allergies.csv", "devices.csv"]
    assert meta["rows"]["allergies"] == 0


def test_synthea_output_folder_means_its_csv_subfolder(reference: Path, tmp_path: Path
                                                       ) -> None:
    _copy_sample(reference, "sample_ma10", tmp_path / "output" / "csv")
    out = tmp_path / "out"
    assert _generate(_config(tmp_path / "fed.yaml", tmp_path / "output"), out) == 0
    assert (out / "center_1" / "center_meta.yaml").is_file()


def _drop_column(folder: Path, name: str, column: str) -> None:
    path = folder / f"{name}.csv"
    pl.read_csv(path, infer_schema=False).drop(column).write_csv(path)


BAD_FOLDERS = {
    "folder missing": (lambda f: shutil.rmtree(f), "src not found"),
    "empty folder": (lambda f: [p.unlink() for p in f.iterdir()], "holds no CSV files"),
    "no patients.csv": (lambda f: (f / "patients.csv").unlink(), "patients.csv not found"),
    "no observations.csv": (lambda f: (f / "observations.csv").unlink(),
                            "observations.csv not found"),
    "column missing": (lambda f: _drop_column(f, "patients", "GENDER"),
                       "patients.csv: required column GENDER missing"),
    "record key missing": (lambda f: _drop_column(f, "encounters", "PATIENT"),
                           "encounters.csv: required column PATIENT missing"),
    "no patients": (lambda f: (f / "patients.csv").write_text(
        (f / "patients.csv").read_text().split("\n", 1)[0] + "\n"), "patients.csv has no"),
    "empty file": (lambda f: (f / "conditions.csv").write_text(""), "conditions.csv is empty"),
    "semicolons": (lambda f: (f / "patients.csv").write_text("Id;BIRTHDATE;GENDER\na;b;M\n"),
                   "patients.csv: cannot parse its header"),
    "not text": (lambda f: (f / "observations.csv").write_bytes(b"\xff\xfe\x00garbage\n"),
                 "observations.csv: cannot parse its header"),
}


@pytest.mark.parametrize("case", BAD_FOLDERS)
def test_bad_folder_is_refused_in_one_line_before_writing(
    case: str, reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spoil, expected = BAD_FOLDERS[case]
    source = _copy_sample(reference, "sample_ca", tmp_path / "src")
    spoil(source)
    out = tmp_path / "out"
    assert _generate(_config(tmp_path / "fed.yaml", source), out) == 2
    err = capsys.readouterr().err
    assert err.startswith("fedjourney: error: centre 'CHU de Lyon': ")
    assert expected in err and err.count("\n") == 1, err
    assert not out.exists()


def test_unreadable_rows_leave_nothing_behind(reference: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    source = _copy_sample(reference, "sample_ca", tmp_path / "src")
    with (source / "procedures.csv").open("a") as fh:
        fh.write("a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p\n")  # more fields than the header
    out = tmp_path / "out"
    assert _generate(_config(tmp_path / "fed.yaml", source), out) == 2
    assert "procedures.csv: not readable as CSV" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == []


def test_rerun_skips_and_changed_source_needs_force(reference: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    source = _copy_sample(reference, "sample_ma10", tmp_path / "src")
    config, out = _config(tmp_path / "fed.yaml", source), tmp_path / "out"
    assert _generate(config, out) == 0
    stamp = (out / "center_1" / "patients.csv").stat().st_mtime_ns
    capsys.readouterr()
    assert _generate(config, out) == 0
    assert "skipped" in capsys.readouterr().out
    assert (out / "center_1" / "patients.csv").stat().st_mtime_ns == stamp

    patients = source / "patients.csv"
    patients.write_text("\n".join(patients.read_text().splitlines()[:-1]) + "\n")
    assert _generate(config, out) == 2
    err = capsys.readouterr().err
    assert "imported from other source files" in err and "--force" in err
    assert (out / "center_1" / "patients.csv").stat().st_mtime_ns == stamp
    assert _generate(config, out, "--force") == 0
    assert "regenerated" in capsys.readouterr().out
    assert pl.read_csv(out / "center_1" / "patients.csv").height == 10


def test_source_option_replaces_the_configured_folder(reference: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    config = _config(tmp_path / "fed.yaml", "/host/only/path")
    sample = reference / "synthea-samples" / "sample_ma10"
    out = tmp_path / "out"
    assert _generate(config, out, "--centre", "1", "--source", str(sample)) == 0
    meta = yaml.safe_load((out / "center_1" / "center_meta.yaml").read_text())
    assert meta["source"]["folder"] == str(sample)
    # Where the folder is mounted does not matter, only what it holds.
    copy = _copy_sample(reference, "sample_ma10", tmp_path / "elsewhere")
    assert _generate(config, out, "--centre", "1", "--source", str(copy)) == 0
    assert "skipped" in capsys.readouterr().out


@pytest.mark.parametrize("args", [[], ["--centre", "1", "--centre", "0"]])
def test_source_option_needs_exactly_one_centre(args: list[str], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _generate(DEFAULT_CONFIG, out, *args, "--source", str(tmp_path)) == 2
    assert "pass exactly one --centre" in capsys.readouterr().err
    assert not out.exists()


def test_source_option_on_a_generated_centre_is_refused(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    assert _generate(DEFAULT_CONFIG, tmp_path / "out", "--centre", "0",
                     "--source", str(tmp_path)) == 2
    assert "has no source in the config" in capsys.readouterr().err


def _raw(**centre: Any) -> dict[str, Any]:
    return {"federation": {"reference_date": "2025-01-01"},
            "centres": [{"id": 0, "name": "A", **centre}]}


def test_source_config_is_parsed_and_resolved(tmp_path: Path) -> None:
    fed = parse_federation(_raw(source={"folder": "csv/a"}), source=tmp_path / "fed.yaml")
    centre = fed.centres[0]
    assert centre.source_folder == tmp_path / "csv" / "a"
    assert (centre.population, centre.seed, centre.country, centre.region) == (0, 0, "", "")
    absolute = parse_federation(_raw(source={"folder": "/data/x"}, country="FR", region="R"))
    assert absolute.centres[0].source_folder == Path("/data/x")
    assert absolute.centres[0].country == "fr"
    assert all(c.source_folder is None for c in load_federation(DEFAULT_CONFIG).centres)


BAD_SOURCES = {
    "not a mapping": ({"source": "some/path"}, "source must be a mapping"),
    "null": ({"source": None}, "source must be a mapping"),
    "unknown key": ({"source": {"folder": "x", "format": "csv"}},
                    "source: unknown key 'format'; allowed keys: folder"),
    "no folder": ({"source": {}}, "source.folder must be the path"),
    "empty folder": ({"source": {"folder": " "}}, "source.folder must be the path"),
    "not a text": ({"source": {"folder": 3}}, "source.folder must be the path"),
    "bad country": ({"source": {"folder": "x"}, "country": "zz"}, "unknown country 'zz'"),
    "bad population": ({"source": {"folder": "x"}, "population": 0},
                       "population must be a whole number > 0"),
    "generated still needs population": ({"country": "fr", "region": "R", "seed": 1},
                                         "has no 'population'"),
}


@pytest.mark.parametrize("case", BAD_SOURCES)
def test_bad_source_config_is_one_line(case: str) -> None:
    fields, expected = BAD_SOURCES[case]
    with pytest.raises(FedjourneyError) as err:
        parse_federation(_raw(**fields))
    assert expected in str(err.value) and "\n" not in str(err.value)
