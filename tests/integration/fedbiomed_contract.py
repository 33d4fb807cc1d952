"""Run inside the node image: the node's start-up steps on Fed-BioMed's own classes, with
no network, and the Fed-BioMed behaviour fedjourney relies on (checked against 6.4.1).
Prints OK on success; any failed assertion exits non-zero with its message."""

import inspect
import sys
import tempfile
from pathlib import Path

import fedbiomed
from fedbiomed.node.node import Node
from fedbiomed.researcher.federated_workflows import Experiment
from fedbiomed.researcher.requests import Requests
from fedbiomed.transport.client import GrpcClient

from fedjourney.config import load_federation
from fedjourney.contract import DatasetRecord
from fedjourney.generator import generate
from fedjourney.node import component
from fedjourney.node.data import check_data, recorded
from fedjourney.planfile import plan_hash, sent_source

version = str(fedbiomed.__version__).lstrip("v")
assert version == "6.4.1", f"checked against 6.4.1, found {version}"
# Readiness: the only message text we rely on (no API says the client reached the server).
assert component.CONNECTED_MESSAGE in inspect.getsource(GrpcClient._connect), \
    "GrpcClient._connect no longer logs the connection message readiness waits for"
from fedbiomed.node.round import Round  # noqa: E402

round_source = inspect.getsource(Round)
for refusal in component.REFUSALS:
    assert refusal in round_source, f"Round no longer logs {refusal!r} when refusing a plan"
# researcher/experiment.py bound_rounds: the Experiment instantiates this module attribute,
# and a Job keeps its request policies here.
from fedbiomed.researcher.federated_workflows import _experiment  # noqa: E402
from fedbiomed.researcher.federated_workflows.jobs import TrainingJob  # noqa: E402

assert _experiment.TrainingJob is TrainingJob, "Experiment no longer uses TrainingJob"
assert "self._policies" in inspect.getsource(TrainingJob.execute), "TrainingJob policies moved"
for owner, names in ((Node, ["start_messaging", "start_protocol", "task_manager",
                             "is_connected", "send_error"]),
                     (Requests, ["search", "ping_nodes", "add_monitor_callback"]),
                     (Experiment, ["run_once", "training_replies", "training_plan", "monitor",
                                   "id", "requests", "strategy", "load_breakpoint",
                                   "experimentation_folder", "round_current"])):
    missing = [n for n in names if not hasattr(owner, n)]
    assert not missing, f"{owner.__name__} lost {missing}"

# researcher/experiment.py breakpoint_folder and strategy.AtLeast: where a round's
# breakpoint is, and the strategy state a breakpoint keeps (re-created with no argument).
from fedbiomed.researcher.filetools import choose_bkpt_file  # noqa: E402
from fedbiomed.researcher.strategies.strategy import Strategy  # noqa: E402

assert list(inspect.signature(choose_bkpt_file).parameters) == [
    "experiments_dir", "experimentation_folder", "round_"], "choose_bkpt_file changed"
assert '"parameters": self._parameters' in inspect.getsource(Strategy.save_state_breakpoint)

# node/component.py SecaggAwareNode: every training/validation request goes through
# parser_task_train, and a round is under secure aggregation exactly when the request
# carries secagg arguments and the node's settings allow it (else it is refused).
from fedbiomed.node.secagg import SecaggRound  # noqa: E402

assert "self.parser_task_train(item)" in inspect.getsource(Node.task_manager), \
    "Node.task_manager no longer parses train requests with parser_task_train"
assert 'secagg_arguments=item.get_param("secagg_arguments")' in \
    inspect.getsource(Node.task_manager).replace(" ", ""), "secagg arguments moved"
secagg_rule = inspect.getsource(SecaggRound.__init__)
assert "if secagg_arguments:" in secagg_rule and "if not self._secagg_active:" in \
    secagg_rule, "SecaggRound's rule for a secure-aggregation round changed"

# node/pinning.py, a hospital kit's site: the node's one private touch of Fed-BioMed's client.
# _connect fetches the researcher's certificate through the client module's `ssl` attribute
# (then makes it the channel's only root certificate); pin() replaces that attribute.
import socket  # noqa: E402
import ssl  # noqa: E402
import threading  # noqa: E402

from fedbiomed.researcher.config import config as researcher_config  # noqa: E402
from fedbiomed.transport import client as grpc_client  # noqa: E402

from fedjourney import contract  # noqa: E402
from fedjourney.node import pinning  # noqa: E402

assert grpc_client.ssl is ssl, "fedbiomed.transport.client no longer uses the ssl module"
connect_source = inspect.getsource(GrpcClient._connect)
assert "ssl.get_server_certificate(" in connect_source, \
    "GrpcClient._connect no longer fetches the certificate with ssl.get_server_certificate"
assert "grpc.ssl_channel_credentials(self._researcher.certificate)" in \
    inspect.getsource(grpc_client.Channels._create), "the fetched certificate is not the root"
# The certificate a site pins is where the kit's README says (the researcher's component
# folder; importing the researcher's classes above created one under /tmp/researcher).
certificate = Path(researcher_config.root, "etc",
                   researcher_config.get("certificate", "public_key")).resolve()
assert certificate == Path(researcher_config.root).resolve() / \
    contract.RESEARCHER_CERTIFICATE.relative_to(contract.STATE / "researcher"), certificate
# pin() intercepts that fetch, against a TLS server holding the researcher's certificate.
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(certificate, Path(researcher_config.root, "etc", researcher_config.get(
    "certificate", "private_key")))
server = socket.create_server(("127.0.0.1", 0))


def _serve_tls() -> None:
    while True:
        conn, _ = server.accept()
        try:
            tls.wrap_socket(conn, server_side=True).close()
        except OSError:
            conn.close()


threading.Thread(target=_serve_tls, daemon=True).start()
address = ("127.0.0.1", server.getsockname()[1])
right = pinning.fingerprint(certificate.read_text())
try:
    pinning.pin(right.upper())
    assert isinstance(grpc_client.ssl, pinning.PinnedSsl)
    assert pinning.fingerprint(grpc_client.ssl.get_server_certificate(address)) == right
    pinning.pin("0" * 64)
    try:
        grpc_client.ssl.get_server_certificate(address)
        raise AssertionError("a pinned client accepted another certificate")
    except pinning.FingerprintMismatch as refused:
        assert refused.got == right, refused
finally:
    grpc_client.ssl = ssl

# researcher/experiment.py bound_rounds passes the round's secagg arguments on by name.
assert {"do_training", "secagg_arguments"} <= set(
    inspect.signature(TrainingJob.__init__).parameters), "TrainingJob's arguments changed"
# researcher/privacy.py: a round's steps entered at once equal opacus' step-by-step count.
from opacus.accountants import RDPAccountant  # noqa: E402

from fedjourney.config import Privacy  # noqa: E402
from fedjourney.researcher.privacy import epsilon  # noqa: E402

stepwise = RDPAccountant()
for _ in range(10 * 5 * 3):  # 10 rounds x 5 epochs x ceil(41 / 16) batches
    stepwise.step(noise_multiplier=1.0, sample_rate=1 / 3)
ours = epsilon(Privacy(sigma=1.0, clip=1.0, delta=1e-5), 16, 5, None, [41] * 10)
assert abs(ours - stepwise.get_epsilon(delta=1e-5)) < 1e-9, (ours, stepwise.get_epsilon(1e-5))

scratch = Path(tempfile.mkdtemp())
fed = load_federation(sys.argv[1])
centre = fed.centres[0]
generate(fed, scratch / "data", centres=[centre])
folder = scratch / "data" / centre.folder_name
record, n_features, hit = check_data(folder, centre, fed.feature_spec(), "polars",
                                     scratch / "own" / "dataset.json", scratch / "own" / "cache")
assert (n_features, hit) == (len(fed.feature_spec().vocabulary), False)
assert recorded(scratch / "own" / "dataset.json") == record
# features.backend: tanat — the tutorial's TanaT pipeline, as the node image runs it.
import numpy as np  # noqa: E402

from fedjourney.node.cache import load_or_build  # noqa: E402

by_polars = load_or_build(folder, fed.feature_spec(), scratch / "p", record.fingerprint, "polars")
by_tanat = load_or_build(folder, fed.feature_spec(), scratch / "t", record.fingerprint, "tanat")
assert all(np.array_equal(a, b) for a, b in zip(by_polars[:3], by_tanat[:3], strict=True))

# As the node starts: Fed-BioMed imported first (a step of its own in the start-up line),
# its posture set after, which must still hold.
component.import_fedbiomed()
cfg, created = component.ensure_component(scratch / "node", "node-0", "researcher", 50051,
                                          minimum_samples=8)
assert created and cfg.getbool("security", "training_plan_approval")
assert cfg.getint("security", "minimum_samples") == 8  # the policy's smallest batch
assert not cfg.getbool("security", "allow_default_training_plans")
assert not cfg.getbool("security", "allow_federated_analytics")
assert not cfg.getbool("security", "allow_preproc")
again, created = component.ensure_component(scratch / "node", "node-0", "researcher", 50051)
assert not created and again.get("default", "id") == cfg.get("default", "id")

dataset_id, done = component.register_dataset(cfg, record, folder, fed.training.tag)
assert done == "registered", done
assert component.register_dataset(cfg, record, folder, fed.training.tag) == (dataset_id,
                                                                             "unchanged")
changed = DatasetRecord(**{**record.__dict__, "fingerprint": "0" * 64})
assert component.register_dataset(cfg, changed, folder, fed.training.tag) == (dataset_id,
                                                                            "updated")

source = sent_source(fed.training.plan)
digest, now = component.approve_plan(cfg, source, scratch / "own")
assert now and len(digest) >= 32
# The researcher names a plan by the hash the node files it under (planfile.plan_hash).
assert plan_hash(source) == digest, "Fed-BioMed's plan hash is no longer sha256(minify(...))"
assert component.approve_plan(cfg, source, scratch / "own") == (digest, False)
# Approval is by the hash of the minified source: a comment changes nothing, code does.
assert component.approve_plan(cfg, source + "\n# a comment\n", scratch / "own") == (digest,
                                                                                    False)
changed_code = source.replace('model_args["hidden"])', 'model_args["hidden"] + 1)')
assert changed_code != source
tampered, now = component.approve_plan(cfg, changed_code, scratch / "own")
assert now and tampered != digest
# The config's approvals it no longer lists are withdrawn; an administrator's stay.
from pathlib import Path as _Path  # noqa: E402

from fedjourney.errors import FedjourneyError  # noqa: E402
from fedjourney.planfile import SHIPPED, resolve  # noqa: E402

gru = sent_source(resolve("gru", _Path(), "test"))
component.approve_plan(cfg, gru, scratch / "own", "gru", component.BY_ADMINISTRATOR)
gone = component.withdraw_config_approvals(cfg, {digest})
assert len(gone) == 1 and gone[0].startswith("plan-"), gone  # the tampered one
assert component.approve_plan(cfg, source, scratch / "own") == (digest, False)
assert component.approve_plan(cfg, gru, scratch / "own", "gru")[1] is False  # still there
assert len(component.withdraw_config_approvals(cfg, set())) == 1  # mlp; gru is the admin's
assert component.approve_plan(cfg, gru, scratch / "own", "gru")[1] is False
# Every shipped plan runs as the nodes receive it, and is filed under plan_hash.
for name in SHIPPED:
    sent = sent_source(resolve(name, _Path(), "test"))
    assert component.approve_plan(cfg, sent, scratch / "own", name)[0] == plan_hash(sent), name
# A plan importing what the image lacks is refused naming the import, before any node.
lacking = scratch / "lacking.py"
lacking.write_text("import sklearn_not_here\nfrom fedjourney.plans.base import CentrePlan\n\n"
                   "class Lacking(CentrePlan):\n    pass\n")
try:
    sent_source(resolve(str(lacking), _Path(), "test"))
    raise AssertionError("a plan with a missing import was accepted")
except FedjourneyError as exc:
    assert "imports 'sklearn_not_here'" in str(exc), exc
# A class that uses a helper left behind in its file fails here, not on the nodes.
helper = scratch / "helper.py"
helper.write_text("from fedjourney.plans.base import CentrePlan\n\nWIDTH = 3\n\n"
                  "class Helper(CentrePlan):\n    N = WIDTH\n\n"
                  "    def init_model(self, model_args):\n        return None\n")
try:
    sent_source(resolve(str(helper), _Path(), "test"))
    raise AssertionError("a plan needing a module-level helper was accepted")
except FedjourneyError as exc:
    assert "does not run on its own" in str(exc), exc
print("OK")
