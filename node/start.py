"""A hospital's Fed-BioMed node: check the centre's data, then, idempotently, create the node
component, register the dataset, approve the federation's training plan by its hash, and
start the node. Healthy once the dataset is registered and the researcher answers over TLS.

Environment (set by docker-compose.yml): FEDJOURNEY_CONFIG, FEDJOURNEY_CENTRE_ID,
FBM_RESEARCHER_IP / FBM_RESEARCHER_PORT (the researcher the node dials).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

from fedjourney.config import load_federation
from fedjourney.errors import FedjourneyError
from fedjourney.federated.cache import load_or_build
from fedjourney.federated.fingerprint import dataset_fingerprint
from fedjourney.federated.node_side import FINGERPRINT_FILE, STATE_DIR, node_story
from fedjourney.generator.output import read_meta

HEALTH = Path(os.environ.get("FEDJOURNEY_HEALTH_FILE", "/tmp/fedjourney-health"))
COMPONENT = STATE_DIR / "node"
RESEARCHER = os.environ.get("FBM_RESEARCHER_IP", "researcher")
PORT = int(os.environ.get("FBM_RESEARCHER_PORT", "50051"))


def main() -> int:
    HEALTH.unlink(missing_ok=True)
    fed = load_federation(os.environ.get("FEDJOURNEY_CONFIG", "/etc/fedjourney/federation.yaml"))
    centre = fed.centre(os.environ["FEDJOURNEY_CENTRE_ID"])
    name = f"node-{centre.id}"
    os.environ["FEDJOURNEY_NODE_NAME"] = f"{name} {centre.name}"
    story = node_story()
    folder = Path("/data") / centre.folder_name

    # 1. The data: complete, readable, and turned into features once (cached by fingerprint).
    started = time.monotonic()
    if read_meta(folder) is None:
        story.say(f"UNHEALTHY: no complete centre at {folder} (did generator-{centre.id} "
                  "finish?); stopping")
        return 2
    fingerprint = dataset_fingerprint(folder)
    try:
        x, _, ids, hit = load_or_build(folder, fed.feature_spec(),
                                       STATE_DIR / "fedjourney" / "cache", fingerprint)
    except FedjourneyError as exc:
        story.say(f"UNHEALTHY: the centre's data is broken: {exc}; stopping")
        return 2
    record = {"path": str(folder), "fingerprint": fingerprint, "patients": len(ids),
              "centre": centre.name, "centre_id": centre.id}
    tmp = STATE_DIR / "fedjourney" / ".dataset.json.partial"
    tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    tmp.replace(STATE_DIR / FINGERPRINT_FILE)
    story.say(f"data checked: {len(ids)} patients, {x.shape[1]} features "
              f"({'cached' if hit else 'built'}), sha256 {fingerprint[:16]}")

    # 2. The Fed-BioMed component, with a hospital's posture whatever the defaults say.
    os.environ["FBM_SECURITY_TRAINING_PLAN_APPROVAL"] = "True"
    os.environ["FBM_SECURITY_ALLOW_DEFAULT_TRAINING_PLANS"] = "False"
    from fedbiomed.node.config import node_component

    created = not (COMPONENT / ".fedbiomed").exists()
    cfg = node_component.initiate(root=str(COMPONENT), alias=name)
    cfg.set("security", "training_plan_approval", "True")
    cfg.set("security", "allow_default_training_plans", "False")
    cfg.set("researcher", "ip", RESEARCHER)
    cfg.set("researcher", "port", str(PORT))
    cfg.write()
    story.say(f"Fed-BioMed node component {'created' if created else 'found'} "
              f"({cfg.get('default', 'id')}); plan approval on, default plans off")
    db = os.path.abspath(os.path.join(cfg.root, "etc", cfg.get("default", "db")))

    # 3. The dataset, registered once under the federation's tag.
    from fedbiomed.node.dataset_manager import DatasetManager

    manager = DatasetManager(path=db, min_samples=cfg.getint("security", "minimum_samples"))
    tags = [fed.training.tag]
    description = (f"{centre.name} ({centre.country.upper()}, {centre.region}); "
                   f"patients={len(ids)}; sha256={fingerprint}")
    existing = manager.dataset_table.search_by_tags(tags)
    if not existing:
        dataset_id = manager.add_database(name=f"fedjourney {name}: {centre.name}",
                                          data_type="custom", tags=tags,
                                          description=description, path=str(folder))
        story.say(f"dataset registered under tag '{tags[0]}' ({dataset_id})")
    elif existing[0]["description"] != description or existing[0]["path"] != str(folder):
        manager.dataset_table.update_by_id(existing[0]["dataset_id"],
                                           {"description": description, "path": str(folder)})
        story.say(f"dataset updated: the data changed ({existing[0]['dataset_id']})")
    else:
        story.say(f"dataset already registered ({existing[0]['dataset_id']}): nothing to do")

    # 4. The federation's training plan, approved by the hash of its source.
    from fedbiomed.node.training_plan_security_manager import TrainingPlanSecurityManager

    from fedjourney.federated.plan import FedJourneyPlan

    security = TrainingPlanSecurityManager(
        db=db, node_id=cfg.get("default", "id"), node_name=cfg.get("default", "name"),
        hashing=cfg.get("security", "hashing_algorithm"), tp_approval=True)
    source = FedJourneyPlan().source()
    digest = security._create_hash(source, from_string=True)[0]
    if security.get_training_plan_from_database(source) is None:
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False,
                                         dir=STATE_DIR / "fedjourney") as fh:
            fh.write(source)
        security.register_training_plan(name=f"fedjourney-plan-{digest[:12]}",
                                        description="the federation's FedJourneyPlan",
                                        path=fh.name)
        os.unlink(fh.name)
        story.say(f"training plan approved: sha256 {digest[:16]}")
    else:
        story.say(f"training plan already approved: sha256 {digest[:16]}")
    story.say(f"start-up took {time.monotonic() - started:.1f}s; connecting to "
              f"{RESEARCHER}:{PORT}")

    # 5. Healthy when the researcher answers over TLS with the name this node dials.
    threading.Thread(target=_watch_connection, args=(story, name), daemon=True).start()

    from fedbiomed.node.node_pm import _start_node_process

    _start_node_process(str(COMPONENT), {"gpu": False})
    story.say("Fed-BioMed node stopped")  # it only returns after a start-up error
    return 1


def _watch_connection(story, name: str) -> None:  # type: ignore[no-untyped-def]
    log = COMPONENT / "log" / "application.log"
    while True:
        try:
            pem = ssl.get_server_certificate((RESEARCHER, PORT), timeout=3)
            context = ssl.create_default_context(cadata=pem)
            with socket.create_connection((RESEARCHER, PORT), timeout=3) as sock, \
                    context.wrap_socket(sock, server_hostname=RESEARCHER):
                pass
            if log.is_file() and "Retrieved server certificate" in log.read_text(errors="replace"):
                HEALTH.write_text(f"{name}: dataset registered, connected to {RESEARCHER}\n")
                story.say(f"connected to the researcher at {RESEARCHER}:{PORT}: healthy")
                return
        except (OSError, ssl.SSLError):
            pass
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
