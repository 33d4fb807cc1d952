"""`python -m fedjourney.node.approve NAME < plan.py`: the hospital administrator's step on a
running node (`fedjourney approve` runs it through `docker compose exec`). The plan's file
comes on stdin, since a node mounts no file the researcher chose; the node runs the plan's
code as the researcher would send it, and files that code as approved in Fed-BioMed's own
registry (node/component.py), where the running node looks it up on each request. One line
says what was approved, with its hash; the node's story keeps it, with the time.

Exit status (fedjourney/exits.py): OK; REFUSED when the plan cannot run here (a module the
image lacks, a class that needs what stays behind in its file) or the input is no plan.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from fedjourney import contract
from fedjourney.errors import FedjourneyError
from fedjourney.exits import Exit
from fedjourney.node import component
from fedjourney.node.start import COMPONENT, NodeSettings
from fedjourney.planfile import SHIPPED, resolve, sent_source
from fedjourney.story import quiet_fedbiomed, setup


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedjourney.node.approve",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="the plan's name: a shipped plan (its file is then "
                        "this node's own) or the file name of the plan given on stdin")
    args = parser.parse_args(argv)
    s = NodeSettings.load(os.environ)
    story = setup(contract.node_label(s.centre.id, s.centre.name),
                  Path(contract.story_log("node")), s.verbose)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            if args.name in SHIPPED:  # the image's own copy, not what the caller sends
                plan = resolve(args.name, Path(), "plan")
            else:
                path = Path(scratch) / Path(args.name).name
                path.write_bytes(sys.stdin.buffer.read(2_000_000))
                plan = resolve(str(path), Path(), "plan")
            source = sent_source(plan)
    except FedjourneyError as exc:
        story.error(f"REFUSED training plan {args.name}: {exc}")
        return Exit.REFUSED
    quiet_fedbiomed(s.verbose)
    cfg, _ = component.ensure_component(COMPONENT, contract.node_service(s.centre.id),
                                        contract.RESEARCHER, s.port,
                                        s.centre.secure_aggregation)
    digest, now = component.approve_plan(cfg, source, Path(contract.OWN_FILES), plan.name,
                                         component.BY_ADMINISTRATOR)
    story.info(f"training plan {plan.name} {'approved' if now else 'already approved'} by "
               f"the node's administrator: sha256 {digest[:16]}")
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main())
