"""fedjourney's pytest plugin: test your own plan and config against a live federation, the
way fedjourney tests itself (its own integration tests use these fixtures). Registered as a
pytest entry point, so pytest in an environment with fedjourney installed has:

- `federation(config, population=None, experiments=None, **training)`: a live stack of that
  config, its generators run and its nodes up and kept (no researcher yet), torn down with
  `docker compose down -v` when the test module that asked for it ends; one per distinct set
  of arguments within a module. Per module, not per session: every live federation holds a
  network per centre, and Docker's default address pools run out at about 30 networks.
  `population` replaces every generated centre's; `training` and `experiments` settings
  are merged into the config's (a small, fast copy of a study).
- `LiveFederation.run(experiment=None, plan=None, model_args=None)`: one researcher run on
  the kept nodes (what `scripts/run --again` does), returning a `Result`.
- `LiveFederation.approve(plan, centres=None)`: `fedjourney approve` on the running nodes.

The images must be built (`scripts/build-images`); Docker and Compose are found as
fedjourney finds them (FEDJOURNEY_COMPOSE forces one). pytest-docker brings the stack up
and down. Example: examples/test_my_plan.py.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedjourney import contract, records, settings
from fedjourney.config import load_federation, load_raw
from fedjourney.exits import Exit
from fedjourney.host import views
from fedjourney.host.compose import render
from fedjourney.host.deployment import NOTEBOOK
from fedjourney.host.logs import compose_command

_projects = itertools.count()  # a project name per federation, unique for the session
NODE_WAIT_S = 900  # how long kept nodes wait for a first researcher (the tests run it soon)


def prepare(folder: Path, config: Path, population: int | None = None,
            experiments: dict[str, Any] | None = None, **training: Any) -> tuple[Path, Path]:
    """A copy of `config` in folder, changed as `federation` describes, with its compose
    file and role views beside it and its runs' results in folder/results: (config, compose
    file). Relative paths in the config (source folders, plan files) keep their meaning."""
    raw = load_raw(config)
    _absolute(raw, config.parent.resolve())
    for centre in raw.get("centres", []):
        if population is not None and "source" not in centre:
            centre["population"] = population
    raw.setdefault("training", {}).update(training)
    for name, settings_ in (experiments or {}).items():
        raw.setdefault("experiments", {})[name] = settings_
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "federation.yaml"
    copy.write_text(yaml.safe_dump(raw, sort_keys=False))
    return copy, write_compose(folder, copy)


def _absolute(raw: dict[str, Any], base: Path) -> None:
    """Relative source folders and plan files of raw, made absolute from base."""
    def fixed(ref: Any) -> Any:
        return str(base / ref) if isinstance(ref, str) and ref.endswith(".py") \
            and not Path(ref).is_absolute() else ref

    for centre in raw.get("centres", []):
        if isinstance(centre.get("source"), dict) and "folder" in centre["source"]:
            centre["source"]["folder"] = str(base / Path(centre["source"]["folder"]))
        if isinstance(centre.get("approved_plans"), list):
            centre["approved_plans"] = [fixed(p) for p in centre["approved_plans"]]
    for section in [raw.get("training") or {}, *(raw.get("experiments") or {}).values()]:
        if isinstance(section, dict) and "plan" in section:
            section["plan"] = fixed(section["plan"])


def write_compose(folder: Path, config: Path) -> Path:
    """The config's compose file and role views in folder; its runs' results in
    folder/results."""
    compose = folder / "docker-compose.yml"
    (folder / "results").mkdir(exist_ok=True)
    fed = load_federation(config)
    views.write(load_raw(config), fed, folder / "roles")
    compose.write_text(render(fed, roles=str(folder / "roles"),
                              results_path=str(folder / "results")))
    return compose


class Compose:
    """One compose project: commands, containers, exits and logs."""

    def __init__(self, compose_file: Path, project: str, command: str | None = None) -> None:
        """command: the Compose command to drive it with (default: fedjourney's choice)."""
        self.command = command or " ".join(compose_command())
        self.base = [*self.command.split(), "-f", str(compose_file), "-p", project]
        self.compose_file = compose_file
        self.project = project

    def compose(self, *args: str, check: bool = True, timeout: float = 600,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`docker compose ARGS` on this project; AssertionError when it fails and check."""
        done = subprocess.run([*self.base, *args], capture_output=True, text=True,
                              timeout=timeout, check=False, env={**os.environ, **(env or {})})
        if check and done.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return done

    def container(self, service: str) -> str:
        # -a: v2's `ps` lists running containers only (1.29's lists exited ones too), and a
        # one-shot generator or a finished researcher has exited.
        cid = self.compose("ps", "-a", "-q", service).stdout.strip()
        assert cid, f"no container for {service}"
        return cid

    def wait_exit(self, service: str, timeout: float) -> int:
        """The service's exit status (`docker wait`); fails past the deadline."""
        done = subprocess.run(["docker", "wait", self.container(service)], capture_output=True,
                              text=True, timeout=timeout, check=True)
        return int(done.stdout.strip())

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service).stdout

    def exec(self, service: str, *cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "exec", self.container(service), *cmd],
                              capture_output=True, text=True, timeout=120, check=False)


@dataclass(frozen=True)
class Result:
    """One researcher run: its exit status (fedjourney/exits.py), its results folder and,
    when it finished, run.json and metrics.jsonl; `lines`, the researcher's story."""

    run_id: str
    status: int
    folder: Path
    lines: list[str]
    record: records.RunRecord | None = None
    rows: list[records.MetricRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == Exit.OK and self.record is not None and self.record.finished

    @property
    def failures(self) -> list[str]:
        """The researcher's FAILED lines, e.g. one per centre that has not approved a plan."""
        return [line.split("FAILED: ", 1)[1] for line in self.lines if "FAILED: " in line]

    @property
    def final_auc(self) -> dict[str, float | None]:
        """Each centre's AUC of the final model on its held-out patients (None: withheld)."""
        return {r.node: r.validation_auc for r in self.rows if r.final}


class LiveFederation(Compose):
    """A federation's kept nodes, and the researcher runs made on them."""

    def __init__(self, folder: Path, config: Path, compose_file: Path, project: str) -> None:
        super().__init__(compose_file, project)
        self.folder, self.config = folder, config
        self.fed = load_federation(config)
        self.runs = 0

    def start(self) -> None:
        """Generators, then nodes, kept (returns once they started, not once ready)."""
        nodes = [contract.node_service(c.id) for c in self.fed.centres]
        self.compose("up", "-d", *nodes, env={settings.KEEP.env: "1",
                                             settings.NODE_DEADLINE.env: str(NODE_WAIT_S)})

    def run(self, experiment: str | None = None, *, plan: str | Path | None = None,
            model_args: dict[str, Any] | None = None, run_id: str | None = None,
            timeout: float = 900) -> Result:
        """One researcher run on the kept nodes: the config's `experiment` (default: its
        training section), or that with `plan` (a shipped name or a .py file) and
        `model_args` instead of its own."""
        if plan is not None or model_args is not None:
            experiment = self._with(experiment, plan, model_args)
        self.runs += 1
        run_id = run_id or f"{self.project}-{self.runs}"
        self.compose("up", "-d", "--no-deps", contract.RESEARCHER, contract.RESULTS_COLLECTOR,
                     env={settings.KEEP.env: "1", settings.RUN_ID.env: run_id,
                          settings.EXPERIMENT.env: experiment or ""})
        status = self.wait_exit(contract.RESEARCHER, timeout)
        # The collector ends with the run; the next run's must not meet this one's end.
        self.wait_exit(contract.RESULTS_COLLECTOR, 120)
        folder = self.folder / "results" / run_id
        lines = self.logs(contract.RESEARCHER).splitlines()
        if status != Exit.OK or not folder.is_dir():
            return Result(run_id, status, folder, lines)
        return Result(run_id, status, folder, lines, records.read_run(folder),
                      records.read_rows(folder))

    def approve(self, plan: str | Path, centres: list[int] | None = None
                ) -> subprocess.CompletedProcess[str]:
        """`fedjourney approve PLAN` on the running nodes of `centres` (default: all)."""
        who = ["--all"] if centres is None else [
            arg for c in centres for arg in ("--centre", str(c))]
        return subprocess.run(
            [sys.executable, "-m", "fedjourney.cli", "approve", *who, str(plan),
             "--config", str(self.config), "--compose-file", str(self.compose_file)],
            capture_output=True, text=True, check=False, timeout=600,
            env={**os.environ, "COMPOSE_PROJECT_NAME": self.project})

    def _with(self, experiment: str | None, plan: str | Path | None,
              model_args: dict[str, Any] | None) -> str:
        """A named experiment of the config copy: `experiment` with that plan and model
        arguments; the compose file re-rendered (the researcher mounts a plan file)."""
        raw = load_raw(self.config)
        base = dict((raw.get("experiments") or {}).get(experiment or "", {}))
        if plan is not None:
            base["plan"] = str(Path(plan).resolve()) if str(plan).endswith(".py") else plan
        if model_args is not None:
            base["model_args"] = model_args
        name = f"with-{Path(str(plan or 'args')).stem}"[:32]
        raw.setdefault("experiments", {})[name] = base
        self.config.write_text(yaml.safe_dump(raw, sort_keys=False))
        write_compose(self.folder, self.config)
        self.fed = load_federation(self.config)
        return name


Start = Callable[..., LiveFederation]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Start]:
    """Start a live federation: `federation(config, population=None, experiments=None,
    **training)` (see the module's docstring); each torn down at the test module's end."""
    from pytest_docker.plugin import get_docker_services

    started: dict[str, LiveFederation] = {}
    with ExitStack() as stack:
        def start(config: str | Path, population: int | None = None,
                  experiments: dict[str, Any] | None = None,
                  **training: Any) -> LiveFederation:
            key = repr((str(config), population, experiments, sorted(training.items())))
            if key not in started:
                folder = tmp_path_factory.mktemp("federation")
                copy, compose = prepare(folder, Path(config), population, experiments,
                                        **training)
                live = LiveFederation(folder, copy, compose,
                                      f"fjlive{os.getpid()}x{next(_projects)}")
                # Nothing up here (start() passes the nodes their settings); down with the
                # notebook's profile, so that a notebook run leaves nothing either.
                stack.enter_context(get_docker_services(
                    live.command, str(compose), live.project, [],
                    [f"--profile {NOTEBOOK} down -v"]))
                live.start()
                started[key] = live
            return started[key]

        yield start
