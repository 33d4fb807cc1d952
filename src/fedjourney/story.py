"""Story lines — who, which run, which round, what happened — through the standard logging.

Each role calls `setup()` once: its story goes to stdout (what `docker compose logs` shows)
and to a file in its state volume; Fed-BioMed's own INFO/WARNING lines and Python warnings
stay in Fed-BioMed's log file unless FEDJOURNEY_VERBOSE=1 (errors always reach stdout).
`parse()` reads a story line back, whatever `compose logs` put in front of it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedjourney.contract import NO_VALUE, RUN_ID, STORY_FORMAT, STORY_LINE, STORY_TIME

LOGGER = "fedjourney"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class StoryFormatter(logging.Formatter):
    """One line per record: UTC time, who, run, round, message (no traceback)."""

    def __init__(self, who: str) -> None:
        super().__init__()
        self.who = who

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC)
        run = getattr(record, "run", None)
        round_ = getattr(record, "round", None)
        return STORY_FORMAT.format(
            time=when.strftime(STORY_TIME) + f".{int(record.msecs):03d}Z", who=self.who,
            run=run or NO_VALUE, round=NO_VALUE if round_ is None else round_,
            message=" ".join(record.getMessage().splitlines()))


class Story(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A role's narrator: `story.info(...)`, with run and round carried on every line."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]
                ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs

    def at(self, run: str | None = None, round_: int | None = None) -> Story:
        """The same narrator, speaking about this run (and round). A run id that is not
        one (a researcher's, unchecked: a newline in it would forge a line) is not told."""
        if run is not None and not (isinstance(run, str) and RUN_ID.fullmatch(run)):
            run = "invalid-run-id"
        return Story(self.logger, {"run": run, "round": round_})


def setup(who: str, log_file: Path | None, verbose: bool = False) -> Story:
    """Send the story to stdout and log_file; keep Fed-BioMed's chatter off stdout."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    formatter = StoryFormatter(who)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    # Warnings libraries raise on every round (opacus, torch) become log records: kept in
    # the file, on stdout only when verbose.
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    warnings_logger.propagate = False
    if log_file is not None and not warnings_logger.handlers:
        kept = logging.FileHandler(log_file.with_suffix(".warnings.log"), encoding="utf-8")
        warnings_logger.addHandler(kept)
    if verbose:
        warnings_logger.addHandler(logging.StreamHandler(sys.stdout))
    return Story(logger, {"run": None, "round": None})


def quiet_fedbiomed(verbose: bool) -> None:
    """Fed-BioMed's console handler shows errors only (its file keeps everything).

    Call before Fed-BioMed loads a component: loading one already logs.
    """
    if verbose:
        return
    import fedbiomed.common.logger  # noqa: F401 - installs Fed-BioMed's console handler

    # A filter, not a level: Fed-BioMed resets every handler's level when it loads a
    # component. Its file handlers keep everything.
    for handler in logging.getLogger("fedbiomed").handlers:
        if isinstance(handler, logging.StreamHandler) and \
                not isinstance(handler, logging.FileHandler):
            handler.addFilter(lambda record: record.levelno >= logging.ERROR)


@dataclass(frozen=True)
class StoryRecord:
    """A story line read back."""

    time: str
    who: str
    run: str
    round: str
    message: str
    line: str  # the story line itself, without compose's prefix or colours

    @property
    def service(self) -> str:
        return self.who.split(" ", 1)[0]


def parse(line: str) -> StoryRecord | None:
    """The story line in a line of `compose logs` (v2 or 1.29, coloured or not), or None."""
    m = STORY_LINE.search(_ANSI.sub("", line.rstrip("\n")))
    if m is None:
        return None
    return StoryRecord(time=m["time"], who=m["who"], run=m["run"], round=m["round"],
                       message=m["message"], line=m.group(0))


def narrator() -> Story:
    """The story of this process, as `setup()` configured it (code the plan runs uses it)."""
    return Story(logging.getLogger(LOGGER), {"run": None, "round": None})
