"""A centre may bring its own Synthea output (`source: {folder: ...}`): its generator only
checks and converts it into the centre's volume, read-only for the node as any other; a bad
folder stops `up` with the generator's one-line error before any node starts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from fedjourney import records
from tests.integration.stack import Stack, small_federation, write_compose


def _with_source(folder: Path, source: Path) -> Stack:
    """The small federation with centre 2 imported from `source`, as a compose project."""
    config, _ = small_federation(folder, rounds=2, epochs=1)
    cfg = yaml.safe_load(config.read_text())
    centre = cfg["centres"][2]
    for key in ("population", "seed", "age_range"):
        centre.pop(key)
    centre["source"] = {"folder": str(source)}
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    project = f"fjown{os.getpid()}{source.name[:6].replace('_', '')}"
    return Stack(write_compose(folder, config), project)


def test_a_real_synthea_export_joins_the_federation(tmp_path: Path, reference: Path) -> None:
    stack = _with_source(tmp_path, reference / "synthea-samples" / "sample_ma10")
    try:
        done = subprocess.run([*stack.base, "up"], capture_output=True, text=True,
                              timeout=600, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "/data/center_2  (11 patients" in stack.logs("generator-2")
        assert "data checked: 11 patients" in stack.logs("node-2")
        runs = list((tmp_path / "results").iterdir())
        assert len(runs) == 1 and (runs[0] / records.METRICS).is_file()
    finally:
        stack.compose("down", "-v", check=False)


def test_a_bad_source_folder_stops_up_before_any_node(tmp_path: Path, reference: Path
                                                      ) -> None:
    source = tmp_path / "export"
    source.mkdir()
    sample = reference / "synthea-samples" / "sample_ma10"
    (source / "observations.csv").write_bytes((sample / "observations.csv").read_bytes())
    stack = _with_source(tmp_path, source)
    try:
        stack.up_fails_before_any_node("generator-2", "patients.csv not found")
    finally:
        stack.compose("down", "-v", check=False)
