"""Faults: a node dying, a node hanging, an invalid config; k-of-n rounds, rejoin, resume.
(Broken data: test_broken_data.py.)"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedjourney import records, settings
from fedjourney.exits import Exit
from tests.integration.stack import Stack, running, small_federation


@pytest.fixture
def long_stack(tmp_path: Path) -> Iterator[Stack]:
    with running(tmp_path, f"fjdeath{os.getpid()}", "itest-death", rounds=60,
                 epochs=1) as stack:
        yield stack


def test_node_dying_mid_run_fails_the_run_naming_it(long_stack: Stack) -> None:
    stack = long_stack
    stack.kill_after_round("node-1", 2, 60)
    killed = time.monotonic()
    status = stack.wait_exit("researcher", timeout=180)
    assert status == Exit.ROUND_FAILED
    assert time.monotonic() - killed < 90
    logs = stack.logs("researcher")
    assert "FAILED: round" in logs and "node-1 CHU de Lyon: DISCONNECTED" in logs, logs[-3000:]


def test_an_invalid_config_stops_its_generator_before_any_node_starts(tmp_path: Path
                                                                     ) -> None:
    """The host refuses to render an invalid config (unit-tested); a role view edited by
    hand is the generator's to refuse, and then nothing else starts."""
    import yaml

    _, compose = small_federation(tmp_path)
    view_path = tmp_path / "roles" / "generator-1.yaml"
    view = yaml.safe_load(view_path.read_text())
    view["centres"][0]["age_range"] = "85-40"  # inverted
    view_path.write_text(yaml.safe_dump(view))
    stack = Stack(compose, f"fjbadcfg{os.getpid()}")
    try:
        stack.up_fails_before_any_node("generator-1", "is inverted")
    finally:
        stack.compose("down", "-v", check=False)


KOFN_ROUNDS = 60  # the hold comes within a poll (~1 s) of the first round without node-1
CONNECTED = "connected to the researcher at researcher:"  # node/start.py, once per start


@pytest.fixture
def k_of_n_stack(tmp_path: Path) -> Iterator[Stack]:
    # The held round waits for node-1's restart (about 20 s here): its deadline must be well
    # above (the round then waits out the deadline for node-1's lost request).
    with running(tmp_path, f"fjkofn{os.getpid()}", "itest-kofn", rounds=KOFN_ROUNDS,
                 epochs=10, min_nodes=2, round_deadline_s=60) as stack:
        yield stack


def test_with_min_nodes_a_lost_node_is_dropped_then_rejoins(k_of_n_stack: Stack) -> None:
    """min_nodes 2 of 3: node-1 killed mid-run, the run goes on without it; restarted on
    its state volume, it takes part again; sample-weighted FedAverage over those present.

    The rounds do not race the restart: once a round went on without node-1, the other
    two nodes are stopped (SIGSTOP), which holds the next round open until node-1 has
    reconnected. (Stopping them before the kill would not do: Fed-BioMed keeps a node's
    pending request for its id, and a quick restart answers it, missing no round.)"""
    stack = k_of_n_stack
    stack.kill_after_round("node-1", 2, KOFN_ROUNDS)
    stack.wait_until(lambda: "without node-1 CHU de Lyon" in stack.logs("researcher"),
                     timeout=90, what="a round without node-1")
    held = ("node-0", "node-2")
    for service in held:
        stack.signal(service, "STOP")
    try:
        stack.compose("start", "node-1")
        stack.wait_until(lambda: stack.logs("node-1").count(CONNECTED) == 2, timeout=50,
                         what="node-1 reconnected")
    finally:
        for service in held:
            stack.signal(service, "CONT")
    assert stack.wait_exit("researcher", timeout=600) == 0, stack.logs("researcher")[-3000:]
    assert stack.wait_exit("results", timeout=60) == 0
    run = stack.compose_file.parent / "results" / "itest-kofn"
    rows = records.read_rows(run)
    lyon = {r.round: r.took_part for r in rows if r.node == "node-1 CHU de Lyon" and not r.final}
    others = [r.took_part for r in rows if r.node != "node-1 CHU de Lyon" and not r.final]
    assert all(others)
    missed = [r for r, took in lyon.items() if not took]
    assert lyon[1] and lyon[2] and missed and min(missed) >= 3, lyon
    back = [r for r, took in lyon.items() if took and r > max(missed)]
    assert back and back[-1] == KOFN_ROUNDS, lyon  # after the gap, to the end
    summary = (run / records.SUMMARY).read_text()
    assert "- node-1 CHU de Lyon: 1-" in summary and "- node-0 Massachusetts General " \
        f"Hospital: 1-{KOFN_ROUNDS}" in summary


@pytest.fixture
def resume_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setenv(settings.KEEP.env, "1")  # the nodes outlive both researchers
    with running(tmp_path, f"fjresume{os.getpid()}", "itest-resume-ref", rounds=30,
                 epochs=10) as stack:
        yield stack


def _metrics(run: Path) -> list[dict[str, object]]:
    """metrics.jsonl without what differs between runs by nature (ids, wall times)."""
    timing = {"run_id", "round_seconds", "node_seconds", "training_seconds",
              "training_cpu_seconds"}
    return [{k: v for k, v in r.to_json().items() if k not in timing}
            for r in records.read_rows(run)]


def test_a_researcher_killed_mid_run_resumes_to_the_uninterrupted_results(
        resume_stack: Stack) -> None:
    """Reference: an uninterrupted run. Then the same experiment, its researcher killed
    after round 3 and restarted with the same run id and FEDJOURNEY_RESUME=1 (what
    `scripts/run --resume` sets): it continues from round 4 to the same metrics."""
    stack = resume_stack
    results = stack.compose_file.parent / "results"
    assert stack.wait_exit("researcher", timeout=300) == 0, stack.logs("researcher")[-3000:]
    assert stack.wait_exit("results", timeout=60) == 0
    reference = _metrics(results / "itest-resume-ref")

    again = {settings.RUN_ID.env: "itest-resume", settings.KEEP.env: "1"}
    stack.compose("up", "-d", "--no-deps", "researcher", "results", env=again)
    stack.kill_after_round("researcher", 3, 30)
    assert not (results / "itest-resume").exists()
    # Without --resume the run id is refused, naming the way out.
    stack.compose("up", "-d", "--no-deps", "researcher", env=again)
    assert stack.wait_exit("researcher", timeout=120) == Exit.REFUSED
    assert "scripts/run --resume itest-resume" in stack.logs("researcher")
    # The first attempt's collector ends on that refusal (its run id's end); only then is
    # a second `up` sure to start a new one rather than find it still running.
    assert stack.wait_exit("results", timeout=60) == 0

    stack.compose("up", "-d", "--no-deps", "researcher", "results",
                  env={**again, settings.RESUME.env: "1"})
    status = stack.wait_exit("researcher", timeout=300)
    logs = stack.logs("researcher")
    assert status == 0, logs[-3000:]
    assert "resuming after round" in logs and "round 1/30 aggregated" not in logs
    assert stack.wait_exit("results", timeout=60) == 0
    resumed = results / "itest-resume"
    assert resumed.is_dir(), stack.logs("results")[-3000:] + logs[-2000:]
    _assert_close(_metrics(resumed), reference)
    run = records.read_run(resumed)
    assert run.resumed_after and run.resumed_after[0] >= 3
    assert sorted(run.round_seconds) == list(range(1, 31))
    assert "Resumed from Fed-BioMed's breakpoint after round" in (
        resumed / records.SUMMARY).read_text()


def _assert_close(got: list[dict[str, object]], want: list[dict[str, object]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for k in g:
            if isinstance(w[k], float):
                assert g[k] == pytest.approx(w[k], abs=1e-6, nan_ok=True), (k, g, w)
            else:
                assert g[k] == w[k], (k, g, w)


@pytest.fixture
def hang_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setenv(settings.KEEP.env, "0")
    # Rounds of a few seconds (many epochs, up to the policy's cap of 100, on more patients):
    # the stop lands inside a round, not after them.
    with running(tmp_path, f"fjhang{os.getpid()}", "itest-hang", population=45, rounds=4,
                 epochs=100, min_nodes=2, round_deadline_s=20) as stack:
        yield stack


def test_a_hung_node_is_dropped_at_the_round_deadline(hang_stack: Stack) -> None:
    """node-2's processes stopped (SIGSTOP: its connection stays open, nothing answers):
    with min_nodes 2 the next rounds go on without it once round_deadline_s has passed."""
    stack = hang_stack
    stack.wait_until(lambda: "round 1/4 aggregated" in stack.logs("researcher"), timeout=240,
                     what="round 1")
    stack.signal("node-2", "STOP")
    status = stack.wait_exit("researcher", timeout=300)
    logs = stack.logs("researcher")
    assert status == 0, logs[-3000:]
    assert stack.wait_exit("results", timeout=60) == 0
    assert "without node-2 University College London Hospital (no reply)" in logs, logs[-3000:]
    run = stack.compose_file.parent / "results" / "itest-hang"
    rows = records.read_rows(run)
    missed = [r for r in rows if r.node.startswith("node-2") and not r.final
              and not r.took_part]
    assert missed, rows
    # A round without it ends by the deadline, not after Fed-BioMed's ~2 min to notice the
    # hang (sooner when the researcher's transport already failed its request).
    seconds = [(r.round, r.round_seconds) for r in missed]
    assert all(s < 50 for _, s in seconds), seconds
