"""Synthea 3.x's CSV export format: file list, column order, ids, timestamps, numbers.

Synthea writes no quotes (it replaces commas in text by spaces), UTC timestamps as
yyyy-MM-ddTHH:mm:ssZ, date-only fields for conditions, allergies, careplans and supplies,
costs with two decimals and an empty field for a missing value. tanat-synthea then puts
CENTER_ID and CENTER_NAME in front of every file.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import numpy as np
import numpy.typing as npt
import polars as pl

CENTRE_COLUMNS = ("CENTER_ID", "CENTER_NAME")
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Positions of the 32 hex digits inside the 36-character 8-4-4-4-12 form.
_HEX_POS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


@cache
def synthea_headers() -> dict[str, tuple[str, ...]]:
    """Synthea 3.x's CSV columns per file (claims files excluded), in export order."""
    path = resources.files("fedjourney.generator") / "catalogue" / "synthea3_headers.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {name: tuple(cols) for name, cols in raw.items()}


def uuids(rng: np.random.Generator, n: int) -> npt.NDArray[np.str_]:
    """n UUID-shaped random ids (8-4-4-4-12 lowercase hex), drawn from rng."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 0x0F]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    out[:, _HEX_POS] = digits
    return out.view("S36").ravel().astype(str)


def timestamps(seconds: pl.Expr) -> pl.Expr:
    """Epoch seconds -> Synthea's UTC timestamp text."""
    return pl.from_epoch(seconds, time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def dates(seconds: pl.Expr) -> pl.Expr:
    """Epoch seconds -> Synthea's date-only text."""
    return pl.from_epoch(seconds, time_unit="s").dt.strftime("%Y-%m-%d")


def money(values: pl.Expr) -> pl.Expr:
    """Two decimals, as Synthea writes costs."""
    return values.round(2).map_batches(_fixed2, return_dtype=pl.String)


def _fixed2(s: pl.Series) -> pl.Series:
    cents = (s * 100).round(0).cast(pl.Int64)
    sign = pl.Series(np.where(cents.to_numpy() < 0, "-", ""))
    a = cents.abs()
    whole = (a // 100).cast(pl.String)
    frac = (a % 100).cast(pl.String).str.zfill(2)
    return (sign + whole + "." + frac).alias(s.name)


def one_decimal_expr(values: pl.Expr) -> pl.Expr:
    """Observation VALUE text: one decimal, never '-0.0' (null stays null)."""
    tenths = (values.fill_nan(None) * 10).round(0).cast(pl.Int64)
    a = tenths.abs()
    sign = pl.when(tenths < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.concat_str(sign, (a // 10).cast(pl.String), pl.lit("."), (a % 10).cast(pl.String))


def with_centre(frame: pl.DataFrame, file: str, centre_id: int, centre_name: str) -> pl.DataFrame:
    """Put CENTER_ID/CENTER_NAME first and the file's columns in Synthea's order."""
    cols = synthea_headers()[file]
    missing = [c for c in cols if c not in frame.columns]
    frame = frame.with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in missing])
    return frame.select(
        pl.lit(str(centre_id)).alias("CENTER_ID"),
        pl.lit(centre_name).alias("CENTER_NAME"),
        *[pl.col(c).cast(pl.String) for c in cols],
    )
