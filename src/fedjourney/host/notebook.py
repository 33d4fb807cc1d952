"""`fedjourney notebook` (scripts/notebook): the notebook researcher. Starts the federation's
nodes, kept, and JupyterLab in a container of the researcher's image that answers to them
as `researcher` (Compose profile `notebook`), published on 127.0.0.1 only, with a token;
prints the address. `--down` stops the notebook and leaves the nodes up.

The scripted researcher must not run meanwhile: both would answer as `researcher`.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from fedjourney import contract, settings
from fedjourney.config import load_federation
from fedjourney.errors import FedjourneyError
from fedjourney.exits import Exit
from fedjourney.host.deployment import NOTEBOOK
from fedjourney.host.logs import compose_command
from fedjourney.host.run import build_images, current_compose_file

# Kept nodes wait this long for a researcher: a notebook's user may open it much later.
NODE_WAIT_S = 86400


def main(config: Path, down: bool, build: bool) -> int:
    """Start (or with `down`, stop) the notebook researcher of `config`'s federation."""
    fed = load_federation(config)
    compose = [*compose_command(), "-f", str(current_compose_file(fed, config)), "--profile",
               NOTEBOOK]
    if down:
        _compose(compose, ["rm", "--stop", "--force", NOTEBOOK], {})
        print(f"notebook: stopped; the nodes stay up (`{' '.join(compose[:-2])} down` "
              "stops them)")
        return Exit.OK
    if build:
        build_images(False, os.environ)
    running = subprocess.run([*compose, "ps", "-q", "--status", "running", contract.RESEARCHER],
                             capture_output=True, text=True, check=False).stdout.strip()
    if running:
        raise FedjourneyError("the scripted researcher is running; wait for its run to end "
                              "(both would answer the nodes as `researcher`)")
    token = settings.NOTEBOOK_TOKEN.raw(os.environ) or secrets.token_hex(24)
    port = settings.NOTEBOOK_PORT.read(os.environ)
    nodes = [contract.node_service(c.id) for c in fed.centres]
    env = {settings.KEEP.env: "1", settings.NODE_DEADLINE.env: str(NODE_WAIT_S),
           settings.NOTEBOOK_TOKEN.env: token}
    print(f"notebook: starting {len(nodes)} nodes (kept) and JupyterLab", flush=True)
    _compose(compose, ["up", "-d", *nodes, NOTEBOOK], env)
    print(f"notebook: open http://127.0.0.1:{port}/lab?token={token}\n"
          f"notebook: notebooks/ is read-only there; save your own in work/ (a volume). "
          f"Stop it with `fedjourney notebook --down`.")
    return Exit.OK


def _compose(compose: list[str], args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run([*compose, *args], capture_output=True, text=True, check=False,
                          env={**os.environ, **env})
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FedjourneyError(f"`{' '.join(compose[-2:])} {' '.join(args[:2])}` failed: {last}")
