"""Who the patients are: sex, birth, death and chronic conditions, drawn once per centre.

The whole cohort's identity is drawn up front (it is small: a few arrays per patient) so that
"population counts the living, the dead come on top" can be honoured exactly, as Synthea
does; the journeys are then generated batch by batch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fedjourney.config import Centre, Federation
from fedjourney.countries import COUNTRIES
from fedjourney.generator.clinical import CHRONIC, OTHER_PREVALENCE

YEAR = 365.2425 * 86400.0
DAY = 86400
NO_DEATH = np.iinfo(np.int64).max // 2
_CHUNK = 1024  # candidates drawn at a time: fixed, so the cohort never depends on the machine


@dataclass
class Cohort:
    """Per-patient arrays for one centre (index = patient number)."""

    female: npt.NDArray[np.bool_]
    birth: npt.NDArray[np.int64]  # epoch seconds
    death: npt.NDArray[np.int64]  # epoch seconds, NO_DEATH when alive at the reference date
    chronic: npt.NDArray[np.bool_]  # (n, len(CHRONIC))
    onset: npt.NDArray[np.int64]  # (n, len(CHRONIC)) epoch seconds, NO_DEATH when absent
    former_smoker: npt.NDArray[np.bool_]
    latent: npt.NDArray[np.float64]  # (n, 4) personal physiology offsets
    frailty: npt.NDArray[np.float64]  # multiplies visit rates: some people see doctors more

    @property
    def size(self) -> int:
        return int(self.female.shape[0])

    def take(self, idx: slice) -> Cohort:
        """The patients in idx, as a smaller cohort."""
        return Cohort(**{k: v[idx] for k, v in self.__dict__.items()})


def epoch(day: dt.date) -> int:
    """Midnight UTC of a date, in epoch seconds."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def draw_cohort(fed: Federation, centre: Centre) -> Cohort:
    """Draw candidates until `population` of them are alive at the reference date."""
    rng = np.random.default_rng([centre.seed, 0])
    ref = epoch(fed.reference_date)
    parts: list[Cohort] = []
    alive = 0
    while alive < centre.population:
        part = _draw_candidates(rng, fed, centre, ref, _CHUNK)
        alive_mask = part.death == NO_DEATH
        cumulative = alive + np.cumsum(alive_mask)
        if cumulative[-1] >= centre.population:
            stop = int(np.searchsorted(cumulative, centre.population)) + 1
            part = part.take(slice(0, stop))
        parts.append(part)
        alive = int(cumulative[min(len(cumulative), part.size) - 1])
    return Cohort(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in parts[0].__dict__})


def _draw_candidates(rng: np.random.Generator, fed: Federation, centre: Centre, ref: int,
                     n: int) -> Cohort:
    country = COUNTRIES[centre.country]
    female = rng.random(n) < 0.5
    age = rng.uniform(centre.age_min, centre.age_max + 1, n)
    birth = (ref - age * YEAR).astype(np.int64) // DAY * DAY
    # Gompertz mortality over the history window: deaths grow ~9% a year of age.
    h = fed.history_years
    lo = np.maximum(age - h, 0.0)
    cum_hazard = (np.exp(-10.2 + 0.09 * age) - np.exp(-10.2 + 0.09 * lo)) / 0.09
    cum_hazard *= np.where(female, 0.8, 1.2)
    dies = rng.random(n) < 1.0 - np.exp(-cum_hazard)
    death_age = lo + (age - lo) * np.sqrt(rng.random(n))  # later ages likelier
    death = np.where(dies, birth + (np.maximum(death_age, 0.1) * YEAR).astype(np.int64),
                     NO_DEATH)
    age_end = np.where(dies, death_age, age)

    base = np.array([
        country.hypertension, country.diabetes, country.kidney_disease, country.obesity,
        country.smoking, *[OTHER_PREVALENCE[c.name] for c in CHRONIC[5:]],
    ])
    slope = np.array([c.age_slope for c in CHRONIC])
    ratio = np.array([c.male_ratio for c in CHRONIC])
    sex_mult = np.where(female[:, None], 2 / (1 + ratio), 2 * ratio / (1 + ratio))
    prev = base * np.exp(slope * (age_end[:, None] - 60.0) / 10.0) * sex_mult
    u = rng.random((n, len(CHRONIC)))
    has = u < np.minimum(prev, 0.9)
    # Comorbidity: obesity feeds diabetes; diabetes and hypertension feed kidney disease.
    has[:, 1] |= has[:, 3] & (u[:, 1] < np.minimum(prev[:, 1] * 1.8, 0.9))
    has[:, 2] |= (has[:, 0] | has[:, 1]) & (u[:, 2] < np.minimum(prev[:, 2] * 1.8, 0.9))
    has[:, 5] |= (has[:, 0] | has[:, 4]) & (u[:, 5] < np.minimum(prev[:, 5] * 1.6, 0.9))
    min_age = np.array([c.onset_min_age for c in CHRONIC], dtype=np.float64)
    has &= age_end[:, None] > min_age
    onset_age = min_age + (age_end[:, None] - min_age) * rng.random((n, len(CHRONIC)))
    onset = np.where(has, birth[:, None] + (onset_age * YEAR).astype(np.int64), NO_DEATH)
    former = ~has[:, 4] & (rng.random(n) < country.smoking * 0.9) & (age_end > 25)
    return Cohort(
        female=female,
        birth=birth,
        death=death.astype(np.int64),
        chronic=has,
        onset=onset.astype(np.int64),
        former_smoker=former,
        latent=rng.standard_normal((n, 4)),
        frailty=rng.gamma(3.0, 1 / 3.0, n),
    )
