"""Synthetic rated traffic for the fraud tests and bench: tables shaped as the lake's `rated`
area (the columns functions.fraud.counters.COLUMNS reads), built with numpy, seeded."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pyarrow as pa

from functions.shared.money import AMOUNT_SCALE, RATE_SCALE, decimal_array

UTC = dt.UTC
T0 = dt.datetime(2026, 10, 5, tzinfo=UTC)  # a Monday, 00:00 UTC


@dataclass(frozen=True)
class Flow:
    """Calls of one account to one destination prefix at one rate."""

    account: str
    prefix: str  # callee prefix, e.g. "1212" or "25261"
    rate: str  # per minute, e.g. "0.0065"
    supplier: str = "carrier-a"
    callers: int = 500  # distinct callers drawn from
    numbers: int = 2000  # distinct callees drawn from
    mean_seconds: int = 180
    answer_share: float = 0.6  # ASR
    short_share: float = 0.03  # of answered calls, 1-6 s


def calls(
    flow: Flow, starts: np.ndarray, rng: np.random.Generator, *, first_id: int = 0
) -> pa.Table:
    """One rated row per start (epoch seconds), priced per second (1/1) at the flow's rate."""
    n = len(starts)
    if n == 0:  # numpy's string functions refuse empty arrays: build one row, keep none
        return calls(flow, np.zeros(1, np.int64), rng, first_id=first_id).slice(0, 0)
    answered = rng.random(n) < flow.answer_share
    short = answered & (rng.random(n) < flow.short_share)
    seconds = np.where(
        short,
        rng.integers(1, 7, n),
        np.maximum(7, rng.exponential(flow.mean_seconds, n).astype(np.int64)),
    )
    billsec = np.where(answered, seconds, 0).astype(np.int64)
    rate_units = int(Decimal(flow.rate).scaleb(RATE_SCALE))
    # amount = billsec * rate / 60, to micro-units (AMOUNT_SCALE 6 < RATE_SCALE 8): floor, exact
    amount = billsec * rate_units // (60 * 10 ** (RATE_SCALE - AMOUNT_SCALE))
    width = 12 - len(flow.prefix)
    callee = np.char.add(
        flow.prefix, np.char.zfill(rng.integers(0, flow.numbers, n).astype(str), max(width, 1))
    )
    caller = np.char.add("4420", np.char.zfill(rng.integers(0, flow.callers, n).astype(str), 7))
    ids = np.char.add(
        f"{flow.account}-{flow.prefix}-", np.arange(first_id, first_id + n).astype(str)
    )
    micros = starts.astype(np.int64) * 1_000_000
    return pa.table(
        {
            "call_id": pa.array(ids.astype(object), pa.string()),
            "start_time": pa.array(micros, pa.timestamp("us", tz="UTC")),
            "caller": pa.array(caller.astype(object), pa.string()),
            "callee": pa.array(callee.astype(object), pa.string()),
            "billsec": pa.array(billsec),
            "disposition": pa.array(
                np.where(answered, "ANSWERED", "NO_ANSWER").astype(object), pa.string()
            ),
            "status": pa.array(np.full(n, "rated").astype(object), pa.string()),
            "customer": pa.array(np.full(n, flow.account).astype(object), pa.string()),
            "customer_rate": decimal_array(np.full(n, rate_units, np.int64), RATE_SCALE),
            "customer_amount": decimal_array(amount.astype(np.int64), AMOUNT_SCALE),
            "supplier": pa.array(np.full(n, flow.supplier).astype(object), pa.string()),
        }
    )


def hourly_starts(counts: np.ndarray, start: dt.datetime, rng: np.random.Generator) -> np.ndarray:
    """Call starts: counts[i] calls spread uniformly over hour i after `start`."""
    base = int(start.timestamp())
    hours = np.repeat(np.arange(len(counts)), counts)
    return base + hours * 3600 + rng.integers(0, 3600, len(hours))


def office_profile(
    hours: int,
    start: dt.datetime,
    peak: float,
    rng: np.random.Generator,
    *,
    weekend: float = 0.1,
    night: float = 0.02,
) -> np.ndarray:
    """Calls per hour with daily and weekly seasonality (Poisson around the profile)."""
    stamps = [start + dt.timedelta(hours=h) for h in range(hours)]
    shape = np.array(
        [
            (1.0 if 8 <= s.hour < 18 else 0.35 if 18 <= s.hour < 22 else night)
            * (weekend if s.weekday() >= 5 else 1.0)
            for s in stamps
        ]
    )
    return rng.poisson(peak * shape)
