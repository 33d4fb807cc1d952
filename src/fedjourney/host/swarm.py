"""A Docker Swarm stack file rendered from the federation config: the first step towards a
federation over several hosts (the researcher on the manager, each centre on its own host).

The same services, images, commands, users, environment, volumes and health checks as
docker-compose.yml: both serialize the one deployment of host/deployment.py, placed by node
label: centre N's generator and node on the host labelled fedjourney.centre-N=true, the
researcher and the results collector on the manager. What `docker stack deploy` does
differently, and how:

- depends_on: ignored by Swarm, and its `condition:` form is rejected by the 3.x schema.
  Left out: start-up order is the roles' own job.
- restart: ignored. Every service has one replica and restart_policy none: a finished run
  (or a failed role) must stay finished; but a node with scheduled restarts, which gets
  on-failure with as many attempts.
- network_mode none: ignored, and a service without networks joins the stack's default
  overlay, which has a route out (an external `none` network gets past the CLI, but Swarm
  has no swarm-scoped `none`). Each generator, and the collector, gets an internal overlay
  network of its own instead, which nothing else joins.
- tmpfs (the service key): accepted, then silently dropped. tmpfs mounts in `volumes:`.
- security_opt (no-new-privileges): ignored, with no stack-file equivalent: set
  "no-new-privileges": true in each host's daemon.json. cap_drop ALL and the images'
  non-root user still apply; cap_add/cap_drop need Docker 20.10 or later.
- healthcheck: Swarm stops a task that turns unhealthy (compose only reports it). The
  collector runs the researcher's image without ever writing its health file: disabled.
  A node's start period also covers its own deadline, so that the node, not Swarm, stops
  one that never connects, and says why.
- Role views: Swarm configs, since a bind-mounted file would have to exist on every host.
  Configs are immutable: after a view changed, `docker stack rm` before deploying again.
- Named volumes are local to the host a task runs on, which is what we want: a centre's
  data and its node's state never leave its host. Tasks sharing a volume are placed
  together: one host per centre label, and the researcher and collector on the manager.
  A label key per centre (not one `centre=N` key) lets one host carry several centres: a
  one-host swarm, or a hospital that hosts two.
  (a swarm with one manager).
- Overlay networks are encrypted (IPsec between hosts) and internal, with the compose
  file's topology: no network path between centres.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from fedjourney import contract as c
from fedjourney.config import Centre, Federation
from fedjourney.host import compose, deployment
from fedjourney.host.compose import HEALTHCHECK, ROLE, Layout
from fedjourney.host.deployment import (
    HEALTH_START_S,
    ROLES,
    Deployment,
    Mount,
    Service,
)
from fedjourney.host.serialize import Flow, dump, text

STACK_FILE = "docker-stack.yml"  # beside docker-compose.yml
VERSION = "3.8"

HEADER = """\
# GENERATED from the federation config by `fedjourney compose --swarm` -- do not edit by
# hand: change the config, then run `fedjourney compose [--config FILE] --swarm --write`.
# A Docker Swarm stack: the researcher on the manager, each centre on a host of its own.
#   docker swarm init                                 on the researcher's host (the manager)
#   docker swarm join --token ...                     on each centre's host
#   docker node update --label-add fedjourney.centre-N=true <node>   per centre id N
#   docker stack deploy --resolve-image never -c <this file> <stack>     on the manager
# The images must exist on every host (scripts/build-images there), ./results beside this
# file on the manager. Swarm ignores depends_on: start-up order is the roles' own job.
# `docker stack rm <stack>` removes the services; the volumes stay on their hosts.
#
# Every network is an encrypted, internal overlay joined by this stack's services only:
# each centre's node shares one with the researcher alone, and each generator, and the
# results collector, is alone on its own. Every task runs once and is never restarted: a
# finished run, or a role that failed, stays so. The researcher's name resolves to its
# task's own address (endpoint_mode dnsrr), as in compose: no virtual IP, whose IPVS drops
# idle connections. A node's health check waits for its own deadline, so that the node,
# not Swarm, stops one that never connects, and says why.
"""

# Swarm ignores security_opt and restart (see above).
SWARM_ROLE = {k: v for k, v in ROLE.items() if k not in ("security_opt", "restart")}
ONCE = {"mode": "replicated", "replicas": 1, "restart_policy": {"condition": "none"}}
OVERLAY = {"driver": "overlay", "driver_opts": {"encrypted": "true"}, "internal": True,
           "attachable": False}


def generator_network(centre: Centre) -> str:
    """The network a centre's generator is alone on (Swarm has no network_mode none)."""
    return f"{deployment.centre_network(centre)}-generator"


def view_config(service: str) -> str:
    """The Swarm config holding a service's role view."""
    return f"{service}-view"


def shipped_config(service: str, m: Mount) -> str:
    """The Swarm config holding a mounted file: the service's role view, or a user's plan
    file (one config per file, whichever services mount it)."""
    return view_config(service) if m.target == c.CONFIG else f"plan-{m.target.name}"


def layout(config: Path, path: Path | None = None) -> Layout:
    """The stack file of a config: beside its compose file (compose.layout), or at path."""
    where = compose.layout(config, path)
    return where if path is not None else replace(where, path=where.path.with_name(STACK_FILE))


def service(s: Service) -> dict[str, Any]:
    """One service in the stack file's format."""
    out = compose.head(s, SWARM_ROLE)
    if s.environment:
        out["environment"] = {name: text(value) for name, value in s.environment}
    if s.ports:
        out["ports"] = [text(x) for x in s.ports]
    # The tmpfs key is accepted, then silently dropped: tmpfs mounts go in volumes.
    out["volumes"] = [{"type": "tmpfs", "target": p} for p in s.tmpfs] + [
        compose.mount(m) for m in s.mounts if not m.view]
    views = [m for m in s.mounts if m.view]
    if views:
        out["configs"] = [{"source": shipped_config(s.name, m), "target": str(m.target)}
                          for m in views]
    if not s.networks and s.alone_on is None:
        raise ValueError(f"{s.name}: Swarm needs a network for it to be alone on")
    if s.networks and s.aliases:
        out["networks"] = {n: {"aliases": Flow(s.aliases)} for n in s.networks}
    else:
        out["networks"] = Flow(s.networks or (s.alone_on,))
    if s.health == "role":
        out["healthcheck"] = {**HEALTHCHECK, "start_period": f"{HEALTH_START_S + s.grace_s}s"}
    elif s.health == "off":
        out["healthcheck"] = {"disable": True}
    deploy: dict[str, Any] = dict(ONCE)
    if s.restarts:  # a node's scheduled restarts (compose's on-failure:N)
        deploy["restart_policy"] = {"condition": "on-failure", "max_attempts": s.restarts}
    if s.dialled:
        deploy["endpoint_mode"] = "dnsrr"
    if s.placement:
        deploy["placement"] = {"constraints": [s.placement]}
    limits: dict[str, Any] = {}
    if s.cpus is not None:
        limits["cpus"] = text(f"{s.cpus:g}")  # the stack format wants a string
    if s.memory is not None:
        limits["memory"] = text(s.memory)
    if limits:
        deploy["resources"] = {"limits": limits}
    out["deploy"] = deploy
    return out


def document(d: Deployment) -> dict[str, Any]:
    """A deployment as a stack document."""
    networks = [n.name for n in d.networks] + [s.alone_on for s in d.services
                                               if not s.networks and s.alone_on]
    configs = {shipped_config(s.name, m): {"file": text(m.source)}
               for s in d.services for m in s.mounts if m.view}
    return {
        "version": VERSION,
        "services": {s.name: service(s) for s in d.services},
        "networks": {name: dict(OVERLAY) for name in networks},
        "volumes": {name: {} for name in d.volumes},
        "configs": configs,
    }


def render(fed: Federation, roles: str = ROLES, results_path: str = "./results") -> str:
    """The stack file for this federation, as text (stable, so it can be diffed). Each
    service reads its own role's view of the config from `roles`, through a config."""
    return dump(HEADER, document(deployment.federation(fed, roles, results_path)))

