"""Stage B's plain-Python parts: story lines, fingerprints, the feature cache, results."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from fedjourney.config import load_federation
from fedjourney.federated import results
from fedjourney.federated.cache import load_or_build
from fedjourney.federated.fingerprint import dataset_fingerprint
from fedjourney.federated.story import Story, keep
from tests.conftest import DEFAULT_CONFIG


def test_story_lines_carry_run_and_round_and_filter(tmp_path: Path) -> None:
    story = Story("node-0 MGH", tmp_path / "node.log")
    a = story.say("dataset registered")
    b = story.say("validation AUC 0.7", run="r1", round_=3)
    c = story.say("validation AUC 0.8", run="r2", round_=3)
    assert (tmp_path / "node.log").read_text().splitlines() == [a, b, c]
    assert [keep(x, run="r1") for x in (a, b, c)] == [False, True, False]
    assert [keep(x, round_=3) for x in (a, b, c)] == [False, True, True]
    assert not keep("2025-01-01 fedbiomed INFO - something else")


def test_fingerprint_follows_content(default_federation: Path, tmp_path: Path) -> None:
    copy = tmp_path / "c"
    shutil.copytree(default_federation / "center_0", copy)
    first = dataset_fingerprint(copy)
    assert first == dataset_fingerprint(default_federation / "center_0")
    with (copy / "patients.csv").open("a") as fh:
        fh.write("\n")
    assert dataset_fingerprint(copy) != first


def test_features_are_cached_by_spec_and_fingerprint(default_federation: Path,
                                                    tmp_path: Path) -> None:
    spec = load_federation(DEFAULT_CONFIG).feature_spec()
    folder = default_federation / "center_1"
    fp = dataset_fingerprint(folder)
    x1, y1, ids1, hit1 = load_or_build(folder, spec, tmp_path, fp)
    x2, y2, ids2, hit2 = load_or_build(folder, spec, tmp_path, fp)
    np.testing.assert_array_equal(y1, y2)
    assert (hit1, hit2) == (False, True)
    np.testing.assert_array_equal(x1, x2)
    assert x1.shape == (len(ids1), 30) and list(ids1) == list(ids2)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    assert load_or_build(folder, spec, tmp_path, "0" * 64)[3] is False  # new data: rebuilt


def _store(rounds: int) -> tuple[dict, dict]:  # type: ignore[type-arg]
    def series(base: float) -> dict[int, dict[str, list[float]]]:
        return {r: {"iterations": [1], "values": [base / r]} for r in range(1, rounds + 2)}

    store = {"n0": {"training": {"Loss": series(0.7)},
                    "testing_global_updates": {"loss": series(0.6), "auc": series(0.5),
                                               "accuracy": series(0.4)}}}
    replies = {r: {"n0": {"sample_size": 35, "timing": {"rtime_training": 0.2,
                                                         "rtime_total": 0.3}}}
               for r in range(rounds)}
    return store, replies


def test_metric_rows_line_up_rounds_and_final_validation() -> None:
    store, replies = _store(3)
    rows = results.metric_rows("run", 3, store, replies, {"n0": "node-0 MGH"}, {1: 0.5})
    assert [r["round"] for r in rows] == [1, 2, 3, 4]
    assert [r["final"] for r in rows] == [False, False, False, True]
    assert rows[0]["train_loss"] == 0.7 and rows[0]["samples"] == 35
    assert rows[0]["round_seconds"] == 0.5 and rows[3]["train_loss"] is None
    assert rows[3]["validation_auc"] == 0.5 / 4
    assert results.final_table(rows) == {"node-0 MGH": {"auc": 0.125, "accuracy": 0.1,
                                                        "loss": 0.15}}


def test_summary_puts_federated_beside_the_baselines(tmp_path: Path) -> None:
    store, replies = _store(2)
    rows = results.metric_rows("run", 2, store, replies, {"n0": "node-0 MGH"}, {})
    baselines = {"baselines": {"local: MGH": {"MGH": {"auc": 0.61, "accuracy": 0.5, "n": 15}},
                               "centralised (pooled)": {"MGH": {"auc": 0.66, "accuracy": 0.6,
                                                                "n": 15}}}}
    text = results.summary_markdown("run", rows, {"node-0 MGH": "ab" * 32}, 12.0, baselines)
    assert "| local: MGH | 0.610 |" in text and "| centralised (pooled) | 0.660 |" in text
    assert "| **federated (FedAverage)** | 0.167 |" in text
    assert "ab" * 32 in text
    results.learning_curve(rows, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
