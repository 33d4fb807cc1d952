"""`fedjourney approve`: a hospital administrator approves a training plan on its running
node, the step a real deployment asks of each hospital. The plan's code goes to the node on
stdin of `docker compose exec` (node/approve.py), which files it in Fed-BioMed's own
approval registry: nothing bypasses the node's approval."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fedjourney import contract
from fedjourney.config import Centre, Federation
from fedjourney.errors import FedjourneyError
from fedjourney.exits import Exit
from fedjourney.host.logs import compose_command
from fedjourney.planfile import SHIPPED, PlanFile, resolve


def plan_named(fed: Federation, ref: str | None) -> PlanFile:
    """The plan `ref` names: the config's own plan (training or an experiment's) by its
    name, a shipped plan, or a .py file (relative to the config's folder when it is there,
    else to the current one); the training section's when None."""
    if not ref:
        return fed.training.plan
    own = {p.name: p for p in (fed.training.plan, *(t.plan for t in fed.experiments.values()))}
    if ref in own:
        return own[ref]
    if ref not in SHIPPED and not ref.endswith(".py"):
        known = ", ".join(sorted({*SHIPPED, *own}))
        raise FedjourneyError(f"no plan {ref!r}: name one of {known}, or a .py file")
    beside = fed.source.parent if fed.source else Path.cwd()
    return resolve(ref, beside if (beside / ref).is_file() else Path.cwd(), "plan")


def approve(compose_file: Path, centres: list[Centre], plan: PlanFile) -> int:
    """Approve `plan` on the running node of each centre (of the project `compose_file`
    runs); one line per centre. OK when every node approved it."""
    env = {**os.environ, "COMPOSE_FILE": str(compose_file)}
    command = compose_command()
    worst = Exit.OK
    for centre in centres:
        service = contract.node_service(centre.id)
        done = subprocess.run(
            [*command, "exec", "-T", service, "python3", "-m", "fedjourney.node.approve",
             plan.name], input=b"" if plan.shipped else plan.path.read_bytes(),
            capture_output=True, env=env, check=False)
        said = [line for line in done.stdout.decode(errors="replace").splitlines() if line]
        if done.returncode == 0:
            print(said[-1] if said else f"{service}: plan {plan.name} approved")
            continue
        worst = Exit.REFUSED if done.returncode == Exit.REFUSED else Exit.NOT_READY
        why = said[-1] if said else _not_running(done.stderr.decode(errors="replace"),
                                                 service)
        print(f"approve: error: {contract.node_label(centre.id, centre.name)}: {why}")
    return worst


def _not_running(stderr: str, service: str) -> str:
    last = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    return (f"{service} is not running ({last}); plans are approved on running nodes: "
            "`scripts/run --keep` first")
