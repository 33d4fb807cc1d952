"""The `results` service: copies each finished run from the researcher's results volume to
the host's ./results/<run-id>/, owned by whoever owns ./results (the user who cloned the
repository), then exits when the researcher's run has ended.

It runs as root with only CHOWN, DAC_OVERRIDE and FOWNER, no network, the results volume
read-only: giving files to the host user takes chown, which the non-root researcher cannot
do. A run appears on the host complete or not at all (copied under a hidden name, renamed).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from fedjourney import contract, settings
from fedjourney.errors import FedjourneyError
from fedjourney.exits import Exit
from fedjourney.story import Story, setup

SOURCE = Path(contract.RESULTS)
TARGET = Path(contract.HOST_RESULTS)


def sync(source: Path, target: Path, uid: int, gid: int) -> list[str]:
    """Copy finished runs missing from target; the run ids copied."""
    copied = []
    for run in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
        final = target / run.name
        if final.exists():
            continue
        partial = target / contract.partial_results(run.name)
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(run, partial)
        for path in [partial, *partial.rglob("*")]:
            os.chown(path, uid, gid, follow_symlinks=False)
        partial.rename(final)
        copied.append(run.name)
    return copied


def _marker_identity() -> tuple[int, int] | None:
    """The end-of-run marker's (inode, mtime in ns), or None when there is none."""
    try:
        st = (SOURCE / contract.RUN_ENDED).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _ended(before: tuple[int, int] | None, run_id: str | None) -> dict[str, object] | None:
    """The researcher's end-of-run marker, if it is this run's: not the one that was there
    when the collector started (an earlier attempt at the same run id, refused or killed
    then resumed, leaves one behind; the researcher replaces it, a new file, when it ends).
    Comparing times instead lost a resumed run whose refused attempt ended within a second
    of the collector's start."""
    marker = SOURCE / contract.RUN_ENDED
    now = _marker_identity()
    if now is None or now == before:
        return None
    try:
        ended: dict[str, object] = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if run_id and ended.get("run_id") != run_id:
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
    while True:
        ended = _ended(before, run_id)
        for name in sync(SOURCE, TARGET, owner.st_uid, owner.st_gid):
            story.at(name).info(f"results/{name}/ copied to the host "
                                f"(owner {owner.st_uid}:{owner.st_gid})")
        if ended is not None:
            story.at(str(ended.get("run_id"))).info(
                f"the researcher's run ended with status {ended.get('status')}")
            return Exit.OK
        if time.monotonic() > deadline:
            story.error("FAILED: the researcher's run did not end before the deadline "
                        f"({settings.COLLECT_DEADLINE.env})")
            return Exit.TIMED_OUT
        time.sleep(1)  # no inotify in the standard library; a listing a second is cheap


if __name__ == "__main__":
    sys.exit(main())
