"""docker-compose.yml rendered from the federation config: one source of truth.

Adding a centre to data/federation.yaml and re-rendering is the only change needed to add
a node; tests/unit/test_compose.py fails when the committed file and the config disagree.

Per centre: a one-shot generator that mounts only that centre's data volume (writable), a
Fed-BioMed node that mounts it read-only plus its own state volume, and a network holding
just that node and the researcher. The networks are internal (no route to the internet)
and no two nodes share one, so there is no network path between centres.
"""

from __future__ import annotations

from pathlib import Path

from fedjourney.config import Centre, Federation

CONFIG_IN_CONTAINER = "/etc/fedjourney/federation.yaml"
HEADER = """\
# GENERATED from data/federation.yaml by `fedjourney compose` -- do not edit by hand:
# change the config, then run `fedjourney compose --write` (a test checks they agree).
# Valid for Compose v2 (`docker compose`) and docker-compose 1.29. Start it with scripts/run,
# which builds the images when missing or stale and returns the researcher's exit status.
"""


def node_service(centre: Centre) -> str:
    return f"node-{centre.id}"


def generator_service(centre: Centre) -> str:
    return f"generator-{centre.id}"


def render(fed: Federation, config_path: str = "./data/federation.yaml") -> str:
    """The compose file for this federation, as text (stable, so it can be diffed)."""
    out = [HEADER]
    out.append("""
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
""")
    for c in fed.centres:
        out.append(f"""\
  {generator_service(c)}:
    <<: *role
    image: fedjourney/generator:latest
    # One-shot, one per centre: it can only reach its own centre's volume. It skips a
    # complete centre, so a second `up` regenerates nothing.
    command: ["fedjourney", "generate", "--config", "{CONFIG_IN_CONTAINER}",
              "--centre", "{c.id}", "--out", "/data"]
    network_mode: none
    tmpfs: ["/tmp"]
    volumes:
      - {config_path}:{CONFIG_IN_CONTAINER}:ro
      - centre-{c.id}-data:/data

""")
    for c in fed.centres:
        out.append(f"""\
  {node_service(c)}:
    <<: *role
    image: fedjourney/node:latest
    hostname: {node_service(c)}
    environment:
      FEDJOURNEY_CONFIG: {CONFIG_IN_CONTAINER}
      FEDJOURNEY_CENTRE_ID: "{c.id}"
      FBM_RESEARCHER_IP: researcher
    tmpfs: ["/tmp", "/home/fedjourney"]
    volumes:
      - {config_path}:{CONFIG_IN_CONTAINER}:ro
      - centre-{c.id}-data:/data:ro
      - {node_service(c)}-state:/fbm
    networks: [centre-{c.id}]
    depends_on:
      {generator_service(c)}: {{condition: service_completed_successfully}}
    healthcheck: *health

""")
    done = "{condition: service_completed_successfully}"
    generators = "\n".join(f"      {generator_service(c)}: {done}" for c in fed.centres)
    networks = ", ".join(f"centre-{c.id}" for c in fed.centres)
    out.append(f"""\
  researcher:
    <<: *role
    image: fedjourney/researcher:latest
    hostname: researcher
    environment:
      FEDJOURNEY_CONFIG: {CONFIG_IN_CONTAINER}
      FEDJOURNEY_RUN_ID: ${{FEDJOURNEY_RUN_ID:-}}
      FEDJOURNEY_NODE_DEADLINE: ${{FEDJOURNEY_NODE_DEADLINE:-300}}
    tmpfs: ["/tmp", "/home/fedjourney"]
    volumes:
      - {config_path}:{CONFIG_IN_CONTAINER}:ro
      - researcher-state:/fbm
      - results:/results
    networks: [{networks}]
    # Nothing starts when a generator fails (e.g. an invalid config).
    depends_on:
{generators}
    healthcheck: *health

networks:
""")
    for c in fed.centres:
        out.append(f"""\
  centre-{c.id}:
    internal: true  # {c.name}: its node and the researcher, no route out
""")
    out.append("\nvolumes:\n")
    for c in fed.centres:
        out.append(f"  centre-{c.id}-data: {{}}\n  {node_service(c)}-state: {{}}\n")
    out.append("  researcher-state: {}\n  results: {}\n")
    return "".join(out)


def write(fed: Federation, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(render(fed), encoding="utf-8")
    tmp.replace(path)
