"""`fedjourney compare` on run folders written in the researcher's own formats."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from fedjourney import contract, records
from fedjourney.cli import main
from fedjourney.host.compare import load_run
from fedjourney.researcher import results
from fedjourney.researcher.experiment import Metrics

ROUNDS = 2
MGH, LYON, UCLH = "node-0 MGH", "node-1 CHU de Lyon", "node-2 UCLH"


def make_run(parent: Path, run_id: str, final_auc: dict[str, float],
             intervals: dict[str, tuple[float, float, int, int]] | None = None,
             **run_json: Any) -> Path:
    """results/<run_id>/ as the researcher writes it: the final model's AUC per node as
    given, its loss 1 - AUC; round r's AUC 0.5 + r/100 on every node. `intervals`: the
    final AUC's (low, high, n, positives) per node, as nodes send them since they do."""
    metrics = Metrics()
    names = {f"id-{label}": label for label in final_auc}
    for node_id, label in names.items():
        for r in range(1, ROUNDS + 2):
            auc = final_auc[label] if r == ROUNDS + 1 else 0.5 + r / 100
            metrics.validation[node_id][r] = {"loss": 1 - auc, "auc": auc, "accuracy": 0.5}
            if intervals and label in intervals:
                low, high, n, positives = intervals[label]
                metrics.validation[node_id][r].update(auc_low=low, auc_high=high, n=float(n),
                                                      positives=float(positives))
    round_seconds = {r: 0.1 * r for r in range(1, ROUNDS + 1)}
    rows = results.metric_rows(run_id, ROUNDS, metrics, {}, names, round_seconds)
    folder = parent / run_id
    folder.mkdir(parents=True)
    records.write_rows(folder, rows)
    (folder / records.SUMMARY).write_text(results.summary_markdown(run_id, rows, {}, 12.34))
    records.write_run(folder, records.RunRecord(
        run_id=run_id, seconds=12.34, rounds=ROUNDS, round_seconds=round_seconds,
        spec_fingerprint="40cc6eaff76f", status=records.FINISHED, **run_json))
    return folder


def table_rows(out: str) -> dict[str, dict[str, str]]:
    """The printed table's rows by run id, each cell under its header."""
    lines = [line.strip().strip("|") for line in out.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].split("|")]
    rows = [dict(zip(header, (c.strip() for c in line.split("|")), strict=True))
            for line in lines[1:]]
    return {row["run"]: row for row in rows}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_table_shows_settings_timings_and_final_auc_per_centre(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = make_run(tmp_path / "results", "run-a", {MGH: 0.8, LYON: 0.6, UCLH: 0.7})
    prox = make_run(tmp_path / "results", "run-b", {MGH: 0.5, LYON: 0.8},
                    experiment={"name": "fedprox", "aggregator": "fedprox", "mu": 0.01,
                                "secagg": "lom", "dp": "local", "sigma": 1.0, "clip": 1},
                    privacy={"epsilon": 1.5, "delta": 1e-5})
    png = tmp_path / "curves.png"
    assert main(["compare", str(plain), str(prox), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert list(rows) == ["run-a", "run-b"]
    a, b = rows["run-a"], rows["run-b"]
    assert a["settings"] == "fedavg, secagg off, dp off"
    assert b["settings"] == "fedprox mu=0.01, secagg lom, dp local sigma=1 clip=1"
    assert (a["rounds"], a["seconds"], a["s/round"]) == ("2", "12.3", "0.15")
    assert (a["ε"], b["ε"]) == ("-", "1.5")
    assert (a["node-0"], a["node-1"], a["node-2"]) == ("0.800", "0.600", "0.700")
    assert (b["node-0"], b["node-1"], b["node-2"]) == ("0.500", "0.800", "-")  # union of centres
    # Plain means over each run's own centres, and the header says so.
    assert (a["mean AUC (unweighted)"], b["mean AUC (unweighted)"]) == ("0.700", "0.650")
    assert (a["mean val loss (unweighted)"], b["mean val loss (unweighted)"]) == (
        "0.300", "0.350")
    assert "node-1: CHU de Lyon" in out and f"wrote {png}" in out
    widths = {len(line) for line in out.splitlines() if line.startswith("|")}
    assert len(widths) == 1  # aligned
    assert png_size(png) == (900, 400)  # one 4-inch plot per run, at 100 dpi
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "results"]  # no .partial


def test_no_privacy_column_without_privacy_and_default_png_here(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run(tmp_path, "only", {MGH: 0.75})
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "only"]) == 0
    row = table_rows(capsys.readouterr().out)["only"]
    assert "ε" not in row and row["node-0"] == "0.750"
    assert png_size(tmp_path / "compare.png") == (500, 400)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.png", "only"]  # no .partial
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [records.METRICS, records.RUN, records.SUMMARY])


def test_curves_plot_validation_against_rounds_aggregated(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path, "r", {MGH: 0.9}))
    assert run.curves() == {MGH: [(0, pytest.approx(0.51)), (1, pytest.approx(0.52)),
                                  (2, 0.9)]}


def _partial(tmp: Path) -> Path:
    folder = make_run(tmp, "half", {MGH: 0.7})
    return folder.rename(tmp / contract.partial_results("half"))


def _status(tmp: Path) -> Path:
    folder = make_run(tmp, "failed", {MGH: 0.7})
    info = json.loads((folder / records.RUN).read_text())
    (folder / records.RUN).write_text(json.dumps({**info, "status": "failed"}))
    return folder


def _no_metrics(tmp: Path) -> Path:
    folder = make_run(tmp, "nometrics", {MGH: 0.7})
    (folder / records.METRICS).unlink()
    return folder


def _truncated(tmp: Path) -> Path:
    folder = make_run(tmp, "truncated", {MGH: 0.7})
    text = (folder / records.METRICS).read_text()
    (folder / records.METRICS).write_text(text[: len(text) // 2])
    return folder


def _newer(tmp: Path) -> Path:
    folder = make_run(tmp, "newer", {MGH: 0.7})
    info = json.loads((folder / records.RUN).read_text())
    (folder / records.RUN).write_text(json.dumps({**info, "format": 2}))
    return folder


def _no_auc(tmp: Path) -> Path:
    folder = make_run(tmp, "noauc", {MGH: 0.7})
    lines = (folder / records.METRICS).read_text().splitlines()
    first = json.loads(lines[0])
    del first["validation_auc"]
    (folder / records.METRICS).write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    return folder


def _file(tmp: Path) -> Path:
    (tmp / records.RUN).write_text("{}")
    return tmp / records.RUN


REFUSED = {
    "not a directory": (_file, "not a directory: "),
    "missing": (lambda tmp: tmp / "nowhere", "no such directory: "),
    "results folder itself": (lambda tmp: (tmp / "results").resolve(),
                              "not a finished fedjourney run: {dir} (no run.json); "
                              "runs are in results/<run-id>/"),
    "no metrics": (_no_metrics, "(no metrics.jsonl)"),
    "not finished": (_status, "did not finish (status 'failed')"),
    "half-written": (_partial, "still being written"),
    "truncated metrics": (_truncated, "unreadable run file "),
    "newer format": (_newer, "in results format 2, newer than this fedjourney reads (up to 1)"
                     ": update fedjourney"),
    "row missing a field": (_no_auc, "line 1: a metrics row lacks validation_auc"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_runs_are_one_line_exit_2_and_nothing_written(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_bad, message = REFUSED[case]
    good = make_run(tmp_path, "good", {MGH: 0.7})
    (tmp_path / "results").mkdir()
    bad = make_bad(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["compare", str(good), str(bad), "--png", str(out / "c.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("fedjourney: error: ")
    assert captured.err.count("\n") == 1 and message.format(dir=bad) in captured.err
    assert list(out.iterdir()) == []


def test_no_run_or_no_png_folder_is_one_line_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["compare"]) == 2
    err = capsys.readouterr().err
    assert err == "fedjourney: error: give at least one RUN_DIR (runs are in " \
        "results/<run-id>/)\n"
    run = make_run(tmp_path, "r", {MGH: 0.7})
    assert main(["compare", str(run), "--png", str(tmp_path / "no" / "c.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "cannot write" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_final_aucs_carry_their_interval_and_split_size_where_runs_have_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = make_run(tmp_path, "new", {MGH: 0.8, LYON: 0.463},
                   intervals={MGH: (0.71, 0.87, 300, 30), LYON: (0.214, 0.726, 15, 2)})
    old = make_run(tmp_path, "old", {MGH: 0.8, LYON: 0.6})
    assert main(["compare", str(new), str(old), "--png", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert rows["new"]["node-0"] == "0.800 [0.71, 0.87] (n=300, 30+)"
    assert rows["new"]["node-1"] == "0.463 [0.21, 0.73] ~ (n=15, 2+)"  # spans 0.5
    assert (rows["old"]["node-0"], rows["old"]["node-1"]) == ("0.800", "0.600")
    assert rows["new"]["mean AUC (unweighted)"] == "0.632"
    assert "~: the interval spans 0.5" in out
    assert len({len(line) for line in out.splitlines() if line.startswith("|")}) == 1
    # Without any interval, no note about them.
    assert main(["compare", str(old), "--png", str(tmp_path / "c.png")]) == 0
    assert "DeLong" not in capsys.readouterr().out
