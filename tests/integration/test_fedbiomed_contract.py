"""The node's start-up steps on Fed-BioMed's real classes, inside the node image (Fed-BioMed
only runs there), and the Fed-BioMed 6.4.1 behaviour fedjourney relies on."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import DEFAULT_CONFIG


def test_node_steps_and_fedbiomed_contract_in_the_node_image() -> None:
    script = Path(__file__).with_name("fedbiomed_contract.py")
    done = subprocess.run(
        ["docker", "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none",
         # importing Fed-BioMed's researcher classes creates a researcher component
         "-e", "FBM_RESEARCHER_COMPONENT_ROOT=/tmp/researcher",
         "-v", f"{script}:/tmp/check/contract.py:ro",
         "-v", f"{DEFAULT_CONFIG}:/tmp/check/federation.yaml:ro",
         "fedjourney/node:latest", "python3", "/tmp/check/contract.py",
         "/tmp/check/federation.yaml"],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0 and done.stdout.strip().endswith("OK"), \
        done.stdout[-3000:] + done.stderr[-3000:]
