"""Exit statuses: one table, the same meaning in every role and command (the node, the
researcher, the results collector, `fedjourney`, `scripts/run`). docs/running.md's table is
generated from it (`python -m fedjourney.exits`), and a test keeps the two equal.
"""

from __future__ import annotations

import sys
from enum import IntEnum


class Exit(IntEnum):
    """Why a role or command stopped."""

    OK = 0
    FAILED = 1
    REFUSED = 2
    NOT_READY = 3
    ROUND_FAILED = 4
    TIMED_OUT = 5
    INTERRUPTED = 130


MEANING = {
    Exit.OK: "done: the run finished and its results are complete (a node: the run it served "
             "ended)",
    Exit.FAILED: "an unexpected failure: an image build, a container that would not start, "
                 "a crash; the lines before it say which",
    Exit.REFUSED: "refused before anything ran: a bad config, option, setting or run id, a "
                  "stale compose file, a run that cannot be resumed; nothing was written",
    Exit.NOT_READY: "the federation could not start: a node never answered or cannot serve "
                    "(broken data, an unreachable researcher, another certificate than the "
                    "pinned one) or disagrees (another FeatureSpec, a secure-aggregation "
                    "stance); the centres are named",
    Exit.ROUND_FAILED: "a round failed or overran (the nodes are named); `scripts/run "
                       "--resume` continues from the last completed round",
    Exit.TIMED_OUT: "the results collector waited past its deadline for the run to end",
    Exit.INTERRUPTED: "interrupted (Ctrl-C); nothing half-written was kept",
}


def markdown() -> str:
    """The table of exit statuses, for the docs."""
    lines = ["| status | name | meaning |", "|---|---|---|"]
    lines += [f"| {e.value} | `{e.name}` | {MEANING[e]} |" for e in Exit]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
