"""Benchmark an account's rate history: ten weekly 50,000-code A-Z decks, each with changes.

Week 1 is a generated A-Z deck (functions.rate.samples: 8% of codes with a later-dated rate,
2% closed later). Each later week is the same deck dated a week on, with a share of its rates
moved up or down and a share of its codes left out, uploaded as a full deck. It reports:
  (a) per week, composing the deck onto the timeline (functions.rate.timeline: prepare and
      compose, the work `deck upload` adds), what the upload did, and the timeline's size;
  (b) the same ten uploads end to end through `tollgate deck upload` on an in-process moto
      (parse, compose, two Parquet objects, one DynamoDB transaction; moto's own overhead
      included, so only the order of magnitude means anything).

    .venv/bin/python bench/deck_history_bench.py [--prefixes N] [--weeks N] [--changed 0.03]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402

from functions.rate.deck import ALWAYS, NEVER, parse_deck  # noqa: E402
from functions.rate.samples import generate_deck_csv  # noqa: E402
from functions.rate.timeline import FULL, compose, effective_date, prepare  # noqa: E402
from functions.shared.money import RATE_SCALE, decimal_array  # noqa: E402

FIRST_WEEK = date(2024, 5, 1)
DAY = 86_400


def weekly_decks(prefixes: int, weeks: int, changed: float, dropped: float) -> list[bytes]:
    """Deck CSVs, one a week: the first generated, each later one moved on a week."""
    first = parse_deck(generate_deck_csv(prefixes, seed=2, effective_date=str(FIRST_WEEK)))
    table = first.table
    rng = np.random.default_rng(7)
    decks = [_csv(table)]
    for _ in range(1, weeks):
        rate = table.column("rate_e8").to_numpy().copy()
        moved = rng.random(len(rate)) < changed
        step = rng.choice([-1, 1], size=len(rate)) * rng.integers(1, 11, size=len(rate))
        rate[moved] = np.maximum(rate[moved] + rate[moved] // 100 * step[moved], 10_000)
        table = table.set_column(2, "rate_e8", pa.array(rate, pa.int64()))
        table = _shifted(table, 7 * DAY)
        kept = rng.random(table.num_rows) >= dropped
        decks.append(_csv(table.filter(pa.array(kept))))
    return decks


def _shifted(table: pa.Table, seconds: int) -> pa.Table:
    for name in ("effective_from", "effective_to"):
        values = table.column(name).to_numpy()
        moved = np.where((values == ALWAYS) | (values == NEVER), values, values + seconds)
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(moved))
    return table


def _csv(table: pa.Table) -> bytes:
    """A compiled deck written back as the CSV a carrier would send (exact decimals)."""

    def day(name: str) -> pa.Array:
        seconds = table.column(name).to_numpy()
        text = pc.strftime(pa.array(seconds, pa.timestamp("s")), "%Y-%m-%d")
        open_end = pa.array((seconds == ALWAYS) | (seconds == NEVER))
        return pc.if_else(open_end, "", text)

    closed = table.column("closed").combine_chunks()
    rate = decimal_array(table.column("rate_e8").to_numpy(), RATE_SCALE).cast(pa.string())
    out = pa.table(
        {
            "prefix": table.column("prefix"),
            "destination": table.column("destination"),
            "rate": pc.if_else(closed, "", rate),
            "increment": pc.binary_join_element_wise(
                pc.cast(table.column("increment_first"), pa.string()),
                pc.cast(table.column("increment_next"), pa.string()),
                "/",
            ),
            "effective_from": day("effective_from"),
            "effective_to": day("effective_to"),
            "status": pc.if_else(closed, "Closed", ""),
        }
    )
    sink = pa.BufferOutputStream()
    pacsv.write_csv(out, sink, pacsv.WriteOptions(quoting_style="needed"))
    return sink.getvalue().to_pybytes()


def compose_weeks(decks: list[bytes]) -> None:
    print(
        f"{'week':>4}  {'E':<10}  {'parse s':>7}  {'compose s':>9}  {'added':>6}  "
        f"{'same':>6}  {'super':>6}  {'ended':>6}  {'closed':>6}  {'timeline':>8}"
    )
    timeline = None
    uploaded = int(datetime.now(UTC).timestamp())
    for week, data in enumerate(decks, start=1):
        began = time.perf_counter()
        rows = parse_deck(data, source=f"week{week}.csv").table
        parsed = time.perf_counter()
        when = effective_date(rows, None, uploaded)
        prepared = prepare(rows, effective=when, first=timeline is None)
        composed = compose(timeline, prepared, mode=FULL, effective=when)
        timeline = composed.numbered(week)
        done = time.perf_counter()
        print(
            f"{week:>4}  {datetime.fromtimestamp(when, UTC).date()!s:<10}  "
            f"{parsed - began:>7.3f}  {done - parsed:>9.3f}  {composed.added:>6}  "
            f"{composed.unchanged:>6}  {composed.superseded:>6}  {composed.end_dated:>6}  "
            f"{composed.closed:>6}  {timeline.num_rows:>8}"
        )


def upload_weeks(decks: list[bytes]) -> None:
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_TRACE_DISABLED="1",
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from contextlib import redirect_stdout
    from io import StringIO

    from moto import mock_aws

    from functions import store
    from functions.cli import main
    from functions.store import accounts

    seconds = []
    with tempfile.TemporaryDirectory() as work, mock_aws():
        store.reset()
        store.provision()
        with redirect_stdout(StringIO()):
            main(["tenant", "create", "bench"])
            main(["account", "create", "bench", "carrier", "--kind", "supplier"])
        for week, data in enumerate(decks, start=1):
            path = Path(work) / f"week{week}.csv"
            path.write_bytes(data)
            began = time.perf_counter()
            with redirect_stdout(StringIO()):
                status = main(["deck", "upload", "bench", "carrier", str(path)])
            seconds.append(time.perf_counter() - began)
            if status != 0:
                raise SystemExit(f"week {week}: tollgate deck upload exited {status}")
        head = accounts.active_deck("bench", "carrier")
    store.reset()
    print(
        f"\n`tollgate deck upload` on in-process moto, {len(decks)} uploads: median "
        f"{statistics.median(seconds):.2f} s, max {max(seconds):.2f} s; head v{head.version}, "
        f"{head.timeline_rows} timeline entries"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", type=int, default=50_000)
    parser.add_argument("--weeks", type=int, default=10)
    parser.add_argument("--changed", type=float, default=0.03, help="share of rates moved a week")
    parser.add_argument("--dropped", type=float, default=0.002, help="share of codes left out")
    args = parser.parse_args()
    decks = weekly_decks(args.prefixes, args.weeks, args.changed, args.dropped)
    rows = parse_deck(decks[0]).table.num_rows
    print(
        f"{args.weeks} weekly A-Z decks of {args.prefixes:,} codes ({rows:,} rows), "
        f"{args.changed:.0%} of rates moved and {args.dropped:.1%} of codes left out a week; "
        f"full uploads, E = each deck's earliest date\n"
    )
    compose_weeks(decks)
    upload_weeks(decks)


if __name__ == "__main__":
    main()
