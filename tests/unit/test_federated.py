"""Stage B's plain-Python parts: the contract, story lines, fingerprints, the feature cache,
the researcher's metrics and results, `fedjourney logs` on real compose output shapes."""

from __future__ import annotations

import datetime as dt
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from fedjourney import contract
from fedjourney.config import load_federation
from fedjourney.fingerprint import dataset_fingerprint
from fedjourney.host.logs import Filters, select, timeline
from fedjourney.node.cache import load_or_build
from fedjourney.researcher import results
from fedjourney.researcher.experiment import Metrics
from fedjourney.story import parse, setup
from tests.conftest import DEFAULT_CONFIG


def test_dataset_record_travels_as_json_not_free_text() -> None:
    record = contract.DatasetRecord(centre_id=1, centre="CHU de Lyon", country="fr",
                                    region="ARA", patients=58, fingerprint="ab" * 32,
                                    spec_fingerprint="cd" * 6)
    assert contract.DatasetRecord.from_description(record.description()) == record
    assert record.service == "node-1" and record.label == "node-1 CHU de Lyon"
    with pytest.raises(ValueError, match="not a fedjourney dataset"):
        contract.DatasetRecord.from_description("CHU (FR); sha256=ab")


def test_run_ids_are_checked_before_naming_a_folder() -> None:
    run_id = contract.new_run_id(dt.datetime(2026, 11, 28, 3, 6, 11, tzinfo=dt.UTC))
    assert run_id.startswith("20261128-030611-") and contract.check_run_id(run_id)
    for bad in ("../x", "a/b", "", "..", "abc\n", "abc\nforged line", "a" * 65):
        with pytest.raises(ValueError, match="invalid run id"):
            contract.check_run_id(bad)


@pytest.fixture
def story_file(tmp_path: Path) -> Path:
    return tmp_path / "node.log"


def test_story_lines_go_to_stdout_and_file_with_run_and_round(
        story_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    story = setup("node-0 MGH", story_file)
    story.info("dataset registered")
    story.at("r1", 3).info("validation AUC 0.7")
    story.at("r2", 3).warning("validation\nAUC 0.8")  # one line, whatever the message
    # A researcher's run id is not trusted: a newline in it would forge a line.
    story.at("r3\n2026-12-03T00:00:00.000Z [researcher] run=x round=1 | forged", 1).info("ok")
    logging.getLogger("fedbiomed").info("Fed-BioMed chatter")  # not a story line
    out = capsys.readouterr().out.splitlines()
    assert out == story_file.read_text().splitlines() and len(out) == 4
    records = [parse(line) for line in out]
    assert [(r.who, r.run, r.round) for r in records if r] == [
        ("node-0 MGH", "-", "-"), ("node-0 MGH", "r1", "3"), ("node-0 MGH", "r2", "3"),
        ("node-0 MGH", "invalid-run-id", "1")]
    assert records[2] is not None and records[2].message == "validation AUC 0.8"


def test_logs_filter_real_compose_prefixes_and_colours(story_file: Path) -> None:
    setup("node-1 CHU de Lyon", story_file).at("run-a", 4).info("validation on 17")
    line = story_file.read_text().strip()
    compose_v1 = f"node-1_1      | {line}"
    compose_v2 = f"\x1b[36mnode-1-1  | \x1b[0m{line}"
    noise = "node-1_1  | 2026-11-28 10:00:00,000 fedbiomed INFO - Node ID is -> abc"
    lines = [compose_v1, compose_v2, noise]
    assert [r.line for r in select(lines, Filters("node-1", "run-a", 4))] == [line, line]
    assert list(select(lines, Filters(run="other"))) == []
    assert list(select(lines, Filters(round=5))) == []
    assert len(list(select(lines, Filters(since="1h")))) == 2
    assert list(select(lines, Filters(since="2999-01-01T00:00:00Z"))) == []


def test_timeline_orders_every_role_by_time() -> None:
    lines = ["researcher_1  | 2026-11-28T10:00:02.000Z [researcher] run=r round=1 | b",
             "node-0_1  | 2026-11-28T10:00:01.500Z [node-0 MGH] run=r round=1 | a",
             "node-1-1  | 2026-11-28T10:00:03.000Z [node-1 Lyon] run=r round=1 | c"]
    assert [r.message for r in timeline(select(lines, Filters(run="r")))] == ["a", "b", "c"]


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
    # The default spec's sequence, flattened: 10 bins x 30 codes.
    assert x1.shape == (len(ids1), 300) and list(ids1) == list(ids2)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    assert load_or_build(folder, spec, tmp_path, "0" * 64)[3] is False  # new data: rebuilt


def _metrics(rounds: int) -> tuple[Metrics, dict[int, dict[str, object]]]:
    """Scalars as Fed-BioMed's nodes send them, one validation per round plus the final."""
    metrics = Metrics()
    for r in range(1, rounds + 1):
        metrics.round = r
        base = {"node_id": "n0", "train": False, "test_on_global_updates": True}
        metrics.on_scalar({**base, "metric": {"loss": 0.6 / r, "auc": 0.5 / r,
                                              "accuracy": 0.4 / r}})
        for loss in (0.9 / r, 0.7 / r):
            metrics.on_scalar({"node_id": "n0", "train": True, "metric": {"Loss": loss}})
    metrics.on_scalar({**base, "metric": {"loss": 0.15, "auc": 0.125, "accuracy": 0.1}})
    replies: dict[int, dict[str, object]] = {
        r: {"n0": {"sample_size": 35, "timing": {"rtime_training": 0.2, "rtime_total": 0.3}}}
        for r in range(rounds)}
    return metrics, replies


def test_metric_rows_line_up_rounds_and_final_validation() -> None:
    metrics, replies = _metrics(3)
    rows = results.metric_rows("run", 3, metrics, replies, {"n0": "node-0 MGH"}, {1: 0.5})
    assert [r.round for r in rows] == [1, 2, 3, 4]
    assert [r.final for r in rows] == [False, False, False, True]
    assert rows[0].train_loss == pytest.approx(0.7) and rows[0].samples == 35
    assert rows[0].train_loss_mean == pytest.approx(0.8)
    assert rows[1].validation_auc == pytest.approx(0.25)
    assert rows[0].round_seconds == 0.5 and rows[3].train_loss is None
    assert results.final_table(rows) == {"node-0 MGH": rows[3]}
    final = rows[3]
    assert (final.validation_auc, final.validation_accuracy, final.validation_loss,
            final.validation_withheld) == (0.125, 0.1, 0.15, False)


def test_summary_and_baselines_have_one_writer_each(tmp_path: Path) -> None:
    from fedjourney.host.report import baselines_markdown

    metrics, replies = _metrics(2)
    rows = results.metric_rows("run", 2, metrics, replies, {"n0": "node-0 MGH"}, {})
    summary = results.summary_markdown("run", rows, {"node-0 MGH": "ab" * 32}, 12.0)
    assert "| node-0 MGH | 0.125 |" in summary and "ab" * 32 in summary
    baselines = {"baselines": {"local: MGH": {"MGH": {"auc": 0.61, "accuracy": 0.5, "n": 15}},
                               "centralised (pooled)": {"MGH": {"auc": 0.66, "accuracy": 0.6,
                                                                "n": 15}}}}
    text = baselines_markdown("run", rows, baselines)
    assert "| local: MGH | 0.610 (n=15) |" in text
    assert "| centralised (pooled) | 0.660 (n=15) |" in text
    assert "| **federated (fedavg, secagg off, dp off)** | 0.125 |" in text
    masked = baselines_markdown("run", rows, baselines, {"name": "secagg", "secagg": "lom"})
    assert "| **federated (secagg: fedavg, secagg lom, dp off)** | 0.125 |" in masked
    results.learning_curve(rows, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("posture", ["withheld", "clear"])
@pytest.mark.parametrize("under_secagg", [True, False])
def test_a_node_withholds_its_metrics_under_secagg_unless_its_centre_sends_them_clear(
        posture: str, under_secagg: bool) -> None:
    import torch

    from fedjourney.contract import METRICS_WITHHELD
    from fedjourney.node import metrics as node_metrics

    node_metrics.set_posture(posture)
    node_metrics.begin_request(under_secagg)
    try:
        out = node_metrics.validation_metrics(torch.tensor([[0.9], [0.2], [0.6]]),
                                              torch.tensor([[1.0], [0.0], [0.0]]), {}, 2)
    finally:
        node_metrics.begin_request(False)
    if under_secagg and posture == "withheld":
        assert out == {METRICS_WITHHELD: 1.0}
    else:
        assert set(out) == {"loss", "auc", "auc_low", "auc_high", "accuracy", "n",
                            "positives"} and out["auc"] == pytest.approx(1.0)
        # Three patients, one positive: a perfect AUC that says nothing.
        assert (out["n"], out["positives"]) == (3.0, 1.0)
        assert out["auc_low"] < 0.5 and out["auc_high"] == 1.0
        assert all(isinstance(v, float) for v in out.values())  # Fed-BioMed's metrics


def test_withheld_metrics_are_reported_as_withheld_not_as_missing() -> None:
    from fedjourney.contract import METRICS_WITHHELD

    metrics, replies = _metrics(2)
    for _ in ("round 2", "final"):
        metrics.on_scalar({"node_id": "n1", "train": False, "test_on_global_updates": True,
                           "metric": {METRICS_WITHHELD: 1.0}})
    rows = results.metric_rows("run", 2, metrics, replies,
                               {"n0": "node-0 MGH", "n1": "node-1 Lyon"}, {})
    final = results.final_table(rows)
    lyon = final["node-1 Lyon"]
    assert (lyon.validation_auc, lyon.validation_accuracy, lyon.validation_loss,
            lyon.validation_withheld) == (None, None, None, True)
    assert not final["node-0 MGH"].validation_withheld
    summary = results.summary_markdown("run", rows, {}, 1.0)
    assert "| node-1 Lyon | " + " | ".join(["withheld"] * 6) + " |" in summary
    assert "metrics_under_secagg" in summary
    assert (lyon.validation_auc_low, lyon.validation_n) == (None, None)


def test_each_centres_auc_carries_its_interval_n_and_positives() -> None:
    """The node's interval and split size reach metrics.jsonl's rows and summary.md, where
    a centre whose interval spans 0.5 is called not informative."""
    metrics, replies = _metrics(2)
    lyon = {"loss": 0.69, "auc": 0.463, "auc_low": 0.214, "auc_high": 0.726,
            "accuracy": 0.471, "n": 15.0, "positives": 2.0}
    uclh = {**lyon, "auc": 0.91, "auc_low": 0.8, "auc_high": 0.96, "n": 300.0,
            "positives": 30.0}
    for node_id, final in (("n1", lyon), ("n2", uclh)):
        for _ in ("round 2", "final"):  # as Fed-BioMed's nodes send them: all floats
            metrics.on_scalar({"node_id": node_id, "train": False,
                               "test_on_global_updates": True, "metric": final})
    rows = results.metric_rows("run", 2, metrics, replies,
                               {"n0": "node-0 MGH", "n1": "node-1 Lyon", "n2": "node-2 UCLH"},
                               {})
    table = results.final_table(rows)
    row = table["node-1 Lyon"]
    assert (row.validation_auc, row.validation_auc_low, row.validation_auc_high,
            row.validation_n, row.validation_positives) == (0.463, 0.214, 0.726, 15, 2)
    assert isinstance(row.validation_n, int) and isinstance(row.validation_positives, int)
    assert table["node-0 MGH"].validation_n is None  # a node that sent no interval
    summary = results.summary_markdown("run", rows, {}, 1.0)
    assert "| centre | AUC | 95% interval | held-out patients | positives | accuracy | BCE |" \
        in summary
    assert ("| node-1 Lyon | 0.463 | [0.21, 0.73] not informative (spans 0.5) | 15 | 2 | "
            "0.471 | 0.690 |") in summary
    assert "| node-2 UCLH | 0.910 | [0.80, 0.96] | 300 | 30 | 0.471 | 0.690 |" in summary
    assert "| node-0 MGH | 0.125 | - | - | - | 0.100 | 0.150 |" in summary
    assert "DeLong" in summary
    assert "No centre's held-out split" not in summary  # UCLH's is informative
    assert results.row_auc_cell(row) == "0.463 [0.21, 0.73] ~ (n=15, 2+)"
    assert results.row_auc_cell(table["node-2 UCLH"]) == "0.910 [0.80, 0.96] (n=300, 30+)"
    assert results.row_auc_cell(table["node-0 MGH"]) == "0.125"
    assert results.auc_cell(math.nan, math.nan, math.nan, 15, 0) == "-"
    assert results.auc_cell(0.5, math.nan, math.nan, 15, 0) == "0.500 (n=15, 0+)"
    only_lyon = [r for r in rows if r.node != "node-2 UCLH"]
    assert "No centre's held-out split tells this model from chance." in \
        results.summary_markdown("run", only_lyon, {}, 1.0)
