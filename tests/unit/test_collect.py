"""The results collector ends on this run's end-of-run marker, not on one left behind; it
copies regular files only, capped, under valid run ids, and leaves no partial folder."""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from fedjourney import contract, records, story
from fedjourney.exits import Exit
from fedjourney.researcher import collect


def _mark(source: Path, run_id: str, status: int) -> None:
    tmp = source / f"{contract.RUN_ENDED}.partial"
    tmp.write_text(json.dumps({"run_id": run_id, "status": status}) + "\n")
    tmp.replace(source / contract.RUN_ENDED)


def test_a_marker_left_by_an_earlier_attempt_is_not_this_runs_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect, "SOURCE", tmp_path)
    _mark(tmp_path, "r1", 2)  # a refused attempt at the same run id, a moment ago
    before = collect._marker_identity()
    assert collect._ended(before, "r1") is None  # however recent it is
    (tmp_path / contract.RUN_ENDED).unlink()  # the resumed researcher starts
    assert collect._ended(before, "r1") is None
    _mark(tmp_path, "r1", 0)  # and ends: a new file
    assert collect._ended(before, "r1") == {"run_id": "r1", "status": 0}
    assert collect._ended(before, "r2") is None  # another run's


def test_without_a_marker_at_start_the_first_one_is_the_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect, "SOURCE", tmp_path)
    before = collect._marker_identity()
    assert before is None and collect._ended(before, None) is None
    _mark(tmp_path, "r9", 4)
    assert collect._ended(before, None) == {"run_id": "r9", "status": 4}


# ---- what root copies out of the researcher's volume (issue 17) --------------------------
# The researcher writes the results volume; the collector, root, copies it to the host. Each
# test below is one way a curious researcher could have made it copy, follow or chown what it
# should not, or stop copying the other runs.

# Tests run as root in the images' CI, where a distinct owner shows that chown happened.
UID, GID = (4242, 4343) if os.geteuid() == 0 else (os.getuid(), os.getgid())
OWNER = f"(owner {UID}:{GID})"


@pytest.fixture
def volumes(tmp_path: Path) -> tuple[Path, Path]:
    """The researcher's results volume and the host's ./results (the user's)."""
    source, target = tmp_path / "volume", tmp_path / "host"
    source.mkdir()
    target.mkdir()
    os.chown(target, UID, GID)
    return source, target


def _run(source: Path, name: str = "r1") -> Path:
    """A finished run as the researcher writes it (its own record and a few files)."""
    run = source / name
    (run / "tensorboard" / "node-0_MGH").mkdir(parents=True)
    (run / records.RUN).write_text(json.dumps({"run_id": name, "status": "finished"}))
    (run / records.METRICS).write_text('{"round": 1}\n')
    (run / records.SUMMARY).write_text(f"# fedjourney run {name}\n")
    (run / "tensorboard" / "node-0_MGH" / "events.out.tfevents.1").write_bytes(b"\0" * 64)
    return run


def _collect(volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
             capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The results service's pass over the volume, up to the run's end: its story's lines."""
    monkeypatch.setattr(collect, "SOURCE", volumes[0])
    monkeypatch.setattr(collect, "TARGET", volumes[1])
    monkeypatch.delenv("FEDJOURNEY_RUN_ID", raising=False)
    monkeypatch.delenv("FEDJOURNEY_COLLECT_DEADLINE", raising=False)
    monkeypatch.setattr(collect, "_ended", lambda before, run_id: {"run_id": "r1", "status": 0})
    assert collect.main() == Exit.OK
    lines = [story.parse(line) for line in capsys.readouterr().out.splitlines()]
    assert None not in lines  # every line is a story line: no name forged one
    return [line.message for line in lines if line]


def _tree(folder: Path) -> list[str]:
    """Every path under folder, links and all, none followed."""
    found = []
    for top, dirs, files in os.walk(folder):
        found += [os.path.relpath(os.path.join(top, n), folder) for n in dirs + files]
    return sorted(found)


def _copied(name: str, *without: str) -> str:
    line = f"results/{name}/ copied to the host {OWNER}"
    return line + (f" without {len(without)} {'entry' if len(without) == 1 else 'entries'}: "
                   + "; ".join(without) if without else "")


def test_a_finished_run_is_copied_whole_and_given_to_the_user(
        volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    source, target = volumes
    _run(source)
    assert _copied("r1") in _collect(volumes, monkeypatch, capsys)
    assert _tree(target) == _tree(source) == [
        "r1", "r1/metrics.jsonl", "r1/run.json", "r1/summary.md", "r1/tensorboard",
        "r1/tensorboard/node-0_MGH", "r1/tensorboard/node-0_MGH/events.out.tfevents.1"]
    for path in _tree(target):
        st = os.stat(target / path, follow_symlinks=False)
        assert (st.st_uid, st.st_gid) == (UID, GID), path
        if not (target / path).is_dir():
            assert (target / path).read_bytes() == (source / path).read_bytes()
            assert st.st_mtime_ns == (source / path).stat().st_mtime_ns


def test_a_link_to_a_file_outside_the_run_is_left_out(
        volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source, target = volumes
    secret = tmp_path / "shadow"  # root reads what the researcher cannot: /etc/shadow, say
    secret.write_text("root:$6$secret\n")
    (_run(source) / "notes.md").symlink_to(secret)
    messages = _collect(volumes, monkeypatch, capsys)
    assert "r1/notes.md" not in _tree(target)
    assert not any(b"secret" in (target / p).read_bytes() for p in _tree(target)
                   if (target / p).is_file())
    assert _copied("r1", "notes.md (a symbolic link)") in messages


def test_a_link_to_dev_zero_is_left_out_unread(
        volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Not run against the old collector: it copied /dev/zero until the host's disk was full.
    source, target = volumes
    (_run(source) / records.MODEL).symlink_to("/dev/zero")
    messages = _collect(volumes, monkeypatch, capsys)
    assert "r1/model.pt" not in _tree(target)
    assert _copied("r1", "model.pt (a symbolic link)") in messages


def test_a_fifo_is_left_out_without_waiting_on_it(
        volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    source, target = volumes
    os.mkfifo(_run(source) / "pipe")
    _run(source, "r2")
    messages = _collect(volumes, monkeypatch, capsys)
    assert "r1/pipe" not in _tree(target) and "r2/run.json" in _tree(target)
    assert _copied("r1", "pipe (a FIFO)") in messages and _copied("r2") in messages


def test_a_device_node_is_left_out_unopened(
        volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    source, target = volumes
    try:  # /dev/null's numbers: the old collector copied it, an empty file
        os.mknod(_run(source) / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError as exc:
        pytest.skip(f"cannot make a device node here: {exc.strerror}")
    messages = _collect(volumes, monkeypatch, capsys)
    assert "r1/null" not in _tree(target)
    assert _copied("r1", "null (a device node)") in messages


def test_a_dangling_link_neither_stops_the_collector_nor_leaves_a_partial(
        volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    source, target = volumes
    (_run(source) / "tensorboard" / "gone").symlink_to("/nowhere")
    _run(source, "r2")
    messages = _collect(volumes, monkeypatch, capsys)
    assert [p for p in _tree(target) if "/" not in p] == ["r1", "r2"]  # and no .r1.partial
    assert "r1/tensorboard/gone" not in _tree(target)
    assert _copied("r1", "tensorboard/gone (a symbolic link)") in messages
    assert _copied("r2") in messages


def test_a_file_over_the_cap_is_left_out_unread(
        volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    source, target = volumes
    with open(_run(source) / records.MODEL, "wb") as sparse:  # takes no room in the volume
        sparse.truncate(collect.MAX_FILE_BYTES + 1)
    messages = _collect(volumes, monkeypatch, capsys)
    assert "r1/model.pt" not in _tree(target)
    assert _copied("r1", f"model.pt ({collect.MAX_FILE_BYTES + 1} bytes, over the cap of "
                         "1 GiB a file)") in messages


def test_files_past_the_run_cap_are_left_out(
        volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    source, target = volumes
    monkeypatch.setattr(collect, "MAX_RUN_BYTES", 3000)  # the real 2 GiB takes too long
    run = _run(source)
    (run / "a.bin").write_bytes(b"a" * 1400)
    (run / "b.bin").write_bytes(b"b" * 1400)
    (run / "c.bin").write_bytes(b"c" * 1400)
    messages = _collect(volumes, monkeypatch, capsys)
    assert "r1/b.bin" in _tree(target) and "r1/c.bin" not in _tree(target)
    assert _copied("r1", "c.bin (1400 bytes, past the cap of 3000 bytes a run)") in messages


def test_a_folder_under_an_invalid_run_id_is_not_copied(
        volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    source, target = volumes
    for name in ("bad id", "-rf", "r2\n2026-01-01T00:00:00.000Z [results] run=- round=- | x"):
        _run(source, name)
    _run(source)
    messages = _collect(volumes, monkeypatch, capsys)
    assert [p for p in _tree(target) if "/" not in p] == ["r1"]
    assert "a folder of the results volume not copied: invalid run id 'bad id': use letters, " \
           "digits, '.', '_' and '-' (at most 64)" in messages
    assert sum("a folder of the results volume not copied: invalid run id" in m
               for m in messages) == 3


def test_a_linked_folder_is_not_followed(
        volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source, target = volumes
    elsewhere = tmp_path / "elsewhere"  # a folder of root's: /etc, /root, another volume
    elsewhere.mkdir()
    (elsewhere / records.RUN).write_text("{}")
    (elsewhere / "secret").write_text("not the researcher's\n")
    run = _run(source)
    (run / "linked").symlink_to(elsewhere)
    (source / "r2").symlink_to(elsewhere)  # a whole run that is a link
    messages = _collect(volumes, monkeypatch, capsys)
    assert [p for p in _tree(target) if "secret" in p or p.startswith("r2")] == []
    assert _copied("r1", "linked (a symbolic link)") in messages
    assert "results/r2/ not copied: a symbolic link, not a folder" in messages


def test_a_run_whose_own_record_is_left_out_is_not_delivered(
        volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source, target = volumes
    (tmp_path / "forged.json").write_text('{"status": "finished"}')
    run_json = _run(source) / records.RUN
    run_json.unlink()
    run_json.symlink_to(tmp_path / "forged.json")
    messages = _collect(volumes, monkeypatch, capsys)
    assert _tree(target) == []
    assert "results/r1/ not copied: run.json (a symbolic link): the run's own record" in messages


def test_a_copy_failing_midway_leaves_no_partial_and_the_others_are_copied(
        volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    source, target = volumes
    for name in ("r1", "r2", "r3"):
        _run(source, name)
    pour, calls = collect._pour, []

    def full_after_one_file(src: int, dst: int, limit: int) -> int:
        calls.append(src)
        if len(calls) == 2:  # r1's second file: the host's disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return pour(src, dst, limit)

    monkeypatch.setattr(collect, "_pour", full_after_one_file)
    messages = _collect(volumes, monkeypatch, capsys)
    assert [p for p in _tree(target) if "/" not in p] == ["r2", "r3"]
    assert "results/r1/ not copied: the copy failed midway (No space left on device); " \
           "nothing of it left in ./results" in messages
    assert _copied("r2") in messages and _copied("r3") in messages


def test_an_interrupted_copy_leaves_no_partial(
        volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    source, target = volumes
    _run(source)

    def interrupted(src: int, dst: int, limit: int) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(collect, "_pour", interrupted)
    with pytest.raises(KeyboardInterrupt):
        collect.sync(source, target, UID, GID)
    assert _tree(target) == []


def test_a_partial_left_by_a_killed_collector_is_removed_at_the_next_start(
        volumes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    source, target = volumes
    (target / contract.partial_results("r0") / "tensorboard").mkdir(parents=True)
    (target / contract.partial_results("r0") / records.RUN).write_text("{}")
    (target / ".compare.png.partial").write_bytes(b"")  # `fedjourney compare` writing: a file
    (target / "mine.partial").mkdir()  # the user's own
    _run(source)
    messages = _collect(volumes, monkeypatch, capsys)
    assert [p for p in _tree(target) if "/" not in p] == [".compare.png.partial",
                                                         "mine.partial", "r1"]
    assert "results/.r0.partial/ removed: an earlier collector stopped while copying it" \
        in messages


def test_an_end_marker_is_read_only_when_it_is_a_small_regular_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect, "SOURCE", tmp_path)
    marker = tmp_path / contract.RUN_ENDED
    os.mkfifo(marker)  # the old collector waited on it for ever, past its deadline
    answers: list[object] = []
    reader = threading.Thread(target=lambda: answers.append(collect._ended(None, None)),
                              daemon=True)
    reader.start()
    reader.join(5)
    waited = reader.is_alive()
    if waited:  # let it go: a writer that closes at once
        os.close(os.open(marker, os.O_WRONLY | os.O_NONBLOCK))
        reader.join()
    assert not waited and answers == [None]
    marker.unlink()
    marker.write_text("[1]")  # JSON, not an object: the old collector stopped on it
    assert collect._ended(None, None) is None
    marker.unlink()
    (tmp_path / "elsewhere").write_text(json.dumps({"run_id": "r1", "status": 0}))
    marker.symlink_to(tmp_path / "elsewhere")
    assert collect._ended(None, None) is None
