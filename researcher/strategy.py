"""k-of-n rounds through Fed-BioMed's node-selection extension point (checked against 6.4.1).

Fed-BioMed's DefaultStrategy fails a round as soon as one node is missing or fails (FB408,
FB402). `AtLeast` asks every node the federation found, and aggregates a round when at least
`min_nodes` of them trained successfully, weighting each by its samples (FedAverage over the
nodes present); the others are recorded as dropped for that round.
"""

from __future__ import annotations

from typing import Any

from fedbiomed.common.exceptions import FedbiomedStrategyError
from fedbiomed.researcher.strategies.strategy import Strategy


class AtLeast(Strategy):  # type: ignore[misc]
    """Aggregate a round when at least `min_nodes` nodes trained successfully."""

    def __init__(self, min_nodes: int = 1) -> None:
        super().__init__()
        self._parameters = {"min_nodes": min_nodes}  # what Fed-BioMed's breakpoint keeps
        self.dropped: dict[int, dict[str, str]] = {}  # round -> {node id: why}

    @property
    def min_nodes(self) -> int:
        return int(self._parameters["min_nodes"])

    def sample_nodes(self, from_nodes: list[str], round_i: int) -> list[str]:
        self._sampling_node_history[round_i] = list(from_nodes)
        return list(from_nodes)

    def refine(self, training_replies: dict[str, Any], round_i: int
               ) -> tuple[dict[str, Any], dict[str, float], int, dict[str, Any]]:
        asked = self._sampling_node_history.get(round_i, [])
        why: dict[str, str] = {node: "no reply" for node in asked
                               if node not in training_replies}
        good = {}
        for node, reply in training_replies.items():
            if reply["success"] is True and reply.get("sample_size") is not None:
                good[node] = reply
            else:
                why[node] = f"failed: {reply.get('msg') or 'no sample size'}"
        self.dropped[round_i] = why
        if len(good) < self.min_nodes:
            raise FedbiomedStrategyError(
                f"FB408: round {round_i}: {len(good)} of {len(asked)} nodes trained, at least "
                f"{self.min_nodes} needed")
        self._success_node_history[round_i] = list(good)
        total = sum(int(r["sample_size"]) for r in good.values())
        weights = {node: (int(r["sample_size"]) / total if total else 1 / len(good))
                   for node, r in good.items()}
        return ({node: r["params"] for node, r in good.items()}, weights, total,
                {node: r.get("encryption_factor") for node, r in good.items()})

    def aggregated(self, round_i: int) -> list[str]:
        """The nodes whose updates round_i aggregated (Fed-BioMed counts rounds from 0)."""
        return list(self._success_node_history.get(round_i, []))
