"""docker-compose.yml rendered from the federation config: one source of truth.

Adding a centre to data/federation.yaml and re-rendering is the only change needed to add
a node; tests/unit/test_compose.py fails when the committed file and the config disagree.

Per centre: a one-shot generator that mounts only that centre's data volume (writable), a
Fed-BioMed node that mounts it read-only plus its own state volume, and a network holding
just that node and the researcher. The networks are internal (no route to the internet)
and no two nodes share one, so there is no network path between centres. The `results`
service copies finished runs to the host's ./results/.

The pieces below that are not compose syntax (images, commands, environment, scratch
folders, volume and network names, health check) are shared with the Swarm stack
(host/swarm.py), so that the two renderings cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
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

GENERATOR_IMAGE = "fedjourney/generator:latest"
NODE_IMAGE = "fedjourney/node:latest"
RESEARCHER_IMAGE = "fedjourney/researcher:latest"  # the researcher's and the collector's
SCRATCH = ("/tmp",)  # the tmpfs of a read-only role
HOME_SCRATCH = ("/tmp", "/home/fedjourney")  # Fed-BioMed also writes in its user's home
COLLECT = '["python3", "-m", "fedjourney.researcher.collect"]'
COLLECTOR_USER = "0:0"
COLLECTOR_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER")
RESEARCHER_STATE = f"{c.RESEARCHER}-state"
RESULTS_VOLUME = "results"
HEALTH_START_S = 180  # the images' allowance for a role's start-up (images/node/Dockerfile)

# The settings below are mapping lines indented for their place under a top-level key.
LOGGING = """\
  logging:
    driver: json-file
    options: {max-size: "10m", max-file: "3"}
"""
HEALTHCHECK = f"""\
  test: ["CMD", "fedjourney-healthcheck"]
  interval: 5s
  timeout: 5s
  retries: 3
  start_period: {HEALTH_START_S}s
"""


def _env(*names: str) -> str:
    return "".join(f"      {n}: ${{{n}:-{d}}}\n" for n, d in (x.split("=") for x in names))


def flow(items: tuple[str, ...]) -> str:
    """Items as the inside of a YAML flow sequence of quoted strings."""
    return ", ".join(f'"{x}"' for x in items)


def node_environment(centre: Centre) -> str:
    """The lines of a node's `environment:` mapping."""
    return (f"      {c.ENV_CONFIG}: {c.CONFIG}\n      {c.ENV_CENTRE_ID}: \"{centre.id}\"\n"
            + _env(f"{c.ENV_KEEP}=0", f"{c.ENV_VERBOSE}=0", f"{c.ENV_NODE_DEADLINE}="))


def researcher_environment() -> str:
    """The lines of the researcher's `environment:` mapping."""
    return f"      {c.ENV_CONFIG}: {c.CONFIG}\n" + _env(
        f"{c.ENV_RUN_ID}=", f"{c.ENV_EXPERIMENT}=", f"{c.ENV_RESUME}=0", f"{c.ENV_VERBOSE}=0",
        f"{c.ENV_NODE_DEADLINE}=", f"{c.ENV_ROUND_DEADLINE}=")


def collector_environment() -> str:
    """The lines of the results collector's `environment:` mapping."""
    return _env(f"{c.ENV_RUN_ID}=")


def generator_command(centre: Centre) -> str:
    """A generator's `command:` line(s)."""
    source_arg = f', "--source", "{c.SOURCE}"' if centre.source_folder else ""
    return f"""\
    command: ["fedjourney", "generate", "--config", "{c.CONFIG}",
              "--centre", "{centre.id}", "--out", "{c.DATA}"{source_arg}]
"""


def source_mount(centre: Centre) -> str | None:
    """The bind mount of an imported centre's Synthea folder, if it has one."""
    return f"{centre.source_folder}:{c.SOURCE}:ro" if centre.source_folder else None


def centre_network(centre: Centre) -> str:
    return f"centre-{centre.id}"


def data_volume(centre: Centre) -> str:
    return f"centre-{centre.id}-data"


def state_volume(service: str) -> str:
    return f"{service}-state"


def volumes(fed: Federation) -> list[str]:
    """Every named volume, in the order the files list them."""
    out = []
    for centre in fed.centres:
        out += [data_volume(centre), state_volume(c.node_service(centre.id))]
    return [*out, RESEARCHER_STATE, RESULTS_VOLUME]


ROLES = "./data/roles"  # the role views (host/views.py), beside docker-compose.yml


def render(fed: Federation, roles: str = ROLES, results_path: str = "./results") -> str:
    """The compose file for this federation, as text (stable, so it can be diffed). Each
    container mounts its own role's view of the config from `roles`."""
    out = [HEADER, COMMON]
    out += [_generator(centre, roles) for centre in fed.centres]
    done = "{condition: service_completed_successfully}"
    generators = "".join(f"      {c.generator_service(x.id)}: {done}\n" for x in fed.centres)
    out += [_node(centre, roles, generators) for centre in fed.centres]
    networks = ", ".join(centre_network(x) for x in fed.centres)
    out.append(f"""\
{researcher(roles)}\
    networks: [{networks}]
    # Nothing starts when a generator fails (e.g. an invalid config).
    depends_on:
{generators}\
    healthcheck: *health

{collector(results_path)}\
    depends_on:
{generators}
networks:
""")
    out += [f"  {centre_network(x)}:\n    internal: true  # {x.name}: its node and the "
            "researcher, no route out\n" for x in fed.centres]
    out.append("\nvolumes:\n")
    out += [f"  {name}: {{}}\n" for name in volumes(fed)]
    return "".join(out)


def researcher(roles: str) -> str:
    """The researcher service up to its networks: image, environment, scratch and mounts."""
    return f"""\
  {c.RESEARCHER}:
    <<: *role
    image: {RESEARCHER_IMAGE}
    hostname: {c.RESEARCHER}
    environment:
{researcher_environment()}\
    tmpfs: [{flow(HOME_SCRATCH)}]
    volumes:
      - {roles}/{c.RESEARCHER}.yaml:{c.CONFIG}:ro
      - {RESEARCHER_STATE}:{c.STATE}
      - {RESULTS_VOLUME}:{c.RESULTS}
"""


def collector(results_path: str) -> str:
    """The `results` service, which copies finished runs to the host's results folder."""
    return f"""\
  {c.RESULTS_COLLECTOR}:
    <<: *role
    image: {RESEARCHER_IMAGE}
    command: {COLLECT}
    # Root with only the rights to hand files to the owner of ./results (the user who
    # cloned the repository), no network, the results volume read-only.
    user: "{COLLECTOR_USER}"
    cap_add: [{", ".join(COLLECTOR_CAPS)}]
    network_mode: none
    environment:
{collector_environment()}\
    tmpfs: [{flow(SCRATCH)}]
    volumes:
      - {RESULTS_VOLUME}:{c.RESULTS}:ro
      - {results_path}:{c.HOST_RESULTS}
"""


COMMON = f"""
# Settings every role shares. Images run tini as PID 1 and a non-root user (10001).
x-role: &role
  read_only: true
  security_opt: ["no-new-privileges:true"]
  cap_drop: [ALL]
  restart: "no"
{LOGGING}
# Healthy when the role's start-up wrote its health file (see images/base/rootfs).
x-health: &health
{HEALTHCHECK}
services:
"""


def _generator(centre: Centre, roles: str) -> str:
    source = source_mount(centre)
    source_line = f"\n      - {source}" if source else ""
    return f"""\
  {c.generator_service(centre.id)}:
    <<: *role
    image: {GENERATOR_IMAGE}
    # One-shot, one per centre: it can only reach its own centre's volume. It skips a
    # complete centre, so a second `up` regenerates nothing.
{generator_command(centre)}\
    network_mode: none
    tmpfs: [{flow(SCRATCH)}]
    volumes:
      - {roles}/{c.generator_service(centre.id)}.yaml:{c.CONFIG}:ro
      - {data_volume(centre)}:{c.DATA}{source_line}

"""


def _node(centre: Centre, roles: str, generators: str) -> str:
    service = c.node_service(centre.id)
    return f"""\
  {service}:
    <<: *role
    image: {NODE_IMAGE}
    hostname: {service}
    environment:
{node_environment(centre)}\
    tmpfs: [{flow(HOME_SCRATCH)}]
    volumes:
      - {roles}/{service}.yaml:{c.CONFIG}:ro
      - {data_volume(centre)}:{c.DATA}:ro
      - {state_volume(service)}:{c.STATE}
    networks: [{centre_network(centre)}]
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


# A renderer: (federation, role views folder, results folder), both relative to the file.
Renderer = Callable[[Federation, str, str], str]


def write(fed: Federation, raw: dict[str, Any], where: Layout,
          renderer: Renderer = render) -> None:
    """Write the compose file (or another rendering of the config) and the role views it
    mounts."""
    views.write(raw, fed, where.roles_dir)
    tmp = where.path.with_name(where.path.name + ".partial")
    tmp.write_text(renderer(fed, where.roles, where.results), encoding="utf-8")
    tmp.replace(where.path)


def stale(fed: Federation, raw: dict[str, Any], where: Layout,
          renderer: Renderer = render) -> list[str]:
    """What differs from the config: the compose file (or other rendering), or its role
    views."""
    text = renderer(fed, where.roles, where.results)
    wrong = [] if where.path.is_file() and where.path.read_text(encoding="utf-8") == text \
        else [str(where.path)]
    return wrong + [str(where.roles_dir / name)
                    for name in views.stale(raw, fed, where.roles_dir)]
