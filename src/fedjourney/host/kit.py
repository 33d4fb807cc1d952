"""A hospital kit: compose files for a federation whose sites do not join a swarm.

- site(fed, centre): what one hospital runs, its centre's generator and node only. The node
  dials the researcher's published port at an address the site gives, over TLS, and pins the
  researcher's certificate by its SHA-256 fingerprint (node/pinning.py) instead of trusting
  whatever answers first. Compose maps the name `researcher`, which the certificate names,
  to that address (extra_hosts), so TLS still checks the name the node dials. Its network is
  not internal: it must reach that port. Compose refuses to start it without the address
  and the fingerprint.
- researcher(fed): what the researcher runs, the researcher and the results collector only,
  the researcher's gRPC port published on the host.

Built from the same pieces as docker-compose.yml (host/compose.py) and the Swarm stack:
images, commands, environment, mounts, users, health check. Each kit mounts only its own
role views, from ./roles beside its file: a kit is a folder one hands to a site.

On one host, separate compose projects simulate the sites: their networks reach the
researcher only through its published port (tests/integration/test_hospital_kit.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedjourney import contract as c
from fedjourney.config import Centre, Federation
from fedjourney.host import views
from fedjourney.host.compose import (
    COMMON,
    GENERATOR_IMAGE,
    HOME_SCRATCH,
    NODE_IMAGE,
    RESEARCHER_STATE,
    RESULTS_VOLUME,
    SCRATCH,
    centre_network,
    collector,
    data_volume,
    flow,
    generator_command,
    node_environment,
    source_mount,
    state_volume,
)
from fedjourney.host.compose import (
    researcher as researcher_service,
)

KINDS = ("site", "researcher")
ROLES = "./roles"  # the kit's role views, beside its compose file
RESULTS = "./results"  # the researcher kit's finished runs, beside its compose file
PUBLIC_NETWORK = f"{c.RESEARCHER}-public"  # the researcher's own, routed network
# What compose says when a site's setting is missing ("required variable ... is missing a
# value: <this>"): no braces, quotes or dollars.
ADDRESS_MISSING = "the IP address this site reaches the researcher at"
FINGERPRINT_MISSING = "the sha256 of the researcher certificate, given out of band"

SITE_HEADER = """\
# GENERATED from the federation config by `fedjourney compose --kit site --centre {id}` --
# do not edit by hand. A hospital kit: centre {id} ({name}), its generator and its node
# only. The node dials the researcher's published port over TLS and accepts only the
# researcher certificate whose SHA-256 fingerprint is pinned below (no trust on first use).
# Valid for Compose v2 (`docker compose`) and docker-compose 1.29.
#   FEDJOURNEY_RESEARCHER_ADDRESS=<the researcher host's IP, or host-gateway on one host> \\
#   FEDJOURNEY_RESEARCHER_FINGERPRINT=<sha256 the researcher gave you out of band> \\
#   FEDJOURNEY_RESEARCHER_PORT=<its published port, default 50051> docker compose up
# The node leaves (status 0) when the researcher's run ends; status 2 when the researcher
# presents another certificate. The centre's data stays in this project's volumes.
"""

RESEARCHER_HEADER = """\
# GENERATED from the federation config by `fedjourney compose --kit researcher` -- do not
# edit by hand. A hospital kit's researcher: the researcher and the results collector only,
# the researcher's gRPC port published on this host for the sites' nodes (TLS, its
# certificate named `researcher`). Valid for Compose v2 and docker-compose 1.29.
#   FEDJOURNEY_RESEARCHER_PORT=<port, default 50051> docker compose up
# Then give each site this host's address, the port and the certificate's fingerprint:
#   docker compose exec researcher fedjourney kit-fingerprint \\
#       --pem {certificate}
# It waits for the nodes of centres {centres} (its role view lists them), as under compose;
# results in ./results/.
"""

def required(name: str, message: str) -> str:
    """A compose variable that must be set (compose stops with the message otherwise)."""
    return f"${{{name}:?{message}}}"


def site_environment() -> str:
    """The lines a site's node adds to its `environment:` mapping."""
    return (f'      {c.ENV_RESEARCHER_ADDRESS}: '
            f'"{required(c.ENV_RESEARCHER_ADDRESS, ADDRESS_MISSING)}"\n'
            f'      {c.ENV_RESEARCHER_PORT}: "${{{c.ENV_RESEARCHER_PORT}:-{c.RESEARCHER_PORT}}}"\n'
            f'      {c.ENV_RESEARCHER_FINGERPRINT}: '
            f'"{required(c.ENV_RESEARCHER_FINGERPRINT, FINGERPRINT_MISSING)}"\n')


def site(fed: Federation, centre: Centre, roles: str = ROLES) -> str:
    """The compose file of one site of the federation: its centre's generator and node."""
    if centre not in fed.centres:
        raise ValueError(f"centre {centre.id} is not in this federation")
    source = source_mount(centre)
    source_line = f"\n      - {source}" if source else ""
    generator, node = c.generator_service(centre.id), c.node_service(centre.id)
    address = required(c.ENV_RESEARCHER_ADDRESS, ADDRESS_MISSING)
    return f"""\
{SITE_HEADER.format(id=centre.id, name=centre.name)}{COMMON}\
  {generator}:
    <<: *role
    image: {GENERATOR_IMAGE}
    # One-shot: it can only reach its centre's volume. It skips a complete centre, so a
    # second `up` regenerates nothing.
{generator_command(centre)}\
    network_mode: none
    tmpfs: [{flow(SCRATCH)}]
    volumes:
      - {roles}/{generator}.yaml:{c.CONFIG}:ro
      - {data_volume(centre)}:{c.DATA}{source_line}

  {node}:
    <<: *role
    image: {NODE_IMAGE}
    hostname: {node}
    environment:
{node_environment(centre)}{site_environment()}\
    # The name the researcher's certificate holds, at the address given: TLS checks the
    # name the node dials, and the node pins the certificate's fingerprint.
    extra_hosts: ["{c.RESEARCHER}:{address}"]
    tmpfs: [{flow(HOME_SCRATCH)}]
    volumes:
      - {roles}/{node}.yaml:{c.CONFIG}:ro
      - {data_volume(centre)}:{c.DATA}:ro
      - {state_volume(node)}:{c.STATE}
    networks: [{centre_network(centre)}]
    depends_on:
      {generator}: {{condition: service_completed_successfully}}
    healthcheck: *health

networks:
  # Not internal: the node reaches the researcher's published port through this host.
  {centre_network(centre)}: {{}}

volumes:
  {data_volume(centre)}: {{}}
  {state_volume(node)}: {{}}
"""


def researcher(fed: Federation, roles: str = ROLES, results_path: str = RESULTS) -> str:
    """The compose file of the federation's researcher: its gRPC port published on the
    host, and the results collector. It waits for the node of every centre of `fed`."""
    centres = ", ".join(str(x.id) for x in fed.centres)
    port = f"${{{c.ENV_RESEARCHER_PORT}:-{c.RESEARCHER_PORT}}}:{c.RESEARCHER_PORT}"
    return f"""\
{RESEARCHER_HEADER.format(certificate=c.RESEARCHER_CERTIFICATE, centres=centres)}{COMMON}\
{researcher_service(roles)}\
    # The sites' nodes dial this port at this host's address.
    ports: ["{port}"]
    networks: [{PUBLIC_NETWORK}]
    healthcheck: *health

{collector(results_path)}\

networks:
  # Not internal: a published port needs a routed network. The researcher alone is on it.
  {PUBLIC_NETWORK}: {{}}

volumes:
  {RESEARCHER_STATE}: {{}}
  {RESULTS_VOLUME}: {{}}
"""


def site_views(raw: dict[str, Any], fed: Federation, centre: Centre) -> dict[str, str]:
    """{file name: text} of the role views a site mounts: its centre's only."""
    return _views(raw, fed, [c.generator_service(centre.id), c.node_service(centre.id)])


def researcher_views(raw: dict[str, Any], fed: Federation) -> dict[str, str]:
    """{file name: text} of the role view the researcher kit mounts."""
    return _views(raw, fed, [c.RESEARCHER])


def _views(raw: dict[str, Any], fed: Federation, services: list[str]) -> dict[str, str]:
    every = views.render(raw, fed)
    return {f"{s}.yaml": every[f"{s}.yaml"] for s in services}


def write(text: str, role_views: dict[str, str], path: Path, results: bool = False) -> None:
    """A kit's compose file at path and its role views in ./roles beside it, each written
    atomically; other files there are left alone (several kits may share a folder). With
    `results`, the ./results folder the collector fills (created now, so that it belongs to
    whoever writes the kit, to whom the collector gives the runs)."""
    folder = path.parent / ROLES
    folder.mkdir(parents=True, exist_ok=True)
    for name, view in role_views.items():
        tmp = folder / f".{name}.partial"
        tmp.write_text(view, encoding="utf-8")
        tmp.replace(folder / name)
    if results:
        (path.parent / RESULTS).mkdir(exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
