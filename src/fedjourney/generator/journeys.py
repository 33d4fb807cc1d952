"""What happens to a batch of patients over the history window, as Synthea's tables.

Everything is vectorised over the batch: visits are drawn per patient-year, then panels of
observations per visit, then the conditions, drugs, procedures and vaccines those visits
imply. One batch's random stream depends only on (centre seed, batch number).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from fedjourney.config import Centre, Federation
from fedjourney.countries import COUNTRIES, Country
from fedjourney.generator import clinical as cl
from fedjourney.generator.cohort import DAY, NO_DEATH, YEAR, Cohort, epoch
from fedjourney.generator.synthea_format import (
    dates,
    money,
    one_decimal_expr,
    timestamps,
    uuids,
)
from fedjourney.generator.values import HEIGHT, ValueModel

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]
N_KINDS = len(cl.KINDS)
_VISIT_KINDS = [cl.KIND[k] for k in cl.VISIT_MIX]
_VISIT_P = np.array(list(cl.VISIT_MIX.values()))


@dataclass(frozen=True)
class CentreRefs:
    """Ids of the centre's organizations, providers and payers that records point to."""

    organizations: npt.NDArray[np.str_]
    providers: npt.NDArray[np.str_]  # providers[i] works at organizations[i % n_orgs]
    payers: npt.NDArray[np.str_]
    payer_coverage: F64


@dataclass
class Visits:
    """The batch's encounters, sorted by patient then time."""

    pat: I64
    kind: I64
    t: I64
    ids: npt.NDArray[np.str_]
    acute: I64  # index into ACUTE, -1 when none
    active: B  # (n_visits, len(CHRONIC)): condition diagnosed by the visit's time
    age: F64

    @property
    def n(self) -> int:
        return int(self.pat.shape[0])


class BatchGenerator:
    """Turns a slice of the cohort into Synthea tables (polars frames, text columns)."""

    def __init__(self, fed: Federation, centre: Centre, refs: CentreRefs, values: ValueModel):
        self.fed = fed
        self.centre = centre
        self.country: Country = COUNTRIES[centre.country]
        self.refs = refs
        self.values = values
        self.ref = epoch(fed.reference_date)
        self.start = self.ref - int(fed.history_years * YEAR)
        self.codes = sorted(values.catalogue)
        self.code_index = {c: i for i, c in enumerate(self.codes)}
        cat = values.catalogue
        self.meta = pl.DataFrame({
            "CODE": self.codes,
            "CATEGORY": [cat[c].category or None for c in self.codes],
            "DESCRIPTION": [cat[c].description for c in self.codes],
            "UNITS": [cat[c].units or None for c in self.codes],
            "TYPE": [cat[c].kind for c in self.codes],
        }, schema={c: pl.String for c in ("CODE", "CATEGORY", "DESCRIPTION", "UNITS", "TYPE")})
        self.texts: list[str] = []
        self.text_offset: dict[str, int] = {}
        for c in self.codes:
            if values.catalogue[c].kind == "text":
                self.text_offset[c] = len(self.texts)
                self.texts.extend(values.text_options(c))

    # ---------------------------------------------------------------- visits
    def visits(self, rng: np.random.Generator, co: Cohort) -> Visits:
        """Draw every encounter of the batch's patients within the history window."""
        n, h = co.size, self.fed.history_years
        w0 = np.maximum(self.start, co.birth)
        w1 = np.minimum(self.ref, co.death)
        y0 = self.start + (np.arange(h) * YEAR).astype(np.int64)
        s = np.maximum(y0[None, :], w0[:, None])
        e = np.minimum(y0[None, :] + int(YEAR), w1[:, None])
        length = np.maximum(e - s, 0)
        exposure = length / YEAR
        age = ((s + length // 2) - co.birth[:, None]) / YEAR
        n_active = (co.onset[:, :, None] <= (s + length // 2)[:, None, :]).sum(axis=1)
        female = co.female[:, None]

        parts: list[tuple[I64, I64, I64]] = []

        def add(mask_or_count: I64, kind: I64 | int, jitter: bool = True) -> None:
            cnt = mask_or_count.ravel()
            pat = np.repeat(np.repeat(np.arange(n), h), cnt)
            ss = np.repeat(s.ravel(), cnt)
            ll = np.repeat(length.ravel(), cnt)
            t = ss + (rng.random(pat.shape[0]) * ll).astype(np.int64) if jitter else ss
            k = np.full(pat.shape[0], kind) if isinstance(kind, int) else kind
            parts.append((pat, np.asarray(k, dtype=np.int64), t))

        # Wellness: yearly for children and over-50s, most years for adults in between.
        p_well = (np.where(age < 18, 1.0, np.where(age < 50, 0.7, 0.92))
                  * np.minimum(exposure * 1.5, 1))
        well = (rng.random((n, h)) < p_well).astype(np.int64)
        kid = (age < 18).ravel()
        add(well, -1)
        parts[-1] = (parts[-1][0],
                     np.where(kid[np.repeat(np.arange(n * h), well.ravel())],
                              cl.KIND["well_child"], cl.KIND["wellness"]).astype(np.int64),
                     parts[-1][2])

        # Other visits: more with age, chronic disease, for women, and by the country's access.
        rate = (self.country.encounter_rate * co.frailty[:, None]
                * (1.4 + 0.5 * n_active + 1.0 * (age >= 65) + 0.8 * (age >= 80))
                * np.where(female, 1.15, 1.0) * (0.55 + 0.45 * (age >= 18)))
        count = rng.poisson(rate * exposure)
        pat_year = np.repeat(np.arange(n * h), count.ravel())
        a = age.ravel()[pat_year]
        chronic_any = (n_active.ravel() > 0)[pat_year]
        weights = np.tile(_VISIT_P, (pat_year.shape[0], 1))
        col = {k: i for i, k in enumerate(cl.VISIT_MIX)}
        weights[:, col["follow_up"]] *= chronic_any * 2.0
        for k in ("emergency", "inpatient"):
            weights[:, col[k]] *= 1.0 + (a >= 65) + (a >= 80)
        for k in ("home", "snf"):
            weights[:, col[k]] *= (a >= 70) * 3.0
        cum = np.cumsum(weights, axis=1)
        pick = (rng.random(pat_year.shape[0])[:, None] * cum[:, -1:] > cum).sum(axis=1)
        add(count, np.asarray(_VISIT_KINDS)[pick].astype(np.int64))

        # Pregnancies: seven prenatal visits a month apart.
        fertile = female & (age >= 18) & (age <= 45) & (exposure > 0.9)
        pregnant = fertile & (rng.random((n, h)) < 0.035)
        pp, py = np.nonzero(pregnant)
        if pp.shape[0]:
            start = s[pp, py] + (rng.random(pp.shape[0]) * 0.2 * YEAR).astype(np.int64)
            t = (start[:, None] + np.arange(7)[None, :] * 30 * DAY).ravel()
            pat = np.repeat(pp, 7)
            keep = t < w1[pat]
            parts.append((pat[keep], np.full(int(keep.sum()), cl.KIND["prenatal"]), t[keep]))

        # Deaths in the window: a death certification, often after hospice.
        died = (co.death != NO_DEATH) & (co.death > w0)
        dp = np.nonzero(died)[0]
        parts.append((dp, np.full(dp.shape[0], cl.KIND["death"]), co.death[dp]))
        hosp = dp[(rng.random(dp.shape[0]) < 0.35) & (co.death[dp] - 20 * DAY > w0[dp])]
        parts.append((hosp, np.full(hosp.shape[0], cl.KIND["hospice"]), co.death[hosp] - 20 * DAY))

        pat = np.concatenate([p[0] for p in parts]).astype(np.int64)
        kind = np.concatenate([p[1] for p in parts]).astype(np.int64)
        t = np.concatenate([p[2] for p in parts]).astype(np.int64)
        # Visits happen in opening hours; times are whole seconds as Synthea's.
        t = t // DAY * DAY + 8 * 3600 + (rng.random(t.shape[0]) * 10 * 3600).astype(np.int64)
        order = np.lexsort((kind, t, pat))
        pat, kind, t = pat[order], kind[order], t[order]
        active = co.onset[pat] <= t[:, None]
        acute = np.full(pat.shape[0], -1, dtype=np.int64)
        acute_kinds = np.isin(kind, [cl.KIND["symptom"], cl.KIND["urgent"], cl.KIND["emergency"]])
        acute_kinds |= (kind == cl.KIND["problem"]) & (rng.random(pat.shape[0]) < 0.3)
        w = np.array(cl.ACUTE_WEIGHTS) / sum(cl.ACUTE_WEIGHTS)
        draw = rng.choice(len(cl.ACUTE), size=pat.shape[0], p=w)
        acute = np.where(acute_kinds, draw, acute)
        return Visits(pat=pat, kind=kind, t=t, ids=uuids(rng, pat.shape[0]), acute=acute,
                      active=active, age=(t - co.birth[pat]) / YEAR)

    # ---------------------------------------------------------------- observations
    def observations(self, rng: np.random.Generator, co: Cohort, v: Visits) -> pl.DataFrame:
        """Panels of observations at each visit, plus the yearly QALY/DALY/QOLS rows."""
        female = co.female[v.pat]
        groups = np.array([cl.ACUTE_GROUPS.index(a[3]) for a in cl.ACUTE])
        group = np.where(v.acute >= 0, groups[np.maximum(v.acute, 0)], -1)
        enc_rows: list[I64] = []
        code_rows: list[I64] = []
        for panel in cl.PANELS:
            p_kind = np.array([panel.p_kind.get(k.name, 0.0) for k in cl.KINDS])
            p = p_kind[v.kind]
            p = p * ((v.age >= panel.age[0]) & (v.age < panel.age[1]))
            p = p * np.where(female, panel.sex_factor[0], panel.sex_factor[1])
            for name, mult in panel.boost.items():
                p = p * np.where(v.active[:, cl.CHRONIC_INDEX[name]], mult, 1.0)
            if panel.needs in cl.CHRONIC_INDEX:
                p = p * v.active[:, cl.CHRONIC_INDEX[panel.needs]]
            elif panel.needs is not None:
                p = p * (group == cl.ACUTE_GROUPS.index(panel.needs))
            if panel.habit is not None:
                p = p * getattr(self.country, panel.habit)
            hit = np.nonzero(rng.random(v.n) < p)[0]
            if hit.shape[0] == 0:
                continue
            codes = np.array([self.code_index[c] for c in panel.codes])
            if panel.serum_codes:
                serum = np.array([self.code_index[c] for c in panel.serum_codes])
                use_serum = rng.random(hit.shape[0]) < self.country.serum_labs
                rows = np.where(use_serum[:, None], serum[None, :], codes[None, :])
            else:
                rows = np.broadcast_to(codes, (hit.shape[0], codes.shape[0]))
            enc_rows.append(np.repeat(hit, codes.shape[0]))
            code_rows.append(rows.ravel())
        enc = np.concatenate(enc_rows) if enc_rows else np.zeros(0, np.int64)
        code = np.concatenate(code_rows) if code_rows else np.zeros(0, np.int64)
        # Synthea lists a visit's observations together; keep panel order within a visit.
        order = np.argsort(enc, kind="stable")
        enc, code = enc[order], code[order]
        num, txt = self._values(rng, co, v, enc, code)

        qpat, qt, qcode, qval = self._quality_of_life(co, v)
        n_q = qpat.shape[0]
        pat = np.concatenate([v.pat[enc], qpat])
        t = np.concatenate([v.t[enc], qt])
        order = np.lexsort((t, pat))  # stable: a visit's panels keep their order
        # Integer indices all the way; strings are gathered from small lookup series in Rust.
        frame = pl.DataFrame({
            "t": t[order],
            "pix": pat[order],
            "vix": np.concatenate([enc, np.full(n_q, -1)])[order],
            "tix": np.concatenate([enc, v.n + np.arange(n_q)])[order],
            "cix": np.concatenate([code, qcode])[order].astype(np.uint32),
            "num": np.concatenate([num, qval])[order],
            "txt": np.concatenate([txt, np.full(n_q, -1)])[order],
        })
        ids = pl.lit(pl.Series(v.ids, dtype=pl.String))
        texts = pl.lit(pl.Series(self.texts, dtype=pl.String))
        # Format each distinct time once (visits, then QALY rows) and gather: 20x fewer calls.
        stamps = pl.select(timestamps(pl.lit(pl.Series(np.concatenate([v.t, qt]))))).to_series()
        return frame.with_columns(
            pl.lit(stamps).gather(pl.col("tix")).alias("DATE"),
            pl.when(pl.col("vix") >= 0).then(ids.gather(pl.col("vix").clip(0))).alias("ENCOUNTER"),
            pl.when(pl.col("txt") >= 0).then(texts.gather(pl.col("txt").clip(0)))
            .otherwise(one_decimal_expr(pl.col("num"))).alias("VALUE"),
            *[pl.lit(self.meta[c]).gather(pl.col("cix")).alias(c) for c in self.meta.columns],
        )

    def _values(self, rng: np.random.Generator, co: Cohort, v: Visits, enc: I64, code: I64
                ) -> tuple[F64, I64]:
        """Numeric values (NaN for text rows) and text indices (-1 for numeric rows)."""
        num = np.full(enc.shape[0], np.nan)
        txt = np.full(enc.shape[0], -1, dtype=np.int64)
        pat = v.pat[enc]
        height, weight = self._body(rng, co, v)
        # Group rows by code once (a stable sort) instead of one scan per code.
        by_code = np.argsort(code, kind="stable")
        present, starts = np.unique(code[by_code], return_index=True)
        ends = np.append(starts[1:], len(by_code))
        for ci, lo, hi in zip(present, starts, ends, strict=True):
            rows = by_code[lo:hi]
            c = self.codes[ci]
            visit = enc[rows]
            if self.values.catalogue[c].kind == "text":
                idx = self.values.text(c, rng, v.active[visit], co.former_smoker[pat[rows]])
                txt[rows] = self.text_offset[c] + idx
            elif c == "8302-2":
                num[rows] = height[visit]
            elif c == "29463-7":
                num[rows] = weight[visit]
            elif c == "39156-5":
                num[rows] = weight[visit] / (height[visit] / 100) ** 2
            else:
                num[rows] = self.values.numeric(c, rng, co.female[pat[rows]],
                                                co.latent[pat[rows], ci % 4], v.active[visit],
                                                v.age[visit])
        return num, txt

    def _body(self, rng: np.random.Generator, co: Cohort, v: Visits) -> tuple[F64, F64]:
        """Height and weight at each visit, coherent per patient and by sex."""
        pat = v.pat
        female = co.female[pat]
        adult = np.where(female, HEIGHT[0], HEIGHT[1]) + HEIGHT[2] * co.latent[pat, 0]
        age = v.age
        growth = np.clip(0.3 + 0.7 * age / np.where(female, 15.0, 17.0), 0.3, 1.0)
        height = adult * np.where(age < 18, growth, 1.0) - np.clip(age - 70, 0, None) * 0.1
        obese = v.active[:, cl.CHRONIC_INDEX["obesity"]]
        bmi = np.where(obese, 33.0, 24.0) + 2.5 * co.latent[pat, 1] + np.where(female, -0.5, 0.5)
        bmi = np.where(obese, np.maximum(bmi, 30.2), np.minimum(bmi, 29.8))
        bmi = np.where(age < 18, 15.0 + 0.45 * np.clip(age, 0, 18), bmi)
        weight = bmi * (height / 100) ** 2 * (1 + 0.015 * rng.standard_normal(v.n))
        return height, weight

    def _quality_of_life(self, co: Cohort, v: Visits
                         ) -> tuple[I64, I64, I64, F64]:
        """Synthea's yearly QALY, DALY and QOLS rows (no encounter, no category)."""
        h = self.fed.history_years
        w0 = np.maximum(self.start, co.birth)
        w1 = np.minimum(self.ref, co.death)
        t = self.start + (np.arange(1, h + 1) * YEAR).astype(np.int64)
        t = t[None, :] - (t[None, :] - co.birth[:, None]) % int(YEAR)  # on the birthday
        ok = (t >= w0[:, None]) & (t <= w1[:, None])
        pp, yy = np.nonzero(ok)
        tt = t[pp, yy]
        age = (tt - co.birth[pp]) / YEAR
        burden = (co.onset[pp] <= tt[:, None]).sum(axis=1)
        qols = np.clip(1.0 - 0.06 * burden - 0.002 * np.clip(age - 50, 0, None), 0.2, 1.0)
        daly = np.clip(0.15 * burden * np.clip(age - 30, 0, None) / 10, 0, None)
        qaly = age * (qols + 1.0) / 2.0
        pat = np.repeat(pp, 3)
        when = np.repeat(tt, 3)
        code = np.tile(np.array([self.code_index[c] for c in ("QALY", "DALY", "QOLS")]),
                       pp.shape[0])
        val = np.stack([qaly, daly, qols], axis=1).ravel()
        return pat, when, code, val

    # ---------------------------------------------------------------- encounters
    def encounters(self, rng: np.random.Generator, co: Cohort, v: Visits,
                   patient_ids: npt.NDArray[np.str_], payer_ix: I64) -> pl.DataFrame:
        kinds = cl.KINDS
        n_orgs = len(self.refs.organizations)
        clinic = 1 + v.pat % max(n_orgs - 1, 1)  # each patient has a usual clinic
        hospital = np.isin(v.kind, [cl.KIND[k] for k in ("emergency", "inpatient", "snf",
                                                          "hospice", "death")])
        org = np.where(hospital, 0, clinic) % n_orgs
        per_org = len(self.refs.providers) // n_orgs
        prov = org + n_orgs * rng.integers(0, per_org, v.n)
        base = np.array([k.base_cost for k in kinds])[v.kind]
        total = base * (1.0 + rng.gamma(2.0, 1.5, v.n))
        cover = total * self.refs.payer_coverage[payer_ix[v.pat]]
        minutes = np.array([k.minutes for k in kinds])[v.kind]
        reason_code, reason_desc = self._reasons(v)
        return pl.DataFrame({
            "Id": v.ids,
            "st": v.t,
            "en": v.t + minutes * 60,
            "PATIENT": patient_ids[v.pat],
            "ORGANIZATION": self.refs.organizations[org],
            "PROVIDER": self.refs.providers[prov],
            "PAYER": self.refs.payers[payer_ix[v.pat]],
            "ENCOUNTERCLASS": np.array([k.cls for k in kinds])[v.kind],
            "CODE": np.array([k.code for k in kinds])[v.kind],
            "DESCRIPTION": np.array([k.description for k in kinds])[v.kind],
            "base": base, "total": total, "cover": cover,
            "REASONCODE": reason_code, "REASONDESCRIPTION": reason_desc,
        }).with_columns(
            timestamps(pl.col("st")).alias("START"), timestamps(pl.col("en")).alias("STOP"),
            money(pl.col("base")).alias("BASE_ENCOUNTER_COST"),
            money(pl.col("total")).alias("TOTAL_CLAIM_COST"),
            money(pl.col("cover")).alias("PAYER_COVERAGE"),
            pl.col("REASONCODE").replace("", None), pl.col("REASONDESCRIPTION").replace("", None),
        )

    def _reasons(self, v: Visits) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.str_]]:
        acute_code = np.array([a[0] for a in cl.ACUTE] + [""])
        acute_desc = np.array([a[1] for a in cl.ACUTE] + [""])
        code = acute_code[np.where(v.acute >= 0, v.acute, -1)]
        desc = acute_desc[np.where(v.acute >= 0, v.acute, -1)]
        first = np.argmax(v.active, axis=1)
        has = v.active.any(axis=1) & (v.kind == cl.KIND["follow_up"])
        chronic_code = np.array([c.code for c in cl.CHRONIC])[first]
        chronic_desc = np.array([c.description for c in cl.CHRONIC])[first]
        code = np.where(has, chronic_code, code)
        desc = np.where(has, chronic_desc, desc)
        prenatal = v.kind == cl.KIND["prenatal"]
        code = np.where(prenatal, cl.PREGNANCY[0], code)
        desc = np.where(prenatal, cl.PREGNANCY[1], desc)
        return code, desc

    # ---------------------------------------------------------------- clinical tables
    def conditions(self, rng: np.random.Generator, co: Cohort, v: Visits,
                   patient_ids: npt.NDArray[np.str_]) -> tuple[pl.DataFrame, I64, I64]:
        """Conditions; also returns (visit, chronic) of each chronic diagnosis for care plans."""
        frames: list[pl.DataFrame] = []
        # Chronic: diagnosed at the first visit on or after onset (or the window's first).
        first_visit, which = _first_visit_with(v)
        chronic = cl.CHRONIC
        frames.append(_cond_frame(v, first_visit, None,
                                  np.array([chronic[w].code for w in which], dtype=str),
                                  np.array([chronic[w].description for w in which], dtype=str)))
        # Acute problems resolve after their typical duration.
        ai = np.nonzero(v.acute >= 0)[0]
        days = np.array([a[2] for a in cl.ACUTE])[v.acute[ai]]
        frames.append(_cond_frame(v, ai, v.t[ai] + days * DAY,
                                  np.array([a[0] for a in cl.ACUTE])[v.acute[ai]],
                                  np.array([a[1] for a in cl.ACUTE])[v.acute[ai]]))
        # A pregnancy starts at its first prenatal visit and lasts about nine months.
        prenatal = np.nonzero(v.kind == cl.KIND["prenatal"])[0]
        prev_t = np.concatenate([[0], v.t[:-1]])
        prev_k = np.concatenate([[-1], v.kind[:-1]])
        first_pn = prenatal[~((prev_k[prenatal] == cl.KIND["prenatal"])
                              & (v.t[prenatal] - prev_t[prenatal] < 45 * DAY))]
        frames.append(_cond_frame(v, first_pn, v.t[first_pn] + 270 * DAY,
                                  np.full(first_pn.shape[0], cl.PREGNANCY[0]),
                                  np.full(first_pn.shape[0], cl.PREGNANCY[1])))
        # Social findings and medication reviews at wellness visits.
        well = np.nonzero(np.isin(v.kind, [cl.KIND["wellness"]]))[0]
        social = well[rng.random(well.shape[0]) < 0.2]
        pick = rng.integers(0, len(cl.SOCIAL_FINDINGS), social.shape[0])
        frames.append(_cond_frame(v, social, v.t[social] + 365 * DAY,
                                  np.array([s[0] for s in cl.SOCIAL_FINDINGS])[pick],
                                  np.array([s[1] for s in cl.SOCIAL_FINDINGS])[pick]))
        on_meds = np.array([c.medication is not None for c in chronic])
        review = well[(v.active[well] & on_meds).any(axis=1)]
        frames.append(_cond_frame(v, review, v.t[review] + 30 * DAY,
                                  np.full(review.shape[0], cl.MED_REVIEW[0]),
                                  np.full(review.shape[0], cl.MED_REVIEW[1])))
        frame = _link(pl.concat(frames).sort(["vix", "st"], maintain_order=True), v, patient_ids)
        return (frame.with_columns(
            dates(pl.col("st")).alias("START"), dates(pl.col("sp")).alias("STOP"),
            pl.lit("SNOMED-CT").alias("SYSTEM"),
        ), first_visit, which)

    def medications(self, rng: np.random.Generator, v: Visits,
                    patient_ids: npt.NDArray[np.str_], payer_ix: I64) -> pl.DataFrame:
        frames = []
        renew = np.nonzero(np.isin(v.kind, [cl.KIND["wellness"], cl.KIND["follow_up"]]))[0]
        for ci, c in enumerate(cl.CHRONIC):
            if c.medication is None:
                continue
            rows = renew[v.active[renew, ci]]
            frames.append(_med_frame(v, rows, 365, c.medication, 12, c.code, c.description))
        ai = np.nonzero(v.acute >= 0)[0]
        ai = ai[rng.random(ai.shape[0]) < 0.6]
        groups = np.array([a[3] for a in cl.ACUTE])[v.acute[ai]]
        for g, drug in cl.ACUTE_DRUGS.items():
            rows = ai[groups == g]
            acute = v.acute[rows]
            frames.append(_med_frame(v, rows, 14, drug, 1,
                                     np.array([a[0] for a in cl.ACUTE])[acute],
                                     np.array([a[1] for a in cl.ACUTE])[acute]))
        frame = _link(pl.concat(frames).sort(["vix"], maintain_order=True), v, patient_ids)
        vix = frame["vix"].to_numpy()
        frame = frame.with_columns(
            pl.Series("PAYER", self.refs.payers[payer_ix[v.pat[vix]]]),
            pl.Series("coverage", self.refs.payer_coverage[payer_ix[v.pat[vix]]]),
        )
        return frame.with_columns(
            timestamps(pl.col("st")).alias("START"), timestamps(pl.col("sp")).alias("STOP"),
            money(pl.col("cost")).alias("BASE_COST"),
            money(pl.col("cost") * pl.col("disp") * pl.col("coverage")).alias("PAYER_COVERAGE"),
            pl.col("disp").cast(pl.String).alias("DISPENSES"),
            money(pl.col("cost") * pl.col("disp")).alias("TOTALCOST"),
        )

    def procedures(self, rng: np.random.Generator, co: Cohort, v: Visits,
                   patient_ids: npt.NDArray[np.str_]) -> pl.DataFrame:
        picks: list[tuple[I64, tuple[str, str, float], npt.NDArray[np.str_] | None]] = []
        well = np.nonzero(v.kind == cl.KIND["wellness"])[0]
        for proc, p in zip(cl.WELLNESS_PROCEDURES, (0.9, 0.6, 0.5), strict=True):
            picks.append((well[rng.random(well.shape[0]) < p], proc, None))
        on_meds = np.array([c.medication is not None for c in cl.CHRONIC])
        picks.append((well[(v.active[well] & on_meds).any(axis=1)], cl.MED_RECONCILIATION, None))
        ai = np.nonzero(v.acute >= 0)[0]
        ai = ai[rng.random(ai.shape[0]) < 0.5]
        groups = np.array([a[3] for a in cl.ACUTE])[v.acute[ai]]
        for g, proc in cl.PROCEDURES_BY_GROUP.items():
            rows = ai[groups == g]
            picks.append((rows, proc, np.array([a[0] for a in cl.ACUTE])[v.acute[rows]]))
        outp = np.nonzero(v.kind == cl.KIND["procedure"])[0]
        ckd = outp[v.active[outp, cl.CHRONIC_INDEX["kidney_disease"]]]
        picks.append((ckd[rng.random(ckd.shape[0]) < 0.3], cl.DIALYSIS, None))
        old = outp[v.age[outp] >= 50]
        picks.append((old[rng.random(old.shape[0]) < 0.15], cl.COLONOSCOPY, None))
        women = old[co.female[v.pat[old]]]
        picks.append((women[rng.random(women.shape[0]) < 0.2], cl.BONE_SCAN, None))
        pn = np.nonzero(v.kind == cl.KIND["prenatal"])[0]
        picks.append((pn[rng.random(pn.shape[0]) < 0.3], cl.PREGNANCY_TEST, None))
        frames = []
        for rows, (code, desc, cost), reason in picks:
            frames.append(pl.DataFrame({
                "vix": rows, "st": v.t[rows], "sp": v.t[rows] + 15 * 60,
                "CODE": np.full(rows.shape[0], code), "DESCRIPTION": np.full(rows.shape[0], desc),
                "cost": np.full(rows.shape[0], cost),
                "REASONCODE": reason if reason is not None else np.full(rows.shape[0], ""),
            }, schema_overrides={"vix": pl.Int64, "st": pl.Int64, "sp": pl.Int64}))
        reason_desc = {a[0]: a[1] for a in cl.ACUTE}
        frame = _link(pl.concat(frames).sort(["vix"], maintain_order=True), v, patient_ids)
        return frame.with_columns(
            pl.lit("SNOMED-CT").alias("SYSTEM"),
            timestamps(pl.col("st")).alias("START"), timestamps(pl.col("sp")).alias("STOP"),
            money(pl.col("cost")).alias("BASE_COST"),
            pl.col("REASONCODE").replace_strict(reason_desc, default=None)
            .alias("REASONDESCRIPTION"),
            pl.col("REASONCODE").replace("", None),
        )

    def immunizations(self, rng: np.random.Generator, v: Visits,
                      patient_ids: npt.NDArray[np.str_]) -> pl.DataFrame:
        well = np.nonzero(np.isin(v.kind, [cl.KIND["wellness"], cl.KIND["well_child"]]))[0]
        a = v.age[well]
        rules = ((cl.FLU, np.where(a >= 65, 0.85, 0.55)), (cl.TD, np.full(a.shape[0], 0.1)),
                 (cl.PNEUMO, (a >= 65) * 0.12), (cl.ZOSTER, (a >= 50) * 0.06))
        frames = []
        for (code, desc, cost), p in rules:
            rows = well[rng.random(well.shape[0]) < p]
            frames.append(pl.DataFrame({"vix": rows, "CODE": np.full(rows.shape[0], code),
                                        "DESCRIPTION": np.full(rows.shape[0], desc),
                                        "cost": np.full(rows.shape[0], cost)},
                                       schema_overrides={"vix": pl.Int64}))
        frame = _link(pl.concat(frames).sort(["vix"], maintain_order=True), v, patient_ids)
        return frame.with_columns(
            pl.Series("t", v.t[frame["vix"].to_numpy()]),
        ).with_columns(
            timestamps(pl.col("t")).alias("DATE"),
            money(pl.col("cost")).alias("BASE_COST"),
        )

    def careplans(self, rng: np.random.Generator, v: Visits, patient_ids: npt.NDArray[np.str_],
                  first_visit: I64, which: I64) -> pl.DataFrame:
        has = np.array([cl.CHRONIC[w].careplan is not None for w in which], dtype=bool)
        rows, chronic = first_visit[has], which[has]
        plans = [cl.CHRONIC[w].careplan for w in chronic]
        return pl.DataFrame({
            "Id": uuids(rng, rows.shape[0]),
            "START": pl.Series(v.t[rows]), "PATIENT": patient_ids[v.pat[rows]],
            "ENCOUNTER": v.ids[rows],
            "CODE": [p[0] for p in plans if p], "DESCRIPTION": [p[1] for p in plans if p],
            "REASONCODE": [cl.CHRONIC[w].code for w in chronic],
            "REASONDESCRIPTION": [cl.CHRONIC[w].description for w in chronic],
        }, schema_overrides={"CODE": pl.String, "DESCRIPTION": pl.String,
                             "REASONCODE": pl.String, "REASONDESCRIPTION": pl.String}
        ).with_columns(dates(pl.col("START")).alias("START"))

    def allergies(self, rng: np.random.Generator, co: Cohort, v: Visits,
                  patient_ids: npt.NDArray[np.str_]) -> pl.DataFrame:
        first = np.nonzero(np.concatenate([[True], v.pat[1:] != v.pat[:-1]]))[0]
        rows = first[rng.random(first.shape[0]) < 0.12]
        pick = rng.integers(0, len(cl.ALLERGIES), rows.shape[0])
        al = cl.ALLERGIES
        return pl.DataFrame({
            "START": pl.Series(v.t[rows]), "PATIENT": patient_ids[v.pat[rows]],
            "ENCOUNTER": v.ids[rows], "CODE": np.array([a[0] for a in al])[pick],
            "SYSTEM": np.full(rows.shape[0], "SNOMED-CT"),
            "DESCRIPTION": np.array([a[1] for a in al])[pick],
            "TYPE": np.array([a[2] for a in al])[pick],
            "CATEGORY": np.array([a[3] for a in al])[pick],
        }, schema_overrides={"START": pl.Int64}).with_columns(
            dates(pl.col("START")).alias("START"))

    def imaging_studies(self, rng: np.random.Generator, v: Visits,
                        patient_ids: npt.NDArray[np.str_]) -> pl.DataFrame:
        fracture = np.nonzero(v.acute == [a[0] for a in cl.ACUTE].index("16114001"))[0]
        n = fracture.shape[0]
        return pl.DataFrame({
            "Id": uuids(rng, n), "DATE": pl.Series(v.t[fracture]),
            "PATIENT": patient_ids[v.pat[fracture]], "ENCOUNTER": v.ids[fracture],
            "SERIES_UID": np.char.add("1.2.840.99999999.1.", rng.integers(10**7, 10**8, n)
                                      .astype(str)),
            "BODYSITE_CODE": np.full(n, "70258002"),
            "BODYSITE_DESCRIPTION": np.full(n, "Ankle joint structure (body structure)"),
            "MODALITY_CODE": np.full(n, "DX"),
            "MODALITY_DESCRIPTION": np.full(n, "Digital Radiography"),
            "INSTANCE_UID": np.char.add("1.2.840.99999999.1.1.", rng.integers(10**7, 10**8, n)
                                        .astype(str)),
            "SOP_CODE": np.full(n, "1.2.840.10008.5.1.4.1.1.1.1"),
            "SOP_DESCRIPTION": np.full(n, "Digital X-Ray Image Storage"),
            "PROCEDURE_CODE": np.full(n, "168594001"),
        }, schema_overrides={"DATE": pl.Int64}).with_columns(
            timestamps(pl.col("DATE")).alias("DATE"))

    def devices_and_supplies(self, v: Visits, patient_ids: npt.NDArray[np.str_],
                             first_visit: I64, which: I64) -> tuple[pl.DataFrame, pl.DataFrame]:
        diab = first_visit[which == cl.CHRONIC_INDEX["diabetes"]]
        devices = pl.DataFrame({
            "START": pl.Series(v.t[diab]), "PATIENT": patient_ids[v.pat[diab]],
            "ENCOUNTER": v.ids[diab], "CODE": np.full(diab.shape[0], "337414009"),
            "DESCRIPTION": np.full(diab.shape[0], "Blood glucose meter (physical object)"),
        }, schema_overrides={"START": pl.Int64}).with_columns(
            timestamps(pl.col("START")).alias("START"))
        supplies = pl.DataFrame({
            "DATE": pl.Series(v.t[diab]), "PATIENT": patient_ids[v.pat[diab]],
            "ENCOUNTER": v.ids[diab], "CODE": np.full(diab.shape[0], "337388004"),
            "DESCRIPTION": np.full(diab.shape[0], "Blood glucose testing strips (physical object)"),
            "QUANTITY": np.full(diab.shape[0], "100"),
        }, schema_overrides={"DATE": pl.Int64}).with_columns(dates(pl.col("DATE")).alias("DATE"))
        return devices, supplies

    def payer_transitions(self, rng: np.random.Generator, co: Cohort,
                          patient_ids: npt.NDArray[np.str_], names: npt.NDArray[np.str_],
                          payer_ix: I64) -> pl.DataFrame:
        h = self.fed.history_years
        w0 = np.maximum(self.start, co.birth)
        w1 = np.minimum(self.ref, co.death)
        starts = w0[:, None] + (np.arange(h) * YEAR).astype(np.int64)[None, :]
        ok = starts < w1[:, None]
        pp, yy = np.nonzero(ok)
        st = starts[pp, yy]
        return pl.DataFrame({
            "PATIENT": patient_ids[pp], "MEMBERID": uuids(rng, pp.shape[0]),
            "s": st, "e": np.minimum(st + int(YEAR), w1[pp]),
            "PAYER": self.refs.payers[payer_ix[pp]], "PLAN_OWNERSHIP": np.full(pp.shape[0], "Self"),
            "OWNER_NAME": names[pp],
        }).with_columns(timestamps(pl.col("s")).alias("START_DATE"),
                        timestamps(pl.col("e")).alias("END_DATE"))


def _link(frame: pl.DataFrame, v: Visits, patient_ids: npt.NDArray[np.str_]) -> pl.DataFrame:
    """Add PATIENT and ENCOUNTER ids from the visit index column 'vix'."""
    vix = frame["vix"].to_numpy()
    return frame.with_columns(pl.Series("PATIENT", patient_ids[v.pat[vix]], dtype=pl.String),
                              pl.Series("ENCOUNTER", v.ids[vix], dtype=pl.String))


def _first_visit_with(v: Visits) -> tuple[I64, I64]:
    """For each (patient, chronic condition) diagnosed, the first visit where it is active."""
    vix, which = np.nonzero(v.active)
    key = v.pat[vix] * len(cl.CHRONIC) + which
    _, first = np.unique(key, return_index=True)
    return vix[first], which[first]


def _cond_frame(v: Visits, rows: I64, stop: I64 | None, code: npt.NDArray[np.str_],
                desc: npt.NDArray[np.str_]) -> pl.DataFrame:
    return pl.DataFrame({
        "vix": rows, "pix": v.pat[rows], "st": v.t[rows],
        "sp": stop if stop is not None else np.full(rows.shape[0], None),
        "CODE": code, "DESCRIPTION": desc,
    }, schema_overrides={"vix": pl.Int64, "pix": pl.Int64, "st": pl.Int64, "sp": pl.Int64,
                         "CODE": pl.String, "DESCRIPTION": pl.String})


def _med_frame(v: Visits, rows: I64, days: int, drug: tuple[str, str, float], dispenses: int,
               reason: str | npt.NDArray[np.str_], reason_desc: str | npt.NDArray[np.str_]
               ) -> pl.DataFrame:
    n = rows.shape[0]
    return pl.DataFrame({
        "vix": rows, "pix": v.pat[rows], "st": v.t[rows], "sp": v.t[rows] + days * DAY,
        "CODE": np.full(n, drug[0]), "DESCRIPTION": np.full(n, drug[1]),
        "cost": np.full(n, drug[2]), "disp": np.full(n, dispenses),
        "REASONCODE": np.broadcast_to(reason, (n,)).astype(str),
        "REASONDESCRIPTION": np.broadcast_to(reason_desc, (n,)).astype(str),
    }, schema_overrides={"vix": pl.Int64, "pix": pl.Int64, "st": pl.Int64, "sp": pl.Int64,
                         "CODE": pl.String, "DESCRIPTION": pl.String,
                         "REASONCODE": pl.String, "REASONDESCRIPTION": pl.String})
