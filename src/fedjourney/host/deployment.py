"""What runs, as data: the services, networks and volumes of a federation, built once from
the `Federation` and serialized by host/compose.py (docker-compose.yml and the hospital
kits) and host/swarm.py (the Swarm stack file).

Nothing here is YAML. Each format's serializer applies only its own differences (Swarm:
`deploy`, configs, no `depends_on`, no `network_mode: none`), so the files cannot drift
apart, and a config's text reaches a file only as a value the YAML library quotes: a name or
a folder cannot add a key, a service or a mount.

- federation(fed): every centre's generator and node, the researcher and the results
  collector, one internal network per centre (its node and the researcher only);
- site(fed, centre): a hospital kit's site, its centre's generator and node, and the tunnel
  through which the node reaches the researcher's published port;
- researcher_kit(fed): a hospital kit's researcher, the gate that publishes its port to the
  sites holding the kit's certificates, and the collector.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Literal

from fedjourney import contract as c
from fedjourney import settings
from fedjourney.config import Centre, Federation
from fedjourney.host import credentials
from fedjourney.host.credentials import GATE_NAME
from fedjourney.link import Direction, Link
from fedjourney.planfile import PlanFile
from fedjourney.schedule import CONTROL_PORT
from fedjourney.schedule import relayed as relays_events
from fedjourney.settings import Setting

GENERATOR_IMAGE = "fedjourney/generator:latest"
NODE_IMAGE = "fedjourney/node:latest"
RESEARCHER_IMAGE = "fedjourney/researcher:latest"  # the researcher's and the collector's
GATE_IMAGE = "fedjourney/gate:latest"  # stunnel: a kit's mutual-TLS gate and site tunnels
GATE = "gate"  # a kit researcher's service in front of its published port
TUNNEL = "tunnel"  # a kit site's service the node dials the researcher through
GATE_ENTRY = "fedjourney-gate"  # images/gate: stunnel's configuration from its arguments
CREDENTIALS = PurePosixPath("/run/fedjourney/credentials")  # where the gate image reads them
SCRATCH = ("/tmp",)  # the tmpfs of a read-only role
HOME_SCRATCH = ("/tmp", "/home/fedjourney")  # Fed-BioMed also writes in its user's home
COLLECT = ("python3", "-m", "fedjourney.researcher.collect")
COLLECTOR_USER = "0:0"
COLLECTOR_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER")
RESEARCHER_STATE = f"{c.RESEARCHER}-state"
RESULTS_VOLUME = "results"
# The researcher's name where a centre's link relay dials it (the relay itself answers as
# `researcher` on the centre's network).
LINK_UPSTREAM = f"{c.RESEARCHER}-upstream"
PUBLIC_NETWORK = f"{c.RESEARCHER}-public"  # a kit researcher's own, routed network
KIT_NETWORK = f"{c.RESEARCHER}-internal"  # a kit researcher's and its gate's only
UPLINK_NETWORK = "uplink"  # a kit site's tunnel's own, routed network
NOTEBOOK = "notebook"  # the notebook researcher's service and Compose profile
NOTEBOOK_NETWORK = f"{NOTEBOOK}-public"  # its own routed network, for its published port
NOTEBOOK_WORK = f"{NOTEBOOK}-work"  # its users' saved notebooks
NOTEBOOKS = "./notebooks"  # the shipped notebooks, beside docker-compose.yml
JUPYTER_PORT = 8888
COLLECTOR_NETWORK = f"{c.RESULTS_COLLECTOR}-collector"  # Swarm: the collector alone
HEALTH_START_S = 180  # the images' allowance for a role's start-up (images/node/Dockerfile)
ROLES = "./data/roles"  # the role views (host/views.py), beside docker-compose.yml
KIT_ROLES = "./roles"  # a kit's role views, beside its compose file
KIT_PLANS = "./plans"  # a kit's copies of the users' plan files it mounts
KIT_CREDENTIALS = "./credentials"  # a kit's certificates (host/credentials.py)
RESULTS = "./results"
# What compose says when a site's setting is missing ("required variable ... is missing a
# value: <this>"): no braces, quotes or dollars.
ADDRESS_MISSING = str(settings.RESEARCHER_ADDRESS.required)
FINGERPRINT_MISSING = str(settings.RESEARCHER_FINGERPRINT.required)


@dataclass(frozen=True)
class Var:
    """A variable the user may set when starting the deployment: its default, or the
    message the tool stops with when it is required and unset."""

    name: str
    default: str = ""
    required: str | None = None

    @classmethod
    def of(cls, setting: Setting) -> Var:
        """The variable of a declared setting (fedjourney/settings.py)."""
        return cls(setting.env, setting.default, setting.required)


def passed(role: str) -> tuple[tuple[str, Var], ...]:
    """The environment a role's containers get from the host: its declared settings."""
    return tuple((s.env, Var.of(s)) for s in settings.passed_to(role))


# A value: literal text, a variable, or both in a row (e.g. "researcher:" + the address).
Text = str | Var | tuple[str | Var, ...]


@dataclass(frozen=True)
class Mount:
    """A volume (by name) or a host path (starting with ./, ../ or /) at target.
    `view` marks a file Swarm ships as a config: the role's view of the config, or a
    user's plan file."""

    source: str
    target: PurePosixPath
    read_only: bool = False
    view: bool = False

    def __post_init__(self) -> None:
        # The short mount syntax splits on ':'; config validation refuses such folders
        # first, this keeps a path from ever adding a mount.
        if ":" in self.source or any(ch in self.source for ch in "\n\r\0"):
            raise ValueError(f"a mount source may not hold ':' or line breaks: {self.source!r}")


@dataclass(frozen=True)
class Service:
    """One container of the deployment. Every service runs read-only, with no
    capabilities but `cap_add`, never restarted but as `restarts` says, as its image's
    non-root user unless `user` says otherwise."""

    name: str
    image: str
    command: tuple[Text, ...] = ()
    hostname: str | None = None
    user: str | None = None
    cap_add: tuple[str, ...] = ()
    environment: tuple[tuple[str, Text], ...] = ()
    extra_hosts: tuple[Text, ...] = ()
    ports: tuple[Text, ...] = ()
    tmpfs: tuple[str, ...] = SCRATCH
    mounts: tuple[Mount, ...] = ()
    networks: tuple[str, ...] = ()  # none: no network at all
    # Swarm has no "no network": the overlay this service is alone on there.
    alone_on: str | None = None
    after: tuple[str, ...] = ()  # services that must have completed successfully first
    started: tuple[str, ...] = ()  # services started with it (`up node-1` starts its link)
    # "role": healthy once its start-up wrote the health file; "off": its image's check
    # never passes (the collector runs the researcher's image); None: its image has none.
    health: Literal["role", "off"] | None = None
    # Seconds past start-up an orchestrator that stops unhealthy tasks (Swarm) must wait:
    # a node's own deadline stops it first, and says why.
    grace_s: int = 0
    dialled: bool = False  # others dial it by name (Swarm: no virtual IP)
    aliases: tuple[str, ...] = ()  # other names it answers to on each of its networks
    profiles: tuple[str, ...] = ()  # Compose: started only when one of them is asked for
    placement: str | None = None  # Swarm: the hosts it may run on
    cpus: float | None = None  # the engine's CPU limit (cores), None: none
    # Its share of the CPU when the host is busy, against the engine's 1024 for the others;
    # None: the default. Compose only (Swarm's stack format has no such setting).
    cpu_weight: int | None = None
    # How often the engine restarts it when it fails: a node's scheduled restarts (the node
    # exits as a crash would at that round, schedule.py). 0: never restarted.
    restarts: int = 0
    memory: str | None = None  # its memory limit ("1g"), None: none


@dataclass(frozen=True)
class Network:
    name: str
    internal: bool = True  # no route out


@dataclass(frozen=True)
class Deployment:
    services: tuple[Service, ...]
    networks: tuple[Network, ...]
    volumes: tuple[str, ...]


# Every role starts at once and imports PyTorch and Fed-BioMed, CPU-bound; the researcher's
# gRPC server then waits a fixed 3 s (Fed-BioMed 6.4.1's GrpcServer.start) before anything
# can connect. With four times a node's share it is up first, and that wait passes while
# the nodes finish their own start (traces: all nodes found 2.3-2.7 s sooner). Nothing is
# taken from a node that the researcher does not use: the share counts only when both want
# the CPU.
RESEARCHER_CPU_WEIGHT = 4096

CENTRE_LABEL = "fedjourney.centre-{id}"  # Swarm: a host carries centre N when it is "true"
MANAGER = "node.role == manager"


def centre_network(centre: Centre) -> str:
    return f"centre-{centre.id}"


def link_network(centre: Centre) -> str:
    """The network between a centre's link relay and the researcher."""
    return f"{centre_network(centre)}-link"


def data_volume(centre: Centre) -> str:
    return f"centre-{centre.id}-data"


def state_volume(service: str) -> str:
    return f"{service}-state"


def centre_constraint(centre: Centre) -> str:
    return f"node.labels.{CENTRE_LABEL.format(id=centre.id)} == true"


def _view(roles: str, service: str) -> Mount:
    return Mount(f"{roles}/{service}.yaml", c.CONFIG, read_only=True, view=True)


def _plans(plans: tuple[PlanFile, ...], folder: str | None) -> tuple[Mount, ...]:
    """Read-only mounts of the users' plan files among `plans`, each at its name under
    contract.PLANS: from where the config names them, or from `folder` (a kit's copy)."""
    files = dict.fromkeys(p.path for p in plans if not p.shipped)
    return tuple(Mount(f"{folder}/{path.name}" if folder else str(path), c.PLANS / path.name,
                       read_only=True, view=True) for path in files)


def notebook(fed: Federation, roles: str = ROLES, notebooks: str = NOTEBOOKS) -> Service:
    """The notebook researcher (Compose profile `notebook`): JupyterLab in the researcher's
    image, answering as `researcher` on every centre's network (the scripted researcher is
    not running then), with the researcher's state and plans, its port on 127.0.0.1 only.
    Its command refuses to start without a token (researcher/notebook.py)."""
    networks = researcher_networks(fed)
    port = ("127.0.0.1:", Var.of(settings.NOTEBOOK_PORT), f":{JUPYTER_PORT}")
    mounts = (_view(roles, c.RESEARCHER), Mount(RESEARCHER_STATE, c.STATE),
              Mount(RESULTS_VOLUME, c.RESULTS),
              Mount(notebooks, c.NOTEBOOKS, read_only=True),
              Mount(NOTEBOOK_WORK, c.NOTEBOOKS.parent / "work"),
              *_plans(researcher_plans(fed), None))
    return Service(NOTEBOOK, RESEARCHER_IMAGE,
                   command=("python3", "-m", "fedjourney.researcher.notebook"),
                   environment=((settings.CONFIG.env, str(c.CONFIG)),
                                *passed(settings.NOTEBOOK)),
                   ports=(port,), tmpfs=HOME_SCRATCH, mounts=mounts,
                   networks=(*networks, NOTEBOOK_NETWORK),
                   aliases=(c.RESEARCHER, *((LINK_UPSTREAM,) if any(
                       relayed(x) for x in fed.centres) else ())),
                   profiles=(NOTEBOOK,))


def researcher_plans(fed: Federation) -> tuple[PlanFile, ...]:
    """The plans the researcher may send: the training section's and each experiment's."""
    return tuple(dict.fromkeys([fed.training.plan,
                                *(t.plan for t in fed.experiments.values())]))


def generator(centre: Centre, roles: str, alone_on: str) -> Service:
    """A centre's one-shot generator: its centre's volume, and nothing else to reach."""
    name = c.generator_service(centre.id)
    command: tuple[str, ...] = ("fedjourney", "generate", "--config", str(c.CONFIG), "--centre",
               str(centre.id), "--out", str(c.DATA))
    mounts = [_view(roles, name), Mount(data_volume(centre), c.DATA)]
    if centre.source_folder is not None:
        command += ("--source", str(c.SOURCE))
        mounts.append(Mount(str(centre.source_folder), c.SOURCE, read_only=True))
    return Service(name, GENERATOR_IMAGE, command=command, mounts=tuple(mounts),
                   alone_on=alone_on, placement=centre_constraint(centre))


def node(centre: Centre, roles: str, deadline_s: int, after: tuple[str, ...],
         plans_folder: str | None = None) -> Service:
    """A centre's Fed-BioMed node: its centre's data read-only, its own state, the plan
    files its centre approves, read-only, and the machine its centre gives it (compute)."""
    name = c.node_service(centre.id)
    environment: tuple[tuple[str, Text], ...] = (
        (settings.CONFIG.env, str(c.CONFIG)), (settings.CENTRE_ID.env, str(centre.id)),
        *passed(settings.NODE))
    mounts = (_view(roles, name), Mount(data_volume(centre), c.DATA, read_only=True),
              Mount(state_volume(name), c.STATE), *_plans(centre.approved_plans, plans_folder))
    compute = centre.compute
    return Service(name, NODE_IMAGE, hostname=name, environment=environment,
                   tmpfs=HOME_SCRATCH, mounts=mounts, networks=(centre_network(centre),),
                   after=after, health="role", grace_s=deadline_s,
                   started=(c.link_service(centre.id),) if relayed(centre) else (),
                   placement=centre_constraint(centre),
                   cpus=compute.cpus if compute else None,
                   memory=compute.memory if compute else None,
                   restarts=sum(e.kind == "restart" for e in centre.schedule))


def researcher(roles: str, networks: tuple[str, ...], after: tuple[str, ...] = (),
               ports: tuple[Text, ...] = (), plans: tuple[PlanFile, ...] = (),
               plans_folder: str | None = None, aliases: tuple[str, ...] = ()) -> Service:
    """The researcher: the gRPC server the nodes dial, its state, the results volume and
    the plan files it may send, read-only."""
    environment: tuple[tuple[str, Text], ...] = (
        (settings.CONFIG.env, str(c.CONFIG)), *passed(settings.RESEARCHER))
    mounts = (_view(roles, c.RESEARCHER), Mount(RESEARCHER_STATE, c.STATE),
              Mount(RESULTS_VOLUME, c.RESULTS), *_plans(plans, plans_folder))
    return Service(c.RESEARCHER, RESEARCHER_IMAGE, hostname=c.RESEARCHER,
                   environment=environment, ports=ports, tmpfs=HOME_SCRATCH, mounts=mounts,
                   networks=networks, after=after, health="role", dialled=True,
                   aliases=aliases, placement=MANAGER, cpu_weight=RESEARCHER_CPU_WEIGHT)


def collector(results: str, after: tuple[str, ...] = ()) -> Service:
    """The results collector: root with only the rights to hand files to the owner of the
    host's results folder, no network, the results volume read-only."""
    mounts = (Mount(RESULTS_VOLUME, c.RESULTS, read_only=True),
              Mount(results, c.HOST_RESULTS))
    return Service(c.RESULTS_COLLECTOR, RESEARCHER_IMAGE, command=COLLECT,
                   user=COLLECTOR_USER, cap_add=COLLECTOR_CAPS,
                   environment=passed(settings.COLLECTOR), mounts=mounts,
                   alone_on=COLLECTOR_NETWORK, after=after, health="off", placement=MANAGER)


def federation(fed: Federation, roles: str = ROLES, results: str = RESULTS) -> Deployment:
    """The whole federation on one engine (compose) or one swarm."""
    generators = tuple(generator(x, roles, f"{centre_network(x)}-generator")
                       for x in fed.centres)
    # Every centre's data first: one bad centre stops the run before any node starts.
    after = tuple(s.name for s in generators)
    nodes = tuple(node(x, roles, fed.training.node_deadline_s, after) for x in fed.centres)
    links = tuple(relay for x in fed.centres if (relay := link(x)) is not None)
    volumes: list[str] = []
    for x in fed.centres:
        volumes += [data_volume(x), state_volume(c.node_service(x.id))]
    upstream = (LINK_UPSTREAM,) if links else ()
    return Deployment(
        services=(*generators, *nodes, *links,
                  researcher(roles, researcher_networks(fed), after,
                             plans=researcher_plans(fed), aliases=upstream),
                  collector(results, after)),
        networks=tuple(Network(n) for x in fed.centres for n in (
            centre_network(x), *((link_network(x),) if relayed(x) else ()))),
        volumes=(*volumes, RESEARCHER_STATE, RESULTS_VOLUME))


def researcher_networks(fed: Federation) -> tuple[str, ...]:
    """Where the researcher answers each centre's node: the centre's network, or the link
    network behind the centre's relay when the centre has a link."""
    return tuple(link_network(x) if relayed(x) else centre_network(x) for x in fed.centres)


def relayed(centre: Centre) -> bool:
    """Whether a relay is on the centre's path: it has a link, or scheduled events the
    researcher carries out through the relay (down, flaky: schedule.py)."""
    return centre.link is not None or relays_events(centre.schedule)


def link(centre: Centre, port: str | Var = str(c.RESEARCHER_PORT)) -> Service | None:
    """A centre's network link to the researcher (link.py), None when it has none: a relay
    that answers as `researcher` on the centre's network, and dials the researcher on a
    network of their own, delaying, rate-limiting and losing as the link says. `port`: the
    one it listens on and dials (a kit site's: the researcher's published port)."""
    if not relayed(centre):
        return None
    profile = centre.link or Link(Direction(), Direction())
    command: tuple[Text, ...] = (
        "python3", "-m", "fedjourney.link", "--listen", port,
        "--connect", (f"{LINK_UPSTREAM}:", port),
               "--up", profile.up.spec(), "--down", profile.down.spec(),
               "--seed", str(centre.seed),
               "--label", f"link {c.node_label(centre.id, centre.name)}",
               # As its node: it leaves with the researcher, unless the nodes are kept.
               "--keep", Var.of(settings.KEEP),
               # The researcher cuts and restores the link on the centre's schedule.
               *(("--control", str(CONTROL_PORT)) if relays_events(centre.schedule)
                 else ()))
    return Service(c.link_service(centre.id), NODE_IMAGE, command=command,
                   networks=(centre_network(centre), link_network(centre)),
                   aliases=(c.RESEARCHER,), health="off", dialled=True,
                   placement=centre_constraint(centre))


def site(fed: Federation, centre: Centre, roles: str = KIT_ROLES) -> Deployment:
    """A hospital kit's site: its centre's generator and node, and the tunnel the node
    dials under the name `researcher`. The tunnel alone has a route out: it reaches the
    researcher's published port at an address the site gives, presents the site's
    certificate to the researcher's gate and checks the gate's. The node still pins the
    researcher's own certificate, whose TLS runs inside the tunnel's."""
    if centre not in fed.centres:
        raise ValueError(f"centre {centre.id} is not in this federation")
    gen = generator(centre, roles, f"{centre_network(centre)}-generator")
    base = node(centre, roles, fed.training.node_deadline_s, (gen.name,), KIT_PLANS)
    environment = (*base.environment, *((s.env, Var.of(s)) for s in settings.SETTINGS
                                        if settings.SITE in s.readers))
    site_node = replace(base, environment=environment)
    port = Var.of(settings.RESEARCHER_PORT)
    # With a link, the node dials its relay, and the relay the tunnel.
    relay = link(centre, port)
    inner = link_network(centre) if relay else centre_network(centre)
    tunnel = Service(TUNNEL, GATE_IMAGE,
                     command=(GATE_ENTRY, "client", port, (f"{GATE_NAME}:", port)),
                     extra_hosts=((f"{GATE_NAME}:", Var.of(settings.RESEARCHER_ADDRESS)),),
                     mounts=_credentials(), networks=(inner, UPLINK_NETWORK),
                     aliases=(LINK_UPSTREAM if relay else c.RESEARCHER,))
    return Deployment(services=(gen, site_node, *((relay,) if relay else ()), tunnel),
                      networks=(Network(centre_network(centre)),
                                *((Network(inner),) if relay else ()),
                                # Not internal: the tunnel reaches the researcher's host.
                                Network(UPLINK_NETWORK, internal=False)),
                      volumes=(data_volume(centre), state_volume(site_node.name)))


def researcher_kit(fed: Federation, roles: str = KIT_ROLES,
                   results: str = RESULTS) -> Deployment:
    """A hospital kit's researcher, on an internal network with its gate alone; the gate
    publishes the researcher's port on its host and lets through only the sites holding a
    certificate of the kit's authority. The results collector. The researcher waits for
    the node of every centre of `fed` (its role view lists them)."""
    # The role view, not the deployment, names the centres.
    port = (Var.of(settings.RESEARCHER_PORT), f":{c.RESEARCHER_PORT}")
    gate = Service(GATE, GATE_IMAGE,
                   command=(GATE_ENTRY, "server", str(c.RESEARCHER_PORT),
                            f"{c.RESEARCHER}:{c.RESEARCHER_PORT}"),
                   ports=(port,), mounts=_credentials(),
                   networks=(PUBLIC_NETWORK, KIT_NETWORK))
    return Deployment(
        services=(researcher(roles, (KIT_NETWORK,), plans=researcher_plans(fed),
                             plans_folder=KIT_PLANS),
                  gate, collector(results)),
        # Not internal: a published port needs a routed network. The gate alone is on it.
        networks=(Network(PUBLIC_NETWORK, internal=False), Network(KIT_NETWORK)),
        volumes=(RESEARCHER_STATE, RESULTS_VOLUME))


def _credentials() -> tuple[Mount, ...]:
    """A gate's or a tunnel's certificates, read-only, from the kit's credentials folder:
    the authority's certificate, its own and its key (never the authority's key)."""
    return tuple(Mount(f"{KIT_CREDENTIALS}/{name}", CREDENTIALS / name, read_only=True)
                 for name in (credentials.CA, credentials.CERT, credentials.KEY))
