"""The baselines, computed from the host: `python -m fedjourney.baselines` in a one-off
container of the researcher image, which holds Fed-BioMed and the plans (the host has
neither), on the data the host regenerated.

The container reads what the researcher reads (its role view, users' plan files read-only)
plus the regenerated centres (read-only), has no network, runs as the calling user and
writes one JSON file. Results are cached, keyed by everything they depend on.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from fedjourney import contract
from fedjourney.config import Federation, load_raw
from fedjourney.errors import FedjourneyError
from fedjourney.host.deployment import RESEARCHER_IMAGE
from fedjourney.host.views import views

WORK = contract.PLANS.parent / "baselines"  # the job folder, inside the container


def image_id(image: str = RESEARCHER_IMAGE) -> str:
    """The researcher image's id; FedjourneyError naming the fix when it is missing."""
    found = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image],
                           capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise FedjourneyError(f"the baselines train in {image}, which is not built: run "
                              "scripts/build-images (or scripts/run once)")
    return found.stdout.strip()


def cache_key(fed: Federation, experiment: str | None, backend: str,
              fingerprints: dict[str, str], image: str) -> str:
    """What a cached result depends on: the researcher's view of the config (plan files'
    contents included), the experiment, the backend, the data and the image."""
    t = fed.experiment(experiment)
    plans = sorted({p.path.read_bytes().hex() for p in _plan_files(fed)})
    text = json.dumps({"experiment": experiment, "settings": repr(t), "plans": plans,
                       "spec": fed.feature_spec().fingerprint(), "backend": backend,
                       "data": fingerprints, "image": image}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plan_files(fed: Federation) -> set[Any]:
    trainings = [fed.training, *fed.experiments.values()]
    return {t.plan for t in trainings if not t.plan.shipped}


def compute(fed: Federation, config: Path, experiment: str | None, data_dir: Path,
            backend: str = "polars", focus: int | None = None,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """The baselines of `experiment` (None: the training section) on data_dir's centres;
    the training loss per round of centre `focus` goes to log."""
    view = views(load_raw(config), fed)[contract.RESEARCHER]
    with tempfile.TemporaryDirectory(prefix="fedjourney-baselines-") as tmp:
        work = Path(tmp)
        work.chmod(0o777)  # written by the calling user's uid inside the container
        (work / "researcher.yaml").write_text(yaml.safe_dump(view, sort_keys=False),
                                              encoding="utf-8")
        mounts = [f"{work}:{WORK}", f"{data_dir.resolve()}:{contract.DATA}:ro"]
        mounts += [f"{p.path}:{contract.PLANS / p.path.name}:ro" for p in _plan_files(fed)]
        cmd = ["docker", "run", "--rm", "--network", "none", "--read-only",
               "--tmpfs", "/tmp", "--user", f"{os.getuid()}:{os.getgid()}",
               "--env", "HOME=/tmp", "--env", "MPLCONFIGDIR=/tmp",
               *[arg for m in mounts for arg in ("--volume", m)],
               RESEARCHER_IMAGE, "python3", "-m", "fedjourney.baselines",
               "--config", f"{WORK}/researcher.yaml", "--data", str(contract.DATA),
               "--out", f"{WORK}/baselines.json", "--backend", backend,
               *(["--experiment", experiment] if experiment else []),
               *(["--focus", str(focus)] if focus is not None else [])]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace")
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("  round ") or line.startswith("Training plan "):
                log(line)
            else:
                tail = [*tail[-19:], line]
        if proc.wait() != 0 or not (work / "baselines.json").is_file():
            last = next((t for t in reversed(tail) if t.strip()), "no output")
            raise FedjourneyError(f"the baselines failed in {RESEARCHER_IMAGE} "
                                  f"(status {proc.returncode}): {last}")
        result: dict[str, Any] = json.loads((work / "baselines.json").read_text())
    return result
