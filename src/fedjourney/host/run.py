"""`fedjourney run` (behind scripts/run): one experiment of the federation from this folder.

Phases: check the options and the rendered compose file; build the images when missing or
stale (scripts/build-images, its raw output kept in a log file); start the stack while
reporting each centre's data generation as its generator exits (the engine's events, no
polling); follow every role's story; wait for the researcher and the results collector; stop
the stack; compute the baselines; exit with the researcher's status.

Exit status (fedjourney/exits.py): the researcher's; REFUSED before anything starts (bad
option, unknown experiment, stale compose file, refused run id); FAILED when the images could
not be built or the stack did not start.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fedjourney import records, settings
from fedjourney.config import DEFAULT_CONFIG, Federation, load_federation, load_raw
from fedjourney.contract import (
    RESULTS_COLLECTOR,
    check_run_id,
    generator_service,
    new_run_id,
    node_service,
)
from fedjourney.errors import FedjourneyError
from fedjourney.exits import Exit
from fedjourney.host.compose import layout, stale
from fedjourney.host.logs import compose_command

log = logging.getLogger("fedjourney.run")

RESEARCHER = "researcher"
BUILD_SCRIPT = Path("scripts/build-images")
LOG_DIR = Path(".cache/run")  # raw output of the steps (gitignored)
RESULTS_DIR = Path("results")
RESULT_FILES = ", ".join(records.HEADLINE_FILES)
# After these the run has completed rounds to continue from (a crash, a failed round).
RESUMABLE = (Exit.FAILED, Exit.ROUND_FAILED)
COLLECTOR_WAIT_S = 60
TAIL_LINES = 40
# A step's own progress lines ("build-images: ..."); everything else is raw tool output.
_PROGRESS = re.compile(r"^(build-images|build-base-image|ensure-docker|setup|compose): ")
# What `fedjourney generate` prints per centre: "  generated  /data/center_0  (58 patients, ...)"
_BUILD_STEP = re.compile(r"^Step (\d+/\d+) : (.*)$")
_GENERATED = re.compile(r"^\s*(generated|regenerated|skipped)\s+\S+\s+\((.*)\)\s*$")


class RunFailed(Exception):
    """The run could not go on: the message, and the exit status (build or start)."""

    def __init__(self, message: str, status: int = Exit.FAILED) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Options:
    """`fedjourney run`'s options (see cli.py for their help)."""

    config: Path = DEFAULT_CONFIG
    keep: bool = False
    again: bool = False
    experiment: str = ""
    resume: str = ""
    verbose: bool = False
    build: bool = True  # False: FEDJOURNEY_IMAGES_PREBUILT=1, trust the images as they are

    @property
    def kept(self) -> bool:
        return self.keep or self.again


@dataclass(frozen=True)
class Plan:
    """What the checks decided: the run's id, its compose file and its environment."""

    run_id: str
    compose_file: Path
    env: dict[str, str]
    report_args: list[str] = field(default_factory=list)


# ---- pure logic ---------------------------------------------------------------------------

def check_options(opts: Options, results: Path = RESULTS_DIR) -> None:
    """FedjourneyError for options that do not go together, or a run id that cannot resume."""
    if opts.resume and opts.again:
        raise FedjourneyError("--resume and --again do not go together: --resume continues "
                              "one run")
    if opts.resume:
        try:
            check_run_id(opts.resume)
        except ValueError:
            raise FedjourneyError(f"invalid run id '{opts.resume}'") from None
        if (results / opts.resume).is_dir():
            raise FedjourneyError(f"run {opts.resume} has already finished: "
                                  f"{results}/{opts.resume}/")


def run_env(opts: Options, run_id: str, compose_file: Path,
            base: Mapping[str, str]) -> dict[str, str]:
    """The environment of compose and of every role: base plus the run's settings."""
    env = dict(base)
    env.update({"COMPOSE_FILE": str(compose_file), settings.EXPERIMENT.env: opts.experiment,
                settings.RUN_ID.env: run_id,
                settings.RESUME.env: "1" if opts.resume else "0",
                settings.KEEP.env: "1" if opts.kept else "0"})
    if opts.verbose:
        env[settings.VERBOSE.env] = "1"
    return env


def report_args(config: Path, compose_file: Path) -> list[str]:
    """`fedjourney report`'s options for another config than the default one."""
    if compose_file == Path("docker-compose.yml"):
        return []
    name = config.stem
    return ["--config", str(config), "--data", f".cache/baseline-data/{name}",
            "--baselines", f".cache/baselines/{name}.json"]


def start_line(opts: Options, run_id: str, compose: Sequence[str], compose_file: Path) -> str:
    return (f"{'resuming ' if opts.resume else ''}run {run_id} "
            f"(experiment {opts.experiment or 'default'}) of {opts.config} with "
            f"{' '.join(compose)} -f {compose_file}{', nodes kept' if opts.kept else ''}")


def end_lines(run_id: str, status: int, finished: bool, kept: bool) -> list[str]:
    """What the run says after the researcher's status line."""
    if finished:
        lines = [f"results: {RESULTS_DIR}/{run_id}/ ({RESULT_FILES})"]
    else:
        lines = ["no results: the run did not finish (see: docker compose logs researcher)"]
        if status in RESUMABLE:
            lines.append(f"scripts/run --resume {run_id} continues it from its last "
                         "completed round")
    if kept:
        lines.append("nodes kept: scripts/run --again for another experiment; "
                     "docker compose down to stop")
    return lines


def shown(line: str) -> str | None:
    """What to show of a line of the build's output by default: a step's own progress line
    (raw tool output is not shown), but not its "X up to date" (nothing happened) nor the
    list of images that follows its last line."""
    text = line.rstrip("\n")
    if _PROGRESS.match(text) is None or text.endswith(" up to date"):
        return None
    return text.removesuffix(":")


def build_step(line: str, width: int = 100) -> str | None:
    """A `docker build` step line ("Step 4/9 : RUN pip ...") as a short status, else None."""
    m = _BUILD_STEP.match(line)
    if m is None:
        return None
    status = f"  step {m[1]}: {' '.join(m[2].split())}"
    return status if len(status) <= width else status[:width - 3] + "..."


def project_name(compose_file: Path, env: Mapping[str, str]) -> str:
    """Compose's default project name: COMPOSE_PROJECT_NAME, else the compose file's folder,
    lower-cased, keeping letters, digits, '-' and '_' (as both v2 and 1.29 do)."""
    if env.get("COMPOSE_PROJECT_NAME"):
        return env["COMPOSE_PROJECT_NAME"]
    folder = compose_file.resolve().parent.name
    return re.sub(r"[^-_a-z0-9]", "", folder.lower())


@dataclass(frozen=True)
class ContainerEvent:
    """A start or an exit of one of the stack's containers, from `docker events`."""

    action: str  # "start" or "die"
    service: str
    container: str
    time_ns: int
    exit_code: int | None = None


def parse_event(line: str) -> ContainerEvent | None:
    """One `docker events --format '{{json .}}'` line, or None when it is not a container's
    start or exit."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(raw, dict) or raw.get("Type") != "container":
        return None
    action = raw.get("Action") or raw.get("status")
    attrs = (raw.get("Actor") or {}).get("Attributes") or {}
    service = attrs.get("com.docker.compose.service")
    if action not in ("start", "die") or not service:
        return None
    code = attrs.get("exitCode")
    return ContainerEvent(action, service, str((raw.get("Actor") or {}).get("ID", "")),
                          int(raw.get("timeNano") or int(raw.get("time", 0)) * 10**9),
                          int(code) if code is not None and str(code).isdigit() else None)


def generated_detail(output: str) -> str:
    """A generator's outcome from its output: 'generated (58 patients, 2210 observations)',
    'up to date', or its last line."""
    lines = [ln for ln in output.splitlines() if ln.strip()]
    for line in reversed(lines):
        m = _GENERATED.match(line)
        if m:
            return "up to date" if m[1] == "skipped" else f"{m[1]} ({m[2]})"
    return lines[-1].strip() if lines else "no output"


def tail(path: Path, n: int = TAIL_LINES) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:]
    except FileNotFoundError:
        return []


# ---- phases ---------------------------------------------------------------------------------

def check(opts: Options) -> Path:
    """Every check that needs no engine (options, config, experiment, compose file); the
    compose file."""
    check_options(opts)
    fed = load_federation(opts.config)
    if opts.experiment:
        fed.experiment(opts.experiment)
    return current_compose_file(fed, opts.config)


def current_compose_file(fed: Federation, config: Path) -> Path:
    """The config's compose file; FedjourneyError when it or its role views are stale."""
    where = layout(config)
    wrong = stale(fed, load_raw(config), where)
    if wrong:
        raise FedjourneyError(f"{', '.join(wrong)} do(es) not match {config}; run "
                              f"fedjourney compose --config {config} --write")
    return where.path


def plan(opts: Options, compose_file: Path, base_env: Mapping[str, str]) -> Plan:
    """The run's id (its start time, once the images are there) and environment."""
    run_id = opts.resume or settings.RUN_ID.raw(base_env) or new_run_id()
    return Plan(run_id, compose_file, run_env(opts, run_id, compose_file, base_env),
                report_args(opts.config, compose_file))


def build_images(verbose: bool, env: Mapping[str, str], log_dir: Path = LOG_DIR) -> None:
    """scripts/build-images, showing its progress lines (everything with --verbose); its
    whole output goes to a log file whose tail is shown when it fails."""
    if not BUILD_SCRIPT.is_file():
        raise FedjourneyError(f"no {BUILD_SCRIPT} here: run fedjourney run from the "
                              "repository's root (scripts/run does)")
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "build-images.log"
    # On a terminal, the image's current Dockerfile step as a passing line, with its time.
    live = sys.stdout.isatty() and not verbose
    width = shutil.get_terminal_size().columns - 8
    passing, t0 = False, time.monotonic()
    with path.open("w", encoding="utf-8") as out, subprocess.Popen(
            [str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, errors="replace", env=dict(env)) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            out.flush()
            text = line.rstrip("\n") if verbose else shown(line)
            step = build_step(line, width) if live and text is None else None
            if step is not None:
                sys.stdout.write(f"\r\033[K{step} ({time.monotonic() - t0:.0f}s)")
                sys.stdout.flush()
                passing = True
            elif text is not None:
                print(("\r\033[K" if passing else "") + text, flush=True)
                passing, t0 = False, time.monotonic()
    if passing:
        print(flush=True)
    if proc.returncode != 0:
        if not verbose:
            sys.stderr.write("".join(f"  {ln}\n" for ln in tail(path)))
        raise RunFailed(f"building the images failed (status {proc.returncode}; "
                        f"full log: {path})")


def check_kept_nodes(compose: Sequence[str], env: Mapping[str, str]) -> None:
    """--again needs the nodes of a `--keep` run still up."""
    ps = subprocess.run([*compose, "ps", "-q", node_service(0)], capture_output=True,
                        text=True, env=dict(env), check=False)
    if not ps.stdout.strip():
        raise FedjourneyError("no kept nodes to run --again on; start them with "
                              "scripts/run --keep")


class GeneratorWatch:
    """Reports each centre's data generation as its generator container exits, from the
    engine's own events (`docker events --since`: nothing is missed, nothing is polled)."""

    def __init__(self, fed: Federation, project: str, env: Mapping[str, str]) -> None:
        self.names = {generator_service(c.id): (c.id, c.name) for c in fed.centres}
        self.env = dict(env)
        self.started: dict[str, int] = {}
        self.done: set[str] = set()
        self.proc = subprocess.Popen(
            ["docker", "events", "--since", f"{time.time() - 1:.3f}", "--format",
             "{{json .}}", "--filter", "type=container", "--filter", "event=start",
             "--filter", "event=die", "--filter", f"label=com.docker.compose.project={project}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            text=True, errors="replace")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = parse_event(line)
            if event is None or event.service not in self.names:
                continue
            if event.action == "start":
                self.started[event.service] = event.time_ns
            elif event.service not in self.done:
                self.done.add(event.service)
                self._report(event)

    def _report(self, event: ContainerEvent) -> None:
        centre_id, name = self.names[event.service]
        where = f"data [{len(self.done)}/{len(self.names)}]: centre {centre_id} ({name})"
        t0 = self.started.get(event.service)
        took = f" in {(event.time_ns - t0) / 1e9:.0f}s" if t0 else ""
        if event.exit_code not in (0, None):
            log.info("%s: the generator failed with status %s%s", where, event.exit_code,
                     took)
            return
        logs = subprocess.run(["docker", "logs", event.container], capture_output=True,
                              text=True, errors="replace", check=False)
        log.info("%s: %s%s", where, generated_detail(logs.stdout + logs.stderr), took)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        self.thread.join(timeout=5)


def up(opts: Options, compose: Sequence[str], env: Mapping[str, str]) -> None:
    """`compose up -d` (on --again: only the researcher and the collector), reporting the
    data generation on the way; on failure, compose's output and the generators' logs."""
    args = ["up", "-d", *(["--no-deps", RESEARCHER, RESULTS_COLLECTOR] if opts.again else [])]
    watch = None
    if not opts.again:
        fed = load_federation(opts.config)
        watch = GeneratorWatch(fed, project_name(Path(env["COMPOSE_FILE"]), env), env)
        log.info("starting the stack: %d centres' data first (generated once, then kept "
                 "in their volumes)", len(fed.centres))
    try:
        started = subprocess.run([*compose, *args], capture_output=True, text=True,
                                 errors="replace", env=dict(env), check=False)
    finally:
        if watch is not None:
            watch.stop()
    if started.returncode == 0:
        return
    sys.stderr.write(started.stdout + started.stderr)
    log.error("the stack did not start; the generators' logs:")
    services = subprocess.run([*compose, "config", "--services"], capture_output=True,
                              text=True, env=dict(env), check=False).stdout.split()
    generators = [s for s in services if s.startswith("generator-")]
    subprocess.run([*compose, "logs", "--no-color", *generators], stdout=sys.stderr,
                   stderr=sys.stderr, env=dict(env), check=False)
    raise RunFailed("", status=Exit.FAILED)


def container(compose: Sequence[str], service: str, env: Mapping[str, str]) -> str:
    ps = subprocess.run([*compose, "ps", "-q", service], capture_output=True, text=True,
                        env=dict(env), check=False)
    ids = ps.stdout.split()
    if not ids:
        raise RunFailed(f"no {service} container after `up`: see `docker compose ps -a`")
    return ids[0]


def fedjourney(*args: str) -> list[str]:
    """The `fedjourney` command of this interpreter."""
    return [sys.executable, "-m", "fedjourney.cli", *args]


def follow_and_wait(compose: Sequence[str], env: Mapping[str, str]) -> int:
    """Every role's story as it happens, until the researcher exits; then the collector
    (bounded: a killed researcher marks no end for it to copy). The researcher's status."""
    researcher = container(compose, RESEARCHER, env)
    collector = container(compose, RESULTS_COLLECTOR, env)
    follower = subprocess.Popen(fedjourney("logs", "--follow", "--since", "5s"),
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                env=dict(env))
    try:
        waited = subprocess.run(["docker", "wait", researcher], capture_output=True,
                                text=True, check=False)
        try:
            subprocess.run(["docker", "wait", collector], capture_output=True,
                           timeout=COLLECTOR_WAIT_S, check=False)
        except subprocess.TimeoutExpired:
            subprocess.run([*compose, "stop", "-t", "1", RESULTS_COLLECTOR],
                           capture_output=True, env=dict(env), check=False)
    finally:
        follower.terminate()
        follower.wait()
    out = waited.stdout.strip()
    return int(out) if out.isdigit() else 1


def last_words(env: Mapping[str, str], since_s: int) -> None:
    """The researcher's last story lines, in case the follower had not caught them."""
    shown = subprocess.run(fedjourney("logs", RESEARCHER, "--since", f"{since_s}s"),
                           capture_output=True, text=True, env=dict(env), check=False)
    for line in shown.stdout.splitlines()[-3:]:
        print(line, flush=True)


def finish(opts: Options, p: Plan, status: int) -> None:
    """Baselines for a finished run, then what happened and what to do next."""
    run_dir = RESULTS_DIR / p.run_id
    finished = run_dir.is_dir()
    if finished:
        rep = subprocess.run(fedjourney("report", str(run_dir), *p.report_args),
                             stdout=subprocess.DEVNULL, env=p.env, check=False)
        if rep.returncode != 0:
            log.warning("could not compute the baselines (%s/%s)", run_dir, records.BASELINES)
    for line in end_lines(p.run_id, status, finished, opts.kept):
        log.info("%s", line)


def run(opts: Options, base_env: Mapping[str, str] | None = None) -> int:
    """One experiment, start to end; the exit status (see the module's docstring)."""
    env0 = dict(os.environ if base_env is None else base_env)
    compose_file = check(opts)
    compose = compose_command()
    if opts.build:
        build_images(opts.verbose, {**env0, **({settings.VERBOSE.env: "1"} if opts.verbose
                                                else {})})
    p = plan(opts, compose_file, env0)
    if opts.again:
        check_kept_nodes(compose, p.env)
    RESULTS_DIR.mkdir(exist_ok=True)  # yours before compose bind-mounts it (else root's)
    log.info("%s", start_line(opts, p.run_id, compose, p.compose_file))
    t0 = time.monotonic()
    up(opts, compose, p.env)
    status = follow_and_wait(compose, p.env)
    elapsed = int(time.monotonic() - t0)
    if status != 0:
        last_words(p.env, elapsed + 2)
    # Nodes leave by themselves once the researcher has; not those it never met (it refused
    # the run before they connected), which would wait for it until their deadline.
    if not opts.kept:
        subprocess.run([*compose, "stop", "-t", "5"], capture_output=True, env=p.env,
                       check=False)
    log.info("researcher exited with status %d after %ds", status, elapsed)
    finish(opts, p, status)
    return status


class _Handler(logging.Handler):
    """`run: ...` lines on stdout, `run: error: ...` on stderr (the streams of the moment)."""

    def emit(self, record: logging.LogRecord) -> None:
        kind = {logging.WARNING: "warning: ", logging.ERROR: "error: "}.get(record.levelno, "")
        stream = sys.stderr if record.levelno >= logging.ERROR else sys.stdout
        print(f"run: {kind}{record.getMessage()}", file=stream, flush=True)


def setup_logging() -> None:
    if not any(isinstance(h, _Handler) for h in log.handlers):
        log.addHandler(_Handler())
    log.setLevel(logging.INFO)
    log.propagate = False


def main(opts: Options) -> int:
    """`fedjourney run`: errors as one `run: error:` line; REFUSED before anything
    started."""
    setup_logging()
    try:
        return run(opts)
    except FedjourneyError as exc:
        log.error("%s", exc)
        return Exit.REFUSED
    except RunFailed as exc:
        if str(exc):
            log.error("%s", exc)
        return exc.status

