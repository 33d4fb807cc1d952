"""The `results` service: copies each finished run from the researcher's results volume to
the host's ./results/<run-id>/, owned by whoever owns ./results (the user who cloned the
repository), then exits when the researcher's run has ended.

It runs as root with only CHOWN, DAC_OVERRIDE and FOWNER, no network, the results volume
read-only: giving files to the host user takes chown, which the non-root researcher cannot
do. A run appears on the host complete or not at all (copied under a hidden name, renamed).

Root reading a volume the researcher writes must not do the researcher's bidding, so:

- Only regular files and folders are copied. A symbolic link (to a file outside the run, to
  /dev/zero, dangling, to a folder), a FIFO, a socket or a device node is left out, never
  followed or opened: each entry is checked with lstat, opened with O_NOFOLLOW (and
  O_NONBLOCK: a FIFO swapped in does not hang the open), and checked again once open (fstat:
  the same inode, still a regular file), so swapping it between the check and the open is
  caught. Folders are walked through their descriptors, never through a path a link could
  redirect.
- Sizes are capped (MAX_FILE_BYTES, MAX_RUN_BYTES), and so are a run's entries and depth.
- A folder is copied only under a run id the researcher itself would accept
  (`contract.check_run_id`).
- A bad entry is left out and the rest of the run delivered, with one story line naming each
  entry left out and why; a run whose own record (run.json, metrics.jsonl: what says it
  finished, what `compare` and `report` read) is left out is not delivered at all. A run that
  cannot be copied is named with why, and the collector carries on with the others.
- A run is written into ./results/.<run-id>.partial/, each file and folder given to the user
  as it is created (so that even a killed collector leaves nothing root-owned), renamed once
  complete, and removed on any failure; a partial folder a killed collector left is removed
  at the next start.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fedjourney import contract, records, settings
from fedjourney.errors import FedjourneyError
from fedjourney.exits import Exit
from fedjourney.story import Story, setup

SOURCE = Path(contract.RESULTS)
TARGET = Path(contract.HOST_RESULTS)

# What a run legitimately holds, measured on real runs (results/ of the default and study
# runs): the whole folder is 100-250 kB. model.pt 27 kB (a state_dict: 4 bytes a parameter),
# metrics.jsonl about 480 bytes a (round, centre) row, learning_curve.png 60-80 kB, a
# TensorBoard event file about 55 bytes a scalar (4 a round), summary.md, run.json and the
# YAML files a few kB. At the config's limits (rounds <= 1000, training.hidden <= 4096):
# metrics.jsonl for 1000 rounds of 100 centres is 50 MB, a GRU of width 4096 over 500 codes
# 57M parameters, 230 MB. The caps leave a user's own, larger plan room, and stop what no run
# writes: a sparse file (a terabyte that takes no room in the volume would be copied dense).
MAX_FILE_BYTES = 1 << 30  # 1 GiB: 4x the largest shipped model the config allows
MAX_RUN_BYTES = 2 << 30  # 2 GiB for the whole run: such a model and all the rest
# A run holds 8 files, tensorboard/ and a folder and an event file per centre (one more per
# centre each time the run resumes): about 2000 entries for 1000 centres; 2 folders deep.
MAX_ENTRIES = 10_000
# No inotify in the standard library: the folder is listed this often. A listing costs
# well under a millisecond, and the collector is the last container `up` waits for.
LOOK_EVERY_S = 0.2
MAX_DEPTH = 8
MARKER_BYTES = 64 * 1024  # the end-of-run marker: {"run_id": ..., "status": ...}, ~50 bytes
# The files that make a folder a finished run (records.read_run, records.read_rows): a run
# without them, left out, is not delivered at all.
OWN_RECORD = (records.RUN, records.METRICS)

_CHUNK = 1 << 20
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SHOWN = 5  # entries a story line names; it counts the others
_PLAIN = re.compile(r"[A-Za-z0-9._/*-]{1,120}")


@dataclass
class Outcome:
    """What became of one folder of the results volume."""

    name: str  # its name in the results volume (not always a run id)
    copied: bool = False
    refused: str = ""  # why it was not copied at all
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (entry, why), not copied

    def message(self, uid: int, gid: int) -> str:
        """The one story line that tells it."""
        if self.refused:  # the name only once it is a run id: the reason quotes others
            where = (f"results/{self.name}/" if contract.RUN_ID.fullmatch(self.name) else
                     "a folder of the results volume")
            return f"{where} not copied: {self.refused}"
        text = f"results/{self.name}/ copied to the host (owner {uid}:{gid})"
        if self.left_out:
            text += f" without {_entries(self.left_out)}"
        return text


class _LeftOut(Exception):
    """An entry not copied; the message says why."""


def sync(source: Path, target: Path, uid: int, gid: int,
         told: set[str] | None = None) -> list[Outcome]:
    """Copy the finished runs missing from target: what became of each folder tried. Names in
    `told` (refused before, already said) are not tried again; refused ones are added (the
    next collector, at the next run, tries them again)."""
    told = set() if told is None else told
    outcomes = []
    src = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    dst = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in sorted(os.listdir(src)):
            # Hidden: the researcher's own (a run being written, the end-of-run marker).
            if name.startswith(".") or name in told or _exists(dst, name):
                continue
            outcome = _deliver(src, dst, name, uid, gid)
            if not outcome.copied:
                told.add(name)
            outcomes.append(outcome)
    finally:
        os.close(src)
        os.close(dst)
    return outcomes


def clean(target: Path) -> list[tuple[str, str]]:
    """Remove the partial folders (.<run-id>.partial/) a killed collector left in target:
    (name, why it could not be removed, or "") of each."""
    found = []
    for name in sorted(os.listdir(target)):
        run_id = name[1:-len(".partial")] if name.endswith(".partial") else ""
        if not contract.RUN_ID.fullmatch(run_id) or name != contract.partial_results(run_id):
            continue
        try:
            if stat.S_ISDIR(os.stat(target / name, follow_symlinks=False).st_mode):
                shutil.rmtree(target / name)
                found.append((name, ""))
        except OSError as exc:
            found.append((name, _why(exc)))
    return found


def _deliver(src: int, dst: int, name: str, uid: int, gid: int) -> Outcome:
    """One folder of the results volume copied to the host, or why not; never a partial
    folder left behind, whatever goes wrong."""
    outcome = Outcome(name)
    try:
        contract.check_run_id(name)
    except ValueError as exc:
        outcome.refused = str(exc)
        return outcome
    try:
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise _LeftOut(f"{_kind(st.st_mode)}, not a folder")
        run = _open_folder(src, name, st)
    except (_LeftOut, OSError) as exc:
        outcome.refused = _why(exc)
        return outcome
    partial = contract.partial_results(name)
    try:
        _remove(dst, partial)
        os.mkdir(partial, 0o700, dir_fd=dst)
        os.chown(partial, uid, gid, dir_fd=dst, follow_symlinks=False)
        out = os.open(partial, _FOLDER, dir_fd=dst)
        try:
            _copy_folder(run, out, "", 0, uid, gid, _Budget(), outcome.left_out)
            _finish(out, st)
        finally:
            os.close(out)
        own = [f"{entry} ({why})" for entry, why in outcome.left_out if entry in OWN_RECORD]
        if own:
            outcome.refused = f"{'; '.join(own)}: the run's own record"
            _remove(dst, partial)
            return outcome
        os.rename(partial, name, src_dir_fd=dst, dst_dir_fd=dst)
        outcome.copied = True
    except Exception as exc:  # a failed run is named, the others still copied
        gone = _remove_quietly(dst, partial)
        outcome.refused = (f"the copy failed midway ({_why(exc)}); " +
                           ("nothing of it left in ./results" if gone else
                            f"results/{partial}/ could not be removed"))
    except BaseException:  # interrupted: the partial folder goes, the interruption goes on
        _remove_quietly(dst, partial)
        raise
    finally:
        os.close(run)
    return outcome


@dataclass
class _Budget:
    bytes: int = 0
    entries: int = 0


def _copy_folder(src: int, dst: int, prefix: str, depth: int, uid: int, gid: int,
                 budget: _Budget, left_out: list[tuple[str, str]]) -> None:
    """The regular files and folders of src into dst (both open), given to uid:gid; the
    entries left out, with why, appended to left_out (their paths start with prefix)."""
    # A run's own record first: the entry cap never leaves it out unsaid.
    names = sorted(os.listdir(src), key=lambda n: (depth > 0 or n not in OWN_RECORD, n))
    room = max(MAX_ENTRIES - budget.entries, 0)
    if len(names) > room:
        left_out.append((f"{prefix}*", f"{len(names) - room} entries over the cap of "
                                       f"{MAX_ENTRIES} in a run"))
        names = names[:room]
    for name in names:
        budget.entries += 1
        entry = prefix + name
        try:
            try:
                st = os.stat(name, dir_fd=src, follow_symlinks=False)
            except OSError as exc:  # gone since the listing
                raise _LeftOut(_why(exc)) from None
            if stat.S_ISREG(st.st_mode):
                budget.bytes += _copy_file(src, dst, name, st, uid, gid, budget.bytes)
            elif not stat.S_ISDIR(st.st_mode):
                raise _LeftOut(_kind(st.st_mode))
            elif depth >= MAX_DEPTH:
                raise _LeftOut(f"a folder nested deeper than {MAX_DEPTH}")
            else:
                inner = _open_folder(src, name, st)
                try:
                    os.mkdir(name, 0o700, dir_fd=dst)
                    os.chown(name, uid, gid, dir_fd=dst, follow_symlinks=False)
                    out = os.open(name, _FOLDER, dir_fd=dst)
                    try:
                        _copy_folder(inner, out, entry + "/", depth + 1, uid, gid, budget,
                                     left_out)
                        _finish(out, st)
                    finally:
                        os.close(out)
                finally:
                    os.close(inner)
        except _LeftOut as exc:
            left_out.append((entry, str(exc)))


def _copy_file(src: int, dst: int, name: str, st: os.stat_result, uid: int, gid: int,
               used: int) -> int:
    """Copy the regular file `name` (lstat'ed as st) from folder src to dst, given to uid:gid;
    its size, or _LeftOut."""
    if st.st_size > MAX_FILE_BYTES:
        raise _LeftOut(f"{st.st_size} bytes, over the cap of {_size(MAX_FILE_BYTES)} a file")
    if used + st.st_size > MAX_RUN_BYTES:
        raise _LeftOut(f"{st.st_size} bytes, past the cap of {_size(MAX_RUN_BYTES)} a run")
    try:
        fd = os.open(name, _READ, dir_fd=src)
    except OSError as exc:
        raise _LeftOut(_why(exc)) from None
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise _LeftOut("replaced while it was being copied")
        out = os.open(name, _CREATE, 0o600, dir_fd=dst)
        try:
            os.fchown(out, uid, gid)
            size = _pour(fd, out, min(MAX_FILE_BYTES, MAX_RUN_BYTES - used))
            os.fchmod(out, stat.S_IMODE(now.st_mode) & 0o755)
            os.utime(out, ns=(now.st_atime_ns, now.st_mtime_ns))
        except _LeftOut:
            os.unlink(name, dir_fd=dst)
            raise
        finally:
            os.close(out)
        return size
    finally:
        os.close(fd)


def _pour(src: int, dst: int, limit: int) -> int:
    """Copy src to dst, open files, up to limit bytes: the bytes copied, or _LeftOut when
    there are more (the file grew after its check)."""
    total = 0
    while chunk := os.read(src, min(_CHUNK, limit + 1 - total)):
        total += len(chunk)
        if total > limit:
            raise _LeftOut(f"grew past {_size(limit)} while it was being copied")
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view):]
    return total


def _open_folder(parent: int, name: str, st: os.stat_result) -> int:
    """The folder `name` in parent, lstat'ed as st, opened without following a link."""
    try:
        fd = os.open(name, _FOLDER, dir_fd=parent)
    except OSError as exc:
        raise _LeftOut(_why(exc)) from None
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise _LeftOut("replaced while it was being copied")
    return fd


def _finish(folder: int, st: os.stat_result) -> None:
    """A copied folder's mode and times, as the researcher's."""
    os.fchmod(folder, stat.S_IMODE(st.st_mode) & 0o755)
    os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))


def _exists(folder: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _remove(folder: int, name: str) -> None:
    """Remove `name` in folder (a tree, not followed, or a file) if it is there."""
    try:
        st = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=folder)
    else:
        os.unlink(name, dir_fd=folder)


def _remove_quietly(folder: int, name: str) -> bool:
    """_remove, telling whether it worked."""
    try:
        _remove(folder, name)
    except OSError:
        return False
    return True


_KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a device node", stat.S_IFBLK: "a device node",
          stat.S_IFREG: "a file", stat.S_IFDIR: "a folder"}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _why(exc: BaseException) -> str:
    if isinstance(exc, _LeftOut):
        return str(exc)
    if isinstance(exc, OSError):
        if exc.errno == errno.ELOOP:
            return "replaced by a symbolic link while it was being copied"
        return exc.strerror or type(exc).__name__
    return f"{type(exc).__name__}: {str(exc)[:80]!r}"


def _shown(entry: str) -> str:
    """An entry's path as a story line may show it: quoted, escapes and all, unless plainly
    made of safe characters (a name the researcher chose could forge a line or colour it)."""
    return entry if _PLAIN.fullmatch(entry) else repr(entry)[:80]


def _entries(left_out: list[tuple[str, str]]) -> str:
    shown = [f"{_shown(entry)} ({why})" for entry, why in left_out[:_SHOWN]]
    more = len(left_out) - len(shown)
    return (f"{len(left_out)} {'entry' if len(left_out) == 1 else 'entries'}: "
            + "; ".join(shown) + (f"; and {more} more" if more else ""))


def _size(n: int) -> str:
    return f"{n >> 30} GiB" if n >= 1 << 30 and not n % (1 << 30) else f"{n} bytes"


def _marker_identity() -> tuple[int, int] | None:
    """The end-of-run marker's (inode, mtime in ns), or None when there is none."""
    try:
        st = os.stat(SOURCE / contract.RUN_ENDED, follow_symlinks=False)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _read_marker() -> dict[str, object] | None:
    """The end-of-run marker's content: a regular file's (never a link, a FIFO or a device
    followed or waited on), small, a JSON object; else None."""
    try:
        fd = os.open(SOURCE / contract.RUN_ENDED, _READ)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, MARKER_BYTES + 1)
        ended = json.loads(text) if len(text) <= MARKER_BYTES else None
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return ended if isinstance(ended, dict) else None


def _ended(before: tuple[int, int] | None, run_id: str | None) -> dict[str, object] | None:
    """The researcher's end-of-run marker, if it is this run's: not the one that was there
    when the collector started (an earlier attempt at the same run id, refused or killed
    then resumed, leaves one behind; the researcher replaces it, a new file, when it ends).
    Comparing times instead lost a resumed run whose refused attempt ended within a second
    of the collector's start."""
    now = _marker_identity()
    if now is None or now == before:
        return None
    ended = _read_marker()
    if ended is None or (run_id and ended.get("run_id") != run_id):
        return None
    return ended


def main() -> int:
    story: Story = setup(contract.RESULTS_COLLECTOR, None)
    before = _marker_identity()
    run_id = settings.RUN_ID.raw() or None
    try:
        deadline = time.monotonic() + settings.COLLECT_DEADLINE.read()
    except FedjourneyError as exc:
        story.error(f"FAILED: {exc}")
        return Exit.REFUSED
    owner = TARGET.stat()
    for name, problem in clean(TARGET):
        if problem:
            story.warning(f"results/{name}/, left by an earlier collector stopped while "
                          f"copying it, could not be removed: {problem}")
        else:
            story.info(f"results/{name}/ removed: an earlier collector stopped while copying it")
    told: set[str] = set()
    while True:
        ended = _ended(before, run_id)
        for outcome in sync(SOURCE, TARGET, owner.st_uid, owner.st_gid, told):
            said = story.at(outcome.name)
            (said.info if outcome.copied and not outcome.left_out else said.warning)(
                outcome.message(owner.st_uid, owner.st_gid))
        if ended is not None:
            status = ended.get("status")
            story.at(str(ended.get("run_id"))).info(
                "the researcher's run ended with status "
                f"{status if isinstance(status, int) else repr(status)[:40]}")
            return Exit.OK
        if time.monotonic() > deadline:
            story.error("FAILED: the researcher's run did not end before the deadline "
                        f"({settings.COLLECT_DEADLINE.env})")
            return Exit.TIMED_OUT
        time.sleep(LOOK_EVERY_S)


if __name__ == "__main__":
    sys.exit(main())
