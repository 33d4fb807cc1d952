"""A hospital kit: compose files for a federation whose sites do not join a swarm.

- site(fed, centre): what one hospital runs, its centre's generator and node, and a tunnel
  (stunnel, images/gate). The node dials `researcher`, which is the tunnel, on an internal
  network: the tunnel alone has a route out. It reaches the researcher's published port at
  an address the site gives, presents the site's certificate and checks the gate's (both
  signed by the kit's authority, host/credentials.py). Inside, the node's own TLS pins the
  researcher's certificate by its SHA-256 fingerprint (node/pinning.py) instead of trusting
  whatever answers first. Compose refuses to start it without the address and the
  fingerprint.
- researcher(fed): what the researcher runs, the researcher, its gate and the results
  collector. The gate (stunnel) publishes the researcher's gRPC port and lets through only
  clients holding a certificate of the kit's authority: Fed-BioMed's server checks none.

Built by host/deployment.py, like docker-compose.yml and the Swarm stack, and written in
Compose's format by host/compose.py: images, commands, environment, mounts, users and
health check cannot drift apart. Each kit mounts only its own role views, from ./roles
beside its file, and its certificates, from ./credentials: a kit is a folder one hands to a
site (the researcher's keeps the authority's key, which no container mounts).

On one host, separate compose projects simulate the sites: their networks reach the
researcher only through its published port (tests/integration/test_hospital_kit.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedjourney import contract as c
from fedjourney.config import Centre, Federation
from fedjourney.host import compose, deployment, views
from fedjourney.host.deployment import (
    ADDRESS_MISSING,
    FINGERPRINT_MISSING,
    KIT_NETWORK,
    KIT_PLANS,
    KIT_ROLES,
    PUBLIC_NETWORK,
)
from fedjourney.host.deployment import RESULTS as RESULTS
from fedjourney.host.serialize import dump

KINDS = ("site", "researcher")
ROLES = KIT_ROLES  # the kit's role views, beside its compose file
# Re-exported: the tests and the CLI name them through this module.
__all__ = ["ADDRESS_MISSING", "FINGERPRINT_MISSING", "KINDS", "KIT_NETWORK", "PUBLIC_NETWORK",
           "RESULTS", "ROLES", "researcher", "researcher_plans", "researcher_views", "site",
           "site_plans", "site_views", "write"]

SITE_HEADER = """\
# GENERATED from the federation config by `fedjourney compose --kit site --centre {id}` --
# do not edit by hand. A hospital kit: centre {id}, its generator, its node and the tunnel
# it reaches the researcher through (its name is in ./roles). The tunnel alone has a route
# out: it dials the researcher's gate presenting this site's certificate (./credentials,
# signed by the kit's authority), and checks the gate's. Inside, the node accepts only the
# researcher certificate whose SHA-256 fingerprint is given below (no trust on first use).
# Valid for Compose v2 (`docker compose`) and docker-compose 1.29.
#   FEDJOURNEY_RESEARCHER_ADDRESS=<the researcher host's IP, or host-gateway on one host> \\
#   FEDJOURNEY_RESEARCHER_FINGERPRINT=<sha256 the researcher gave you out of band> \\
#   FEDJOURNEY_RESEARCHER_PORT=<its published port, default 50051> docker compose up
# The node leaves (status 0) when the researcher's run ends; status 3 when the researcher
# presents another certificate. The centre's data stays in this project's volumes.
# ./credentials/key.pem is this site's identity: keep the folder to yourself.
"""

RESEARCHER_HEADER = """\
# GENERATED from the federation config by `fedjourney compose --kit researcher` -- do not
# edit by hand. A hospital kit's researcher: the researcher, its gate and the results
# collector. The gate publishes the researcher's gRPC port on this host and lets through
# only the sites holding a certificate of this kit's authority (./credentials: give each
# site its kit, made with --authority; authority.key never leaves this folder). Inside,
# the nodes' TLS reaches the researcher (its certificate named `researcher`).
# Valid for Compose v2 and docker-compose 1.29.
#   FEDJOURNEY_RESEARCHER_PORT=<port, default 50051> docker compose up
# Then give each site this host's address, the port and the certificate's fingerprint:
#   docker compose exec researcher fedjourney kit-fingerprint \\
#       --pem {certificate}
# It waits for the nodes of centres {centres} (its role view lists them), as under compose;
# results in ./results/. `docker compose logs gate` names each site let in or refused.
"""


def site(fed: Federation, centre: Centre, roles: str = ROLES) -> str:
    """The compose file of one site of the federation: its centre's generator and node."""
    return dump(SITE_HEADER.format(id=int(centre.id)),
                compose.document(deployment.site(fed, centre, roles)))


def researcher(fed: Federation, roles: str = ROLES, results_path: str = RESULTS) -> str:
    """The compose file of the federation's researcher: its gRPC port published on the
    host, and the results collector. It waits for the node of every centre of `fed`."""
    centres = ", ".join(str(int(x.id)) for x in fed.centres)
    header = RESEARCHER_HEADER.format(certificate=c.RESEARCHER_CERTIFICATE, centres=centres)
    return dump(header, compose.document(deployment.researcher_kit(fed, roles, results_path)))


def site_views(raw: dict[str, Any], fed: Federation, centre: Centre) -> dict[str, str]:
    """{file name: text} of the role views a site mounts: its centre's only."""
    return _views(raw, fed, [c.generator_service(centre.id), c.node_service(centre.id)])


def researcher_views(raw: dict[str, Any], fed: Federation) -> dict[str, str]:
    """{file name: text} of the role view the researcher kit mounts."""
    return _views(raw, fed, [c.RESEARCHER])


def _views(raw: dict[str, Any], fed: Federation, services: list[str]) -> dict[str, str]:
    every = views.render(raw, fed)
    return {f"{s}.yaml": every[f"{s}.yaml"] for s in services}


def site_plans(centre: Centre) -> list[Path]:
    """The users' plan files a site's node mounts (its centre approves them)."""
    return sorted({p.path for p in centre.approved_plans if not p.shipped})


def researcher_plans(fed: Federation) -> list[Path]:
    """The users' plan files the researcher kit mounts (it may send them)."""
    return sorted({p.path for p in deployment.researcher_plans(fed) if not p.shipped})


def write(text: str, role_views: dict[str, str], path: Path, results: bool = False,
          plans: list[Path] | None = None) -> None:
    """A kit's compose file at path, its role views in ./roles and copies of its users' plan
    files in ./plans beside it, each written atomically; other files there are left alone
    (several kits may share a folder). With `results`, the ./results folder the collector
    fills (created now, so that it belongs to whoever writes the kit, to whom the collector
    gives the runs)."""
    folder = path.parent / ROLES
    folder.mkdir(parents=True, exist_ok=True)
    for name, view in role_views.items():
        tmp = folder / f".{name}.partial"
        tmp.write_text(view, encoding="utf-8")
        tmp.replace(folder / name)
    if plans:
        copies = path.parent / KIT_PLANS
        copies.mkdir(exist_ok=True)
        for plan in plans:
            tmp = copies / f".{plan.name}.partial"
            tmp.write_bytes(plan.read_bytes())
            tmp.replace(copies / plan.name)
    if results:
        (path.parent / RESULTS).mkdir(exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
