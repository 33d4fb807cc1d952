"""docker-compose.yml rendered from the federation config: one source of truth.

Adding a centre to data/federation.yaml and re-rendering is the only change needed to add
a node; tests/unit/test_compose.py fails when the committed file and the config disagree.

What runs is built once, as data, in host/deployment.py; this module writes it in
Compose's format (also used by the hospital kits, host/kit.py). Compose's own ways:
a service with no network gets `network_mode: none`, start-up order is `depends_on` with
`service_completed_successfully`, the role view is a read-only bind mount.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from fedjourney.config import DEFAULT_CONFIG, Federation
from fedjourney.host import deployment, views
from fedjourney.host.deployment import (
    HEALTH_START_S,
    ROLES,
    Deployment,
    Mount,
    Network,
    Service,
)
from fedjourney.host.serialize import Flow, dump, text

HEADER = """\
# GENERATED from the federation config by `fedjourney compose` -- do not edit by hand:
# change the config, then run `fedjourney compose [--config FILE] --write` (a test checks
# they agree). Valid for Compose v2 (`docker compose`) and docker-compose 1.29.
#   docker compose up       one experiment end to end; returns by itself, results in ./results/
#                           (-f data/NAME/docker-compose.yml for the scenario data/NAME.yaml)
#   FEDJOURNEY_KEEP=1 ...   the nodes stay up afterwards (inspection, more experiments)
# scripts/run does the same, building the images first and returning the run's status.
#
# Per centre: a one-shot generator that reaches only its centre's data volume (it skips a
# complete centre, so a second `up` regenerates nothing), and a Fed-BioMed node that mounts
# that volume read-only, on an internal network it shares with the researcher alone: no
# network path between centres, no route out. No node starts before every centre's data
# is complete. Every role runs read-only, without capabilities, as its image's non-root
# user (10001) under tini; only the `results` collector runs as root, with no network and
# just the rights to hand finished runs to the owner of ./results.
"""

# Settings every role shares.
ROLE: dict[str, Any] = {
    "read_only": True,
    "security_opt": Flow(["no-new-privileges:true"]),
    "cap_drop": Flow(["ALL"]),
    "restart": "no",
    "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}},
}
# Healthy when the role's start-up wrote its health file (see images/base/rootfs). Each
# check is a `docker exec`: every 10 s, not 5, since at 20 centres on 2 cores the checks
# every 5 s took a node's CPU over a run from 9.1 s to 10.7 s and every node's connection
# from 81.5 s to 101.5 s (scripts/bench scale 20). Nothing waits on health to start.
HEALTHCHECK: dict[str, Any] = {
    "test": Flow(["CMD", "fedjourney-healthcheck"]),
    "interval": "10s",
    "timeout": "5s",
    "retries": 3,
    "start_period": f"{HEALTH_START_S}s",
}
DONE = {"condition": "service_completed_successfully"}
STARTED = {"condition": "service_started"}


def mount(m: Mount) -> str:
    """A mount in the short syntax (`source:target[:ro]`)."""
    return text(f"{m.source}:{m.target}" + (":ro" if m.read_only else ""))


def head(s: Service, role: dict[str, Any]) -> dict[str, Any]:
    """What Compose and Swarm say alike of a service: its image, name, command and user,
    the settings every role shares, and the capabilities it gets back."""
    out: dict[str, Any] = {"image": text(s.image)}
    if s.hostname:
        out["hostname"] = text(s.hostname)
    if s.command:
        out["command"] = Flow(text(x) for x in s.command)
    if s.user:
        out["user"] = text(s.user)
    out.update(role)
    if s.cap_add:
        out["cap_add"] = Flow(s.cap_add)
    return out


def service(s: Service) -> dict[str, Any]:
    """One service in Compose's format."""
    out = head(s, ROLE)
    if not s.networks:
        out["network_mode"] = "none"
    if s.environment:
        out["environment"] = {name: text(value) for name, value in s.environment}
    if s.extra_hosts:
        out["extra_hosts"] = [text(x) for x in s.extra_hosts]
    if s.ports:
        out["ports"] = [text(x) for x in s.ports]
    out["tmpfs"] = Flow(s.tmpfs)
    out["volumes"] = [mount(m) for m in s.mounts]
    if s.networks and s.aliases:
        out["networks"] = {n: {"aliases": Flow(s.aliases)} for n in s.networks}
    elif s.networks:
        out["networks"] = Flow(s.networks)
    if s.profiles:
        out["profiles"] = Flow(s.profiles)
    if s.after or s.started:
        out["depends_on"] = {**{name: dict(DONE) for name in s.after},
                             **{name: dict(STARTED) for name in s.started}}
    if s.restarts:
        # At most as often as scheduled: a node that cannot start (broken data) stops there.
        out["restart"] = f"on-failure:{s.restarts}"
    if s.cpus is not None:
        out["cpus"] = s.cpus
    if s.cpu_weight is not None:
        out["cpu_shares"] = s.cpu_weight
    if s.memory is not None:
        out["mem_limit"] = text(s.memory)
    if s.health == "role":
        out["healthcheck"] = dict(HEALTHCHECK)
    elif s.health == "off":
        out["healthcheck"] = {"disable": True}
    return out


def document(d: Deployment) -> dict[str, Any]:
    """A deployment as a compose document."""
    return {
        "services": {s.name: service(s) for s in d.services},
        "networks": {n.name: {"internal": True} if n.internal else {} for n in d.networks},
        "volumes": {name: {} for name in d.volumes},
    }


def render(fed: Federation, roles: str = ROLES, results_path: str = "./results") -> str:
    """The compose file for this federation, as text (stable, so it can be diffed). Each
    container mounts its own role's view of the config from `roles`; the notebook
    researcher mounts the notebooks/ folder beside the results folder."""
    d = deployment.federation(fed, roles, results_path)
    beside = PurePosixPath(results_path).parent
    notebooks = "./notebooks" if str(beside) == "." else f"{beside}/notebooks"
    # The notebook researcher: a Compose profile, so not in the Swarm stack.
    with_notebook = replace(d, services=(*d.services,
                                         deployment.notebook(fed, roles, notebooks)),
                            networks=(*d.networks,
                                      Network(deployment.NOTEBOOK_NETWORK, internal=False)),
                            volumes=(*d.volumes, deployment.NOTEBOOK_WORK))
    return dump(HEADER, document(with_notebook))


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
    rendered = renderer(fed, where.roles, where.results)
    wrong = [] if where.path.is_file() and where.path.read_text(encoding="utf-8") == rendered \
        else [str(where.path)]
    return wrong + [str(where.roles_dir / name)
                    for name in views.stale(raw, fed, where.roles_dir)]

