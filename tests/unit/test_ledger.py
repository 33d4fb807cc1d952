"""The node's privacy ledger (node/ledger.py): epsilon over every run, as the researcher
computes it, kept on disk, failing closed, and the refusal over budget."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fedjourney.config import Privacy
from fedjourney.errors import FedjourneyError
from fedjourney.node.ledger import Charge, Ledger
from fedjourney.researcher import privacy

DELTA = 1e-5
BATCH_SIZE = 32
EPOCHS = 2


def round_of(run_id: str, rnd: int, samples: int = 800, sigma: float = 1.0,
             num_updates: int | None = None) -> Charge:
    """A round as Fed-BioMed's DP-SGD runs it: sample rate 1/len(loader), epochs * batches."""
    batches = math.ceil(samples / BATCH_SIZE)
    return Charge(run_id, rnd, sigma, 1 / batches, num_updates or EPOCHS * batches)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.json")


def test_an_empty_ledger_has_spent_nothing(ledger: Ledger) -> None:
    assert ledger.charges() == []
    assert ledger.epsilon(DELTA) == 0.0 and type(ledger.epsilon(DELTA)) is float
    assert not ledger.path.exists()


def test_one_charge_costs_what_the_researcher_reports(ledger: Ledger) -> None:
    ledger.charge(round_of("r1", 1))
    expected = privacy.epsilon(Privacy(sigma=1.0, clip=1.0, delta=DELTA), BATCH_SIZE, EPOCHS,
                               None, [800])
    assert expected > 0
    assert ledger.epsilon(DELTA) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("num_updates", [None, 7])
def test_ledger_and_researcher_agree_over_the_same_rounds(
        ledger: Ledger, num_updates: int | None) -> None:
    samples = [800, 790, 33, 1]  # 25, 25, 2 and 1 batches
    for rnd, n in enumerate(samples, start=1):
        ledger.charge(round_of("r1", rnd, n, sigma=1.3, num_updates=num_updates))
    expected = privacy.epsilon(Privacy(sigma=1.3, clip=1.0, delta=DELTA), BATCH_SIZE, EPOCHS,
                               num_updates, samples)
    assert ledger.epsilon(DELTA) == pytest.approx(expected, rel=1e-12)


def test_rounds_compose(ledger: Ledger) -> None:
    ledger.charge(round_of("r1", 1))
    one = ledger.epsilon(DELTA)
    assert ledger.epsilon(DELTA, extra=round_of("r1", 2)) > one  # extra counts, not recorded
    assert ledger.epsilon(DELTA) == one
    ledger.charge(round_of("r2", 1))  # another run on the same data adds to it as well
    assert ledger.epsilon(DELTA) > one > 0


def test_another_ledger_on_the_same_file_sees_the_charges(ledger: Ledger) -> None:
    charges = [round_of("r1", 1), round_of("r1", 2, sigma=0.8), round_of("r2", 1)]
    for c in charges:
        ledger.charge(c)
    again = Ledger(ledger.path)
    assert again.charges() == charges
    assert again.epsilon(DELTA) == ledger.epsilon(DELTA) > 0


def test_the_file_is_sorted_indented_json_with_no_temporary_file_left(ledger: Ledger) -> None:
    ledger.charge(round_of("r1", 1))
    ledger.charge(round_of("r1", 2))
    text = ledger.path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert data["version"] == 1
    assert [(c["run_id"], c["round"]) for c in data["charges"]] == [("r1", 1), ("r1", 2)]
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert [p.name for p in ledger.path.parent.iterdir()] == ["ledger.json"]


VALID = {"run_id": "r1", "round": 1, "sigma": 1.0, "sample_rate": 0.04, "steps": 50,
         "at": "2026-12-03T08:00:00+00:00"}


@pytest.mark.parametrize("text", [
    "",
    "{not json",
    "\udcff",  # written below as an invalid UTF-8 byte
    "[]",
    json.dumps({"version": 1}),
    json.dumps({"version": 2, "charges": []}),
    json.dumps({"charges": [VALID]}),
    json.dumps({"version": 1, "charges": [VALID, ["r1", 2]]}),
    json.dumps({"version": 1, "charges": [{**VALID, "steps": -50}]}),
    json.dumps({"version": 1, "charges": [{**VALID, "sigma": "1.0"}]}),
    json.dumps({"version": 1, "charges": [{k: v for k, v in VALID.items() if k != "steps"}]}),
], ids=["empty", "not-json", "not-utf8", "not-a-ledger", "no-charges", "newer-format",
        "no-version", "not-a-charge", "negative-steps", "sigma-as-text", "missing-key"])
def test_a_corrupt_ledger_fails_closed_naming_the_file(ledger: Ledger, text: str) -> None:
    ledger.path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    before = ledger.path.read_bytes()
    for use in (ledger.charges, lambda: ledger.epsilon(DELTA),
                lambda: ledger.refusal(100.0, DELTA, round_of("r2", 1)),
                lambda: ledger.charge(round_of("r2", 1))):
        with pytest.raises(FedjourneyError) as err:
            use()
        message = str(err.value)
        assert str(ledger.path) in message and "restore" in message
        assert "\n" not in message
    assert ledger.path.read_bytes() == before  # never overwritten by a shorter history


def test_a_valid_charge_reads_back_from_the_documented_format(ledger: Ledger) -> None:
    ledger.path.write_text(json.dumps({"version": 1, "charges": [VALID]}), encoding="utf-8")
    assert ledger.charges() == [Charge(**VALID)]  # type: ignore[arg-type]


def test_refusal_within_and_over_the_budget(ledger: Ledger) -> None:
    ledger.charge(round_of("r1", 1))
    ledger.charge(round_of("r2", 1))
    spent = ledger.epsilon(DELTA)
    nxt = round_of("r2", 2)
    total = ledger.epsilon(DELTA, extra=nxt)
    assert ledger.refusal(total, DELTA, nxt) is None  # exactly at the budget is within it
    assert ledger.refusal(1000.0, DELTA, nxt) is None
    reason = ledger.refusal(total - 0.01, DELTA, nxt)
    assert reason is not None and reason.startswith("REFUSED: ") and "\n" not in reason
    assert f"to {total:.3g} (delta 1e-05), over its budget of {total - 0.01:g}" in reason
    assert f"spent so far {spent:.3g} in 2 rounds of 2 runs" in reason
    assert len(ledger.charges()) == 2  # asking charges nothing


def test_refusal_never_shows_a_total_within_the_budget(ledger: Ledger) -> None:
    c = round_of("r1", 1)
    total = ledger.epsilon(DELTA, extra=c)
    budget = float(f"{total:.3g}")
    budget = budget if budget < total else budget - 1e-3  # just under the total
    reason = ledger.refusal(budget, DELTA, c)
    assert reason is not None and "in 0 rounds of 0 runs" in reason
    shown = reason.split(" to ", 1)[1].split(" ", 1)[0]
    assert float(shown) > budget


@pytest.mark.parametrize("bad", [{"steps": 0}, {"sample_rate": 0.0}, {"sample_rate": 1.5},
                                 {"sigma": -1.0}, {"sigma": math.nan}, {"steps": True}])
def test_a_charge_that_would_lower_or_break_the_total_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Charge(**{**VALID, **bad})  # type: ignore[arg-type]
