"""Benchmark the pricing models on the pipeline's path: what each costs per call.

One generated month of calls (1 M by default, India mobile and the UK the busiest groups) from
one customer under a reseller, priced for every party by `rate_parties` in the rate service's
parts (65,536 calls), against a generated 20,000-code A-Z deck per account, with:
  plain      the decks alone (the baseline);
  tiers      the customer's graduated tiers on India (91), counted per month (RunCounters);
  bundle     a bundle of UK (44) minutes, then the deck;
  plans      two rate plans chosen by caller-prefix rules (eea for 33 and 49 callers);
  origin     a deck where 10% of the codes have a second entry for French callers (33);
  surcharge  a deck whose entries carry a per-minute surcharge (a charge row each).
It prints calls per second for each and its cost relative to the plain run.

    .venv/bin/python bench/pricing_models_bench.py [--calls N] [--prefixes N] [--runs N]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402

from functions.rate.contracts import Contracts, Counter, RunCounters  # noqa: E402
from functions.rate.deck import parse_deck  # noqa: E402
from functions.rate.parties import Account, Parties, rate_parties  # noqa: E402
from functions.rate.rating import DeckIndex  # noqa: E402
from functions.rate.samples import generate_deck_csv  # noqa: E402
from functions.rate.service import PART_ROWS  # noqa: E402
from functions.rate.tiers import Bundle, Tier, TierSchedule  # noqa: E402
from functions.shared.cdr import CDR_SCHEMA  # noqa: E402

MAY = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp())
CALLER_COUNTRIES = np.array(["1", "33", "44", "49", "91"])


def calls(n: int, deck: pa.Table, seed: int = 11) -> pa.Table:
    """n calls: a third to India mobile, a fifth to the UK, the rest to the deck's codes."""
    rng = np.random.default_rng(seed)
    codes = deck.column("prefix").to_numpy(zero_copy_only=False)
    head = rng.choice(codes, n).astype(object)
    which = rng.random(n)
    head[which < 0.33] = "9170"
    head[(which >= 0.33) & (which < 0.53)] = "447"
    tail = rng.integers(10**7, 10**8, n).astype(str).astype(object)
    callee = (head + tail).astype(str)
    caller = (rng.choice(CALLER_COUNTRIES, n).astype(object) + tail).astype(str)
    start = MAY + np.sort(rng.integers(0, 30 * 86_400, n))
    billsec = np.where(rng.random(n) < 0.4, 0, rng.integers(1, 600, n))
    return _table(n, caller, callee, start, billsec)


def _table(n, caller, callee, start, billsec) -> pa.Table:
    columns = {
        "line": pa.array(np.arange(2, n + 2)),
        "call_id": pa.array(np.char.add("c", np.arange(n).astype(str))),
        "caller": pa.array(caller),
        "callee": pa.array(callee),
        "start_time": pa.array(start * 1_000_000, pa.timestamp("us", tz="UTC")),
        "billsec": pa.array(billsec),
        "disposition": pa.array(np.where(billsec > 0, "ANSWERED", "NO_ANSWER")),
        "customer": pa.array(np.full(n, "acme")),
        "supplier": pa.array(np.full(n, "tata")),
    }
    fields = [CDR_SCHEMA.field(name) for name in columns]
    return pa.table([columns[f.name].cast(f.type) for f in fields], schema=pa.schema(fields))


def deck_csv(prefixes: int, seed: int, *, origin: bool = False, surcharge: bool = False) -> bytes:
    text = generate_deck_csv(prefixes, seed)
    if not (origin or surcharge):
        return text
    table = pacsv.read_csv(io.BytesIO(text), convert_options=pacsv.ConvertOptions(
        column_types={name: pa.string() for name in ("prefix", "rate", "effective_from")}
    ))  # fmt: skip
    n = table.num_rows
    if surcharge:
        table = table.append_column("surcharge", pa.array(np.full(n, "0.0002")))
    if origin:
        table = table.append_column("origin", pa.array(np.full(n, "")))
        french = table.filter(pa.array(np.arange(n) % 10 == 0))
        french = french.set_column(
            french.schema.get_field_index("origin"), "origin", pa.array(np.full(len(french), "33"))
        )
        table = pa.concat_tables([table, french])
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def index(data: bytes) -> DeckIndex:
    return DeckIndex.build(parse_deck(data).table, "USD")


def scenarios(prefixes: int) -> dict[str, Parties]:
    accounts = {
        "acme": Account("acme", "customer", parent="resell"),
        "resell": Account("resell", "reseller"),
        "tata": Account("tata", "supplier"),
    }
    plain = {name: index(deck_csv(prefixes, seed)) for seed, name in enumerate(accounts)}
    india = TierSchedule("india", ("91",), "graduated", (Tier(60 * 2_000_000, 700_000),
                                                        Tier(None, 600_000)))  # fmt: skip
    uk = Bundle("uk", ("44",), included_seconds=60 * 500_000, fee_units=0)
    eea = {"acme": index(deck_csv(prefixes, 7))}
    return {
        "plain": Parties(accounts, plain),
        "tiers": Parties(accounts, plain, contracts={"acme": Contracts(tiers=[india])}),
        "bundle": Parties(accounts, plain, contracts={"acme": Contracts(bundles=[uk])}),
        "plans": Parties(
            accounts,
            plain,
            plan_decks={("acme", "eea"): eea["acme"]},
            plan_rules={"acme": {"33": "eea", "49": "eea"}},
        ),
        "origin": Parties(accounts, {**plain, "acme": index(deck_csv(prefixes, 0, origin=True))}),
        "surcharge": Parties(
            accounts, {**plain, "acme": index(deck_csv(prefixes, 0, surcharge=True))}
        ),
    }


def price(table: pa.Table, parties: Parties) -> tuple[float, int]:
    counters = RunCounters(lambda key: Counter())
    began = time.perf_counter()
    charges = 0
    for start in range(0, table.num_rows, PART_ROWS):
        part = table.slice(start, PART_ROWS)
        charges += rate_parties(part, parties, "bench", counters=counters).charges.num_rows
    return time.perf_counter() - began, charges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--prefixes", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    models = scenarios(args.prefixes)
    table = calls(args.calls, models["plain"].decks["acme"].deck)
    answered = int(pc.sum(pc.greater(table.column("billsec"), 0)).as_py())
    print(f"{args.calls:,} calls ({answered:,} answered), {args.prefixes:,}-code decks, "
          f"3 parties a call, parts of {PART_ROWS:,}; best of {args.runs} runs")  # fmt: skip
    baseline = None
    for name, parties in models.items():
        times = []
        for _ in range(args.runs):
            seconds, charges = price(table, parties)
            times.append(seconds)
        best = min(times)
        baseline = baseline or best
        print(
            f"  {name:<10} {args.calls / best:>12,.0f} calls/s  {best:6.2f} s "
            f"(median {statistics.median(times):.2f})  x{best / baseline:4.2f} of plain  "
            f"{charges:,} charges"
        )


if __name__ == "__main__":
    main()
