"""A Docker Swarm stack file rendered from the federation config: the first step towards a
federation over several hosts (the researcher on the manager, each centre on its own host).

The same services, images, commands, users, environment, volumes and health checks as
docker-compose.yml (host/compose.py renders both from the same pieces), placed by node
label: centre N's generator and node on the host labelled fedjourney.centre-N=true, the
researcher and the results collector on the manager. What `docker stack deploy` does
differently, and how:

- depends_on: ignored by Swarm, and its `condition:` form is rejected by the 3.x schema.
  Left out: start-up order is the roles' own job.
- restart: ignored. Every service has one replica and restart_policy none: a finished run
  (or a failed role) must stay finished.
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

from fedjourney import contract as c
from fedjourney.config import Centre, Federation
from fedjourney.host import compose
from fedjourney.host.compose import (
    COLLECT,
    COLLECTOR_CAPS,
    COLLECTOR_USER,
    GENERATOR_IMAGE,
    HEALTH_START_S,
    HEALTHCHECK,
    HOME_SCRATCH,
    LOGGING,
    NODE_IMAGE,
    RESEARCHER_IMAGE,
    RESEARCHER_STATE,
    RESULTS_VOLUME,
    ROLES,
    SCRATCH,
    Layout,
    centre_network,
    collector_environment,
    data_volume,
    generator_command,
    node_environment,
    researcher_environment,
    source_mount,
    state_volume,
    volumes,
)

STACK_FILE = "docker-stack.yml"  # beside docker-compose.yml
VERSION = "3.8"
CENTRE_LABEL = "fedjourney.centre-{id}"  # a host carries centre N when it is "true"
MANAGER = "node.role == manager"
COLLECTOR_NETWORK = f"{c.RESULTS_COLLECTOR}-collector"

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
"""

_COMMON = f"""
version: "{VERSION}"

# Settings every role shares. Images run tini as PID 1 and a non-root user (10001).
x-role: &role
  read_only: true
  cap_drop: [ALL]
{LOGGING}
# One task, never restarted: a finished run, or a role that failed, stays so.
x-once: &once
  mode: replicated
  replicas: 1
  restart_policy: {{condition: none}}

# Healthy when the role's start-up wrote its health file (see images/base/rootfs).
x-health: &health
{HEALTHCHECK}
# Every network: encrypted between hosts, no route out, joined by this stack's services only.
x-overlay: &overlay
  driver: overlay
  driver_opts: {{encrypted: "true"}}
  internal: true
  attachable: false

services:
"""


def generator_network(centre: Centre) -> str:
    """The network a centre's generator is alone on (Swarm has no network_mode none)."""
    return f"{centre_network(centre)}-generator"


def centre_constraint(centre: Centre) -> str:
    return f"node.labels.{CENTRE_LABEL.format(id=centre.id)} == true"


def view_config(service: str) -> str:
    """The Swarm config holding a service's role view."""
    return f"{service}-view"


def layout(config: Path, path: Path | None = None) -> Layout:
    """The stack file of a config: beside its compose file (compose.layout), or at path."""
    where = compose.layout(config, path)
    return where if path is not None else replace(where, path=where.path.with_name(STACK_FILE))


def render(fed: Federation, roles: str = ROLES, results_path: str = "./results") -> str:
    """The stack file for this federation, as text (stable, so it can be diffed). Each
    service reads its own role's view of the config from `roles`, through a config."""
    out = [HEADER, _COMMON]
    out += [_generator(centre) for centre in fed.centres]
    out += [_node(centre, fed.training.node_deadline_s) for centre in fed.centres]
    networks = ", ".join(centre_network(x) for x in fed.centres)
    out.append(f"""\
  {c.RESEARCHER}:
    <<: *role
    image: {RESEARCHER_IMAGE}
    hostname: {c.RESEARCHER}
    environment:
{researcher_environment()}\
    volumes:
{_tmpfs(HOME_SCRATCH)}\
      - {RESEARCHER_STATE}:{c.STATE}
      - {RESULTS_VOLUME}:{c.RESULTS}
{_configs(c.RESEARCHER)}\
    networks: [{networks}]
    healthcheck: *health
    deploy:
      <<: *once
      # Its name resolves to its task's own address, as in compose (the nodes watch that
      # address to see the run end): no virtual IP, whose IPVS drops idle connections.
      endpoint_mode: dnsrr
      placement: {{constraints: ["{MANAGER}"]}}

  {c.RESULTS_COLLECTOR}:
    <<: *role
    image: {RESEARCHER_IMAGE}
    command: {COLLECT}
    # Root with only the rights to hand files to the owner of ./results, the results volume
    # read-only, a network of its own. On the researcher's host: that volume is there.
    user: "{COLLECTOR_USER}"
    cap_add: [{", ".join(COLLECTOR_CAPS)}]
    environment:
{collector_environment()}\
    volumes:
{_tmpfs(SCRATCH)}\
      - {RESULTS_VOLUME}:{c.RESULTS}:ro
      - {results_path}:{c.HOST_RESULTS}
    networks: [{COLLECTOR_NETWORK}]
    # Its image's health check reads a file the collector never writes.
    healthcheck: {{disable: true}}
    deploy:
      <<: *once
      placement: {{constraints: ["{MANAGER}"]}}

networks:
""")
    for x in fed.centres:
        out.append(f"  {centre_network(x)}:  # {x.name}: its node and the researcher\n"
                   f"    <<: *overlay\n"
                   f"  {generator_network(x)}:  # {c.generator_service(x.id)} alone\n"
                   f"    <<: *overlay\n")
    out.append(f"  {COLLECTOR_NETWORK}:  # the results collector alone\n    <<: *overlay\n")
    out.append("\n# Each local to the host its tasks run on.\nvolumes:\n")
    out += [f"  {name}: {{}}\n" for name in volumes(fed)]
    out.append("\n# The role views (host/views.py), read on the host that deploys.\nconfigs:\n")
    out += [f"  {view_config(service)}:\n    file: {roles}/{service}.yaml\n"
            for service in _viewers(fed)]
    return "".join(out)


def _viewers(fed: Federation) -> list[str]:
    """The services that read a role view, in the order the file lists them."""
    return ([c.generator_service(x.id) for x in fed.centres]
            + [c.node_service(x.id) for x in fed.centres] + [c.RESEARCHER])


def _tmpfs(paths: tuple[str, ...]) -> str:
    return "".join(f"      - {{type: tmpfs, target: {p}}}\n" for p in paths)


def _configs(service: str) -> str:
    return f"""\
    configs:
      - {{source: {view_config(service)}, target: {c.CONFIG}}}
"""


def _generator(centre: Centre) -> str:
    source = source_mount(centre)
    source_line = f"      - {source}\n" if source else ""
    return f"""\
  {c.generator_service(centre.id)}:
    <<: *role
    image: {GENERATOR_IMAGE}
    # One-shot, on its centre's host: it can only reach its own centre's volume. It skips
    # a complete centre, so a second deploy regenerates nothing.
{generator_command(centre)}\
    volumes:
{_tmpfs(SCRATCH)}\
      - {data_volume(centre)}:{c.DATA}
{source_line}\
{_configs(c.generator_service(centre.id))}\
    networks: [{generator_network(centre)}]
    deploy:
      <<: *once
      placement: {{constraints: ["{centre_constraint(centre)}"]}}

"""


def _node(centre: Centre, deadline_s: int) -> str:
    service = c.node_service(centre.id)
    return f"""\
  {service}:
    <<: *role
    image: {NODE_IMAGE}
    hostname: {service}
    environment:
{node_environment(centre)}\
    volumes:
{_tmpfs(HOME_SCRATCH)}\
      - {data_volume(centre)}:{c.DATA}:ro
      - {state_volume(service)}:{c.STATE}
{_configs(service)}\
    networks: [{centre_network(centre)}]
    healthcheck:
      <<: *health
      # Start-up, then up to training.node_deadline_s to connect: the node's own deadline
      # stops it first, with its reason.
      start_period: {HEALTH_START_S + deadline_s}s
    deploy:
      <<: *once
      placement: {{constraints: ["{centre_constraint(centre)}"]}}

"""
