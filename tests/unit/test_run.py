"""`fedjourney run`'s own logic: option checks, the run's environment, what it prints, and how
it reads the build's output and the engine's events (no Docker needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedjourney.cli import main
from fedjourney.errors import FedjourneyError
from fedjourney.exits import Exit
from fedjourney.host import run
from fedjourney.host.run import Options
from tests.conftest import ROOT


def test_resume_and_again_do_not_go_together() -> None:
    with pytest.raises(FedjourneyError, match="--resume and --again do not go together"):
        run.check_options(Options(resume="r1", again=True))


@pytest.mark.parametrize("bad", ["../etc", "a/b", "..", "x" * 65])
def test_a_resume_run_id_that_names_no_folder_is_refused(bad: str) -> None:
    with pytest.raises(FedjourneyError, match="invalid run id"):
        run.check_options(Options(resume=bad))


def test_a_finished_run_cannot_be_resumed(tmp_path: Path) -> None:
    (tmp_path / "r1").mkdir()
    with pytest.raises(FedjourneyError, match="run r1 has already finished"):
        run.check_options(Options(resume="r1"), results=tmp_path)
    run.check_options(Options(resume="r2"), results=tmp_path)


def test_the_run_environment_carries_the_options() -> None:
    env = run.run_env(Options(keep=True, experiment="dp", verbose=True), "r1",
                      Path("docker-compose.yml"), {"PATH": "/bin", "FEDJOURNEY_KEEP": "0"})
    assert env == {"PATH": "/bin", "COMPOSE_FILE": "docker-compose.yml",
                   "FEDJOURNEY_EXPERIMENT": "dp", "FEDJOURNEY_RUN_ID": "r1",
                   "FEDJOURNEY_RESUME": "0", "FEDJOURNEY_KEEP": "1", "FEDJOURNEY_VERBOSE": "1"}
    again = run.run_env(Options(again=True, resume=""), "r2", Path("x.yml"), {})
    assert again["FEDJOURNEY_KEEP"] == "1" and "FEDJOURNEY_VERBOSE" not in again
    assert run.run_env(Options(resume="r3"), "r3", Path("x.yml"), {})["FEDJOURNEY_RESUME"] == "1"


def test_another_config_reports_its_baselines_apart() -> None:
    assert run.report_args(Path("data/federation.yaml"), Path("docker-compose.yml")) == []
    assert run.report_args(Path("data/study.yaml"), Path("data/study/docker-compose.yml")) == [
        "--config", "data/study.yaml", "--data", ".cache/baseline-data/study",
        "--baselines", ".cache/baselines/study.json"]


def test_the_first_line_names_the_run_and_how_it_runs() -> None:
    line = run.start_line(Options(), "20261128-073601-18f8", ["docker-compose"],
                          Path("docker-compose.yml"))
    assert line == ("run 20261128-073601-18f8 (experiment default) of data/federation.yaml "
                    "with docker-compose -f docker-compose.yml")
    kept = run.start_line(Options(resume="r1", again=False, keep=True, experiment="dp"), "r1",
                          ["docker", "compose"], Path("docker-compose.yml"))
    assert kept == ("resuming run r1 (experiment dp) of data/federation.yaml with docker "
                    "compose -f docker-compose.yml, nodes kept")


def test_the_last_lines_say_where_the_results_are_or_how_to_resume() -> None:
    assert run.end_lines("r1", 0, finished=True, kept=False) == [
        "results: results/r1/ (summary.md, baselines.md, metrics.jsonl, model.pt, "
        "learning_curve.png)"]
    for status in (Exit.ROUND_FAILED, Exit.FAILED):
        stopped = run.end_lines("r1", status, finished=False, kept=False)
        assert stopped[0].startswith("no results: the run did not finish")
        assert "scripts/run --resume r1 continues it" in stopped[1]
    # Refused, or the federation never started: no round to resume.
    for status in (Exit.REFUSED, Exit.NOT_READY):
        assert len(run.end_lines("r1", status, finished=False, kept=False)) == 1
    assert run.end_lines("r1", 0, finished=True, kept=True)[-1].startswith(
        "nodes kept: scripts/run --again")


@pytest.mark.parametrize(("line", "expected"), [
    ("build-images: [1/5] building fedjourney/base-deps:latest (log: x)\n",
     "build-images: [1/5] building fedjourney/base-deps:latest (log: x)"),
    ("build-images: [1/5] built fedjourney/base-deps:latest in 212s (7.05 GB)\n",
     "build-images: [1/5] built fedjourney/base-deps:latest in 212s (7.05 GB)"),
    ("build-images: [2/5] fedjourney/base:latest up to date\n", None),
    ("build-images: all 5 images up to date after 3s:\n",
     "build-images: all 5 images up to date after 3s"),
    ("ensure-docker: engine 20.10.24; compose: docker compose 2.40.3, docker-compose\n",
     "ensure-docker: engine 20.10.24; compose: docker compose 2.40.3, docker-compose"),
    ("build-base-image: debootstrap bookworm from http://deb (about 2 minutes)\n",
     "build-base-image: debootstrap bookworm from http://deb (about 2 minutes)"),
    ("debconf: delaying package configuration, since apt-utils is not installed\n", None),
    ("Step 3/9 : RUN pip install --no-index ...\n", None),
    ("  fedjourney/node:latest  7.05GB\n", None),
    ("Collecting torch==2.14.1\n", None),
])
def test_only_the_steps_own_progress_lines_show(line: str, expected: str | None) -> None:
    assert run.shown(line) == expected


def test_a_dockerfile_step_becomes_a_short_status() -> None:
    assert run.build_step("Step 4/9 : RUN pip   install --no-index x\n") == (
        "  step 4/9: RUN pip install --no-index x")
    assert run.build_step("Step 4/9 : RUN " + "x" * 200, width=40) == (
        "  step 4/9: RUN " + "x" * 21 + "...")
    assert run.build_step(" ---> Running in 0ab1") is None


def test_the_compose_project_is_named_after_the_compose_files_folder(tmp_path: Path) -> None:
    folder = tmp_path / "My Study.v2"
    folder.mkdir()
    assert run.project_name(folder / "docker-compose.yml", {}) == "mystudyv2"
    assert run.project_name(folder / "docker-compose.yml",
                            {"COMPOSE_PROJECT_NAME": "other"}) == "other"


def _event(action: str, service: str, **attrs: str) -> str:
    return json.dumps({"status": action, "id": "c0ffee", "from": "fedjourney/generator:latest",
                       "Type": "container", "Action": action, "scope": "local",
                       "Actor": {"ID": "c0ffee", "Attributes": {
                           "com.docker.compose.service": service, "name": "x", **attrs}},
                       "time": 1764300000, "timeNano": 1764300000123456789})


def test_engine_events_give_each_generators_start_and_exit() -> None:
    start = run.parse_event(_event("start", "generator-1"))
    assert start == run.ContainerEvent("start", "generator-1", "c0ffee", 1764300000123456789)
    died = run.parse_event(_event("die", "generator-0", exitCode="1"))
    assert died is not None and died.exit_code == 1 and died.action == "die"
    assert run.parse_event(_event("create", "generator-0")) is None
    assert run.parse_event(json.dumps({"Type": "network", "Action": "connect"})) is None
    assert run.parse_event("not json") is None
    no_compose = json.loads(_event("die", ""))
    assert run.parse_event(json.dumps(no_compose)) is None


@pytest.mark.parametrize(("output", "expected"), [
    ("  generated  /data/center_0  (58 patients, 2210 observations)\ndone in 3.1s\n",
     "generated (58 patients, 2210 observations)"),
    ("regenerated  /data/center_2  (40 patients, 10 observations)\ndone in 1s\n",
     "regenerated (40 patients, 10 observations)"),
    ("    skipped  /data/center_1  (up to date)\ndone in 0.4s\n", "up to date"),
    ("fedjourney: error: no centre 3\n", "fedjourney: error: no centre 3"),
    ("", "no output"),
])
def test_a_generators_output_says_what_it_did(output: str, expected: str) -> None:
    assert run.generated_detail(output) == expected


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_the_build_shows_its_steps_and_keeps_the_raw_output(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(run, "BUILD_SCRIPT", _script(tmp_path / "build", (
        "echo 'build-images: [1/5] building fedjourney/base-deps:latest'\n"
        "echo 'Step 1/9 : FROM x'\n"
        "echo 'build-images: [1/5] built fedjourney/base-deps:latest in 1s (7.05 GB)'\n")))
    run.build_images(False, {"PATH": "/usr/bin:/bin"}, tmp_path / "logs")
    out = capsys.readouterr().out
    assert out.splitlines() == ["build-images: [1/5] building fedjourney/base-deps:latest",
                                "build-images: [1/5] built fedjourney/base-deps:latest in 1s "
                                "(7.05 GB)"]
    assert "Step 1/9 : FROM x" in (tmp_path / "logs" / "build-images.log").read_text()
    run.build_images(True, {"PATH": "/usr/bin:/bin"}, tmp_path / "logs")
    assert "Step 1/9 : FROM x" in capsys.readouterr().out


def test_a_failed_build_shows_the_tail_of_its_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(run, "BUILD_SCRIPT", _script(tmp_path / "build", (
        "echo 'build-images: [1/5] building fedjourney/base-deps:latest'\n"
        "echo 'ERROR: No matching distribution found for torch' >&2\n"
        "exit 1\n")))
    with pytest.raises(run.RunFailed, match="building the images failed") as failed:
        run.build_images(False, {"PATH": "/usr/bin:/bin"}, tmp_path / "logs")
    assert failed.value.status == 1
    assert "No matching distribution found for torch" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--again", "--resume", "r1"], "--resume and --again do not go together"),
    (["--resume", "../x"], "invalid run id '../x'"),
    (["--experiment", "no-such-experiment"], "no-such-experiment"),
    (["--config", "no/such.yaml"], "no/such.yaml"),
])
def test_bad_options_exit_2_before_anything_starts(
        argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(run, "compose_command", lambda: pytest.fail("reached compose"))
    assert main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("run: error: ") and message in err, err


def test_resume_needs_its_run_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--resume", "--keep"])
    assert exited.value.code == 2
    assert "--resume" in capsys.readouterr().err
