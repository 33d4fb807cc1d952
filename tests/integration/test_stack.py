"""The product: `up` runs a real Fed-BioMed federation; results, isolation, idempotence."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from fedjourney import records, settings
from fedjourney.config import load_federation
from fedjourney.contract import node_label, node_service, story_log
from fedjourney.exits import Exit
from fedjourney.fingerprint import dataset_fingerprint
from fedjourney.generator import generate
from fedjourney.researcher.curves import slug
from tests.integration.conftest import RUN_ID
from tests.integration.stack import Stack, traces

NODES = tuple(node_service(i) for i in range(3))


def test_run_succeeds_with_complete_consistent_results(finished_run: Path,
                                                       docker_compose_file: str) -> None:
    config = Path(docker_compose_file).with_name("federation.yaml")
    fed = load_federation(config)
    files = {p.name for p in finished_run.iterdir()}
    assert files == records.RESEARCHER_FILES
    # TensorBoard: one run per centre, each with its event file.
    boards = finished_run / records.TENSORBOARD
    assert sorted(p.name for p in boards.iterdir()) == sorted(
        slug(node_label(c.id, c.name)) for c in fed.centres)
    assert all(any(f.name.startswith("events.out.tfevents.") and f.stat().st_size > 0
                   for f in board.iterdir()) for board in boards.iterdir())
    # The researcher's view of the config: every centre named, none of their seeds.
    published = (finished_run / records.FEDERATION).read_text()
    assert yaml.safe_load(published) == yaml.safe_load(
        (config.parent / "roles" / "researcher.yaml").read_text())
    assert "seed" not in published and "population" not in published
    rows = records.read_rows(finished_run)
    rounds = fed.training.rounds
    assert len(rows) == (rounds + 1) * 3
    assert {r.node.split(" ")[0] for r in rows} == set(NODES)
    for r in rows:
        assert 0.0 <= r.validation_auc <= 1.0 and r.validation_loss > 0
        if not r.final:
            assert r.train_loss > 0 and r.samples > 0 and r.training_seconds > 0
    # Each node trained on its own patients minus the held-out 30 %.
    for node, centre in zip(NODES, fed.centres, strict=True):
        row = next(r for r in rows if r.node.startswith(node) and r.round == 1)
        assert centre.population * 0.6 <= row.samples <= centre.population * 1.2, node
    run = records.read_run(finished_run)
    assert run.finished and len(run.round_seconds) == rounds
    assert (finished_run / records.LEARNING_CURVE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    torch = pytest.importorskip("torch")
    state = torch.load(finished_run / records.MODEL)
    assert state["0.weight"].shape == (32, 30) and state["2.weight"].shape == (1, 32)
    summary = (finished_run / records.SUMMARY).read_text()
    for centre in fed.centres:
        assert centre.name in summary
    # Each node's aggregates: the heterogeneity report (no identifier: see below).
    assert "## Heterogeneity of the federation" in summary and "Jensen-Shannon" in summary


def test_fingerprints_computed_on_nodes_match_the_config(finished_run: Path, tmp_path: Path,
                                                         docker_compose_file: str) -> None:
    fed = load_federation(Path(docker_compose_file).with_name("federation.yaml"))
    generate(fed, tmp_path)  # deterministic: the host regenerates the nodes' exact files
    fingerprints = records.read_fingerprints(finished_run)
    for centre in fed.centres:
        node = node_label(centre.id, centre.name)
        assert fingerprints[node] == dataset_fingerprint(tmp_path / centre.folder_name)


def test_nodes_are_healthy_and_tell_their_story(stack: Stack, finished_run: Path) -> None:
    for node in NODES:
        # Docker runs the health check every 5 s: a short run can end before the first one.
        stack.wait_until(lambda n=node: stack.health(n) == "healthy", timeout=30,
                         what=f"{node} healthy")
        logs = stack.logs(node)
        for step in ("data checked", "dataset registered under tag",
                     "training plan mlp approved (the centre's approved_plans): sha256",
                     "training plan gru approved",
                     "connected to the researcher", f"run={RUN_ID} round=1 | validation on"):
            assert step in logs, (node, step)
        kept = stack.exec(node, "cat", str(story_log("node"))).stdout
        assert f"run={RUN_ID}" in kept  # the node keeps its log in its state volume


def test_each_node_sees_only_its_own_centre_read_only(stack: Stack, finished_run: Path) -> None:
    for i, node in enumerate(NODES):
        listing = stack.exec(node, "find", "/data", "-name", "*.csv").stdout.split()
        assert listing and all(p.startswith(f"/data/center_{i}/") for p in listing), listing
        write = stack.exec(node, "touch", f"/data/center_{i}/intruder")
        assert write.returncode != 0 and "Read-only file system" in write.stderr
        assert stack.exec(node, "id", "-u").stdout.strip() == "10001"


@pytest.fixture(scope="module")
def patient_ids(tmp_path_factory: pytest.TempPathFactory, docker_compose_file: str) -> set[str]:
    """Every generated patient's id (the host regenerates the nodes' exact data)."""
    import polars as pl

    fed = load_federation(Path(docker_compose_file).with_name("federation.yaml"))
    out = tmp_path_factory.mktemp("ids")
    generate(fed, out)
    return {i for c in fed.centres
            for i in pl.read_csv(out / c.folder_name / "patients.csv")["Id"].to_list()}


def test_the_researcher_holds_no_patient_file_and_the_check_can_fail(
        stack: Stack, finished_run: Path, patient_ids: set[str]) -> None:
    volumes = ["researcher-state", "results"]
    assert traces(stack, volumes, patient_ids) == []
    # Control: a patient file copied into the researcher's state is found.
    folder = f"leak-{os.getpid()}"

    def in_researcher_state(cmd: str) -> None:
        subprocess.run(["docker", "run", "--rm", "-v", f"{stack.project}_researcher-state:/fbm",
                        "--entrypoint", "sh", "fedjourney/base:latest", "-c", cmd],
                       check=True, capture_output=True, timeout=60)

    in_researcher_state(f"mkdir /fbm/{folder} && echo Id > /fbm/{folder}/patients.csv")
    try:
        assert traces(stack, volumes, patient_ids) == [
            f"/v/researcher-state/{folder}/patients.csv"]
    finally:
        in_researcher_state(f"rm -r /fbm/{folder}")


def test_no_patient_identifier_leaves_a_node(stack: Stack, finished_run: Path,
                                             patient_ids: set[str]) -> None:
    assert len(patient_ids) > 90
    output = stack.compose("logs", "--no-color").stdout
    assert not [i for i in patient_ids if i in output]
    assert traces(stack, [f"{n}-state" for n in NODES], patient_ids, only="logs") == []
    published = "".join(p.read_text(errors="replace") for p in finished_run.rglob("*")
                        if p.is_file() and p.suffix in {".md", ".json", ".jsonl", ".yaml"})
    assert not [i for i in patient_ids if i in published]


PROBE = """
import errno, socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), 3).close()
    print("open")
except ConnectionRefusedError:
    print("refused")  # a path exists, the port is merely closed
except OSError as e:
    print("blocked", e)  # no route, no name, or silence
"""


def _ip(stack: Stack, service: str) -> str:
    import subprocess

    out = subprocess.run(["docker", "inspect", "--format",
                          "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                          stack.container(service)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def test_no_network_path_between_centres_or_out(stack: Stack, finished_run: Path) -> None:
    def probe(host: str, port: str = "50051") -> str:
        return stack.exec("node-0", "python3", "-c", PROBE, host, port).stdout.strip()

    # Control: node-0 reaches its own address (refused: nothing listens there).
    assert probe(_ip(stack, "node-0"), "9") == "refused"
    for other in ("node-1", "node-2"):
        assert probe(other).startswith("blocked")  # no name...
        assert probe(_ip(stack, other), "9").startswith("blocked")  # ...and no route
    assert probe("pypi.org", "443").startswith("blocked")
    assert probe("1.1.1.1", "53").startswith("blocked")


def _rogue(stack: Stack, mode: str) -> str:
    stack.rogue(mode)
    return "".join(stack.logs(node) for node in NODES)


def test_plan_approval_is_on_and_an_unapproved_plan_is_refused(stack: Stack,
                                                              finished_run: Path) -> None:
    logs = _rogue(stack, "plan")
    assert "REFUSED a training plan: Training plan is not registered on this node" in logs


def test_the_featurespec_is_part_of_what_a_hospital_approves(stack: Stack,
                                                             finished_run: Path) -> None:
    logs = _rogue(stack, "spec")
    assert "REFUSED: the researcher's FeatureSpec" in logs and "(target RACE)" in logs


@pytest.mark.parametrize(("mode", "rule"), [
    ("batch1", "training batches of 1 patients, under this centre's minimum of 8 "
               "(policy.min_batch_size)"),
    ("pervalidation", "this centre validates on its whole held-out split at once"),
    ("testratio", "a held-out split of 90% (held_out_percent 90); this centre holds out its "
                  "own 30%"),
    ("parties", "secure aggregation among 2 nodes; this centre masks with at least 3 "
                "(policy.secagg_min_parties)"),
])
def test_a_nodes_policy_refuses_a_curious_researcher_before_reading_data(
        stack: Stack, finished_run: Path, mode: str, rule: str) -> None:
    """Batches of one patient give its row back from the first layer's update; validation
    batches of one give each held-out label; a 90 % held-out split makes a patient's
    validation one of few; two parties unmask each other. Each node asked refuses, the
    researcher shows the node's reason, and no asked node read its data for that run."""
    said = stack.rogue(mode)
    assert rule in said  # the researcher's side: the node's own line
    run = f"run=rogue-{mode} "
    asked = {node: [line for line in stack.logs(node).splitlines() if run in line]
             for node in NODES}
    refusing = [node for node, lines in asked.items()
                if any("REFUSED a request outside this centre's policy" in line and rule in line
                       for line in lines)]
    assert refusing == ([n for n in NODES if asked[n]] or ["none asked"])
    assert len(refusing) == (2 if mode == "parties" else 3)
    assert not any("features" in line for lines in asked.values() for line in lines)


def test_a_run_id_that_would_forge_a_story_line_is_refused(stack: Stack,
                                                           finished_run: Path) -> None:
    said = stack.rogue("runid")
    assert "invalid run id" in said
    for node in NODES:
        logs = stack.logs(node)
        assert "REFUSED a request outside this centre's policy: invalid run id" in logs, node
        assert "\n2026-01-01T00:00:00.000Z" not in logs  # told escaped, on the one line
        assert not any(line.rstrip().endswith("| FORGED") for line in logs.splitlines())


def _started(stack: Stack, service: str) -> str:
    import subprocess

    return subprocess.run(["docker", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}",
                           stack.container(service)], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_second_experiment_runs_on_the_kept_nodes(stack: Stack, finished_run: Path) -> None:
    """What `scripts/run --again` does: no data generation, no node restart."""
    kept = [*NODES, "generator-0"]
    before = {s: _started(stack, s) for s in kept}
    stack.compose("up", "-d", "--no-deps", "researcher", "results",
                  env={settings.RUN_ID.env: "itest-again"})
    assert stack.wait_exit("researcher", timeout=300) == 0, stack.logs("researcher")[-3000:]
    assert stack.wait_exit("results", timeout=60) == 0
    again = finished_run.parent / "itest-again"
    assert (again / records.METRICS).is_file() and (again / records.RUN).is_file()
    assert {s: _started(stack, s) for s in kept} == before


def test_a_second_up_regenerates_nothing_and_registers_nothing(stack: Stack,
                                                               finished_run: Path) -> None:
    stack.compose("up", "-d", "--force-recreate", env={settings.RUN_ID.env: "itest-run-2"})
    assert stack.wait_exit("researcher", timeout=400) == 0
    for i in range(3):
        assert "skipped" in stack.logs(f"generator-{i}")
        kept = stack.exec(f"node-{i}", "cat", str(story_log("node"))).stdout
        assert kept.count("dataset registered under tag") == 1
        assert "dataset already registered" in kept
        for plan in ("mlp", "logistic", "gru"):  # the centre's approved_plans
            assert kept.count(f"training plan {plan} approved") == 1
            assert f"training plan {plan} already approved" in kept
        assert "features from cache" in kept


def test_a_failed_run_exits_non_zero_naming_the_missing_node(stack: Stack,
                                                             finished_run: Path) -> None:
    stack.compose("stop", "node-2")
    done = stack.compose("run", "--rm", "--no-deps", "--use-aliases", "-T",
                         "-e", f"{settings.NODE_DEADLINE.env}=25",
                         "-e", f"{settings.RUN_ID.env}=itest-fail",
                         "researcher", check=False, timeout=300)
    assert done.returncode == Exit.NOT_READY
    assert "no answer from node-2 (University College London Hospital)" in done.stdout
    stack.compose("start", "node-2")


def test_down_v_leaves_nothing_behind(stack: Stack, finished_run: Path) -> None:
    stack.compose("down", "-v")
    assert stack.leftovers() == {"containers": [], "volumes": [], "networks": []}
