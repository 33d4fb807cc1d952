"""A run's progress beside Fed-BioMed's breakpoints: it survives a restart exactly, and a
run id is refused when it cannot start or resume, with the reason and the way out."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedjourney.researcher import checkpoint, run
from fedjourney.researcher.experiment import Metrics


def _progress(config: Path) -> checkpoint.Progress:
    metrics = Metrics()
    metrics.train_loss["n1"][1] = [0.7, 0.6]
    metrics.validation["n1"][1] = {"auc": 0.5, "loss": 0.69}
    metrics.validation["n1"][2] = {"auc": 0.6, "loss": 0.65}
    progress = checkpoint.Progress("r1", checkpoint.config_digest(config, "default"),
                                   {"node-1 CHU": "ab" * 32}, rounds_done=2,
                                   breakpoint="/fbm/x/breakpoint_0001", seconds=3.5,
                                   round_seconds={1: 0.4, 2: 0.5},
                                   took_part={1: ["n1"], 2: []},
                                   dropped={1: {}, 2: {"n1": "no reply"}})
    progress.record(metrics)
    return progress


def test_progress_survives_a_restart_exactly(tmp_path: Path) -> None:
    config = tmp_path / "federation.yaml"
    config.write_text("centres: []\n")
    saved = _progress(config)
    checkpoint.save(saved, tmp_path)
    loaded = checkpoint.load("r1", tmp_path)
    assert loaded == saved  # round keys back to ints, floats exact
    metrics = Metrics()
    assert loaded is not None
    loaded.restore(metrics)
    assert metrics.train_loss["n1"][1] == [0.7, 0.6]
    assert metrics.validation["n1"] == {1: {"auc": 0.5, "loss": 0.69},
                                        2: {"auc": 0.6, "loss": 0.65}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["federation.yaml", "r1.json"]
    checkpoint.forget("r1", tmp_path)
    assert checkpoint.load("r1", tmp_path) is None


@pytest.mark.parametrize(("finished", "resume", "has_progress", "config_changed", "expected"), [
    (False, False, False, False, ""),
    (False, True, True, False, ""),
    (True, False, False, False, "has already finished"),
    (False, True, False, False, "nothing to resume"),
    (False, False, True, False, "scripts/run --resume r1"),
    (False, True, True, True, "the federation config or the experiment changed"),
])
def test_a_run_id_is_refused_with_the_way_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              finished: bool, resume: bool, has_progress: bool,
                                              config_changed: bool, expected: str) -> None:
    monkeypatch.setattr(run, "RESULTS", tmp_path)
    config = tmp_path / "federation.yaml"
    config.write_text("centres: []\n")
    progress = _progress(config) if has_progress else None
    if finished:
        (tmp_path / "r1").mkdir()
    if config_changed:
        config.write_text("centres: [changed]\n")
    why = run._cannot_start("r1", resume, progress,
                            checkpoint.config_digest(config, "default"))
    assert (expected in why) if expected else why == ""
