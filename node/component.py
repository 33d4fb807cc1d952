"""Steps 2-5 of the node's start-up, on Fed-BioMed's node API (checked against 6.4.1).

Only public Fed-BioMed classes are used: NodeConfig (node_component), DatasetManager,
TrainingPlanSecurityManager, Node. Two things 6.4.1 offers no API for — knowing that the
gRPC client reached the researcher, and that the node refused a training plan — are read
from the log records Fed-BioMed emits in this process (CONNECTED_MESSAGE, REFUSALS;
tests/integration/fedbiomed_contract.py fails loudly if they change).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fedjourney.contract import NODE_REFUSED, DatasetRecord
from fedjourney.exits import Exit
from fedjourney.node import metrics
from fedjourney.node.faults import Faults, scheduled_round
from fedjourney.node.rules import CoarseMonitor, Rules, parties
from fedjourney.schedule import Event
from fedjourney.story import Story

# fedbiomed/transport/client.py, GrpcClient._connect, 6.4.1
CONNECTED_MESSAGE = "Successfully connected to researcher server"
# fedbiomed/node/round.py, Round.run_model_training, 6.4.1: logged at INFO only, but a
# hospital's story must show every refused plan.
REFUSALS = ("Training plan is not registered on this node", "is not approved by this node")


def ensure_component(root: Path, alias: str, researcher: str, port: int,
                     secure_aggregation: str = "allowed", minimum_samples: int = 0
                     ) -> tuple[Any, bool]:
    """(the node's config, whether it was created): a hospital's posture whatever the
    defaults say — plan approval on, default plans, federated analytics and preprocessing
    off, secure aggregation as the centre says (allowed | required | refused), Fed-BioMed's
    own `minimum_samples` at the policy's smallest batch — dialling `researcher:port`."""
    # Fed-BioMed reads these environment variables before its config file, on every read.
    # Federated analytics and preprocessing requests run researcher-chosen code on the data
    # outside plan approval: off (fedjourney uses neither).
    security = {"TRAINING_PLAN_APPROVAL": True, "ALLOW_DEFAULT_TRAINING_PLANS": False,
                "ALLOW_FEDERATED_ANALYTICS": False, "ALLOW_PREPROC": False,
                "SECURE_AGGREGATION": secure_aggregation != "refused",
                "FORCE_SECURE_AGGREGATION": secure_aggregation == "required",
                "MINIMUM_SAMPLES": minimum_samples}
    for key, value in security.items():
        os.environ[f"FBM_SECURITY_{key}"] = str(value)
    from fedbiomed.node.config import node_component

    created = not (root / ".fedbiomed").exists()
    cfg = node_component.initiate(root=str(root), alias=alias)
    for key, value in security.items():
        cfg.set("security", key.lower(), str(value))
    cfg.set("researcher", "ip", researcher)
    cfg.set("researcher", "port", str(port))
    cfg.write()
    return cfg, created


def import_fedbiomed() -> None:
    """Import the Fed-BioMed a node runs, PyTorch with it: most of a node's start CPU, so
    its start-up line times it as a step of its own. Safe before ensure_component: Fed-BioMed
    reads its FBM_SECURITY_* settings as it loads a config, not as it is imported."""
    import fedbiomed.node.config
    import fedbiomed.node.dataset_manager
    import fedbiomed.node.node
    import fedbiomed.node.training_plan_security_manager  # noqa: F401


def _db(cfg: Any) -> str:
    return os.path.abspath(os.path.join(cfg.root, "etc", cfg.get("default", "db")))


def register_dataset(cfg: Any, record: DatasetRecord, folder: Path, tag: str,
                     privacy_spent: list[list[float]] | None = None) -> tuple[str, str]:
    """(dataset id, what was done: registered | updated | unchanged), once per tag; with
    the node's privacy ledger as it stands (`privacy_spent`, Ledger.spent) when given."""
    from fedbiomed.node.dataset_manager import DatasetManager

    if privacy_spent is not None:
        record = dataclasses.replace(record, privacy_spent=privacy_spent)

    manager = DatasetManager(path=_db(cfg), min_samples=cfg.getint("security",
                                                                   "minimum_samples"))
    wanted = {"name": record.name, "description": record.description(), "path": str(folder)}
    existing = manager.dataset_table.search_by_tags([tag])
    if existing and all(existing[0].get(k) == v for k, v in wanted.items()):
        return str(existing[0]["dataset_id"]), "unchanged"
    if existing:
        # 6.4.1's update_by_id cannot validate a custom dataset's entry (it has no shape):
        # replace the entry under the same id instead.
        dataset_id = str(existing[0]["dataset_id"])
        manager.delete_dataset_by_id(dataset_id)
        manager.add_database(**wanted, data_type="custom", tags=[tag], dataset_id=dataset_id)
        return dataset_id, "updated"
    return manager.add_database(**wanted, data_type="custom", tags=[tag]), "registered"


# How a node's approvals are described in Fed-BioMed's registry: the ones its centre's config
# lists are withdrawn when the config stops listing them; an administrator's stay.
BY_CONFIG = "approved in the centre's config (approved_plans)"
BY_ADMINISTRATOR = "approved by the node's administrator (fedjourney approve)"


def _security(cfg: Any) -> Any:
    from fedbiomed.node.training_plan_security_manager import TrainingPlanSecurityManager

    return TrainingPlanSecurityManager(
        db=_db(cfg), node_id=cfg.get("default", "id"), node_name=cfg.get("default", "name"),
        hashing=cfg.get("security", "hashing_algorithm"), tp_approval=True)


def approve_plan(cfg: Any, source: str, scratch: Path, name: str = "plan",
                 description: str = BY_CONFIG) -> tuple[str, bool]:
    """(the plan's hash, whether it was approved now): the plan whose code the researcher
    sends is `source`, filed in Fed-BioMed's registry as approved, under `name`."""
    security = _security(cfg)
    entry = security.get_training_plan_from_database(source)
    if entry is not None:
        if entry.get("training_plan_status") != "Approved":  # a pending or rejected request
            security.approve_training_plan(entry["training_plan_id"], extra_notes=description)
            return str(entry["hash"]), True
        return str(entry["hash"]), False
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".py", dir=scratch, delete=False) as fh:
        fh.write(source)
    try:
        # Registry names must be unique: one per plan source.
        unique = f"{name}-{hashlib.sha256(source.encode()).hexdigest()[:12]}"
        security.register_training_plan(name=unique, path=fh.name, description=description)
    finally:
        os.unlink(fh.name)
    entry = security.get_training_plan_from_database(source)
    return str(entry["hash"]), True


def withdraw_config_approvals(cfg: Any, keep: set[str]) -> list[str]:
    """Delete the approvals the centre's config made of any plan whose hash is not in `keep`
    (the config no longer lists it, or it changed); the registry names of those withdrawn."""
    from fedjourney.planfile import plan_hash

    security = _security(cfg)
    gone = []
    for entry in security.list_training_plans(verbose=False):  # without their hashes
        if entry.get("description") == BY_CONFIG and \
                plan_hash(str(entry.get("training_plan"))) not in keep:
            security.delete_training_plan(entry["training_plan_id"])
            gone.append(str(entry.get("name")))
    return gone


class _Watch(logging.Handler):
    """Fed-BioMed's records that matter to the node's story."""

    def __init__(self, story: Story) -> None:
        super().__init__(logging.INFO)
        self.story = story
        self.connected = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if CONNECTED_MESSAGE in message:
            self.connected.set()
        elif any(refusal in message for refusal in REFUSALS):
            self.story.warning(f"REFUSED a training plan: {message}")


class RunningNode:
    """The Fed-BioMed node of this process, started as `fedbiomed node start` would."""

    def __init__(self, cfg: Any, story: Story,
                 before_search: Callable[[], object] | None = None,
                 rules: Rules | None = None, schedule: Iterable[Event] = ()) -> None:
        """`before_search` runs as each researcher's search arrives, before Fed-BioMed
        answers it from its registry (the start-up node re-checks its centre's data there,
        so that an experiment starts with the data's fingerprint as it is now). `rules`:
        the centre's data-use policy, judged on each training request before Fed-BioMed
        builds its round (node/rules.py). `schedule`: the centre's, whose slow and restart
        events the node carries out as a training request names the round (node/faults.py)."""
        from fedbiomed.common.constants import ErrorNumbers
        from fedbiomed.node.node import Node

        self.stopping = threading.Event()
        faults = Faults(schedule, story, self.stopping)

        class SecaggAwareNode(Node):  # type: ignore[misc]
            """Records, for node/metrics.py, whether each request it parses will run under
            secure aggregation: Fed-BioMed's own rule (SecaggRound), from the request's
            secure-aggregation arguments and this node's settings."""

            def on_message(self, msg: dict[str, Any]) -> Any:
                kind = msg.get("__type_message__") if isinstance(msg, dict) else None
                if before_search is not None and isinstance(kind, dict) \
                        and kind.get("class") == "SearchRequest":
                    try:
                        before_search()
                    except Exception as exc:  # the search is answered from the registry
                        story.warning(f"could not check the data again before a search: "
                                      f"{type(exc).__name__}")
                return super().on_message(msg)

            def parser_task_train(self, msg: Any) -> Any:
                # A restart ends the process here; a slow round holds its reply.
                slow = faults.arrived(msg.get_param("round"), msg.get_param("model_args"),
                                      bool(msg.get_param("training")))
                round_ = self._parse_train(msg)
                return round_ if slow is None else slow.wrap(round_)

            def _parse_train(self, msg: Any) -> Any:
                metrics.begin_request(bool(msg.get_param("secagg_arguments")) and
                                      self._config.getbool("security", "secure_aggregation"))
                if rules is None:
                    return super().parser_task_train(msg)
                training_args = msg.get_param("training_args") or {}
                model_args = msg.get_param("model_args") or {}
                number = msg.get_param("round")
                number = number if type(number) is int else 0  # the researcher's word
                # The story names the round as the researcher's does, from 1.
                told = story.at(model_args.get("run_id"), scheduled_round(number))
                try:
                    reasons = rules.judge(
                        training_args, model_args,
                        parties(msg.get_param("secagg_arguments"), msg.researcher_id),
                        bool(msg.get_param("training")), str((told.extra or {}).get("run")),
                        number, told)
                except Exception as exc:  # what cannot be judged is not run
                    reasons = [f"the request could not be judged ({type(exc).__name__})"]
                if reasons:
                    why = "; ".join(reasons)
                    told.warning(f"REFUSED a request outside this centre's policy: {why}")
                    return self.send_error(
                        errnum=ErrorNumbers.FB300, request_id=msg.request_id,
                        researcher_id=msg.researcher_id,
                        extra_msg=f"{NODE_REFUSED}{rules.label}'s data-use policy: {why}")
                # Every batch's loss reaches the monitor, which sends what the policy lets.
                training_args["log_interval"] = 1
                round_ = super().parser_task_train(msg)
                if hasattr(round_, "history_monitor"):
                    round_.history_monitor = CoarseMonitor(round_.history_monitor,
                                                           rules.policy.training_loss)
                return round_

        self._watch = _Watch(story)
        logging.getLogger("fedbiomed").addHandler(self._watch)
        self.node = SecaggAwareNode(cfg, {"gpu": False})

    def start(self) -> None:
        """Messaging and node-to-node router in background threads (returns at once)."""
        self.node.tp_security_manager.check_hashes_for_registered_training_plans()
        self.node.start_messaging(lambda: self.stop(Exit.FAILED))  # its gRPC tasks died
        self.node.start_protocol()

    def wait_connected(self, timeout: float) -> bool:
        """True once the gRPC client reached the researcher, False at the deadline."""
        return self._watch.connected.wait(timeout) and self.node.is_connected()

    def serve(self) -> None:
        """Runs training tasks until stop() ends the process (blocks the main thread)."""
        self.node.task_manager()

    def stop(self, status: int = 0) -> None:
        """Tell the researcher, then end the process, from any thread or a signal handler:
        task_manager() blocks on its queue forever, so nothing short of an exit ends it."""
        if not self.stopping.is_set():
            self.stopping.set()
            from fedbiomed.common.constants import ErrorNumbers

            try:
                if self.node.is_connected():
                    self.node.send_error(ErrorNumbers.FB312, extra_msg="Node is stopped",
                                         broadcast=True)
            except Exception:  # leaving anyway; the researcher sees the drop
                pass
        logging.shutdown()
        os._exit(status)
