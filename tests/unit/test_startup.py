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


def _spin(seconds: float) -> None:
    """Burn CPU (not wall time) for about `seconds`."""
    import time
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


def test_phases_give_each_step_the_cpu_it_took_and_add_up_to_the_process_total() -> None:
    phases = startup.Phases()
    _spin(0.05)
    phases.mark("imports")
    phases.mark("nothing")
    _spin(0.02)
    phases.mark("imports")  # a step met again adds up
    spent = phases.spent
    assert list(spent) == ["interpreter and fedjourney", "imports", "nothing"]
    assert 0.07 <= spent["imports"] < 0.5
    assert spent["nothing"] < 0.01
    assert phases.total() == pytest.approx(sum(spent.values()))
    assert str(phases).startswith("interpreter and fedjourney ")
    assert "imports 0.0" in str(phases) or "imports 0.1" in str(phases)
