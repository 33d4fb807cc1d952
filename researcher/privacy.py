"""What local differential privacy cost each centre: epsilon for the run's delta, from
opacus' RDP accountant over every round the centre trained in.

Fed-BioMed 6.4.1 runs DP-SGD with opacus (Poisson sampling at rate 1/len(loader), noise
sigma * clip per step) but reports no epsilon; this recomputes it from what the researcher
knows: sigma, the batch size, epochs (or num_updates) and each round's training samples.
"""

from __future__ import annotations

from fedjourney.config import Privacy
from fedjourney.policy import dp_steps, rdp_epsilon


def history(dp: Privacy, batch_size: int, epochs: int, num_updates: int | None,
            samples_per_round: list[int]) -> list[tuple[float, float, int]]:
    """(sigma, sample rate, steps) of each training round of these sizes, as Fed-BioMed runs
    DP-SGD (policy.dp_steps) and the node's ledger charges it."""
    return [(dp.sigma, *dp_steps(samples, batch_size, epochs, num_updates))
            for samples in samples_per_round]


def epsilon(dp: Privacy, batch_size: int, epochs: int, num_updates: int | None,
            samples_per_round: list[int], before: list[list[float]] | None = None,
            delta: float | None = None) -> float:
    """epsilon at `delta` (default dp.delta) after training rounds of these sizes (RDP
    accountant), composed with `before`: rounds a node's ledger already holds
    ([sigma, sample rate, steps], as its dataset record publishes them)."""
    earlier = [(float(s), float(q), int(n)) for s, q, n in before or []]
    return rdp_epsilon([*earlier, *history(dp, batch_size, epochs, num_updates,
                                           samples_per_round)],
                       dp.delta if delta is None else delta)
