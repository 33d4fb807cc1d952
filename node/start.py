"""The node container's command: check data, ensure component, register dataset, approve
plan, wait connected — each bounded — then serve the federation until the run ends.

Exit status (fedjourney/exits.py): OK when the researcher's run ended (or SIGTERM);
REFUSED for a bad setting; NOT_READY when the node cannot serve (broken data, no researcher
before the deadline, a researcher certificate other than the pinned one), with one
`UNHEALTHY: <reason>` line. A node with broken data still connects,
without approving the plan, so that the researcher learns why at once from its registered
record; it leaves with the researcher.

A hospital kit's site (host/kit.py) dials the researcher's published port,
FEDJOURNEY_RESEARCHER_PORT, and pins its certificate, FEDJOURNEY_RESEARCHER_FINGERPRINT
(node/pinning.py); without them the node dials researcher:50051 and trusts on first use.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedjourney import contract, settings, startup
from fedjourney.config import Centre, Federation, load_federation
from fedjourney.contract import DatasetRecord
from fedjourney.errors import FedjourneyError
from fedjourney.exits import Exit
from fedjourney.features import FeatureSpec
from fedjourney.fingerprint import stat_signature
from fedjourney.generator.output import read_meta
from fedjourney.node import component, metrics, pinning
from fedjourney.node.data import broken, check_data
from fedjourney.node.ledger import Ledger
from fedjourney.node.rules import Rules, published
from fedjourney.planfile import plan_hash, sent_source
from fedjourney.story import Story, quiet_fedbiomed, setup

COMPONENT = Path(contract.STATE) / "node"
HEALTH = Path(contract.HEALTH)
LEFT_AFTER_MISSES = 2  # researcher probes in a row that fail before the node leaves
PROBE_EVERY_S = 1.0
LISTEN_EVERY_S = 0.1  # how often a node tries the researcher's port before it listens
TELL_AFTER_S = 5.0  # a wait for the researcher is told in the story after this long
HOLD_S = 60.0  # an idle connection to the researcher is opened again after this long
CONFIRMS, CONFIRM_GAP_S = 3, 0.05  # probes that confirm a researcher whose connection ended


@dataclass(frozen=True)
class NodeSettings:
    """What a node reads at start: its role's view of the config and its environment."""

    fed: Federation
    centre: Centre
    verbose: bool
    keep: bool
    deadline_s: float  # to connect, and to see the run end
    port: int  # the researcher's, at its name
    pinned: str | None  # a kit site's pinned certificate fingerprint

    @classmethod
    def load(cls, environ: Mapping[str, str], fed: Federation | None = None) -> NodeSettings:
        """FedjourneyError (config, a flag or a deadline) or ValueError (a kit site's
        port or fingerprint), naming the setting. `fed`: the view, if already read."""
        fed = fed or load_federation(settings.CONFIG.raw(environ))
        port, pinned = pinning.settings(environ)
        override: float | None = settings.NODE_DEADLINE.read(environ)
        return cls(fed, fed.centre(settings.CENTRE_ID.raw(environ)),
                   settings.VERBOSE.read(environ), settings.KEEP.read(environ),
                   override or fed.training.node_deadline_s, port, pinned)


def main() -> int:
    HEALTH.unlink(missing_ok=True)
    fed = load_federation(settings.CONFIG.raw(os.environ))
    centre = fed.centre(settings.CENTRE_ID.raw(os.environ))
    story = setup(contract.node_label(centre.id, centre.name),
                  Path(contract.story_log("node")), os.environ.get(settings.VERBOSE.env) == "1")
    try:
        s = NodeSettings.load(os.environ, fed)
    except (ValueError, FedjourneyError) as exc:
        story.error(f"UNHEALTHY: {exc}; stopping")
        return Exit.REFUSED
    started, phases = time.monotonic(), startup.Phases()
    record = _checked_data(s, story)
    phases.mark("data check")
    cfg = _registered(s, story, record, phases)
    story.info(started_line(time.monotonic() - started, phases, s.port))
    if not _resolves(contract.RESEARCHER, story, s.deadline_s):
        story.error(f"UNHEALTHY: the researcher's name {contract.RESEARCHER!r} does not "
                    f"resolve after {s.deadline_s:.0f}s; stopping")
        return Exit.NOT_READY
    if s.pinned is not None and not _presents_pinned(story, s.port, s.pinned, s.deadline_s):
        return Exit.NOT_READY
    if s.pinned is None and not _listens(contract.RESEARCHER, s.port, story, s.deadline_s):
        story.error(f"UNHEALTHY: no researcher at {contract.RESEARCHER}:{s.port} after "
                    f"{s.deadline_s:.0f}s; stopping")
        return Exit.NOT_READY
    _serve(s, story, cfg, bool(record.unhealthy))
    return Exit.FAILED  # serving returns only if Fed-BioMed's task manager died


def started_line(seconds: float, phases: startup.Phases, port: int) -> str:
    """The story line that ends a node's start-up (scripts/bench_scale.py reads its steps)."""
    return (f"start-up took {seconds:.1f}s, {phases.total():.1f}s of CPU since the process "
            f"began ({phases}); connecting to {contract.RESEARCHER}:{port}")


def _checked_data(s: NodeSettings, story: Story) -> DatasetRecord:
    """The centre's data, once its generator is done: checked, its features built once, its
    record; a broken centre's record says why (and quotes no patient)."""
    folder = Path(contract.DATA) / s.centre.folder_name
    spec = s.fed.feature_spec()
    _wait_for_data(folder, story, contract.generator_service(s.centre.id), s.deadline_s)
    # Taken before the check: a broken record describes these files, so the re-check at a
    # researcher's search (dataset.current_record) leaves it alone until they change.
    signature = stat_signature(folder)
    try:
        record, n_features, hit = check_data(folder, s.centre, spec, s.fed.features_backend)
        story.info(f"data checked: {record.patients} patients, {n_features} features "
                   f"({'cached' if hit else 'built'}), sha256 {record.fingerprint[:16]}")
        return record
    except FedjourneyError as exc:
        return _broken(story, s.centre, spec, f"the centre's data is broken: {exc}",
                       signature)
    except Exception as exc:  # a reader's own error may quote records: name its kind only
        return _broken(story, s.centre, spec, f"the centre's data is unreadable "
                       f"({type(exc).__name__} while reading it)", signature)


def _registered(s: NodeSettings, story: Story, record: DatasetRecord,
                phases: startup.Phases) -> Any:
    """The Fed-BioMed node component, its dataset registered and, for sound data, the
    training plan approved; its config. Each step's CPU is marked in `phases`."""
    centre = s.centre
    quiet_fedbiomed(s.verbose)
    metrics.set_posture(centre.metrics_under_secagg)
    component.import_fedbiomed()
    phases.mark("Fed-BioMed imports")
    cfg, created = component.ensure_component(COMPONENT, contract.node_service(centre.id),
                                              contract.RESEARCHER, s.port,
                                              centre.secure_aggregation,
                                              centre.policy.min_batch_size)
    phases.mark("component")
    story.info(f"Fed-BioMed node component {'created' if created else 'found'} "
               f"({cfg.get('default', 'id')}); plan approval on, default plans off, "
               f"secure aggregation {centre.secure_aggregation}, validation metrics under it "
               f"{centre.metrics_under_secagg}")
    story.info(f"data-use policy: {centre.policy.describe(s.fed.training.held_out_percent)}")
    folder = Path(contract.DATA) / centre.folder_name
    where = folder if folder.is_dir() else Path(contract.DATA)
    dataset_id, done = component.register_dataset(
        cfg, record, where, s.fed.training.tag, published(Ledger(Path(contract.PRIVACY_LEDGER))))
    story.info({"registered": f"dataset registered under tag '{s.fed.training.tag}' "
                              f"({dataset_id})",
                "updated": f"dataset updated: the data changed ({dataset_id})",
                "unchanged": f"dataset already registered ({dataset_id}): nothing to do"}[done])
    phases.mark("dataset registration")
    if not record.unhealthy:
        _approve_config_plans(centre, cfg, story)
        phases.mark("plan approvals")
    return cfg


def _approve_config_plans(centre: Centre, cfg: Any, story: Story) -> None:
    """Approve, in Fed-BioMed's registry, each plan the centre's config lists (as the code
    the researcher would send), and withdraw the config's earlier approvals it no longer
    lists. A plan that cannot run here is refused, in one line naming why."""
    kept: set[str] = set()
    for plan in centre.approved_plans:
        try:
            source = sent_source(plan)
        except FedjourneyError as exc:
            story.warning(f"REFUSED training plan {plan.name} from the centre's config: {exc}")
            continue
        digest, now = component.approve_plan(cfg, source, Path(contract.OWN_FILES), plan.name)
        kept.add(plan_hash(source))  # as withdraw_config_approvals computes it
        story.info(f"training plan {plan.name} {'approved' if now else 'already approved'} "
                   f"(the centre's approved_plans): sha256 {digest[:16]}")
    for name in component.withdraw_config_approvals(cfg, kept):
        story.info(f"training plan {name}: approval withdrawn (no longer in the centre's "
                   "approved_plans)")


def _serve(s: NodeSettings, story: Story, cfg: Any, unhealthy: bool) -> None:
    """Serve the federation until the run ends (the process exits from node.stop)."""
    from fedjourney.node.dataset import current_record  # Fed-BioMed's: the images only

    folder = Path(contract.DATA) / s.centre.folder_name
    ledger = Ledger(Path(contract.PRIVACY_LEDGER))
    registered = {"spent": published(ledger)}

    def record() -> DatasetRecord:
        return current_record(folder, story)

    def before_search() -> None:
        """Data changed since start-up (a new extract, a broken file) is checked again as a
        researcher searches, so that its run starts with the fingerprint as it is now; and
        the record publishes the privacy ledger as the last runs left it."""
        now = record()
        spent = published(ledger)
        if spent != registered["spent"]:
            where = folder if folder.is_dir() else Path(contract.DATA)
            component.register_dataset(cfg, now, where, s.fed.training.tag, spent)
            registered["spent"] = spent

    rules = Rules(contract.node_label(s.centre.id, s.centre.name), s.centre.policy,
                  s.fed.training.held_out_percent, ledger, record)
    node = component.RunningNode(cfg, story, before_search, rules, s.centre.schedule)
    if s.pinned is not None:  # again on each fetch of Fed-BioMed's own client
        def refuse(mismatch: pinning.FingerprintMismatch) -> None:
            story.error(f"UNHEALTHY: {mismatch}")
            node.stop(Exit.NOT_READY)

        pinning.pin(s.pinned, refuse)
    on_signal = Exit.NOT_READY if unhealthy else Exit.OK
    signal.signal(signal.SIGTERM, lambda *_: node.stop(on_signal))
    signal.signal(signal.SIGINT, lambda *_: node.stop(on_signal))
    startup.done()
    node.start()
    threading.Thread(target=_until_run_ends,
                     args=(node, story, s.deadline_s, s.keep, unhealthy, s.port,
                           s.pinned is not None),
                     daemon=True).start()
    node.serve()


def _presents_pinned(story: Story, port: int, pinned: str, deadline: float) -> bool:
    """Whether the researcher presents the pinned certificate, waiting up to deadline for it
    to answer; says why not in one line. Checked before Fed-BioMed's client starts, which
    would give up for good on a server that accepts a connection and sends no certificate
    (a published port whose server is not listening yet)."""
    got = pinning.presented(contract.RESEARCHER, port, deadline)
    if got is None:
        story.error(f"UNHEALTHY: no researcher at {contract.RESEARCHER}:{port} after "
                    f"{deadline:.0f}s; stopping")
        return False
    if got != pinned:
        refused = pinning.FingerprintMismatch(f"{contract.RESEARCHER}:{port}", got, pinned)
        story.error(f"UNHEALTHY: {refused}")
        return False
    story.info(f"the researcher's certificate is the pinned one: sha256 {pinned[:16]}")
    return True


def _wait_for_data(folder: Path, story: Story, generator: str, deadline: float) -> None:
    """Under compose the generator has finished before the node starts (depends_on); Swarm
    starts every role at once, so wait for the centre to be complete (its generator writes
    the metadata file last), at most `deadline` seconds: after it, check_data names what is
    missing."""
    if read_meta(folder) is not None:
        return
    story.info(f"waiting for {generator} to finish the centre's data (at most "
               f"{deadline:.0f}s)")
    until = time.monotonic() + deadline
    while read_meta(folder) is None and time.monotonic() < until:
        time.sleep(PROBE_EVERY_S)  # a file on the node's own volume: a cheap probe


def _resolves(host: str, story: Story, deadline: float) -> bool:
    """Whether host resolves, waiting up to deadline. Fed-BioMed's client gives up for good
    on a name that does not resolve; under Swarm, which starts every role at once, the
    researcher's name exists only once its task runs."""
    def resolves() -> bool:
        try:
            socket.getaddrinfo(host, None)
            return True
        except OSError:
            return False

    return _within(deadline, resolves, PROBE_EVERY_S, 0.0, lambda: story.info(
        f"waiting for the researcher's address ({host}) to exist"))


def _listens(host: str, port: int, story: Story, deadline: float) -> bool:
    """Whether the researcher accepts connections, waiting up to deadline. Fed-BioMed's
    client, started before the researcher listens, tries again only every 2 s
    (GRPC_CLIENT_CONN_RETRY_TIMEOUT, 6.4.1): a node is usually ready first. A refused
    connection costs microseconds, hence the short period."""
    def listens() -> bool:
        try:
            socket.create_connection((host, port), PROBE_EVERY_S).close()
            return True
        except OSError:
            return False

    return _within(deadline, listens, LISTEN_EVERY_S, TELL_AFTER_S, lambda: story.info(
        f"waiting for the researcher to listen at {host}:{port}"))


def _within(deadline: float, attempt: Callable[[], bool], every: float, tell_after: float,
            tell: Callable[[], None]) -> bool:
    """Whether `attempt` succeeds within `deadline` seconds, tried every `every` seconds;
    `tell` runs once, when the wait has lasted `tell_after` seconds."""
    began, told = time.monotonic(), False
    while not attempt():
        waited = time.monotonic() - began
        if waited >= deadline:
            return False
        if not told and waited >= tell_after:
            tell()
            told = True
        time.sleep(every)
    return True


def _broken(story: Story, centre: Centre, spec: FeatureSpec, reason: str,
            signature: str) -> DatasetRecord:
    story.error(f"UNHEALTHY: {reason}; telling the researcher, then stopping")
    return broken(centre, spec, reason, signature=signature)


def _until_run_ends(node: component.RunningNode, story: Story, deadline: float, keep: bool,
                    unhealthy: bool, port: int = contract.RESEARCHER_PORT,
                    tunnelled: bool = False) -> None:
    """Healthy once connected (within the deadline); then leave when the researcher does,
    unless the nodes are kept for more experiments. A node with broken data stays only
    until the researcher, which has seen why, leaves (NOT_READY)."""
    if not (node.wait_connected(deadline) and _answers_tls(deadline, port)):
        story.error(f"UNHEALTHY: no researcher at {contract.RESEARCHER}:"
                    f"{port} after {deadline:.0f}s; stopping")
        node.stop(Exit.NOT_READY)
    if unhealthy:
        story.info(f"connected to the researcher at {contract.RESEARCHER}:"
                   f"{port}, which can now see this centre is broken")
    else:
        HEALTH.write_text(f"{contract.RESEARCHER} connected\n", encoding="utf-8")
        story.info(f"connected to the researcher at {contract.RESEARCHER}:"
                   f"{port}: healthy ({time.process_time():.1f}s of CPU since the process "
                   "began)")
        if keep:
            return
    # By address: once the researcher's container is gone its name takes ~10 s to fail to
    # resolve, while a connection to its former address fails within the probe's timeout.
    _wait_until_left(socket.gethostbyname(contract.RESEARCHER), port, tunnelled)
    if unhealthy:
        story.info("the researcher has left; stopping (broken data)")
        node.stop(Exit.NOT_READY)
    story.info("the researcher has left: the run is over; stopping "
               f"(set {settings.KEEP.env}=1 to keep the nodes up)")
    node.stop(Exit.OK)


def _wait_until_left(address: str, port: int, tunnelled: bool) -> None:
    """Returns once the researcher has left. The node holds an idle connection to it, which
    the researcher's kernel ends the moment its process exits (so the node learns it at
    once, with no polling); probes then confirm, since a relay or a tunnel in between may
    end a connection for its own reasons. A connection that cannot be held falls back to
    probing every PROBE_EVERY_S, leaving after LEFT_AFTER_MISSES misses in a row."""
    misses = 0
    while misses < LEFT_AFTER_MISSES:
        held = time.monotonic()
        if _hold(address, port):
            if not _still_listens(address, port, tunnelled):
                return
            misses = 0
        else:
            misses = 0 if _reachable(address, port, tls=tunnelled) else misses + 1
        if misses < LEFT_AFTER_MISSES:  # never faster than the probes were
            time.sleep(max(0.0, PROBE_EVERY_S - (time.monotonic() - held)))


def _still_listens(address: str, port: int, tunnelled: bool) -> bool:
    """Whether the researcher still answers after a held connection ended. An exiting
    process's connections are closed a moment before its listening socket, so a single probe
    may still get through: CONFIRMS probes, CONFIRM_GAP_S apart, must all answer."""
    for i in range(CONFIRMS):
        if i:
            time.sleep(CONFIRM_GAP_S)
        if not _reachable(address, port, tls=tunnelled):
            return False
    return True


def _hold(address: str, port: int) -> bool:
    """Whether a connection to the researcher was opened and then ended by the other side
    (closed or reset), holding it at most HOLD_S; False when none opened or it was still
    open after HOLD_S. It sends nothing: gRPC's server waits for a TLS hello, relays and
    tunnels for bytes to pass on."""
    try:
        sock = socket.create_connection((address, port), PROBE_EVERY_S)
    except OSError:
        return False
    with sock:
        sock.settimeout(HOLD_S)
        try:
            while sock.recv(4096):
                pass
        except TimeoutError:
            return False
        except OSError:  # reset
            return True
        return True


def _reachable(address: str, port: int = contract.RESEARCHER_PORT, tls: bool = False) -> bool:
    """Whether the researcher answers; with `tls`, its TLS handshake, not a connection: a
    kit site's tunnel accepts connections whether the researcher is there or not."""
    try:
        if tls:
            ssl.get_server_certificate((address, port), timeout=3 * PROBE_EVERY_S)
        else:
            socket.create_connection((address, port), PROBE_EVERY_S).close()
        return True
    except (OSError, ssl.SSLError):
        return False


def _answers_tls(timeout: float, port: int = contract.RESEARCHER_PORT) -> bool:
    """The researcher's certificate names the host this node dials (else nothing works,
    while Fed-BioMed's client still reports a connection)."""
    host = contract.RESEARCHER
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            pem = ssl.get_server_certificate((host, port), timeout=3)
            context = ssl.create_default_context(cadata=pem)
            with socket.create_connection((host, port), timeout=3) as sock, \
                    context.wrap_socket(sock, server_hostname=host):
                return True
        except (OSError, ssl.SSLError):
            time.sleep(1)
    return False

