"""Data that changes under a running node (node/data.py current(), fingerprint.py
stat_signature): each request compares the centre's files with those of the last check by
their stat signature, reading nothing when they are the same; when they differ the centre
is checked again as at start-up, re-fingerprinted, its features built for the new
fingerprint and its record replaced, or recorded UNHEALTHY with start-up's one-line reason."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fedjourney.config import Centre, load_federation
from fedjourney.errors import FedjourneyError
from fedjourney.features import FeatureSpec
from fedjourney.fingerprint import dataset_fingerprint, stat_signature
from fedjourney.node import data
from fedjourney.node.cache import cache_path
from fedjourney.node.data import SIGNATURE, broken_reason, check_data, current, recorded
from tests.broken_data import BROKEN, RAW
from tests.conftest import DEFAULT_CONFIG

FED = load_federation(DEFAULT_CONFIG)
CENTRE = FED.centres[1]
SPEC = FED.feature_spec()


def drop_patients(folder: Path, n: int) -> set[str]:
    """A new extract of the centre: its first n patients gone from patients.csv and every
    line of every CSV file that names one of them; their ids."""
    ids = pl.read_csv(folder / "patients.csv", infer_schema=False)["Id"].to_list()
    gone = set(ids[:n])
    for path in folder.glob("*.csv"):
        lines = path.read_text(encoding="utf-8").split("\n")
        path.write_text("\n".join(line for line in lines
                                  if not any(i in line for i in gone)), encoding="utf-8")
    return gone


class Node:
    """A centre folder checked as a node's start-up checks it, and its own files."""

    def __init__(self, generated: Path, tmp_path: Path) -> None:
        self.folder = tmp_path / "data" / CENTRE.folder_name
        shutil.copytree(generated / CENTRE.folder_name, self.folder)
        self.record_path = tmp_path / "own" / "dataset.json"
        self.cache = tmp_path / "own" / "cache"
        self.asked = 0  # how often the node's own config was read
        self.first, _, _ = check_data(self.folder, CENTRE, SPEC, FED.features_backend,
                                      self.record_path, self.cache)

    def own(self) -> tuple[Centre, FeatureSpec, str]:
        self.asked += 1
        return CENTRE, SPEC, FED.features_backend

    def current(self) -> data.Current:
        return current(self.folder, self.own, self.record_path, self.cache)


@pytest.fixture
def node(default_federation: Path, tmp_path: Path) -> Node:
    return Node(default_federation, tmp_path)


def _expected(folder: Path, tmp_path: Path) -> data.DatasetRecord:
    """The record a node starting now on folder would write."""
    record, _, _ = check_data(folder, CENTRE, SPEC, FED.features_backend,
                              tmp_path / "fresh" / "dataset.json", tmp_path / "fresh" / "cache")
    return record


# The signature


def _edit_in_place_keeping_mtime(folder: Path) -> None:
    """The same size, the same mtime, another byte: only ctime tells."""
    path = folder / "patients.csv"
    st = path.stat()
    raw = bytearray(path.read_bytes())
    raw[-2] = ord("x") if raw[-2] != ord("x") else ord("y")
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _replace_with_a_copy(folder: Path) -> None:
    """The same bytes and mtime in a new file (another inode), as `cp -p` and rsync do."""
    path = folder / "observations.csv"
    shutil.copy2(path, folder / "new.tmp")
    os.replace(folder / "new.tmp", path)


CHANGES = {
    "new extract": lambda f: drop_patients(f, 3),
    "touched": lambda f: os.utime(f / "patients.csv"),
    "edited in place, mtime kept": _edit_in_place_keeping_mtime,
    "replaced by a copy": _replace_with_a_copy,
    "file added": lambda f: (f / "notes.txt").write_text("x"),
    "file removed": lambda f: (f / "devices.csv").unlink(),
    "file renamed": lambda f: (f / "devices.csv").rename(f / "devices2.csv"),
    "file in a new sub-folder": lambda f: (f / "sub").mkdir() or (f / "sub" / "a").touch(),
    "link added": lambda f: (f / "link.csv").symlink_to("patients.csv"),
    "linked folder added": lambda f: (f / "up").symlink_to(f.parent),
    **{f"broken: {kind}": BROKEN[kind][0] for kind in sorted(BROKEN)},
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_change_to_the_files_changes_the_signature(
        change: str, default_federation: Path, tmp_path: Path) -> None:
    folder = tmp_path / CENTRE.folder_name
    shutil.copytree(default_federation / CENTRE.folder_name, folder)
    before = stat_signature(folder)
    assert stat_signature(folder) == before  # untouched: the same
    CHANGES[change](folder)
    assert stat_signature(folder) != before


def test_the_signature_opens_no_file(default_federation: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    folder = default_federation / CENTRE.folder_name
    expected = stat_signature(folder)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a file was opened")

    monkeypatch.setattr("builtins.open", refuse)
    monkeypatch.setattr(Path, "open", refuse)
    monkeypatch.setattr(os, "open", refuse)
    assert stat_signature(folder) == expected


def test_a_missing_folder_has_a_signature(tmp_path: Path) -> None:
    assert stat_signature(tmp_path / "gone") == stat_signature(tmp_path)  # both empty


# The check at each request


def test_untouched_data_costs_no_check(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """The usual request: the record as start-up wrote it, no file read, nothing said."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data was read again")

    for name in ("dataset_fingerprint", "validate", "load_or_build", "read_meta"):
        monkeypatch.setattr(data, name, refuse)
    for _ in range(3):
        now = node.current()
        assert now == data.Current(node.first)  # said nothing, changed nothing
    assert node.asked == 0  # not even the config was read


def test_a_new_extract_is_checked_again_and_trained_on(node: Node, tmp_path: Path) -> None:
    """Patients dropped from the extract: the new fingerprint and patient count, recorded
    as a node starting now on these files would record them, features built for them, told
    in one line."""
    drop_patients(node.folder, 5)
    now = node.current()
    expected = _expected(node.folder, tmp_path)
    assert now.record == expected == recorded(node.record_path)
    assert now.record.fingerprint == dataset_fingerprint(node.folder) != node.first.fingerprint
    assert now.record.patients < node.first.patients
    assert now.changed
    assert now.said == (f"data changed since the last check: fingerprint "
                        f"{node.first.fingerprint[:16]} ({node.first.patients} patients) -> "
                        f"{expected.fingerprint[:16]}, {expected.patients} patients")
    assert cache_path(node.cache, SPEC, expected.fingerprint).is_file()  # the new features
    with np.load(cache_path(node.cache, SPEC, expected.fingerprint)) as saved:
        assert len(saved["patient_ids"]) == expected.patients
    assert node.current() == data.Current(expected)  # then cheap again


def test_touched_but_equal_data_keeps_its_fingerprint(node: Node) -> None:
    os.utime(node.folder / "observations.csv")
    now = node.current()
    assert now.record == node.first and not now.changed
    assert now.said == (f"data checked again (its files were touched): unchanged, sha256 "
                        f"{node.first.fingerprint[:16]}, {node.first.patients} patients")
    assert node.current() == data.Current(node.first)


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_data_broken_under_the_node_is_recorded_unhealthy_with_start_ups_reason(
        kind: str, node: Node, tmp_path: Path) -> None:
    ids = pl.read_csv(node.folder / "patients.csv", infer_schema=False)["Id"].to_list()
    BROKEN[kind][0](node.folder)
    # What start-up says of these files (node/start.py: _checked_data).
    with pytest.raises(FedjourneyError) as refused:
        check_data(node.folder, CENTRE, SPEC, FED.features_backend,
                   tmp_path / "fresh" / "dataset.json", tmp_path / "fresh" / "cache")
    reason = f"the centre's data is broken: {refused.value}"
    now = node.current()
    assert now.record.unhealthy == reason == broken_reason(refused.value)
    assert BROKEN[kind][1] in reason
    assert now.record.fingerprint == "" and now.record.patients == 0 and now.changed
    assert recorded(node.record_path) == now.record  # what the dataset then refuses
    assert now.said == (f"UNHEALTHY: {reason}; the data changed since the last check: this "
                        "node refuses to train on it")
    assert "\n" not in now.said and RAW not in now.said
    assert not [i for i in ids if i in now.said]
    assert node.current() == data.Current(now.record)  # refused again, cheaply


def test_a_reader_error_is_named_by_its_kind_only(node: Node,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """As at start-up: a reader's own message may quote a record."""
    def fail(*args: object, **kwargs: object) -> None:
        raise ValueError(f"bad value {RAW}")

    monkeypatch.setattr(data, "validate", fail)
    os.utime(node.folder / "patients.csv")
    now = node.current()
    assert now.record.unhealthy == ("the centre's data is unreadable (ValueError while "
                                    "reading it)")
    assert RAW not in now.said


def test_data_mended_after_breaking_is_sound_again(node: Node, default_federation: Path
                                                   ) -> None:
    BROKEN["missing file"][0](node.folder)
    assert node.current().record.unhealthy
    shutil.copy2(default_federation / CENTRE.folder_name / "observations.csv", node.folder)
    now = node.current()
    assert now.record == node.first and now.changed
    assert now.said.startswith("data changed since the last check: fingerprint none "
                               "(broken) -> ")


def test_a_folder_gone_is_broken(node: Node) -> None:
    shutil.rmtree(node.folder)
    now = node.current()
    assert now.record.unhealthy == (f"the centre's data is broken: no complete centre at "
                                    f"{node.folder} (did its generator finish?)")


def test_a_record_without_a_signature_is_checked_again(node: Node) -> None:
    """A record written before signatures were (a node upgraded on its state volume)."""
    fields = json.loads(node.record_path.read_text())
    del fields[SIGNATURE]
    node.record_path.write_text(json.dumps(fields))
    assert recorded(node.record_path) == node.first
    now = node.current()
    assert now.record == node.first and now.said.startswith("data checked again")
    assert node.current() == data.Current(node.first)


def test_the_signature_is_the_one_before_the_check(node: Node,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Files changed while the check reads them are checked again at the next request."""
    hash_files = data.dataset_fingerprint

    def changing(folder: Path) -> str:
        digest = hash_files(folder)
        drop_patients(folder, 2)  # a new extract lands while the node hashes the old one
        return digest

    os.utime(node.folder / "patients.csv")
    monkeypatch.setattr(data, "dataset_fingerprint", changing)
    node.current()
    monkeypatch.setattr(data, "dataset_fingerprint", hash_files)
    now = node.current()
    assert now.record.fingerprint == dataset_fingerprint(node.folder)
    assert now.said.startswith("data changed since the last check")


def test_start_up_records_the_signature(node: Node) -> None:
    fields = json.loads(node.record_path.read_text())
    assert fields[SIGNATURE] == stat_signature(node.folder)
