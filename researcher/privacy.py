"""What local differential privacy cost each centre: epsilon for the run's delta, from
opacus' RDP accountant over every round the centre trained in.

Fed-BioMed 6.4.1 runs DP-SGD with opacus (Poisson sampling at rate 1/len(loader), noise
sigma * clip per step) but reports no epsilon; this recomputes it from what the researcher
knows: sigma, the batch size, epochs (or num_updates) and each round's training samples.
"""

from __future__ import annotations

import math

from fedjourney.config import Privacy


def epsilon(dp: Privacy, batch_size: int, epochs: int, num_updates: int | None,
            samples_per_round: list[int]) -> float:
    """epsilon at dp.delta after training rounds of these sizes (RDP accountant)."""
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    for samples in samples_per_round:
        batches = max(1, math.ceil(samples / batch_size))
        steps = num_updates or epochs * batches
        accountant.history.append((dp.sigma, 1 / batches, steps))
    return float(accountant.get_epsilon(delta=dp.delta))
