"""How the centres differ, from the aggregates each node published with its dataset record
(node/profile.py): size, class balance, ages, the codes they record most, and how far apart
their code distributions are (Jensen-Shannon distance, base 2: 0 same, 1 disjoint), over the
codes both centres published: a suppressed share may be near 0 or near 1 (its complement is
small), so it cannot stand in as 0."""

from __future__ import annotations

import itertools
from typing import Any

from fedjourney.contract import DatasetRecord
from fedjourney.features.vocabulary import MIN_PATIENTS

TOP_CODES = 3


def report(records: list[DatasetRecord]) -> list[str]:
    """summary.md's heterogeneity section (markdown lines); [] when no node sent a profile."""
    profiled = sorted((r for r in records if r.profile), key=lambda r: r.centre_id)
    if not profiled:
        return []
    lines = ["## Heterogeneity of the federation (aggregates published by the nodes)", "",
             "| centre | patients | positive | age (quartiles) | most recorded codes "
             "(share of patients) |", "|---|---|---|---|---|"]
    for r in profiled:
        p = r.profile
        positives = p.get("positives")
        share = f"{positives / p['patients']:.0%}" if positives is not None else "suppressed"
        age = "-".join(map(str, p["age"])) if p.get("age") else "suppressed"
        top = sorted(((v, c) for c, v in p["code_prevalence"].items() if v is not None),
                     reverse=True)[:TOP_CODES]
        codes = ", ".join(f"{c} ({v:.0%})" for v, c in top) or "suppressed"
        lines.append(f"| {r.label} | {p['patients']} | {share} | {age} | {codes} |")
    pairs = distances(profiled)
    if pairs:
        lines += ["", "Jensen-Shannon distance between centres' code distributions "
                  "(over the codes both published):", ""]
        lines += [f"- {a} / {b}: {d:.3f}" for (a, b), d in pairs.items()]
    elif len(profiled) > 1:
        lines += ["", "Jensen-Shannon distance between centres' code distributions: none "
                  "computed, no two centres published a code in common (a share is withheld "
                  f"when fewer than {MIN_PATIENTS} patients have, or lack, the code)."]
    return [*lines, ""]


def distances(records: list[DatasetRecord]) -> dict[tuple[str, str], float]:
    """Pairwise Jensen-Shannon distance of the centres' code-prevalence vectors, over the
    codes both published; no distance for a pair that shares none."""
    from scipy.spatial.distance import jensenshannon

    out = {}
    for a, b in itertools.combinations(records, 2):
        pa: dict[str, Any] = a.profile["code_prevalence"]
        pb: dict[str, Any] = b.profile["code_prevalence"]
        shared = sorted(c for c in pa.keys() & pb.keys()
                        if pa[c] is not None and pb[c] is not None)
        va, vb = [float(pa[c]) for c in shared], [float(pb[c]) for c in shared]
        if sum(va) and sum(vb):
            out[(a.label, b.label)] = float(jensenshannon(va, vb, base=2))
    return out
