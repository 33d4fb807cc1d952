"""Demographic rows (patients.csv) and the centre's reference tables.

organizations, providers and payers are small per-centre tables that encounters point to;
patients.csv carries Synthea's identity columns with the digit-suffixed synthetic names
Synthea uses, so nobody mistakes a record for a real person.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

from fedjourney.config import Centre
from fedjourney.countries import COUNTRIES
from fedjourney.generator.cohort import NO_DEATH, Cohort
from fedjourney.generator.journeys import CentreRefs
from fedjourney.generator.synthea_format import dates, money, uuids

_RACES = ("white", "black", "asian", "hispanic", "other")
_RACE_P = (0.70, 0.12, 0.08, 0.06, 0.04)
_SPECIALITIES = ("GENERAL PRACTICE", "INTERNAL MEDICINE", "EMERGENCY MEDICINE")


def centre_tables(rng: np.random.Generator, centre: Centre
                  ) -> tuple[CentreRefs, dict[str, pl.DataFrame]]:
    """The centre's organizations, providers and payers, and the ids records use."""
    country = COUNTRIES[centre.country]
    city = centre.city or centre.region
    n_orgs = 5
    org_ids = uuids(rng, n_orgs)
    org_names = [centre.name] + [f"{city} Community Clinic {i}" for i in range(1, n_orgs)]
    lat = country.lat_lon[0] + rng.normal(0, 0.05, n_orgs)
    lon = country.lat_lon[1] + rng.normal(0, 0.05, n_orgs)
    street = rng.integers(1, 999, n_orgs)
    streets = rng.choice(len(country.streets), n_orgs)
    organizations = pl.DataFrame({
        "Id": org_ids, "NAME": org_names,
        "ADDRESS": [f"{street[i]} {country.streets[streets[i]]}" for i in range(n_orgs)],
        "CITY": [city] * n_orgs, "STATE": [centre.region] * n_orgs,
        "ZIP": [f"{z:05d}" for z in rng.integers(1000, 99999, n_orgs)],
        "LAT": [f"{x:.6f}" for x in lat], "LON": [f"{x:.6f}" for x in lon],
        "PHONE": [f"555-{p:03d}-{q:04d}" for p, q in zip(rng.integers(100, 999, n_orgs),
                                                      rng.integers(0, 9999, n_orgs), strict=True)],
        "REVENUE": ["0.0"] * n_orgs, "UTILIZATION": ["0"] * n_orgs,
    })
    per_org = 3
    n_prov = n_orgs * per_org
    prov_ids = uuids(rng, n_prov)
    female = rng.random(n_prov) < 0.5
    prov_org = np.arange(n_prov) % n_orgs
    providers = pl.DataFrame({
        "Id": prov_ids, "ORGANIZATION": org_ids[prov_org],
        "NAME": [_name(rng, country.first_names_f if f else country.first_names_m,
                       country.last_names) for f in female],
        "GENDER": np.where(female, "F", "M"),
        "SPECIALITY": [_SPECIALITIES[0 if o else i % 3] for i, o in enumerate(prov_org)],
        "ADDRESS": organizations["ADDRESS"].to_numpy()[prov_org],
        "CITY": [city] * n_prov, "STATE": [centre.region] * n_prov,
        "ZIP": organizations["ZIP"].to_numpy()[prov_org],
        "LAT": organizations["LAT"].to_numpy()[prov_org],
        "LON": organizations["LON"].to_numpy()[prov_org],
        "ENCOUNTERS": ["0"] * n_prov, "PROCEDURES": ["0"] * n_prov,
    })
    n_pay = len(country.payers)
    pay_ids = uuids(rng, n_pay)
    coverage = np.where(np.array(country.payers) == "NO_INSURANCE", 0.0,
                        rng.uniform(0.6, 0.95, n_pay))
    payers = pl.DataFrame({
        "Id": pay_ids, "NAME": list(country.payers),
        "OWNERSHIP": ["NO_INSURANCE" if p == "NO_INSURANCE" else
                      ("GOVERNMENT" if i < 2 else "PRIVATE") for i, p in enumerate(country.payers)],
        "AMOUNT_COVERED": ["0.00"] * n_pay, "AMOUNT_UNCOVERED": ["0.00"] * n_pay,
        "REVENUE": ["0.00"] * n_pay,
        **{c: ["0"] * n_pay for c in ("COVERED_ENCOUNTERS", "UNCOVERED_ENCOUNTERS",
                                      "COVERED_MEDICATIONS", "UNCOVERED_MEDICATIONS",
                                      "COVERED_PROCEDURES", "UNCOVERED_PROCEDURES",
                                      "COVERED_IMMUNIZATIONS", "UNCOVERED_IMMUNIZATIONS",
                                      "UNIQUE_CUSTOMERS", "MEMBER_MONTHS")},
        "QOLS_AVG": [f"{x:.1f}" for x in rng.uniform(0.7, 1.0, n_pay)],
    })
    refs = CentreRefs(organizations=org_ids, providers=prov_ids, payers=pay_ids,
                      payer_coverage=coverage)
    return refs, {"organizations": organizations, "providers": providers, "payers": payers}


def _name(rng: np.random.Generator, first: tuple[str, ...], last: tuple[str, ...]) -> str:
    return (f"{first[rng.integers(len(first))]}{rng.integers(1, 999)} "
            f"{last[rng.integers(len(last))]}{rng.integers(1, 999)}")


def _maybe(mask: npt.NDArray[np.bool_], values: npt.NDArray[np.str_]) -> pl.Series:
    """Text where mask holds, missing (an empty field) elsewhere."""
    return pl.Series(values.astype(str), dtype=pl.String).set(pl.Series(~mask), None)


def patients(rng: np.random.Generator, centre: Centre, co: Cohort, ids: npt.NDArray[np.str_],
             payer_ix: npt.NDArray[np.int64], refs: CentreRefs, ref_epoch: int
             ) -> tuple[pl.DataFrame, npt.NDArray[np.str_]]:
    """patients.csv rows for a batch, and each patient's 'First Last' name."""
    country = COUNTRIES[centre.country]
    n = co.size
    fi = rng.integers(0, 10**6, n)
    li = rng.integers(0, len(country.last_names), n)
    first_f = np.array(country.first_names_f)[fi % len(country.first_names_f)]
    first_m = np.array(country.first_names_m)[fi % len(country.first_names_m)]
    first = np.char.add(np.where(co.female, first_f, first_m), rng.integers(1, 999, n).astype(str))
    last = np.char.add(np.array(country.last_names)[li], rng.integers(1, 999, n).astype(str))
    age = (np.minimum(co.death, ref_epoch) - co.birth) / (365.2425 * 86400)
    adult = age >= 18
    married = adult & (rng.random(n) < 0.55)
    city = centre.city or centre.region
    street = np.char.add(np.char.add(rng.integers(1, 999, n).astype(str), " "),
                         np.array(country.streets)[rng.integers(0, len(country.streets), n)])
    lat = country.lat_lon[0] + rng.normal(0, 0.08, n)
    lon = country.lat_lon[1] + rng.normal(0, 0.08, n)
    expenses = rng.gamma(2.0, 25000, n) * np.clip(age, 1, None) / 40
    coverage = expenses * refs.payer_coverage[payer_ix]
    frame = pl.DataFrame({
        "Id": ids, "b": co.birth,
        "d": pl.Series(co.death).set(pl.Series(co.death == NO_DEATH), None),
        "SSN": [f"999-{a:02d}-{b:04d}" for a, b in zip(rng.integers(10, 99, n),
                                                     rng.integers(1000, 9999, n), strict=True)],
        "DRIVERS": _maybe(adult, np.char.add("S999", rng.integers(10**4, 10**5, n).astype(str))),
        "PASSPORT": _maybe(adult & (rng.random(n) < 0.7),
                           np.char.add(np.char.add("X", rng.integers(10**7, 10**8, n)
                                                   .astype(str)), "X")),
        "PREFIX": _maybe(adult, np.where(co.female, np.where(married, "Mrs.", "Ms."), "Mr.")),
        "FIRST": first, "MIDDLE": None, "LAST": last, "SUFFIX": None,
        "MAIDEN": _maybe(married & co.female, np.char.add(
            np.array(country.last_names)[(li + 3) % len(country.last_names)],
            rng.integers(1, 999, n).astype(str))),
        "MARITAL": _maybe(adult, np.where(married, "M", "S")),
        "RACE": np.array(_RACES)[rng.choice(len(_RACES), n, p=_RACE_P)],
        "ETHNICITY": np.where(rng.random(n) < 0.1, "hispanic", "nonhispanic"),
        "GENDER": np.where(co.female, "F", "M"),
        "BIRTHPLACE": f"{city}  {centre.region}  {centre.country.upper()}",
        "ADDRESS": street, "CITY": city, "STATE": centre.region, "COUNTY": None, "FIPS": None,
        "ZIP": [f"{z:05d}" for z in rng.integers(1000, 99999, n)],
        "LAT": lat, "LON": lon, "exp": expenses, "cov": coverage,
        "INCOME": rng.lognormal(10.8, 0.6, n).astype(np.int64).astype(str),
    }, schema_overrides={"d": pl.Int64, "MIDDLE": pl.String, "SUFFIX": pl.String,
                         "COUNTY": pl.String, "FIPS": pl.String})
    frame = frame.with_columns(
        dates(pl.col("b")).alias("BIRTHDATE"), dates(pl.col("d")).alias("DEATHDATE"),
        pl.col("LAT").round(6).cast(pl.String), pl.col("LON").round(6).cast(pl.String),
        money(pl.col("exp")).alias("HEALTHCARE_EXPENSES"),
        money(pl.col("cov")).alias("HEALTHCARE_COVERAGE"),
    )
    return frame, np.char.add(np.char.add(first, " "), last)
