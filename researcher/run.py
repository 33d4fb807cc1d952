"""The researcher: wait for every centre's node, run FedAverage, write results/<run-id>/.

Exit status: 0 when the run finished and its results are complete; 2 when a node never came
(the missing centres are named); 3 when a round failed or overran its deadline (the nodes
concerned are named). Environment: FEDJOURNEY_CONFIG, FEDJOURNEY_RUN_ID (optional),
FEDJOURNEY_NODE_DEADLINE (s, default 300), FEDJOURNEY_ROUND_DEADLINE (s, default 600).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import sys
import threading
import time
from pathlib import Path

from fedjourney.config import load_federation
from fedjourney.federated import results
from fedjourney.federated.story import Story

STATE = Path("/fbm")
RESULTS = Path(os.environ.get("FEDJOURNEY_RESULTS_DIR", "/results"))
HEALTH = Path(os.environ.get("FEDJOURNEY_HEALTH_FILE", "/tmp/fedjourney-health"))
SERVICE = "researcher"  # the name nodes dial: it must be the certificate's name


def main() -> int:
    HEALTH.unlink(missing_ok=True)
    started = time.monotonic()
    config_path = Path(os.environ.get("FEDJOURNEY_CONFIG", "/etc/fedjourney/federation.yaml"))
    fed = load_federation(config_path)
    spec = fed.feature_spec()
    run_id = os.environ.get("FEDJOURNEY_RUN_ID") or (
        dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2))
    story = Story("researcher", STATE / "fedjourney" / "researcher.log")
    out = RESULTS / run_id
    partial = RESULTS / f".{run_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    story.say(f"run {run_id}: {len(fed.centres)} centres, {fed.training.rounds} rounds, "
              f"spec {spec.fingerprint()}", run_id)

    # The component's certificate is made once, named after the service nodes dial; the
    # server then binds every interface.
    os.environ["FBM_RESEARCHER_COMPONENT_ROOT"] = str(STATE / "researcher")
    os.environ["FBM_SERVER_HOST"] = SERVICE
    from fedbiomed.researcher.config import config

    if config.get("server", "host") != SERVICE:
        story.say(f"the researcher component was created for {config.get('server', 'host')!r}"
                  f", not {SERVICE!r}: remove the researcher-state volume", run_id)
        return 2
    os.environ["FBM_SERVER_HOST"] = "0.0.0.0"
    from fedbiomed.researcher.requests import Requests

    requests = Requests(config)
    HEALTH.write_text("researcher: server listening\n")
    expected = {f"node-{c.id}": c for c in fed.centres}
    found = _wait_for_nodes(requests, fed.training.tag, expected, story, run_id)
    if found is None:
        return 2
    node_names = {node_id: " ".join(_service_and_centre(datasets[0]))
                  for node_id, datasets in found.items()}
    fingerprints = {node_names[nid]: ds[0]["description"].rsplit("sha256=", 1)[-1]
                    for nid, ds in found.items()}
    story.say(f"all {len(found)} nodes answered after {time.monotonic() - started:.1f}s: "
              + ", ".join(sorted(node_names.values())), run_id)

    t = fed.training
    try:
        exp = _experiment(fed, spec, run_id)
    except SystemExit as stop:
        story.say(f"FAILED: the experiment could not be set up (Fed-BioMed exit {stop.code})",
                  run_id)
        return 3
    round_seconds: dict[int, float] = {}
    deadline = float(os.environ.get("FEDJOURNEY_ROUND_DEADLINE", "600"))
    for r in range(1, t.rounds + 1):
        watchdog = _Watchdog(deadline, story, run_id, r, requests, node_names)
        begun = time.monotonic()
        try:
            exp.run_once(test_after=r == t.rounds)
        except SystemExit as stop:  # Fed-BioMed exits on a failed round (FB402, FB408...)
            watchdog.cancel()
            story.say(f"round {r} failed (Fed-BioMed exit {stop.code}); node states: "
                      f"{_node_states(requests, node_names)}", run_id, r)
            return 3
        watchdog.cancel()
        round_seconds[r] = time.monotonic() - begun
        story.say(f"round {r}/{t.rounds} aggregated in {round_seconds[r]:.2f}s", run_id, r)

    rows = results.metric_rows(run_id, t.rounds, exp.monitor()._metric_store,
                               exp.training_replies(), node_names, round_seconds)
    results.write_jsonl(rows, partial / "metrics.jsonl")
    exp.training_plan().export_model(str(partial / "model.pt"))
    results.learning_curve(rows, partial / "learning_curve.png")
    shutil.copy(config_path, partial / "federation.yaml")
    spec.dump(partial / "feature_spec.yaml")
    (partial / "fingerprints.json").write_text(json.dumps(fingerprints, indent=1) + "\n")
    seconds = time.monotonic() - started
    (partial / "summary.md").write_text(results.summary_markdown(run_id, rows, fingerprints,
                                                                 seconds))
    (partial / "run.json").write_text(json.dumps({
        "run_id": run_id, "seconds": round(seconds, 2), "rounds": t.rounds,
        "round_seconds": round_seconds, "spec_fingerprint": spec.fingerprint(),
        "status": "finished"}, indent=1) + "\n")
    partial.rename(out)  # complete, or not there at all
    story.say(f"results written to results/{run_id}/ ({seconds:.1f}s in all)", run_id)
    for node, m in results.final_table(rows).items():
        story.say(f"final model on {node}: AUC {results._fmt(m['auc'])}, "
                  f"accuracy {results._fmt(m['accuracy'])}", run_id)
    return 0


def _experiment(fed, spec, run_id):  # type: ignore[no-untyped-def]
    """The tutorial's Stage B: FedAverage of the MLP, validation on each held-out split."""
    from fedbiomed.researcher.aggregators.fedavg import FedAverage
    from fedbiomed.researcher.federated_workflows import Experiment
    from fedbiomed.researcher.strategies.default_strategy import DefaultStrategy

    from fedjourney.federated.plan import FedJourneyPlan

    t = fed.training
    return Experiment(
        tags=[t.tag],
        training_plan_class=FedJourneyPlan,
        model_args={"n_features": len(spec.vocabulary), "hidden": t.hidden,
                    "spec": spec.to_dict(), "run_id": run_id,
                    "held_out_percent": t.held_out_percent},
        training_args={"epochs": t.epochs,
                       "loader_args": {"batch_size": t.batch_size, "shuffle": False},
                       "optimizer_args": {"lr": t.learning_rate},
                       "test_ratio": t.held_out_percent / 100,
                       "test_on_global_updates": True, "test_on_local_updates": False,
                       "test_batch_size": 0, "log_interval": 1000, "random_seed": 0},
        round_limit=t.rounds,
        aggregator=FedAverage(),
        node_selection_strategy=DefaultStrategy(),
        tensorboard=False,
        save_breakpoints=False,
        experimentation_folder=run_id,
    )


def _service_and_centre(dataset: dict) -> tuple[str, str]:  # type: ignore[type-arg]
    """('node-1', 'CHU de Lyon') from the name node/start.py registers the dataset under."""
    service, centre = dataset["name"].removeprefix("fedjourney ").split(": ", 1)
    return service, centre


def _wait_for_nodes(requests, tag, expected, story, run_id):  # type: ignore[no-untyped-def]
    """Search until every expected node answers, or name the missing ones at the deadline."""
    deadline = time.monotonic() + float(os.environ.get("FEDJOURNEY_NODE_DEADLINE", "300"))
    announced: set[str] = set()
    while True:
        found = requests.search([tag])
        names = {_service_and_centre(ds[0])[0]: nid
                 for nid, ds in found.items() if ds}
        for name in sorted(set(names) - announced):
            story.say(f"{name} answered with its dataset", run_id)
        announced |= set(names)
        if set(expected) <= set(names):
            return {nid: ds for nid, ds in found.items() if ds}
        if time.monotonic() > deadline:
            missing = [f"{n} ({expected[n].name})" for n in sorted(set(expected) - set(names))]
            story.say("FAILED: no answer from " + ", ".join(missing) + "; see `docker compose "
                      "logs " + " ".join(n.split(" ")[0] for n in missing) + "`", run_id)
            return None
        time.sleep(1)


def _node_states(requests, node_names):  # type: ignore[no-untyped-def]
    try:
        agents = requests._grpc_server.get_all_nodes()
        return ", ".join(f"{node_names.get(a.id, a.id)}: {a.status.name}" for a in agents)
    except Exception as exc:
        return f"unknown ({exc})"


class _Watchdog:
    """Ends the run when a round overruns: Fed-BioMed would wait forever on a hung node."""

    def __init__(self, seconds, story, run_id, round_, requests, node_names):  # type: ignore[no-untyped-def]
        def fire() -> None:
            story.say(f"FAILED: round {round_} ran past {seconds:.0f}s; node states: "
                      f"{_node_states(requests, node_names)}", run_id, round_)
            os._exit(3)

        self.timer = threading.Timer(seconds, fire)
        self.timer.daemon = True
        self.timer.start()

    def cancel(self) -> None:
        self.timer.cancel()


if __name__ == "__main__":
    sys.exit(main())
