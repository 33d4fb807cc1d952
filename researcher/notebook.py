"""The notebook researcher (scripts/notebook; Compose profile `notebook`): JupyterLab in the
researcher's image, answering as `researcher` to the kept nodes, and what its notebooks call
to reach them.

  python3 -m fedjourney.researcher.notebook              JupyterLab on port 8888, with the
                                                         token FEDJOURNEY_NOTEBOOK_TOKEN
  python3 -m fedjourney.researcher.notebook --execute NB runs notebook NB headless
                                                         (nbclient) and prints its outputs

In a notebook, `connect()` starts Fed-BioMed's researcher server in this container and waits
for every centre's node; the notebook then drives Fed-BioMed's own Experiment API.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedjourney import contract, settings
from fedjourney.config import Federation, Training, load_federation
from fedjourney.exits import Exit
from fedjourney.researcher.experiment import Metrics, tee
from fedjourney.story import setup

PORT = 8888
# Printed by the shipped notebooks' last cell: the final model's AUC per centre, as JSON.
FINAL_AUC = "FINAL_AUC "


@dataclass(frozen=True)
class Session:
    """What a notebook works with: the config, the experiment's settings and each node's
    centre label by Fed-BioMed node id."""

    fed: Federation
    training: Training
    names: dict[str, str]


def connect(experiment: str | None = None, deadline_s: float = 300) -> Session:
    """Fed-BioMed's researcher server up in this container (the nodes dial it as
    `researcher`), and every centre's node answering with its dataset, within deadline_s.
    RuntimeError, naming what is missing, otherwise."""
    from fedjourney.researcher.run import serve, wait_for_nodes

    fed = load_federation(settings.CONFIG.raw(os.environ))
    chosen = fed.experiment(experiment)
    story = setup(f"{contract.RESEARCHER} (notebook)", None)
    requests = serve(story, verbose=False)
    if requests is None:
        raise RuntimeError("the researcher's component names another host; see above")
    found = wait_for_nodes(requests, fed, deadline_s, story)
    if found is None:
        raise RuntimeError("not every node answered; see above (are the nodes kept up? "
                           "scripts/notebook starts them)")
    return Session(fed, chosen, {node_id: rec.label for node_id, rec in found.items()})


def watch(exp: Any) -> Metrics:
    """Every loss and validation metric the nodes report for `exp`, by node and round (set
    `.round` before each round, as the scripted researcher does)."""
    metrics = Metrics()
    tee(exp, metrics)
    return metrics


def final_auc(metrics: Metrics, session: Session) -> dict[str, float | None]:
    """The final model's AUC on each centre's held-out patients (None: withheld, or a
    centre with one class), by centre label."""
    last = session.training.rounds + 1
    out: dict[str, float | None] = {}
    for node_id, label in sorted(session.names.items(), key=lambda kv: kv[1]):
        value = metrics.validation.get(node_id, {}).get(last, {}).get("auc")
        out[label] = None if value is None or math.isnan(value) else value
    return out


def plot(metrics: Metrics, session: Session) -> Any:
    """The validation AUC of the global model per centre, round by round (matplotlib)."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for node_id, label in sorted(session.names.items(), key=lambda kv: kv[1]):
        rounds = sorted(metrics.validation.get(node_id, {}))
        axis.plot(rounds, [metrics.validation[node_id][r].get("auc", math.nan) for r in rounds],
                  marker="o", label=label)
    axis.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    axis.set(xlabel="round (the last point: the final model)", ylabel="validation AUC",
             title="Global model on each centre's held-out patients")
    axis.legend(fontsize="small")
    return figure


def execute(notebook: Path, timeout_s: int = 900) -> int:
    """Run `notebook` headless in this container and print every text output."""
    import nbclient
    import nbformat

    book = nbformat.read(str(notebook), as_version=4)
    nbclient.NotebookClient(book, timeout=timeout_s, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}}).execute()
    for cell in book.cells:
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            text = text if isinstance(text, str) else "".join(text)
            if text:
                print(text, end="" if text.endswith("\n") else "\n")
    return Exit.OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m fedjourney.researcher.notebook",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--execute", type=Path, metavar="NOTEBOOK",
                        help="run this notebook headless and print its outputs")
    args = parser.parse_args(argv)
    if args.execute:
        return execute(args.execute)
    token = settings.NOTEBOOK_TOKEN.raw(os.environ)
    if len(token) < 16:
        print(f"notebook: error: {settings.NOTEBOOK_TOKEN.env} must be set to a token of 16 "
              "characters or more (JupyterLab would otherwise be open to whoever reaches "
              "its port); scripts/notebook makes one", file=sys.stderr)
        return Exit.REFUSED
    os.environ["JUPYTER_TOKEN"] = token
    home = contract.NOTEBOOKS.parent
    os.execvp("jupyter", ["jupyter", "lab", "--ip=0.0.0.0", f"--port={PORT}", "--no-browser",
                          f"--ServerApp.root_dir={home}", "--ServerApp.open_browser=False"])


if __name__ == "__main__":
    sys.exit(main())
