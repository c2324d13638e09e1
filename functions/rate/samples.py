"""Synthetic but realistic A-Z rate decks, for the benchmark, the demo and tests.

Deterministic by seed; built with NumPy and written with pyarrow.csv, so a 200,000-prefix deck
takes well under a second to make.
"""

from __future__ import annotations

import io
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from functions.shared.money import RATE_SCALE, decimal_array, to_units

# (country code, country, fixed rate, mobile rate) per minute; rough wholesale levels.
COUNTRIES: tuple[tuple[str, str, float, float], ...] = (
    ("1", "United States", 0.004, 0.004),
    ("7", "Russia", 0.02, 0.09),
    ("20", "Egypt", 0.05, 0.08),
    ("27", "South Africa", 0.02, 0.05),
    ("31", "Netherlands", 0.006, 0.03),
    ("33", "France", 0.006, 0.025),
    ("34", "Spain", 0.005, 0.02),
    ("39", "Italy", 0.006, 0.03),
    ("44", "United Kingdom", 0.0065, 0.0124),
    ("48", "Poland", 0.006, 0.015),
    ("49", "Germany", 0.006, 0.03),
    ("51", "Peru", 0.012, 0.03),
    ("52", "Mexico", 0.008, 0.0089),
    ("53", "Cuba", 0.62, 0.62),
    ("54", "Argentina", 0.01, 0.07),
    ("55", "Brazil", 0.01, 0.03),
    ("56", "Chile", 0.01, 0.02),
    ("57", "Colombia", 0.01, 0.02),
    ("60", "Malaysia", 0.01, 0.012),
    ("61", "Australia", 0.01, 0.03),
    ("62", "Indonesia", 0.03, 0.05),
    ("63", "Philippines", 0.06, 0.1),
    ("65", "Singapore", 0.006, 0.006),
    ("66", "Thailand", 0.01, 0.01),
    ("81", "Japan", 0.02, 0.06),
    ("82", "South Korea", 0.01, 0.02),
    ("84", "Vietnam", 0.05, 0.06),
    ("86", "China", 0.006, 0.006),
    ("90", "Turkey", 0.03, 0.15),
    ("91", "India", 0.012, 0.008),
    ("92", "Pakistan", 0.06, 0.07),
    ("94", "Sri Lanka", 0.09, 0.1),
    ("212", "Morocco", 0.1, 0.4),
    ("213", "Algeria", 0.08, 0.5),
    ("216", "Tunisia", 0.2, 0.3),
    ("233", "Ghana", 0.2, 0.25),
    ("234", "Nigeria", 0.08, 0.09),
    ("254", "Kenya", 0.05, 0.06),
    ("880", "Bangladesh", 0.03, 0.03),
    ("966", "Saudi Arabia", 0.1, 0.15),
    ("971", "United Arab Emirates", 0.15, 0.15),
    ("977", "Nepal", 0.12, 0.12),
)
# Carriers bill most routes 1/1; some destinations per-minute or with a first-minute block.
INCREMENTS = ("1/1", "60/60", "60/6", "30/6")
INCREMENT_WEIGHTS = (0.6, 0.15, 0.15, 0.1)
KINDS = ("Fixed", "Mobile", "Mobile - Operator A", "Mobile - Operator B", "Special Services")
KIND_WEIGHTS = (0.5, 0.3, 0.08, 0.07, 0.05)
KIND_FACTORS = np.array([0.0, 1.0, 1.0, 1.05, 3.0])  # 0 = fixed rate; others × mobile rate
# The demo routes these to a named destination with a known rate, so random longer
# prefixes must not shadow them in longest-prefix matching.
INDIA_MOBILE_PREFIXES = ("917", "918", "919")
HEADER = (
    "Country",
    "Description",
    "Code",
    "Rate ({currency}/min)",
    "Connect Fee",
    "Effective Date",
    "End Date",
    "Billing Increment",
    "Change",
)


def generate_deck_csv(
    n_prefixes: int,
    seed: int,
    *,
    india_mobile_rate: str = "0.008",
    currency: str = "USD",
    effective_date: str = "2024-05-01",
    version_fraction: float = 0.08,
    closed_fraction: float = 0.02,
    rate_percent: int = 100,  # scales every rate but India mobile (a supplier deck: 80)
) -> bytes:
    """An A-Z deck CSV with `n_prefixes` distinct codes (lengths 3-12, India mobile included).

    Customer decks use india_mobile_rate "0.008", supplier decks "0.0065" (the demo's margin).
    A `version_fraction` of codes get a second, later-dated rate; a `closed_fraction` get a
    later Closed row.
    """
    if n_prefixes < len(INDIA_MOBILE_PREFIXES):
        raise ValueError(f"n_prefixes must be at least {len(INDIA_MOBILE_PREFIXES)}")
    rng = np.random.default_rng(seed)
    # Real A-Z decks carry every country code itself as the catch-all (usually "Fixed")
    # route, so a number in a listed country always finds a rate.
    n_countries = len(COUNTRIES)
    values, country = _random_prefixes(
        rng, max(n_prefixes - len(INDIA_MOBILE_PREFIXES) - n_countries, 0)
    )
    values = np.concatenate([np.array([int(c[0]) for c in COUNTRIES], dtype=np.int64), values])
    country = np.concatenate([np.arange(n_countries), country])
    n_random = len(values)

    kind = rng.choice(len(KINDS), size=n_random, p=KIND_WEIGHTS)
    kind[:n_countries] = 0  # the country-code catch-all is the fixed-line route
    fixed = np.array([c[2] for c in COUNTRIES])
    mobile = np.array([c[3] for c in COUNTRIES])
    base = np.where(kind == 0, fixed[country], mobile[country] * KIND_FACTORS[kind])
    noise = rng.lognormal(0.0, 0.15, size=n_random)
    # Quoted to 4 decimals, as most carriers do; held as exact units of 10^-8 from here on.
    quoted_e4 = np.maximum(np.rint(base * noise * 1e4), 1).astype(np.int64)
    rate_e8 = quoted_e4 * 10 ** (RATE_SCALE - 4) * rate_percent // 100
    country_increment = rng.choice(len(INCREMENTS), size=len(COUNTRIES), p=INCREMENT_WEIGHTS)
    country_increment[[i for i, c in enumerate(COUNTRIES) if c[0] == "52"]] = 1  # Mexico 60/60

    names = np.array([c[1] for c in COUNTRIES], dtype=object)
    india = next(i for i, c in enumerate(COUNTRIES) if c[0] == "91")
    prefix = pa.concat_arrays(
        [pa.array(INDIA_MOBILE_PREFIXES), pc.cast(pa.array(values), pa.string())]
    )
    country_all = np.concatenate([np.full(len(INDIA_MOBILE_PREFIXES), india), country])
    kind_all = np.concatenate([np.ones(len(INDIA_MOBILE_PREFIXES), dtype=np.int64), kind])
    india_e8 = to_units(india_mobile_rate, RATE_SCALE)
    rate_all = np.concatenate([np.full(len(INDIA_MOBILE_PREFIXES), india_e8), rate_e8])
    n = len(rate_all)

    kinds = np.array(KINDS, dtype=object)
    country_names = pa.array(names[country_all], pa.string())
    descriptions = pc.binary_join_element_wise(
        country_names, pa.array(kinds[kind_all], pa.string()), " - "
    )
    increments = pa.array(np.array(INCREMENTS, dtype=object)[country_increment[country_all]])

    start = date.fromisoformat(effective_date)
    # India mobile stays a single current version so the demo's rate is unambiguous.
    eligible = np.arange(n) >= len(INDIA_MOBILE_PREFIXES)
    versioned = eligible & (rng.random(n) < version_fraction)
    closing = eligible & ~versioned & (rng.random(n) < closed_fraction)
    change = rng.choice([-1, 1], size=n) * rng.integers(1, 11, size=n)  # ±1..10 %
    new_rate = np.maximum(rate_all + rate_all // 100 * change, 10 ** (RATE_SCALE - 4))

    base_rows = _rows(
        country_names,
        descriptions,
        prefix,
        _rate_strings(rate_all),
        increments,
        np.full(n, start.isoformat(), dtype=object),
        np.full(n, "Current", dtype=object),
    )
    later = (start + timedelta(days=14)).isoformat()
    version_rows = _rows(
        *(a.filter(pa.array(versioned)) for a in (country_names, descriptions, prefix)),
        _rate_strings(new_rate[versioned]),
        increments.filter(pa.array(versioned)),
        np.full(int(versioned.sum()), later, dtype=object),
        np.where(change[versioned] > 0, "Increase", "Decrease").astype(object),
    )
    closed_rows = _rows(
        *(a.filter(pa.array(closing)) for a in (country_names, descriptions, prefix)),
        pa.array([""] * int(closing.sum()), pa.string()),
        increments.filter(pa.array(closing)),
        np.full(int(closing.sum()), (start + timedelta(days=30)).isoformat(), dtype=object),
        np.full(int(closing.sum()), "Closed", dtype=object),
    )
    table = pa.concat_tables([base_rows, version_rows, closed_rows])
    table = table.take(
        pc.sort_indices(table, [("Description", "ascending"), ("Code", "ascending")])
    )
    table = table.rename_columns([h.format(currency=currency) for h in HEADER])
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="needed"))
    return sink.getvalue()


def _random_prefixes(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` distinct prefixes as integers (no leading zero, so digits = length)."""
    codes = np.array([int(c[0]) for c in COUNTRIES], dtype=np.int64)
    code_len = np.array([len(c[0]) for c in COUNTRIES], dtype=np.int64)
    # Big markets have more ranges; weight by a rough per-country share.
    weights = rng.pareto(1.5, size=len(COUNTRIES)) + 0.2
    weights /= weights.sum()
    chosen_values: list[np.ndarray] = []
    chosen_country: list[np.ndarray] = []
    seen = np.empty(0, dtype=np.int64)
    while sum(len(v) for v in chosen_values) < count:
        m = int((count - sum(len(v) for v in chosen_values)) * 1.3) + 64
        country = rng.choice(len(COUNTRIES), size=m, p=weights)
        length = rng.integers(np.maximum(3, code_len[country] + 1), 13)
        suffix_len = length - code_len[country]
        suffix = (rng.random(m) * (10.0**suffix_len)).astype(np.int64)
        value = codes[country] * 10**suffix_len + suffix
        lead3 = value // 10 ** (length - 3)
        ok = ~np.isin(lead3, [int(p) for p in INDIA_MOBILE_PREFIXES])
        key = value * 16 + length  # "4401" and "44010" differ; the length tells them apart
        key, first = np.unique(key[ok], return_index=True)
        fresh = ~np.isin(key, seen)
        take = np.sort(np.flatnonzero(ok)[first[fresh]])
        seen = np.concatenate([seen, key[fresh]])
        chosen_values.append(value[take])
        chosen_country.append(country[take])
    values = np.concatenate(chosen_values)[:count]
    country = np.concatenate(chosen_country)[:count]
    return values, country


def _rate_strings(units: np.ndarray) -> pa.Array:
    return pc.cast(decimal_array(np.asarray(units, dtype=np.int64), RATE_SCALE), pa.string())


def _rows(country, description, prefix, rate, increment, effective, status) -> pa.Table:
    n = len(prefix)
    return pa.table(
        {
            "Country": country,
            "Description": description,
            "Code": prefix,
            "Rate": rate,
            "Connect Fee": pa.array(["0"] * n, pa.string()),
            "Effective Date": pa.array(effective, pa.string()),
            "End Date": pa.array([""] * n, pa.string()),
            "Billing Increment": increment,
            "Change": pa.array(status, pa.string()),
        }
    )
