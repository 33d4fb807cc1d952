"""fedjourney.startup: the cyclic collector paused for a role's start-up, then resumed with
what start-up loaded frozen out of its scans."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from fedjourney import startup


@pytest.fixture(autouse=True)
def collector() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


def test_start_up_pauses_the_collector_and_done_resumes_it_with_start_up_frozen() -> None:
    startup.begin()
    assert not gc.isenabled()
    loaded: list[list[int]] = [[] for _ in range(1000)]  # what start-up leaves behind
    frozen_before = gc.get_freeze_count()
    startup.done()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(loaded)


def test_done_twice_or_without_begin_freezes_nothing_more() -> None:
    startup.begin()
    startup.done()
    frozen = gc.get_freeze_count()
    [[] for _ in range(1000)]
    startup.done()  # the collector already runs: nothing new is frozen
    assert gc.get_freeze_count() == frozen
    assert gc.isenabled()
