"""Hostile or careless federation configs are refused at load: one line naming the field and
the fix, exit status 2, nothing written. Each case is a mutation of data/federation.yaml."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedjourney.cli import main
from fedjourney.config import MAX_POPULATION, MAX_SEED, load_federation, load_raw
from fedjourney.errors import FedjourneyError
from fedjourney.host import views
from tests.conftest import DEFAULT_CONFIG, ROOT, STUDY_CONFIG

FEDJOURNEY = Path(sys.executable).with_name("fedjourney")


@dataclass(frozen=True)
class Text:
    """Replace `old` by `new` in the config's text (for what only YAML text can say)."""

    old: str
    new: str


Mutation = Callable[[dict[str, Any]], None] | Text


def _set(path: str, value: object) -> Mutation:
    """Set a dotted path of the parsed config ("centres.1.name") to value."""
    *parents, last = [int(k) if k.isdigit() else k for k in path.split(".")]

    def mutate(cfg: dict[str, Any]) -> None:
        node: Any = cfg
        for key in parents:
            node = node[key] if isinstance(key, int) else node.setdefault(key, {})
        node[last] = value
    return mutate


def _write(tmp_path: Path, mutation: Mutation) -> Path:
    path = tmp_path / "federation.yaml"
    if isinstance(mutation, Text):
        text = DEFAULT_CONFIG.read_text(encoding="utf-8")
        assert mutation.old in text, mutation.old
        path.write_text(text.replace(mutation.old, mutation.new, 1), encoding="utf-8")
    else:
        cfg = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
        mutation(cfg)
        path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def _alias_bomb() -> str:
    """Nine levels of nine aliases: 387 million strings once expanded."""
    lines = ['lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\nfederation:\n  name: *l9\n"


NAME = "centres.1.name"
LR = "learning_rate: 0.001"
BAD: dict[str, tuple[Mutation, str]] = {
    # Control characters and line separators, in any string of the config.
    "carriage return in a name": (_set(NAME, "CHU\rde Lyon"), "centres[1].name holds U+000D"),
    "tab in a name": (_set(NAME, "CHU\tde Lyon"), "centres[1].name holds U+0009"),
    "NUL in a name": (_set(NAME, "CHU\x00"), "centres[1].name holds U+0000"),
    "DEL in a name": (_set(NAME, "CHU\x7f"), "centres[1].name holds U+007F"),
    "C1 next line in a name": (_set(NAME, "CHU\x85Lyon"), "centres[1].name holds U+0085"),
    "C1 CSI in a name": (_set(NAME, "CHU\x9b31m"), "centres[1].name holds U+009B"),
    "escape in the federation name": (_set("federation.name", "\x1b[31mred"),
                                      "federation.name holds U+001B"),
    "line separator in a region": (_set("centres.2.region", "Greater\u2028London"),
                                   "centres[2].region holds U+2028 (LINE SEPARATOR)"),
    "paragraph separator in a city": (_set("centres.2.city", "London\u2029"),
                                      "centres[2].city holds U+2029"),
    "newline in a country": (_set("centres.1.country", "fr\n"), "centres[1].country holds"),
    "newline in the tag": (_set("training.tag", "fedjourney\nx"), "training.tag holds U+000A"),
    "newline in a vocabulary code": (_set("features.vocabulary.3", "8302-2\r"),
                                     "features.vocabulary[3] holds U+000D"),
    "NUL in the target": (_set("features.target.positive", "M\x00"),
                          "features.target.positive holds U+0000"),
    "newline in an age range": (_set("centres.0.age_range", "20-80\u2029"),
                                "centres[0].age_range holds U+2029"),
    "bidi override in a name": (_set(NAME, "CHU \u202eBad"), "centres[1].name holds U+202E"),
    "lone surrogate in a name": (_set(NAME, "CHU \ud800"), "centres[1].name holds U+D800"),
    "newline in an experiment's name": (_set("experiments.a\nb", {"rounds": 2}),
                                        "experiments: key 'a\\nb' holds U+000A"),
    "injection through a source folder": (
        _set("centres.1.source", {"folder": "/data/x\n    privileged: true"}),
        "centres[1].source.folder holds U+000A"),
    # Names: one line of text, as CSV rows and story lines "[node-1 NAME]" can carry it.
    "a name of spaces": (_set(NAME, "   "), "centres[1].name must be a non-empty text"),
    "an empty name": (_set(NAME, ""), "centres[1] has no 'name'"),
    "a closing bracket in a name": (_set(NAME, "CHU] Lyon"), "centres[1].name 'CHU] Lyon' "
                                    "holds ']'; leave out commas, double quotes and brackets"),
    "an opening bracket in a name": (_set(NAME, "CHU [Lyon"), "centres[1].name 'CHU [Lyon' "
                                     "holds '['"),
    "a comma in a name": (_set(NAME, "CHU, Lyon"), "holds ','"),
    "a double quote in a name": (_set(NAME, 'CHU "Lyon"'), "holds '\"'"),
    "a number as a name": (_set(NAME, 42), "centres[1].name must be a non-empty text, got 42 "
                           "(a number); quote it"),
    "a list as a name": (_set(NAME, ["CHU"]), "centres[1].name must be a non-empty text, got "
                         "['CHU'] (a list)"),
    "a name too long": (_set(NAME, "C" * 101), "centres[1].name is 101 characters long"),
    "a federation name of spaces": (_set("federation.name", "  "),
                                    "federation.name must be a non-empty text"),
    "a number as a region": (_set("centres.0.region", 7), "centres[0].region must be a "
                             "text, got 7 (a number); quote it"),
    # Paths: a bind mount is HOST:CONTAINER:ro, in a file Compose interpolates.
    "a colon in a source folder": (_set("centres.1.source", {"folder": "/data/a:/etc"}),
                                   "source.folder '/data/a:/etc' holds ':'"),
    "a variable in a source folder": (_set("centres.1.source", {"folder": "/data/$HOME"}),
                                      "source.folder '/data/$HOME' holds '$'"),
    # YAML: no anchors, aliases, repeated keys, unusual types or deep nesting.
    "an alias": (Text("name: CHU de Lyon", "name: &lyon CHU de Lyon\n    city: *lyon"),
                 "line 35: anchors and aliases (&name, *name) are not accepted"),
    "an alias bomb in a name": (Text("federation:\n  name: fedjourney-demo\n", _alias_bomb()),
                                "line 5: anchors and aliases"),
    "a repeated key": (Text("    seed: 42\n", "    seed: 42\n    seed: 43\n"),
                       "line 21: key 'seed' is given twice"),
    "deep nesting": (_set("training.tag", [[[[[[[["x"]]]]]]]]),
                     "training.tag[0][0][0][0][0][0][0] nests more than 8 levels deep"),
    "very deep nesting": (Text("tag: fedjourney", "tag: " + "[" * 5000 + "]" * 5000),
                          "nests too deeply"),
    "binary data": (_set(NAME, b"CHU"), "centres[1].name is b'CHU' (bytes)"),
    "a set": (_set("centres.1.region", {"a", "b"}), "centres[1].region is"),
    "a python object": (Text("tag: fedjourney", "tag: !!python/object:os.system x"),
                        "is not valid YAML at line 86"),
    "a key that is a number": (_set("centres.0.1", "x"), "centres[0]: unknown key 1"),
    "a view that is a list": (_set("view", ["node-0"]), "view must be a role's name"),
    "version true": (_set("version", True), "unsupported config version True (true/false)"),
    # Numbers: whole where whole, within what the tools can do; types named plainly.
    "population a billion": (_set("centres.0.population", 10**9),
                             f"centres[0].population must be a whole number > 0, at most "
                             f"{MAX_POPULATION}, got 1000000000 (a number)"),
    "population as text": (_set("centres.1.population", "ten"),
                           "centres[1].population must be a whole number > 0, at most "
                           f"{MAX_POPULATION}, got 'ten' (text)"),
    "population a fraction": (_set("centres.1.population", 1.5), "got 1.5 (a number)"),
    "population true": (_set("centres.1.population", True),
                        "centres[1].population must be a whole number > 0"),
    "id past the service names": (_set("centres.0.id", 10000),
                                  "centres[0].id must be a whole number from 0 to 9999"),
    "id negative": (_set("centres.0.id", -1), "centres[0].id must be a whole number from 0"),
    "seed past numpy's range": (_set("centres.0.seed", 2**32),
                                f"centres[0].seed must be a whole number from 0 to {MAX_SEED}"),
    "seed negative": (_set("centres.0.seed", -1), "centres[0].seed must be a whole number"),
    "seed as text": (_set("centres.0.seed", "42"), "got '42' (text)"),
    "history of 1000 years": (_set("federation.history_years", 1000),
                              "federation.history_years must be a whole number from 1 to 100"),
    "rounds as text": (_set("training.rounds", "ten"), "training.rounds must be a whole "
                       "number from 1 to 1000, got 'ten' (text)"),
    "learning rate as text": (_set("training.learning_rate", "fast"),
                              "training.learning_rate must be a number in (0, 10), got 'fast' "
                              "(text)"),
    "learning rate quoted": (Text(LR, 'learning_rate: "1e-3"'), "training.learning_rate is "
                             "the text '1e-3', which reads back as a number; write a number "
                             "without quotes"),
    # The role views are written with safe_dump, which leaves 1e5 unquoted: a float there.
    "a tag that reads back as a number": (Text("tag: fedjourney", 'tag: "1e5"'),
                                          "training.tag is the text '1e5'"),
    "learning rate not a number": (Text(LR, "learning_rate: .nan"),
                                   "training.learning_rate must be a number"),
    "sigma infinite": (_set("experiments.dp.dp.sigma", float("inf")),
                       "experiments.dp.dp.sigma must be a number in (0, 1000), got inf"),
    # Dates: from 1900 on, without a time, and the feature bins within the calendar.
    "reference date in year 1": (_set("federation.reference_date", "0001-06-01"),
                                 "federation.reference_date must be from 1900-01-01 to "
                                 "9998-12-31, got 0001-06-01"),
    "reference date in 1899": (_set("federation.reference_date", dt.date(1899, 12, 31)),
                               "federation.reference_date must be from 1900-01-01"),
    "reference date in 9999": (_set("federation.reference_date", "9999-12-31"),
                               "federation.reference_date must be from 1900-01-01 to "
                               "9998-12-31"),
    "reference date with a time": (_set("federation.reference_date",
                                        dt.datetime(2024, 1, 1, 10, 0)),
                                   "federation.reference_date must be a date as YYYY-MM-DD, "
                                   "without a time; got 2024-01-01 10:00:00"),
    "cutoff with a time": (_set("features.target", {"condition": "44054006",
                                                    "cutoff": dt.datetime(2022, 1, 1, 8)}),
                           "features.target.cutoff must be a date as YYYY-MM-DD, without"),
    "cutoff in year 1": (_set("features.target", {"condition": "44054006",
                                                  "cutoff": "0001-01-02"}),
                         "features: 10 bins of 360 days before 0001-01-02 start before "
                         "1900-01-01; lower n_bins or bin_days"),
    "bins past the calendar": (_set("features.bin_days", 36500),
                               "features: 10 bins of 36500 days before 2025-01-01 start "
                               "before 1900-01-01"),
    "a thousand bins of a year": (_set("features.n_bins", 1000), "features: 1000 bins of 360"),
    "end in 1901": (_set("features.end", "1901-01-01"),
                    "features: 10 bins of 360 days before 1901-01-01 start before"),
}


def _refusal(path: Path) -> str:
    with pytest.raises(FedjourneyError) as error:
        load_federation(path)
    return str(error.value)


@pytest.mark.parametrize("case", BAD)
def test_a_hostile_config_is_refused_in_one_line(case: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    mutation, expected = BAD[case]
    config = _write(tmp_path, mutation)
    message = _refusal(config)
    assert expected in message and len(message.splitlines()) == 1, message
    # The command line: the same line, exit status 2, nothing written.
    assert main(["generate", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == f"fedjourney: error: {message}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["federation.yaml"]


# Through the installed command, in its own process: both commands that write.
CLI_CASES = ["carriage return in a name", "injection through a source folder",
             "a closing bracket in a name", "a colon in a source folder",
             "an alias bomb in a name", "population a billion", "reference date with a time",
             "bins past the calendar"]


@pytest.mark.parametrize("case", CLI_CASES)
def test_the_command_exits_2_in_one_line_and_writes_nothing(case: str, tmp_path: Path) -> None:
    config = _write(tmp_path, BAD[case][0])
    for args in (["compose", "--config", str(config), "--write"],
                 ["generate", "--config", str(config), "--out", str(tmp_path / "out")]):
        done = subprocess.run([str(FEDJOURNEY), *args], capture_output=True, text=True,
                              cwd=tmp_path, timeout=60, check=False)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and BAD[case][1] in done.stderr, done.stderr
        assert done.stdout == ""
    assert [p.name for p in tmp_path.iterdir()] == ["federation.yaml"]


GOOD: dict[str, tuple[Mutation, Callable[[Any], object], object]] = {
    "learning rate 1e-3": (Text(LR, "learning_rate: 1e-3"),
                           lambda f: f.training.learning_rate, 0.001),
    "YAML 1.2 floats in dp": (Text("dp: {sigma: 1.0, clip: 1.0}",
                                   "dp: {sigma: 1E0, clip: .5e1, delta: 1e-5}"),
                              lambda f: f.experiment("dp").dp, (1.0, 5.0, 1e-5)),
    "mu 1.0e-2 without a sign": (Text("fedprox_mu: 0.01", "fedprox_mu: 1.0e-2"),
                                 lambda f: f.experiment("fedprox").fedprox_mu, 0.01),
    "an accented name": (_set(NAME, "Hôpital Édouard-Herriot"),
                         lambda f: f.centres[1].name, "Hôpital Édouard-Herriot"),
    "a name in kanji": (_set(NAME, "東京大学医学部附属病院"), lambda f: f.centres[1].name,
                        "東京大学医学部附属病院"),
    "a name with an apostrophe, a bar and spaces around": (
        _set(NAME, "  St Mary's | Paddington  "), lambda f: f.centres[1].name,
        "St Mary's | Paddington"),
    "a name of 100 characters": (_set(NAME, "C" * 100), lambda f: len(f.centres[1].name), 100),
    "an unquoted reference date": (Text('reference_date: "2025-01-01"',
                                        "reference_date: 2025-01-01"),
                                   lambda f: f.reference_date, dt.date(2025, 1, 1)),
    "bins reaching 1900 exactly": (_set("federation.reference_date", "1909-11-10"),
                                   lambda f: f.feature_spec().start, dt.date(1900, 1, 1)),
    "the largest population, id and seed": (
        lambda cfg: cfg["centres"][0].update(population=MAX_POPULATION, id=9999, seed=MAX_SEED),
        lambda f: (f.centres[0].population, f.centres[0].id, f.centres[0].seed),
        (MAX_POPULATION, 9999, MAX_SEED)),
    "a source folder with spaces and a hash": (
        _set("centres.1.source", {"folder": "/data/my synthea #2"}),
        lambda f: str(f.centres[1].source_folder), "/data/my synthea #2"),
    "a merge key without an alias": (Text("  tag: fedjourney", "  <<: {tag: fedjourney}"),
                                     lambda f: f.training.tag, "fedjourney"),
}


@pytest.mark.parametrize("case", GOOD)
def test_careful_configs_are_still_accepted(case: str, tmp_path: Path) -> None:
    mutation, read, expected = GOOD[case]
    fed = load_federation(_write(tmp_path, mutation))
    got = read(fed)
    if case == "YAML 1.2 floats in dp":
        got = (got.sigma, got.clip, got.delta)
    assert got == expected


def test_the_shipped_configs_and_role_views_load() -> None:
    shipped = [DEFAULT_CONFIG, STUDY_CONFIG, *sorted((ROOT / "data").glob("**/roles/*.yaml"))]
    assert len(shipped) > 2
    for path in shipped:
        assert load_federation(path).centres, path


def test_role_views_of_a_config_with_yaml_1_2_floats_load(tmp_path: Path) -> None:
    """The views are dumped from the raw config: 1e-3 goes out as a number the roles read."""
    config = _write(tmp_path, Text(LR, "learning_rate: 1e-3"))
    raw, fed = load_raw(config), load_federation(config)
    for name, text in views.render(raw, fed).items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert load_federation(tmp_path / name).training.learning_rate == 0.001, name


def test_a_spec_file_refuses_aliases_in_one_line(tmp_path: Path) -> None:
    from fedjourney.features.spec import load_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text("a: &x [1, 2]\nb: *x\n")
    with pytest.raises(FedjourneyError, match="anchors and aliases") as caught:
        load_spec(spec)
    assert "\n" not in str(caught.value)
