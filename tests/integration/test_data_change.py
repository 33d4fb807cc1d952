"""Data that changes under a running node, on real containers: a centre's volume edited from
the host between experiments on the kept nodes. A new extract is noticed as the next
experiment's researcher searches: its node checks it again and registers its new
fingerprint, which that run's results show, and trains on its patients; data broken under
the node is refused before round 1, naming the centre and start-up's one-line reason."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from fedjourney import records
from fedjourney.config import Centre
from fedjourney.contract import DATA, node_label, node_service
from fedjourney.exits import Exit
from fedjourney.model import split_order
from fedjourney.node.cache import load_or_build
from fedjourney.node.data import check_data
from fedjourney.testing import LiveFederation, Result, Start
from tests.broken_data import BROKEN, RAW
from tests.conftest import DEFAULT_CONFIG
from tests.unit.test_data_change import drop_patients

KIND = "unparseable date"  # plants RAW in a record: the refusal must not echo it
IMAGE = "fedjourney/base:latest"


def _docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=120)


class Volume:
    """One centre's data volume, its folder replaced from the host through a never-started
    container that mounts it (while its node runs, between experiments)."""

    def __init__(self, live: LiveFederation, centre: Centre, scratch: Path) -> None:
        self.centre = centre
        self.name = f"{live.project}_centre-{centre.id}-data"
        self.holder = f"{live.project}-holder-{centre.id}"
        _docker("create", "--name", self.holder, "-v", f"{self.name}:/c", IMAGE)
        self.pristine = scratch / "pristine"
        _docker("cp", f"{self.holder}:/c/{centre.folder_name}", str(self.pristine))

    def put(self, folder: Path) -> None:
        _docker("run", "--rm", "--user", "0", "-v", f"{self.name}:/c", "--entrypoint", "rm",
                IMAGE, "-rf", f"/c/{self.centre.folder_name}")
        _docker("cp", str(folder), f"{self.holder}:/c/{self.centre.folder_name}")

    def close(self) -> None:
        _docker("rm", self.holder)


@pytest.fixture(scope="module")
def live(federation: Start) -> LiveFederation:
    # A federation of its own (the fixture shares one per settings): its data is broken here.
    return federation(DEFAULT_CONFIG, population=28, rounds=2, epochs=1)


def _run(live: LiveFederation, service: str, run_id: str) -> tuple[Result, list[str]]:
    """A run on the kept nodes, and what `service` said meanwhile (its search included)."""
    before = len(live.logs(service).splitlines())
    result = live.run(run_id=run_id, timeout=300)
    return result, live.logs(service).splitlines()[before:]


def _fingerprints(run: Result) -> dict[str, str]:
    return dict(json.loads((run.folder / records.FINGERPRINTS).read_text()))


def test_data_changed_under_a_running_node(live: LiveFederation, tmp_path: Path) -> None:
    centre = live.fed.centres[1]
    label, service = node_label(centre.id, centre.name), node_service(centre.id)
    spec = live.fed.feature_spec()
    volume = Volume(live, centre, tmp_path)
    try:
        first = live.run(run_id="itest-change-1", timeout=300)
        assert first.ok, "\n".join(first.lines[-40:])
        old = _fingerprints(first)[label]
        before, _, _ = check_data(volume.pristine, centre, spec, live.fed.features_backend,
                                  tmp_path / "host" / "0.json", tmp_path / "host" / "cache")
        assert old == before.fingerprint

        # A new extract: six patients fewer, every file that names them.
        extract = tmp_path / "extract"
        shutil.copytree(volume.pristine, extract)
        drop_patients(extract, 6)
        new, _, _ = check_data(extract, centre, spec, live.fed.features_backend,
                               tmp_path / "host" / "1.json", tmp_path / "host" / "cache")
        assert new.fingerprint != old and new.patients < before.patients
        _, _, ids, _ = load_or_build(extract, spec, tmp_path / "host" / "cache",
                                     new.fingerprint, live.fed.features_backend)
        _, held_out = split_order(ids, live.fed.training.held_out_percent)
        volume.put(extract)

        second, said = _run(live, service, "itest-change-2")
        assert second.ok, "\n".join(second.lines[-40:])
        told = [line for line in said if "data changed since the last check" in line]
        assert len(told) == 1, said
        assert (f"fingerprint {old[:16]} ({before.patients} patients) -> "
                f"{new.fingerprint[:16]}, {new.patients} patients" in told[0]), told
        assert "its registered dataset is updated" in told[0], told
        # Noticed as the researcher searched: this run's results name the new data.
        assert _fingerprints(second)[label] == new.fingerprint
        assert [line for line in said if f"features from cache: {new.patients} patients"
                in line], said
        trained = {r.samples for r in second.rows if r.node == label and not r.final}
        assert trained == {new.patients - held_out}, (trained, new.patients, held_out)
        others = {(r.node, r.samples) for r in first.rows if r.node != label and not r.final}
        assert others == {(r.node, r.samples) for r in second.rows
                          if r.node != label and not r.final}

        third, said = _run(live, service, "itest-change-3")
        assert third.ok, "\n".join(third.lines[-40:])
        assert _fingerprints(third)[label] == new.fingerprint
        assert not [line for line in said
                    if "since the last check" in line or "checked again" in line], said

        # The same extract, broken: refused before round 1, naming the centre and why.
        broken = tmp_path / "broken"
        shutil.copytree(extract, broken)
        BROKEN[KIND][0](broken)
        volume.put(broken)
        fourth, said = _run(live, service, "itest-change-4")
        assert fourth.status == Exit.NOT_READY, "\n".join(fourth.lines[-40:])
        unhealthy = [line for line in said if "UNHEALTHY: " in line]
        assert len(unhealthy) == 1, said
        reason = unhealthy[0].split("UNHEALTHY: ", 1)[1].split("; the data changed", 1)[0]
        assert reason.startswith(f"the centre's data is broken: "
                                 f"{DATA}/{centre.folder_name}/observations.csv: ")
        assert BROKEN[KIND][1] in reason, reason
        assert [f for f in fourth.failures
                if f"{service} ({centre.name}) cannot serve: {reason}" in f], fourth.failures

        # Unchanged since: refused again, without checking the files again.
        fifth, said = _run(live, service, "itest-change-5")
        assert fifth.status == Exit.NOT_READY, "\n".join(fifth.lines[-40:])
        assert not [line for line in said if "UNHEALTHY: " in line], said

        logs = live.logs(service)
        assert "Traceback" not in logs, logs[-3000:]
        patients = set(pl.read_csv(volume.pristine / "patients.csv",
                                   infer_schema=False)["Id"].to_list())
        assert RAW not in logs and not [i for i in patients if i in logs]
    finally:
        volume.close()
