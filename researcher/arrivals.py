"""Which nodes connect, as they connect.

Fed-BioMed 6.4.1's researcher server has no callback for a node's arrival, but its gRPC
service logs, at debug level, every task request a node opens, and a node's first one is its
connection. While the researcher waits for its federation it listens to that record, so that
it asks a node for its dataset the moment the node is there, instead of searching every node
again on a timer.
"""

from __future__ import annotations

import logging
import re
import threading
from types import TracebackType

# fedbiomed/transport/server.py, ResearcherServicer.GetTaskUnary (6.4.1).
TASK_REQUEST = re.compile(r"Node: (?P<node>\S+) polling for the tasks")
FEDBIOMED = "fedbiomed"


class Arrivals(logging.Handler):
    """Node ids as their task requests reach the server (a context manager: while it is
    open, Fed-BioMed's logger passes debug records, which its own handlers still drop)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._lock = threading.Lock()
        self._came: set[str] = set()
        self._new = threading.Event()
        self._level = logging.NOTSET

    def emit(self, record: logging.LogRecord) -> None:
        match = TASK_REQUEST.search(record.getMessage())
        if match is not None:
            with self._lock:
                self._came.add(match["node"])
                self._new.set()

    def wait(self, timeout: float) -> set[str]:
        """The nodes that opened a task request since the last call, as soon as there is one,
        or an empty set after `timeout` seconds."""
        self._new.wait(max(timeout, 0.0))
        with self._lock:
            came, self._came = self._came, set()
            self._new.clear()
        return came

    def __enter__(self) -> Arrivals:
        logger = logging.getLogger(FEDBIOMED)
        self._level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        logger = logging.getLogger(FEDBIOMED)
        logger.removeHandler(self)
        logger.setLevel(self._level)
