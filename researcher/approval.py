"""Before round 1: has every node approved the experiment's training plan? Fed-BioMed's
training-plan status request asks them (each answers from its own approval registry); a
node that has not is named, with the plan's hash and the command that approves it, instead
of failing the first round with "Training plan is not registered on node"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedjourney.contract import DatasetRecord
from fedjourney.planfile import PlanFile

APPROVED = "Approved"  # Fed-BioMed 6.4.1's TrainingPlanApprovalStatus.APPROVED


def refusals(replies: Mapping[str, Any], nodes: Mapping[str, DatasetRecord], plan: PlanFile,
             digest: str) -> list[str]:
    """One line per centre whose node has not approved `plan` (`digest`, its hash), from
    the status replies by node id; a node that did not answer is named too."""
    lines = []
    for node_id, record in sorted(nodes.items(), key=lambda item: item[1].centre_id):
        reply = replies.get(node_id)
        if reply is None:
            why = "did not answer the plan-status request"
        elif not reply.success:
            why = f"could not check it ({reply.msg})"
        elif reply.approval_obligation and reply.status != APPROVED:
            why = f"has not approved it (status: {reply.status})"
        else:
            continue
        lines.append(f"{record.label} {why}: plan {plan.name} sha256 {digest[:16]}; approve "
                     f"it: fedjourney approve --centre {record.centre_id} {plan.name} (or add "
                     f"it to the centre's approved_plans)")
    return lines
