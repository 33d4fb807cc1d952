"""Log lines that read like a story: who, which run, which round, what happened.

Every line goes to stdout (so `docker compose logs -f node-0` shows it) and is appended to
a file in the role's state volume (kept across restarts); `fedjourney logs` filters them.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from pathlib import Path

LINE = re.compile(r"^(?P<time>\S+) \[(?P<who>[^\]]+)\] run=(?P<run>\S+) round=(?P<round>\S+) "
                  r"\| (?P<message>.*)$")


class Story:
    """One role's narrator."""

    def __init__(self, who: str, path: Path | None = None) -> None:
        self.who = who
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def say(self, message: str, run: str | None = None, round_: int | None = None) -> str:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = (f"{now} [{self.who}] run={run or '-'} round={round_ if round_ is not None else '-'}"
                f" | {message}")
        print(line, file=sys.stdout, flush=True)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        return line


def keep(line: str, run: str | None = None, round_: int | None = None) -> bool:
    """True when a story line matches the run and round filters (other lines never)."""
    m = LINE.search(line)
    if m is None:
        return False
    if run is not None and m["run"] != run:
        return False
    return round_ is None or m["round"] == str(round_)
