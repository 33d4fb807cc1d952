"""Role-scoped views of the federation config: each container reads only what its role needs.

- generator-N: the federation's dates and its own centre (seed, population, ages, source);
- node-N: its own centre (its secure-aggregation stance, approved plans and data-use policy
  included, the policy's secagg_min_parties defaulting to the federation's size), the
  FeatureSpec and the training settings;
- researcher: every centre's id, name, country and region (and its schedule, which the
  researcher carries out), the FeatureSpec, the training settings and the named experiments
  — no seed, population, ages, source or privacy stance (each node states its own), so it
  cannot regenerate any hospital's records, and results/<run>/federation.yaml holds none.
Users' plan files are named where the role mounts them (contract.PLANS).
The host keeps the full config (the baselines are computed there). The views are rendered
with docker-compose.yml (`fedjourney compose --write`) and checked with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fedjourney import contract
from fedjourney.config import STANCE, Centre, Federation

HEADER = ("# GENERATED from data/federation.yaml by `fedjourney compose --write` -- do not edit:"
          "\n# what the {role} container may read of the federation.\n")
PUBLIC = ("id", "name", "country", "region", "city")


def views(raw: dict[str, Any], fed: Federation) -> dict[str, dict[str, Any]]:
    """{service: its view of the raw config}; sources become absolute paths."""
    common = {"version": raw.get("version", 1), "federation": raw.get("federation")}
    shared = {k: raw[k] for k in ("features", "training") if raw.get(k) is not None}
    if isinstance(shared.get("training"), dict) and "plan" in shared["training"]:
        shared["training"] = {**shared["training"],
                              "plan": fed.training.plan.in_container()}
    out: dict[str, dict[str, Any]] = {}
    for entry, centre in zip(raw["centres"], fed.centres, strict=True):
        own = dict(entry)
        own.setdefault("id", centre.id)
        own["approved_plans"] = [p.in_container() for p in centre.approved_plans]
        if centre.policy.secagg_min_parties is not None:
            # A node's own view of the federation's size: the fewest parties it masks with.
            own["policy"] = {**(entry.get("policy") or {}),
                             "secagg_min_parties": centre.policy.secagg_min_parties}
        if centre.source_folder is not None:
            own["source"] = {"folder": str(centre.source_folder)}
        # A generator draws records: the hospital's privacy stance is its node's business.
        drawn = {k: v for k, v in own.items() if k not in STANCE}
        out[contract.generator_service(centre.id)] = {
            "view": contract.generator_service(centre.id), **common, "centres": [drawn]}
        out[contract.node_service(centre.id)] = {
            "view": contract.node_service(centre.id), **common, "centres": [own], **shared}
    listed = [_listed(c) for c in fed.centres]
    experiments = {"experiments": {
        name: {**x, "plan": fed.experiments[name].plan.in_container()} if "plan" in x else x
        for name, x in raw["experiments"].items()}} if raw.get("experiments") else {}
    out[contract.RESEARCHER] = {"view": contract.RESEARCHER, **common, "centres": listed,
                                **shared, **experiments}
    return out


def _listed(centre: Centre) -> dict[str, Any]:
    """A centre as the researcher sees it: who it is, and the schedule it carries out."""
    out: dict[str, Any] = {k: getattr(centre, k) for k in PUBLIC
                           if getattr(centre, k) not in (None, "")}
    if centre.schedule:
        out["schedule"] = [e.as_config() for e in centre.schedule]
    return out


def render(raw: dict[str, Any], fed: Federation) -> dict[str, str]:
    """{file name: text} of every view."""
    return {f"{service}.yaml": HEADER.format(role=service)
            + yaml.safe_dump(view, sort_keys=False, allow_unicode=True)
            for service, view in views(raw, fed).items()}


def write(raw: dict[str, Any], fed: Federation, folder: Path) -> None:
    """Write the views into folder, each atomically; remove views of centres now gone."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = render(raw, fed)
    for name, text in texts.items():
        tmp = folder / f".{name}.partial"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(folder / name)
    for stale in set(p.name for p in folder.glob("*.yaml")) - set(texts):
        (folder / stale).unlink()


def stale(raw: dict[str, Any], fed: Federation, folder: Path) -> list[str]:
    """The view files in folder that differ from the config (or are missing, or extra)."""
    texts = render(raw, fed)
    on_disk = {p.name for p in folder.glob("*.yaml")} if folder.is_dir() else set()
    wrong = [n for n, t in texts.items()
             if not (folder / n).is_file() or (folder / n).read_text(encoding="utf-8") != t]
    return sorted(wrong + list(on_disk - set(texts)))
