"""The notebook researcher on real containers: the shipped notebook runs headless (nbclient)
in the notebook service's container, answering to the kept nodes as `researcher`, through
Fed-BioMed's own Experiment API; its final AUCs are the scripted run's on the same nodes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fedjourney import contract
from fedjourney.researcher.notebook import FINAL_AUC
from fedjourney.testing import Start
from tests.conftest import DEFAULT_CONFIG

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_the_notebook_gives_the_scripted_runs_aucs(federation: Start) -> None:
    live = federation(DEFAULT_CONFIG, population=30, rounds=2, epochs=1)
    # The compose file mounts the notebooks/ folder beside its results folder.
    shutil.copytree(NOTEBOOKS, live.folder / "notebooks", dirs_exist_ok=True)
    scripted = live.run(run_id="itest-notebook-scripted")
    assert scripted.ok, "\n".join(scripted.lines[-40:])

    done = live.compose(
        "--profile", "notebook", "run", "--rm", "--no-deps", "-T", "--use-aliases", "notebook",
        "python3", "-m", "fedjourney.researcher.notebook", "--execute",
        str(contract.NOTEBOOKS / "default-experiment.ipynb"), check=False, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith(FINAL_AUC)]
    assert len(line) == 1, done.stdout[-3000:]
    got = json.loads(line[0][len(FINAL_AUC):])
    want = scripted.final_auc
    assert set(got) == set(want) and len(want) == 3
    for centre, auc in want.items():
        assert auc is not None and got[centre] == pytest.approx(auc, abs=1e-9), (centre, got)
