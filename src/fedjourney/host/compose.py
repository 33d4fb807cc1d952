"""docker-compose.yml rendered from the federation config: one source of truth.

Adding a centre to data/federation.yaml and re-rendering is the only change needed to add
a node; tests/unit/test_compose.py fails when the committed file and the config disagree.

Per centre: a one-shot generator that mounts only that centre's data volume (writable), a
Fed-BioMed node that mounts it read-only plus its own state volume, and a network holding
just that node and the researcher. The networks are internal (no route to the internet)
and no two nodes share one, so there is no network path between centres. The `results`
service copies finished runs to the host's ./results/.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedjourney import contract as c
from fedjourney.config import DEFAULT_CONFIG, Centre, Federation
from fedjourney.host import views

HEADER = """\
# GENERATED from the federation config by `fedjourney compose` -- do not edit by hand:
# change the config, then run `fedjourney compose [--config FILE] --write` (a test checks
# they agree). Valid for Compose v2 (`docker compose`) and docker-compose 1.29.
#   docker compose up       one experiment end to end; returns by itself, results in ./results/
#                           (-f data/NAME/docker-compose.yml for the scenario data/NAME.yaml)
#   FEDJOURNEY_KEEP=1 ...   the nodes stay up afterwards (inspection, more experiments)
# scripts/run does the same, building the images first and returning the run's status.
"""


def _env(*names: str) -> str:
    return "".join(f"      {n}: ${{{n}:-{d}}}\n" for n, d in (x.split("=") for x in names))


ROLES = "./data/roles"  # the role views (host/views.py), beside docker-compose.yml


def render(fed: Federation, roles: str = ROLES, results_path: str = "./results") -> str:
    """The compose file for this federation, as text (stable, so it can be diffed). Each
    container mounts its own role's view of the config from `roles`."""
    out = [HEADER, _COMMON]
    out += [_generator(centre, roles) for centre in fed.centres]
    done = "{condition: service_completed_successfully}"
    generators = "".join(f"      {c.generator_service(x.id)}: {done}\n" for x in fed.centres)
    out += [_node(centre, roles, generators) for centre in fed.centres]
    networks = ", ".join(_network(x) for x in fed.centres)
    out.append(f"""\
  {c.RESEARCHER}:
    <<: *role
    image: fedjourney/researcher:latest
    hostname: {c.RESEARCHER}
    environment:
      {c.ENV_CONFIG}: {c.CONFIG}
{_env(f"{c.ENV_RUN_ID}=", f"{c.ENV_EXPERIMENT}=", f"{c.ENV_RESUME}=0", f"{c.ENV_VERBOSE}=0",
      f"{c.ENV_NODE_DEADLINE}=", f"{c.ENV_ROUND_DEADLINE}=")}\
    tmpfs: ["/tmp", "/home/fedjourney"]
    volumes:
      - {roles}/{c.RESEARCHER}.yaml:{c.CONFIG}:ro
      - researcher-state:{c.STATE}
      - results:{c.RESULTS}
    networks: [{networks}]
    # Nothing starts when a generator fails (e.g. an invalid config).
    depends_on:
{generators}\
    healthcheck: *health

  {c.RESULTS_COLLECTOR}:
    <<: *role
    image: fedjourney/researcher:latest
    command: ["python3", "-m", "fedjourney.researcher.collect"]
    # Root with only the rights to hand files to the owner of ./results (the user who
    # cloned the repository), no network, the results volume read-only.
    user: "0:0"
    cap_add: [CHOWN, DAC_OVERRIDE, FOWNER]
    network_mode: none
    environment:
{_env(f"{c.ENV_RUN_ID}=")}\
    tmpfs: ["/tmp"]
    volumes:
      - results:{c.RESULTS}:ro
      - {results_path}:{c.HOST_RESULTS}
    depends_on:
{generators}
networks:
""")
    out += [f"  {_network(x)}:\n    internal: true  # {x.name}: its node and the researcher, "
            "no route out\n" for x in fed.centres]
    out.append("\nvolumes:\n")
    out += [f"  {_data(x)}: {{}}\n  {c.node_service(x.id)}-state: {{}}\n" for x in fed.centres]
    out.append("  researcher-state: {}\n  results: {}\n")
    return "".join(out)


_COMMON = """
# Settings every role shares. Images run tini as PID 1 and a non-root user (10001).
x-role: &role
  read_only: true
  security_opt: ["no-new-privileges:true"]
  cap_drop: [ALL]
  restart: "no"
  logging:
    driver: json-file
    options: {max-size: "10m", max-file: "3"}

# Healthy when the role's start-up wrote its health file (see images/base/rootfs).
x-health: &health
  test: ["CMD", "fedjourney-healthcheck"]
  interval: 5s
  timeout: 5s
  retries: 3
  start_period: 180s

services:
"""


def _network(centre: Centre) -> str:
    return f"centre-{centre.id}"


def _data(centre: Centre) -> str:
    return f"centre-{centre.id}-data"


def _generator(centre: Centre, roles: str) -> str:
    source = getattr(centre, "source_folder", None)
    source_arg = f', "--source", "{c.SOURCE}"' if source else ""
    source_mount = f"\n      - {source}:{c.SOURCE}:ro" if source else ""
    return f"""\
  {c.generator_service(centre.id)}:
    <<: *role
    image: fedjourney/generator:latest
    # One-shot, one per centre: it can only reach its own centre's volume. It skips a
    # complete centre, so a second `up` regenerates nothing.
    command: ["fedjourney", "generate", "--config", "{c.CONFIG}",
              "--centre", "{centre.id}", "--out", "{c.DATA}"{source_arg}]
    network_mode: none
    tmpfs: ["/tmp"]
    volumes:
      - {roles}/{c.generator_service(centre.id)}.yaml:{c.CONFIG}:ro
      - {_data(centre)}:{c.DATA}{source_mount}

"""


def _node(centre: Centre, roles: str, generators: str) -> str:
    service = c.node_service(centre.id)
    return f"""\
  {service}:
    <<: *role
    image: fedjourney/node:latest
    hostname: {service}
    environment:
      {c.ENV_CONFIG}: {c.CONFIG}
      {c.ENV_CENTRE_ID}: "{centre.id}"
{_env(f"{c.ENV_KEEP}=0", f"{c.ENV_VERBOSE}=0", f"{c.ENV_NODE_DEADLINE}=")}\
    tmpfs: ["/tmp", "/home/fedjourney"]
    volumes:
      - {roles}/{service}.yaml:{c.CONFIG}:ro
      - {_data(centre)}:{c.DATA}:ro
      - {service}-state:{c.STATE}
    networks: [{_network(centre)}]
    # Every centre's data first: one bad centre stops `up` before any node starts.
    depends_on:
{generators}\
    healthcheck: *health

"""


@dataclass(frozen=True)
class Layout:
    """Where a rendered compose file lives, and, relative to it, the role views it mounts
    and the host folder its runs land in."""

    path: Path
    roles: str = ROLES
    results: str = "./results"

    @property
    def roles_dir(self) -> Path:
        return self.path.parent / self.roles


def layout(config: Path, path: Path | None = None) -> Layout:
    """The compose file of a config. The default config renders ./docker-compose.yml; a
    scenario beside it (data/study.yaml) renders data/study/docker-compose.yml with its role
    views in data/study/roles/, its runs landing in the same ./results/. An explicit path
    keeps everything beside it (role views in ./data/roles/, results in ./results/)."""
    if path is not None:
        return Layout(path)
    if config.resolve() == DEFAULT_CONFIG.resolve():
        return Layout(Path("docker-compose.yml"))
    return Layout(config.parent / config.stem / "docker-compose.yml", roles="./roles",
                  results="../../results" if config.parent.name == "data" else "./results")


def write(fed: Federation, raw: dict[str, Any], where: Layout) -> None:
    """Write the compose file and the role views it mounts."""
    views.write(raw, fed, where.roles_dir)
    tmp = where.path.with_name(where.path.name + ".partial")
    tmp.write_text(render(fed, where.roles, where.results), encoding="utf-8")
    tmp.replace(where.path)


def stale(fed: Federation, raw: dict[str, Any], where: Layout) -> list[str]:
    """What differs from the config: the compose file, or its role views."""
    text = render(fed, where.roles, where.results)
    wrong = [] if where.path.is_file() and where.path.read_text(encoding="utf-8") == text \
        else [str(where.path)]
    return wrong + [str(where.roles_dir / name)
                    for name in views.stale(raw, fed, where.roles_dir)]
