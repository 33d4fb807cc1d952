"""Bad federation configs: one line naming the problem, exit status 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fedjourney.cli import main
from fedjourney.config import load_federation
from fedjourney.errors import FedjourneyError
from tests.conftest import DEFAULT_CONFIG


def test_default_config_is_the_tutorials_three_centres() -> None:
    fed = load_federation(DEFAULT_CONFIG)
    got = [(c.name, c.country, c.region, c.population, c.seed, c.age_range) for c in fed.centres]
    assert got == [
        ("Massachusetts General Hospital", "us", "Massachusetts", 50, 42, "20-80"),
        ("CHU de Lyon", "fr", "Auvergne-Rhone-Alpes", 50, 123, "40-85"),
        ("University College London Hospital", "gb", "Greater London", 50, 777, "20-60"),
    ]
    assert fed.reference_date.isoformat() == "2025-01-01"


def _mutated(tmp_path: Path, mutate: object) -> Path:
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    mutate(cfg)  # type: ignore[operator]
    path = tmp_path / "federation.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _set(index: int, key: str, value: object) -> object:
    return lambda cfg: cfg["centres"][index].__setitem__(key, value)


def _experiment(name: str, **settings: object) -> object:
    return lambda cfg: cfg.setdefault("experiments", {}).__setitem__(name, settings)


BAD = {
    "unknown country": (_set(1, "country", "xx"), "unknown country 'xx'"),
    "population zero": (_set(0, "population", 0), "population must be a whole number > 0"),
    "population negative": (_set(0, "population", -5), "population must be a whole number > 0"),
    "malformed age range": (_set(2, "age_range", "twenty-sixty"), "is malformed"),
    "inverted age range": (_set(2, "age_range", "60-20"), "is inverted"),
    "duplicate names": (_set(1, "name", "Massachusetts General Hospital"), "two centres are named"),
    "duplicate ids": (_set(2, "id", 0), "share id 0"),
    "unknown key": (_set(0, "populaton", 3), "unknown key 'populaton'"),
    "bad date": (lambda cfg: cfg["federation"].__setitem__("reference_date", "2025-13-01"),
                 "YYYY-MM-DD"),
    "min_nodes above the centres": (lambda cfg: cfg["training"].__setitem__("min_nodes", 4),
                                    "training.min_nodes is 4 but the federation has 3 centres"),
    "min_nodes zero": (lambda cfg: cfg["training"].__setitem__("min_nodes", 0),
                       "training.min_nodes must be a whole number from 1"),
    "round deadline too short": (
        lambda cfg: cfg["training"].__setitem__("round_deadline_s", 1),
        "training.round_deadline_s must be a whole number from 5"),
    "unknown aggregator": (_experiment("x", aggregator="fedsgd"),
                           "experiments.x.aggregator must be one of fedavg, fedprox, scaffold"),
    "unknown secagg scheme": (_experiment("x", secagg="shamir"),
                              "experiments.x.secagg must be one of off, lom"),
    "joye-libert": (_experiment("x", secagg="joye-libert"),
                    "joye-libert does not run here: Fed-BioMed 6.4.1 opens its bundled"),
    "secagg with k-of-n": (lambda cfg: cfg["training"].update(secagg="lom", min_nodes=2),
                           "training: secagg lom needs every centre in every round"),
    "scaffold without num_updates": (_experiment("x", aggregator="scaffold"),
                                     "set num_updates"),
    "dp with fedprox": (_experiment("x", aggregator="fedprox", dp={"sigma": 1, "clip": 1}),
                        "dp works with aggregator fedavg only"),
    "dp without clip": (_experiment("x", dp={"sigma": 1.0}), "experiments.x.dp has no 'clip'"),
    "dp with a negative sigma": (_experiment("x", dp={"sigma": -1, "clip": 1}),
                                 "experiments.x.dp.sigma must be a number in (0, 1000)"),
    "an experiment changing the tag": (_experiment("x", tag="other"),
                                       "experiments.x cannot change tag"),
    "an experiment named default": (_experiment("default", rounds=2),
                                    "must be letters, digits"),
    "an unknown secagg stance": (_set(1, "secure_aggregation", "maybe"),
                                 "secure_aggregation must be one of allowed, required, refused"),
    "an unknown metrics posture": (_set(0, "metrics_under_secagg", "sometimes"),
                                   "metrics_under_secagg must be one of withheld, clear"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_is_one_line_exit_2_and_writes_nothing(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mutate, expected = BAD[case]
    config = _mutated(tmp_path, mutate)
    out = tmp_path / "out"
    assert main(["generate", "--config", str(config), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fedjourney: error: "), err
    assert expected in err
    assert not out.exists()


def test_unreadable_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["generate", "--config", str(missing), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("centres: [\n  - {name: a\n")
    assert main(["generate", "--config", str(garbage), "--out", str(tmp_path / "o")]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert main(["generate", "--config", str(binary), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read config" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["generate", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "cannot create output folder" in err and "--out" in err
    assert blocker.read_text() == "not a folder"


def test_unknown_centre_selection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--out", str(tmp_path / "o"), "--centre", "Nowhere"]) == 2
    assert "no centre 'Nowhere'" in capsys.readouterr().err


def test_experiments_are_training_with_what_differs() -> None:
    fed = load_federation(DEFAULT_CONFIG)
    assert fed.experiment(None) == fed.experiment("default") == fed.training
    fedprox = fed.experiment("fedprox")
    assert (fedprox.aggregator, fedprox.fedprox_mu, fedprox.rounds) == (
        "fedprox", 0.01, fed.training.rounds)
    dp = fed.experiment("dp").dp
    assert dp is not None and (dp.sigma, dp.clip, dp.delta) == (1.0, 1.0, 1e-5)
    assert fed.experiment("secagg").describe() == {
        "plan": "mlp", "aggregator": "fedavg", "secagg": "lom", "clipping_range": 3, "dp": "off"}
    with pytest.raises(FedjourneyError, match=r"no experiment 'nope'.*known: default, dp"):
        fed.experiment("nope")


def test_a_centres_privacy_stance_does_not_change_its_records(tmp_path: Path) -> None:
    import dataclasses

    fed = load_federation(DEFAULT_CONFIG)
    centre = fed.centres[0]
    stance = dataclasses.replace(centre, secure_aggregation="required",
                                 metrics_under_secagg="withheld")
    assert fed.centre_fingerprint(stance, "builtin", "v") == fed.centre_fingerprint(
        centre, "builtin", "v")
    # Unless a centre sends its metrics in the clear under secure aggregation, it withholds.
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for entry in raw["centres"]:
        entry.pop("metrics_under_secagg", None)
    (tmp_path / "f.yaml").write_text(yaml.safe_dump(raw))
    assert {c.metrics_under_secagg for c in load_federation(tmp_path / "f.yaml").centres} \
        == {"withheld"}


def test_an_experiment_is_checked_when_chosen(tmp_path: Path) -> None:
    """training.min_nodes 2 is valid; the shipped scaffold and secagg experiments, which
    inherit it, are refused only when chosen, with the fix."""
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg["training"]["min_nodes"] = 2
    path = tmp_path / "federation.yaml"
    path.write_text(yaml.safe_dump(cfg))
    fed = load_federation(path)
    assert fed.experiment("fedprox").min_nodes == 2
    for name, what in (("scaffold", "aggregator scaffold"), ("secagg", "secagg lom")):
        with pytest.raises(FedjourneyError, match=f"experiment '{name}': {what} needs every "
                           "centre in every round; set its min_nodes to 3"):
            fed.experiment(name)
