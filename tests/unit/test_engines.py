"""Engine choice and the synthea engine's post-processing (on real Synthea output)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fedjourney.cli import main
from fedjourney.config import load_federation
from fedjourney.generator import choose_engine
from fedjourney.generator.synthea_engine import JAR_ENV, add_centre_columns
from tests.conftest import DEFAULT_CONFIG


def test_synthea_engine_without_jar_fails_at_once(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(JAR_ENV, raising=False)
    out = tmp_path / "out"
    assert main(["generate", "--engine", "synthea", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--synthea-jar" in err and JAR_ENV in err and err.count("\n") == 1
    assert not out.exists()


def test_synthea_engine_with_missing_jar_names_it(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    jar = tmp_path / "synthea.jar"
    assert main(["generate", "--engine", "synthea", "--synthea-jar", str(jar),
                 "--out", str(tmp_path / "out")]) == 2
    assert str(jar) in capsys.readouterr().err


def test_auto_picks_builtin_without_a_jar_and_synthea_with_jar_and_java(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert choose_engine("auto", None) == "builtin"
    jar = tmp_path / "synthea-with-dependencies.jar"
    assert choose_engine("auto", jar) == "builtin"  # named but absent
    jar.write_bytes(b"PK")
    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/java" if name == "java" else None)
    assert choose_engine("auto", jar) == "synthea"
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert choose_engine("auto", jar) == "builtin"


@pytest.mark.parametrize("sample", ["sample_ma10", "sample_ca"])
def test_post_processing_keeps_synthea_bytes_and_loads_in_tanat(
    sample: str, reference: Path, tmp_path: Path
) -> None:
    tanat_synthea = pytest.importorskip("tanat_synthea")
    src = reference / "synthea-samples" / sample
    centre = dataclasses.replace(load_federation(DEFAULT_CONFIG).centres[0])
    # Synthea's export also holds files our reference samples may lack: skip those here.
    present = {p.stem for p in src.glob("*.csv")}
    from fedjourney.generator import synthea_engine

    headers = {k: v for k, v in synthea_engine.synthea_headers().items() if k in present}
    original = synthea_engine.synthea_headers
    synthea_engine.synthea_headers = lambda: headers  # type: ignore[assignment]
    try:
        rows = add_centre_columns(src, tmp_path, centre)
    finally:
        synthea_engine.synthea_headers = original  # type: ignore[assignment]
    for name in headers:
        ours = (tmp_path / f"{name}.csv").read_bytes().split(b"\n")
        theirs = (src / f"{name}.csv").read_bytes().split(b"\n")
        assert ours[0] == b"CENTER_ID,CENTER_NAME," + theirs[0]
        assert all(a.endswith(b) for a, b in zip(ours[1:], theirs[1:], strict=True) if b)
        assert rows[name] == len([line for line in theirs[1:] if line])
    journey = tanat_synthea.PatientJourney(tmp_path)
    assert len(journey.static_data()) == rows["patients"]
    assert len(journey.temporal_data(record_types=["observation"])) == rows["observations"]
