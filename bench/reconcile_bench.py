"""Reconciliation matching at scale: 1,000,000 of our CDRs against about 1,000,000 of theirs.

The partner's side is made from ours as the reference measured it (fraud-reconciliation.md
§B5): 0.5 % of our calls dropped, 0.3 % extra calls of theirs, every start moved by a jitter
of -2..+2 s and by a 7 s clock offset, 3 % of durations off by 1 s (at the same amount); a
further 0.2 % of their durations inflated by 5..60 s and 0.2 % of their amounts changed (so
every class is there).
Callees are drawn from 20,000,000 numbers over one day of calls, so a few repeat.

Prints the matching's seconds (functions.reconcile.matching.reconcile alone: the sides are
built before the clock starts), CDRs per second (both sides' CDRs over those seconds), the
classes' counts against what was injected, and the process's peak RSS (and what it was
once the two sides were generated, before the matching).

    .venv/bin/python bench/reconcile_bench.py [--cdrs N] [--seed N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from functions.reconcile.matching import reconcile, units_money  # noqa: E402
from functions.reconcile.result import PARTY_SCHEMA  # noqa: E402

DAY = dt.date(2026, 11, 2)
MICROS = 1_000_000


def side(line, call_id, callee, start_us, billsec, units) -> pa.Table:
    return pa.table(
        {
            "line": pa.array(line, pa.int64()),
            "call_id": call_id,
            "callee": callee,
            "start_time": pa.array(start_us, pa.int64()).cast(
                PARTY_SCHEMA.field("start_time").type
            ),
            "billsec": pa.array(billsec, pa.int64()),
            "amount": units_money(units),
        },
        schema=PARTY_SCHEMA,
    )


def make_sides(cdrs: int, seed: int) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    rng = np.random.default_rng(seed)
    day0 = int(dt.datetime(DAY.year, DAY.month, DAY.day, tzinfo=dt.UTC).timestamp()) * MICROS
    numbers = rng.integers(0, 20_000_000, cdrs)
    callee = np.char.add("4420", np.char.zfill(numbers.astype(str), 8))
    start = day0 + rng.integers(0, 86_400 - 60, cdrs) * MICROS
    billsec = rng.integers(1, 600, cdrs)
    units = billsec * 150  # 0.009 a minute, per second: 150 micro-units a second
    ids = np.char.add("o", np.arange(cdrs).astype(str))
    ours = side(np.arange(1, cdrs + 1), pa.array(ids), pa.array(callee), start, billsec, units)

    kept = np.flatnonzero(rng.random(cdrs) >= 0.005)
    n = len(kept)
    their_start = start[kept] + (7 + rng.integers(-2, 3, n)) * MICROS
    their_billsec = billsec[kept].copy()
    off = rng.random(n) < 0.03
    their_billsec[off] = np.maximum(their_billsec[off] + rng.choice([-1, 1], off.sum()), 1)
    inflated = (rng.random(n) < 0.002) & ~off
    their_billsec[inflated] += rng.integers(5, 61, inflated.sum())
    their_units = billsec[kept] * 150  # rounding to the minute: a second's jitter costs 0
    their_units[inflated] = their_billsec[inflated] * 150
    repriced = (rng.random(n) < 0.002) & ~inflated & ~off
    their_units[repriced] += 1000
    extra = int(cdrs * 0.003)
    extra_callee = np.char.add("4499", np.char.zfill(rng.integers(0, 10**8, extra).astype(str), 8))
    extra_start = day0 + rng.integers(0, 86_400 - 60, extra) * MICROS
    extra_billsec = rng.integers(1, 600, extra)
    theirs = side(
        np.arange(1, n + extra + 1),
        pa.array(np.char.add("t", np.arange(n + extra).astype(str))),
        pa.array(np.concatenate([callee[kept], extra_callee])),
        np.concatenate([their_start, extra_start]),
        np.concatenate([their_billsec, extra_billsec]),
        np.concatenate([their_units, extra_billsec * 150]),
    )
    injected = {
        "missing_theirs": cdrs - n,
        "missing_ours": extra,
        "duration_mismatch": int(inflated.sum()),
        "rate_mismatch": int(repriced.sum()),
    }
    injected["matched"] = n - injected["duration_mismatch"] - injected["rate_mismatch"]
    return ours, theirs, injected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdrs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    ours, theirs, injected = make_sides(args.cdrs, args.seed)
    built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    result = reconcile(
        ours,
        theirs,
        partner="carrier-x",
        role="supplier",
        currency="USD",
        date_from=DAY,
        date_to=DAY,
        amount_tolerance=Decimal("0"),
    )
    seconds = time.perf_counter() - began
    total = ours.num_rows + theirs.num_rows
    print(f"ours {ours.num_rows:,} CDRs, theirs {theirs.num_rows:,} CDRs")
    print(f"clock offset {result.clock_offset_seconds} s (injected 7)")
    print(f"{'class':<18} {'count':>10} {'injected':>10} {'minutes':>14} {'difference':>16}")
    for name, total_of in result.totals.items():
        print(
            f"{name:<18} {total_of.count:>10,} {injected[name]:>10,} "
            f"{total_of.minutes:>14.2f} {total_of.difference:>16}"
        )
    print(f"our {result.our_amount} their {result.their_amount} difference {result.difference}")
    print(f"matching: {seconds:.2f} s, {total / seconds:,.0f} CDRs/s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB ({built:,.0f} MiB once the sides were built)")


if __name__ == "__main__":
    main()
