"""Host-side commands around a run: filtering the story logs, reporting against baselines."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from fedjourney.config import Federation
from fedjourney.errors import FedjourneyError
from fedjourney.federated import results
from fedjourney.federated.fingerprint import dataset_fingerprint
from fedjourney.federated.story import keep


def compose_command() -> list[str]:
    """`docker compose` (v2) when present, else `docker-compose` (1.29)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True,
                               check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise FedjourneyError("neither `docker compose` nor `docker-compose` is installed")


def story_lines(service: str | None, run: str | None, round_: int | None) -> list[str]:
    """The story lines of one service (or all), from `compose logs`, filtered."""
    cmd = [*compose_command(), "logs", "--no-color", *([service] if service else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FedjourneyError(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-300:]}")
    return [line for line in done.stdout.splitlines() if keep(line, run, round_)]


def report(fed: Federation, run_dir: Path, data_dir: Path, baselines_path: Path) -> Path:
    """Rewrite run_dir/summary.md with the prototype's baselines beside the federated model,
    computing the baselines (same spec, same held-out patients, rounds x epochs epochs) on
    data regenerated on the host, and checking it matches the nodes' fingerprints."""
    from fedjourney.generator import generate
    from fedjourney.prototype import run_prototype

    if not (run_dir / "metrics.jsonl").is_file():
        raise FedjourneyError(f"{run_dir} is not a finished run (no metrics.jsonl)")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    fingerprints: dict[str, str] = json.loads((run_dir / "fingerprints.json").read_text())
    run = json.loads((run_dir / "run.json").read_text())
    try:
        generate(fed, data_dir)
    except FedjourneyError:  # an older generation in this cache folder: it is ours to redo
        generate(fed, data_dir, force=True)
    host = {f"node-{c.id} {c.name}": dataset_fingerprint(data_dir / c.folder_name)
            for c in fed.centres}
    epochs = fed.training.rounds * fed.training.epochs
    spec = fed.feature_spec()
    baselines: dict[str, Any] | None = None
    if baselines_path.is_file():
        baselines = json.loads(baselines_path.read_text())
        if baselines.get("spec_fingerprint") != spec.fingerprint() or \
                baselines.get("epochs") != epochs or baselines.get("fingerprints") != host:
            baselines = None
    if baselines is None:
        baselines = run_prototype(fed, data_dir, fed.centres[0], epochs, "polars",
                                  baselines_path, log=lambda _msg: None)
        baselines["fingerprints"] = host
        baselines_path.write_text(json.dumps(baselines, indent=2) + "\n")
    text = results.summary_markdown(run["run_id"], rows, fingerprints, run["seconds"],
                                    baselines)
    same = all(host.get(node) == fp for node, fp in fingerprints.items())
    text += ("\nThe host regenerated the same data from the config: every centre's fingerprint "
             "matches its node's.\n" if same else
             "\nWARNING: data regenerated on the host differs from the nodes' (fingerprints "
             "above): the baselines were not computed on the same records.\n")
    (run_dir / "summary.md").write_text(text, encoding="utf-8")
    return run_dir / "summary.md"
