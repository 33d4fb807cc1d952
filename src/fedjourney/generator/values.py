"""Observation values: per-patient physiology, sex and disease shifts, Synthea's formatting.

Each numeric code draws from a split normal fitted to the 5th/50th/95th percentiles that real
Synthea output shows (catalogue/observations.csv). On top of it: a per-patient offset (the
same person keeps a similar value from visit to visit), and explicit sex and disease effects
for the measures where medicine knows them (height, haemoglobin, creatinine, glucose...).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

import numpy as np
import numpy.typing as npt

from fedjourney.generator.clinical import CHRONIC_INDEX

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ObsCode:
    """One observation code as real Synthea writes it."""

    code: str
    description: str
    category: str
    kind: str  # "numeric" or "text"
    units: str
    p05: float
    p50: float
    p95: float
    texts: tuple[str, ...]


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def load_catalogue() -> dict[str, ObsCode]:
    """The observation codes the builtin engine may emit, keyed by code."""
    path = resources.files("fedjourney.generator") / "catalogue" / "observations.csv"
    out: dict[str, ObsCode] = {}
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            texts = tuple(t.strip() for t in row["top_values"].split("|") if t.strip())
            p50 = _float(row["p50"])
            if p50 is None:  # codes seen once: the single value is the median
                single = _float(texts[0]) if texts else None
                p50 = single if single is not None else 1.0
            p05 = _float(row["p05"])
            p95 = _float(row["p95"])
            out[row["CODE"]] = ObsCode(
                code=row["CODE"],
                description=row["DESCRIPTION"],
                category=row["CATEGORY"],
                kind=row["TYPE"],
                units=row["UNITS"],
                p05=p05 if p05 is not None else p50 * 0.9,
                p50=p50,
                p95=p95 if p95 is not None else p50 * 1.1,
                texts=texts or ("Negative (qualifier value)",),
            )
    return out


# Physiology shared across visits: (female mean, male mean, sd) for adults.
HEIGHT = (162.0, 176.0, 7.0)
# Effects on numeric codes: code -> (female shift, male shift) as multiplicative factors.
SEX_FACTORS: dict[str, tuple[float, float]] = {
    "718-7": (0.95, 1.07), "4544-3": (0.95, 1.06), "789-8": (0.94, 1.06),
    "38483-4": (0.85, 1.15), "2160-0": (0.85, 1.15), "2085-9": (1.12, 0.88),
    "2276-4": (0.6, 1.4), "33914-3": (1.0, 1.0), "6299-2": (0.92, 1.08),
    "3094-0": (0.92, 1.08), "2571-8": (0.9, 1.12), "8867-4": (1.03, 0.97),
}
# code -> {chronic name: multiplicative factor}
DISEASE_FACTORS: dict[str, dict[str, float]] = {
    "8480-6": {"hypertension": 1.16}, "8462-4": {"hypertension": 1.12},
    "2339-0": {"diabetes": 1.6}, "2345-7": {"diabetes": 1.6}, "4548-4": {"diabetes": 1.45},
    "38483-4": {"kidney_disease": 2.0}, "2160-0": {"kidney_disease": 1.8},
    "33914-3": {"kidney_disease": 0.5}, "6299-2": {"kidney_disease": 1.7},
    "3094-0": {"kidney_disease": 1.7}, "14959-1": {"kidney_disease": 3.0, "diabetes": 1.8},
    "718-7": {"anemia": 0.8, "kidney_disease": 0.9}, "4544-3": {"anemia": 0.82},
    "2276-4": {"anemia": 0.3}, "2093-3": {"coronary": 1.15, "obesity": 1.08},
    "18262-6": {"coronary": 1.25, "obesity": 1.1}, "2571-8": {"obesity": 1.3, "diabetes": 1.2},
    "2085-9": {"smoking": 0.9, "obesity": 0.9}, "89579-7": {"coronary": 4.0},
    "33762-6": {"coronary": 3.0}, "19926-5": {"smoking": 0.8}, "38265-5": {"osteoporosis": -8.0},
}
_TOBACCO = ("Never smoked tobacco (finding)", "Ex-smoker (finding)",
            "Smokes tobacco daily (finding)")


class ValueModel:
    """Draws observation values for rows of one batch of patients."""

    def __init__(self, catalogue: dict[str, ObsCode]) -> None:
        self.catalogue = catalogue

    def numeric(self, code: str, rng: np.random.Generator, female: npt.NDArray[np.bool_],
                latent: F64, disease: npt.NDArray[np.bool_], age: F64) -> F64:
        """Values for one code: rows carry the patient's sex, latent offset and diseases."""
        oc = self.catalogue[code]
        n = female.shape[0]
        z = 0.75 * latent + 0.66 * rng.standard_normal(n)
        lo = max(oc.p50 - oc.p05, 1e-9) / 1.645
        hi = max(oc.p95 - oc.p50, 1e-9) / 1.645
        x = oc.p50 + np.where(z < 0, z * lo, z * hi)
        sex = SEX_FACTORS.get(code)
        if sex is not None:
            x = x * np.where(female, sex[0], sex[1])
        for name, factor in DISEASE_FACTORS.get(code, {}).items():
            has = disease[:, CHRONIC_INDEX[name]]
            x = np.where(has, x + factor if factor < 0 else x * factor, x)
        if code in ("8480-6", "8462-4"):  # blood pressure rises with age
            x = x + np.clip(age - 40.0, 0, None) * (0.35 if code == "8480-6" else 0.1)
        if code == "33914-3":  # eGFR falls with age
            x = x - np.clip(age - 40.0, 0, None) * 0.6
        floor = 0.0 if oc.p05 >= 0 else -np.inf
        return np.maximum(x, floor)

    def text(self, code: str, rng: np.random.Generator, disease: npt.NDArray[np.bool_],
             former_smoker: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        """Indices into text_options(code) for each row."""
        if code == "72166-2":
            smoker = disease[:, CHRONIC_INDEX["smoking"]]
            status: npt.NDArray[np.int64] = np.where(smoker, 2, np.where(former_smoker, 1, 0))
            return status.astype(np.int64)
        options = len(self.text_options(code))
        # Earlier values in the catalogue are the commoner ones: geometric-like weights.
        weights = 0.55 ** np.arange(options)
        weights /= weights.sum()
        picks = np.asarray(rng.choice(options, size=disease.shape[0], p=weights))
        return picks.astype(np.int64)

    def text_options(self, code: str) -> tuple[str, ...]:
        if code == "72166-2":
            return _TOBACCO
        return self.catalogue[code].texts
