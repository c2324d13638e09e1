"""A pricing run's totals, added up part by part, are the totals of the whole run, exactly."""

from __future__ import annotations

import itertools
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.rate.parties import charge_deltas
from functions.rate.totals import MAX_DESTINATIONS, RunTotals
from functions.shared.money import decimal_array

ACCOUNTS = ("retail", "resellco", "direct", "tata", "bt")
ROLE = {"retail": "customer", "resellco": "reseller", "direct": "customer", "tata": "supplier"}
ROLE["bt"] = "supplier"


def tables(seed: int, calls: int) -> tuple[pa.Table, pa.Table]:
    """A rated table (one row per call) and a charges table (two parties per call)."""
    rng = np.random.default_rng(seed)
    answered = rng.random(calls) < 0.7
    customer = rng.choice(["retail", "direct", None], calls, p=[0.45, 0.45, 0.1])
    destination = rng.choice(["India - Mobile", "UK", "France"], calls)
    billed = np.where(answered, rng.integers(1, 4_000, calls), 0)
    rated = pa.table(
        {
            "status": pa.array(np.where(answered, "rated", "unrated")),
            "customer": pa.array(customer.tolist(), pa.string()),
            "destination": pa.array(destination.tolist()),
            "billed_seconds": pa.array(billed, pa.int64()),
        }
    )
    line = np.repeat(np.arange(2, calls + 2), 2)
    account = np.stack([customer, rng.choice(["tata", "bt"], calls)], axis=1).ravel()
    unknown = account == None  # noqa: E711 (numpy object array)
    charged = np.repeat(answered, 2) & ~unknown
    units = rng.integers(-(2**40), 2**40, 2 * calls)
    role = [ROLE.get(a, "customer") if a else "customer" for a in account]
    charges = pa.table(
        {
            "line": pa.array(line, pa.int64()),
            "account": pa.array(account.tolist(), pa.string()).dictionary_encode(),
            "role": pa.array(role).dictionary_encode(),
            "status": pa.array(np.where(charged, "rated", "unrated")).dictionary_encode(),
            "reason": pa.array(
                [
                    None if c else ("unknown_account" if u else "no_rate")
                    for c, u in zip(charged, unknown, strict=True)
                ],
                pa.string(),
            ).dictionary_encode(),
            "amount": decimal_array(units, 6, ~charged),
        }
    )
    return rated, charges


def in_parts(rated: pa.Table, charges: pa.Table, cuts: list[int]) -> RunTotals:
    """Totals added as the service adds them: each part's calls with their charges."""
    totals = RunTotals()
    bounds = [0, *sorted(cuts), rated.num_rows]
    for start, end in itertools.pairwise(bounds):
        totals.add_rated(rated.slice(start, end - start))
        totals.add_charges(charges.slice(2 * start, 2 * (end - start)))
    return totals.finish()


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    calls=st.integers(0, 400),
    cuts=st.lists(st.floats(0, 1), max_size=6),
)
def test_totals_added_in_parts_equal_the_totals_of_the_whole(seed, calls, cuts):
    rated, charges = tables(seed, calls)
    whole = in_parts(rated, charges, [])
    parts = in_parts(rated, charges, [int(c * calls) for c in cuts])
    assert parts.to_dict() == whole.to_dict()
    # The deltas are the charges' own, to the micro-unit, and survive storage unchanged.
    assert parts.deltas == charge_deltas(charges)
    assert RunTotals.from_dict(parts.to_dict()).to_dict() == whole.to_dict()
    answered = [r for r in rated.to_pylist() if r["status"] == "rated"]
    assert parts.rated == len(answered) and parts.unrated == calls - len(answered)
    reasons = charges.column("reason").cast(pa.string()).to_pylist()
    lines = charges.column("line").to_pylist()
    unknown = {line for line, r in zip(lines, reasons, strict=True) if r == "unknown_account"}
    assert parts.unknown_account == len(unknown)
    seconds: dict[tuple, int] = {}
    for r in answered:
        key = (r["customer"], r["destination"])
        seconds[key] = seconds.get(key, 0) + r["billed_seconds"]
    assert {(d["customer"], d["destination"]): d["billed_seconds"] for d in parts.destinations} == (
        seconds
    )


def test_the_busiest_destinations_come_first_and_are_capped():
    totals = RunTotals()
    names = [f"d{i:04d}" for i in range(MAX_DESTINATIONS + 10)]
    for _ in range(2):  # the same destinations in two parts: merged, not listed twice
        totals.add_rated(
            pa.table(
                {
                    "status": ["rated"] * len(names),
                    "customer": ["retail"] * len(names),
                    "destination": names,
                    "billed_seconds": pa.array(range(len(names)), pa.int64()),
                }
            )
        )
    totals.finish()
    assert len(totals.destinations) == MAX_DESTINATIONS
    assert totals.destinations[0] == {
        "customer": "retail",
        "destination": names[-1],
        "billed_seconds": 2 * (len(names) - 1),
        "calls": 2,
    }
    seconds = [d["billed_seconds"] for d in totals.destinations]
    assert seconds == sorted(seconds, reverse=True)


def test_stored_totals_are_integers_or_refused():
    totals = RunTotals(deltas={"retail": -9_658}).finish()
    stored = totals.to_dict()
    assert stored["deltas"] == {"retail": -9_658} and stored["unknown_account"] == 0
    with pytest.raises(ValueError, match="integers"):
        RunTotals.from_dict(stored | {"deltas": {"retail": -0.009658}})
    with pytest.raises(ValueError, match="integers"):
        RunTotals.from_dict(stored | {"rated": Decimal(3)})
    with pytest.raises(ValueError, match="once finished"):
        RunTotals().to_dict()
