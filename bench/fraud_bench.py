"""The fraud check of one rated file, on the real DynamoDB adapter (in-process moto), timed and
its DynamoDB requests counted, for files of several shapes.

Issue 12: a file's work is a few Arrow group-bys over its parts, and its writes grow with
accounts x destination groups x hours in the file, never with its CDRs. The default shapes:
    a      10,000 CDRs, 10 accounts x 3 groups x 1 hour
    b     100,000 CDRs, the same keys            (10x the CDRs: the same counter writes)
    c   1,000,000 CDRs, the same keys            (100x: the same again)
    d     100,000 CDRs, 50 accounts x 5 groups x 24 hours   (more keys: more writes)
A file updates one counter item per (account, hour), holding every destination group's
counters (and group `*`, all destinations), and one per (supplier, hour): A*H + S*H updates
(more when an item holds more than functions.store.fraud.CLAUSES attributes). DynamoDB bills
an update by the item's size: the write units are estimated from the items' sizes, and set
beside what one item per (account, group, hour) would cost (A*G*H + A*H + S*G*H units).

Each shape runs in a fresh moto account (store.provision, a tenant with its customers and
supplier created through functions.store.accounts, so a critical alert can suspend one), with
the tenant's default policy; events and notices go to tests/fraud/fakes.Published. The
traffic is tests/fraud/traffic.py's (one Flow per account x group, spread evenly over the
hours from T0, cheap rates), sorted by start time and cut into parts of the lake's row-group
size, the COLUMNS the handler reads. The heavier shapes are not ordinary for 10 accounts (up
to 100,000 calls an account in one hour): their velocity alerts are real findings, and their
writes are reported apart from the counters'.

Measured from the outside, no timing code in functions/: the store port is the adapter
module behind a proxy that times each call; functions.fraud.service's tally_file and _judge
are wrapped; DynamoDB requests are counted by a botocore hook on the adapter's client
(functions.store.client("dynamodb"), `before-call.dynamodb.*`). The accounts store (PynamoDB,
its own client) is not counted: it is read and written only for a suspension.

    .venv/bin/python bench/fraud_bench.py [--quick] [--shape NAME=CDRS:ACCOUNTS:GROUPS:HOURS]...
                                          [--part-rows N] [--seed N]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import functools
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TENANT = "benchcarrier"
SUPPLIER = "carrier-a"  # traffic.Flow's default supplier
# Destination prefixes of distinct groups (functions/fraud/countries.csv), at ordinary rates
# below new_destination.min_rate, so no call is a callback candidate.
DESTINATIONS = (
    ("1212", "0.0065"),  # United States
    ("4420", "0.0090"),  # United Kingdom
    ("4930", "0.0110"),  # Germany
    ("3314", "0.0120"),  # France
    ("3906", "0.0110"),  # Italy
    ("3491", "0.0100"),  # Spain
    ("3120", "0.0095"),  # Netherlands
    ("4122", "0.0130"),  # Switzerland
)
DEFAULT_SHAPES = (
    ("a", 10_000, 10, 3, 1),
    ("b", 100_000, 10, 3, 1),
    ("c", 1_000_000, 10, 3, 1),
    ("d", 100_000, 50, 5, 24),
)
QUICK_SHAPES = (
    ("a", 2_000, 4, 2, 1),
    ("b", 20_000, 4, 2, 1),
    ("d", 20_000, 10, 3, 6),
)
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
READS = ("GetItem", "BatchGetItem", "Query", "Scan")
STORE_WRITES = (
    "first_sighting",
    "put_evidence",
    "touch_active",
    "put_alert",
    "set_action",
    "delivered",
    "mark_file_checked",
)


@dataclass(frozen=True)
class Shape:
    name: str
    cdrs: int
    accounts: int
    groups: int
    hours: int

    @property
    def keys(self) -> int:
        return self.accounts * self.groups * self.hours

    @property
    def expected_counters(self) -> int:
        # an item per customer x hour (every group in it) and per supplier x hour
        return self.accounts * self.hours + self.hours

    @property
    def per_group_units(self) -> int:
        # one 1 KB item per customer x group x hour, customer x hour (*), supplier x group x hour
        return self.keys + self.accounts * self.hours + self.groups * self.hours


def parse_shape(text: str) -> Shape:
    name, _, spec = text.partition("=")
    try:
        cdrs, accounts, groups, hours = (int(v) for v in spec.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use NAME=CDRS:ACCOUNTS:GROUPS:HOURS") from None
    if not name or min(cdrs, accounts, groups, hours) < 1 or groups > len(DESTINATIONS):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a name, positive numbers, at most {len(DESTINATIONS)} groups"
        )
    return Shape(name, cdrs, accounts, groups, hours)


# --- traffic -------------------------------------------------------------------------------


def account_name(index: int) -> str:
    return f"cust{index:03d}"


def rated_parts(shape: Shape, rng: Any, part_rows: int) -> list[Any]:
    """The file's rated table, in start order, as the lake's parts of `part_rows` rows."""
    import numpy as np
    import pyarrow as pa

    from functions.fraud.counters import COLUMNS
    from tests.fraud.traffic import T0, Flow, calls, hourly_starts

    flows = [
        Flow(account_name(a), prefix, rate)
        for a in range(shape.accounts)
        for prefix, rate in DESTINATIONS[: shape.groups]
    ]
    # CDRs spread evenly over flows x hours; the remainder one call each to the first cells.
    cells = len(flows) * shape.hours
    per_cell = np.full(cells, shape.cdrs // cells, np.int64)
    per_cell[: shape.cdrs % cells] += 1
    tables = []
    for index, flow in enumerate(flows):
        counts = per_cell[index * shape.hours : (index + 1) * shape.hours]
        tables.append(calls(flow, hourly_starts(counts, T0, rng), rng).select(list(COLUMNS)))
    table = pa.concat_tables(tables).combine_chunks()
    table = table.take(np.argsort(table["start_time"].to_numpy(), kind="stable"))
    return [table.slice(start, part_rows) for start in range(0, table.num_rows, part_rows)]


# --- counting and timing -------------------------------------------------------------------


class Requests:
    """DynamoDB requests by operation, counted on the adapter's client (thread-safe: the
    adapter writes counters from 16 threads)."""

    def __init__(self) -> None:
        self.ops: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.on = False

    def install(self, client: Any) -> None:
        client.meta.events.register("provide-client-params.dynamodb.*", self._params)
        client.meta.events.register("before-call.dynamodb.*", self._before)

    def _params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = params

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if not self.on:
            return
        params = context.get("bench_params") or {}
        op = model.name
        counts = {op: 1}
        if op == "UpdateItem" and params.get("Key", {}).get("sk", {}).get("S", "").startswith("H#"):
            counts = {"UpdateItem counter": 1}
        elif op == "BatchWriteItem":
            counts["BatchWriteItem items"] = sum(len(v) for v in params["RequestItems"].values())
        elif op == "BatchGetItem":
            counts["BatchGetItem keys"] = sum(
                len(v["Keys"]) for v in params["RequestItems"].values()
            )
        elif op == "TransactWriteItems":
            counts["TransactWriteItems items"] = len(params["TransactItems"])
        with self.lock:
            self.ops.update(counts)

    @property
    def counter_writes(self) -> int:
        return self.ops["UpdateItem counter"]

    @property
    def other_writes(self) -> int:
        # items written: a batch or a transaction counts its items, not its requests
        single = sum(self.ops[op] for op in ("PutItem", "UpdateItem", "DeleteItem"))
        return single + self.ops["BatchWriteItem items"] + self.ops["TransactWriteItems items"]

    @property
    def reads(self) -> int:
        return sum(self.ops[op] for op in READS)


class Clock:
    def __init__(self) -> None:
        self.seconds: collections.Counter[str] = collections.Counter()

    def wrap(self, label: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - began

        return timed


def timed_store(clock: Clock) -> Any:
    """functions.store.fraud as a port whose calls are timed: counters, other writes, reads."""
    from functions.store import fraud

    names = [n for n in dir(fraud) if not n.startswith("_") and callable(getattr(fraud, n))]
    port = SimpleNamespace()
    for name in names:
        label = "counters" if name == "add_counters" else (
            "writes" if name in STORE_WRITES else "reads"
        )  # fmt: skip
        setattr(port, name, clock.wrap(label, getattr(fraud, name)))
    return port


# --- one shape -----------------------------------------------------------------------------


def run_shape(shape: Shape, part_rows: int, seed: int) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from moto import mock_aws

    from functions import store
    from functions.fraud import service
    from functions.store import accounts, fraud
    from tests.fraud.fakes import Published
    from tests.fraud.traffic import T0

    began = time.perf_counter()
    parts = rated_parts(shape, np.random.default_rng(seed), part_rows)
    generated = time.perf_counter() - began
    store.reset()
    with mock_aws():
        store.provision()
        accounts.create_tenant(TENANT)
        accounts.create_account(TENANT, SUPPLIER, kind="supplier")
        for index in range(shape.accounts):
            accounts.create_account(TENANT, account_name(index), kind="customer")
        requests = Requests()
        requests.install(store.client("dynamodb"))
        clock = Clock()
        original = service.tally_file, service._judge
        service.tally_file = clock.wrap("tally", service.tally_file)
        service._judge = clock.wrap("judge", service._judge)
        published = Published()
        requests.on = True
        try:
            began = time.perf_counter()
            outcome = service.check_file(
                TENANT,
                f"bench-{shape.name}",
                lambda: iter(parts),
                store=timed_store(clock),
                accounts=SimpleNamespace(
                    get_account=clock.wrap("accounts", accounts.get_account),
                    set_account_status=clock.wrap("accounts", accounts.set_account_status),
                    caller=accounts.caller,
                ),
                events=published,
                notices=published,
                now=T0 + dt.timedelta(hours=shape.hours + 1),
            )
            total = time.perf_counter() - began
        finally:
            requests.on = False
            service.tally_file, service._judge = original
        units = counter_write_units()
        # The same accounts' next file, a week on: what every file after the first costs
        # (their groups seen before, their baselines read).
        week = pa.scalar(7 * 86400 * 1_000_000, pa.duration("us"))
        later = [
            p.set_column(
                p.schema.get_field_index("start_time"),
                "start_time",
                pc.add(p["start_time"], week),
            )
            for p in parts
        ]
        next_requests = Requests()
        next_requests.install(store.client("dynamodb"))
        next_requests.on = True
        began = time.perf_counter()
        next_outcome = service.check_file(
            TENANT,
            f"bench-{shape.name}-next",
            lambda: iter(later),
            store=fraud,
            accounts=accounts,
            events=published,
            notices=published,
            now=T0 + dt.timedelta(days=7, hours=shape.hours + 1),
        )
        next_total = time.perf_counter() - began
        next_requests.on = False
    store.reset()
    if outcome.calls != shape.cdrs:
        raise SystemExit(f"shape {shape.name}: {outcome.calls} calls counted, {shape.cdrs} made")
    if outcome.counters != requests.counter_writes:
        raise SystemExit(
            f"shape {shape.name}: the service says {outcome.counters} counters written, "
            f"DynamoDB saw {requests.counter_writes} counter updates"
        )
    return {
        "shape": shape,
        "outcome": outcome,
        "requests": requests,
        "clock": clock,
        "total": total,
        "generated": generated,
        "parts": len(parts),
        "units": units,
        "next": next_requests,
        "next_total": next_total,
        "next_alerts": len(next_outcome.alerts),
    }


def _size(value: dict) -> int:
    """An attribute value's size as DynamoDB counts it (numbers: about a byte per two
    digits, plus one)."""
    ((kind, data),) = value.items()
    if kind == "N":
        return len(data.lstrip("-")) // 2 + 2
    if kind in ("SS", "NS"):
        return sum(len(v.encode()) for v in data)
    return len(str(data).encode())


def counter_write_units() -> int:
    """The write units the counter updates cost, estimated from the items as written: each
    update of an item is billed ceil(size / 1 KB) (the single file wrote each item's parts
    once, and the item never shrinks, so its final size bounds each update's)."""
    import math

    from functions.store import client, fraud

    units = 0
    pages = client("dynamodb").get_paginator("scan").paginate(TableName=fraud._table())
    for page in pages:
        for item in page["Items"]:
            if not item["sk"]["S"].startswith("H#"):
                continue
            size = sum(len(name.encode()) + _size(value) for name, value in item.items())
            units += math.ceil(size / 1024) * len(item["files"]["SS"])
    return units


# --- report --------------------------------------------------------------------------------


def report(results: list[dict[str, Any]], part_rows: int) -> None:
    print(
        f"\nfraud check of one rated file (service.check_file, functions.store.fraud on "
        f"in-process moto, parts of {part_rows:,} rows, default policy)\n"
    )
    header = (
        f"{'shape':<5} {'CDRs':>9} {'A x G x H':>13} {'counter':>8} {'expected':>8} "
        f"{'WRU':>6} {'WRU per':>8} "
        f"{'other':>6} {'reads':>6} {'alerts':>6} {'total s':>8} {'tally s':>8} "
        f"{'CDRs/s':>10}"
    )
    print(header)
    print(
        f"{'':<5} {'':>9} {'':>13} {'updates':>8} {'':>8} {'(est)':>6} {'group':>8} "
        f"{'writes':>6} {'(req)':>6}"
    )
    print("-" * len(header))
    for result in results:
        shape, requests, clock = result["shape"], result["requests"], result["clock"]
        keys = f"{shape.accounts}x{shape.groups}x{shape.hours}={shape.keys:,}"
        print(
            f"{shape.name:<5} {shape.cdrs:>9,} {keys:>13} {requests.counter_writes:>8,} "
            f"{shape.expected_counters:>8,} {result['units']:>6,} {shape.per_group_units:>8,} "
            f"{requests.other_writes:>6,} {requests.reads:>6,} "
            f"{len(result['outcome'].alerts):>6} {result['total']:>8.2f} "
            f"{clock.seconds['tally']:>8.2f} {shape.cdrs / result['total']:>10,.0f}"
        )
    print(
        "\ncounter updates = UpdateItem on a counter item (sk H#...); expected = A*H + S*H "
        "(S = 1 supplier).\nWRU (est) = the write units those updates cost, from the items' "
        "sizes; WRU per group = the units\nof one 1 KB item per (account, group, hour) instead: "
        "A*G*H + A*H + S*G*H.\nother writes = every other item written (PutItem, UpdateItem, "
        "DeleteItem, and the items of\nBatchWriteItem and TransactWriteItems); reads = GetItem, "
        "BatchGetItem, Query requests."
    )
    print(
        "\nthe same accounts' next file, a week later (groups seen, baselines read; a week of "
        "history\nis a young account's, whose single busy hour a week spikes against its "
        "quiet day):"
    )
    print(f"{'shape':<5} {'counter':>8} {'other':>6} {'reads':>6} {'alerts':>6} {'total s':>8}")
    for result in results:
        later = result["next"]
        print(
            f"{result['shape'].name:<5} {later.counter_writes:>8,} {later.other_writes:>6,} "
            f"{later.reads:>6,} {result['next_alerts']:>6} {result['next_total']:>8.2f}"
        )
    print("\nseconds per phase (the store's calls timed through the port):")
    print(
        f"{'shape':<5} {'tally':>7} {'counters':>9} {'writes':>7} {'reads':>7} {'judge':>7} "
        f"{'accounts':>8} {'total':>7} {'parts':>6} {'suspended':>9}"
    )
    for result in results:
        seconds = result["clock"].seconds
        print(
            f"{result['shape'].name:<5} {seconds['tally']:>7.2f} {seconds['counters']:>9.2f} "
            f"{seconds['writes']:>7.2f} {seconds['reads']:>7.2f} {seconds['judge']:>7.2f} "
            f"{seconds['accounts']:>8.2f} "
            f"{result['total']:>7.2f} {result['parts']:>6} "
            f"{len(result['outcome'].suspended):>9}"
        )
    print(
        "(judge = reading the hours the rules need and running them: it includes those reads;"
        "\naccounts = reading and suspending accounts for critical alerts, PynamoDB, uncounted)"
    )
    print("\nDynamoDB requests by operation:")
    ops = sorted({op for r in results for op in r["requests"].ops})
    print(f"{'operation':<26}" + "".join(f"{r['shape'].name:>9}" for r in results))
    for op in ops:
        print(f"{op:<26}" + "".join(f"{r['requests'].ops[op]:>9,}" for r in results))
    for result in results:
        alerts = collections.Counter((a["rule"], a["severity"]) for a in result["outcome"].alerts)
        listed = ", ".join(f"{n} {rule} {sev}" for (rule, sev), n in sorted(alerts.items()))
        print(f"alerts of {result['shape'].name}: {listed or 'none'}")
    print(
        "\nCaveat: moto runs in-process, so these write times are moto's (Python, one GIL), not "
        "AWS's.\nOn AWS each UpdateItem takes ~5-10 ms and the adapter runs 16 at once "
        "(functions.store.fraud.WRITERS):\n"
        + "; ".join(
            f"{r['shape'].name}: {r['requests'].counter_writes:,} counter updates "
            f"~{r['requests'].counter_writes / 16 * 0.005:.2f}-"
            f"{r['requests'].counter_writes / 16 * 0.010:.2f} s"
            for r in results
        )
        + "."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, a few seconds")
    parser.add_argument(
        "--shape",
        action="append",
        type=parse_shape,
        help="NAME=CDRS:ACCOUNTS:GROUPS:HOURS (repeat; replaces the default shapes)",
    )
    parser.add_argument("--part-rows", type=int, default=None, help="rows per part")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args(argv)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_TRACE_DISABLED="1",
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from functions.store.lake import ROW_GROUP_ROWS

    shapes = args.shape or [Shape(*s) for s in (QUICK_SHAPES if args.quick else DEFAULT_SHAPES)]
    part_rows = args.part_rows or ROW_GROUP_ROWS
    results = []
    for shape in shapes:
        result = run_shape(shape, part_rows, args.seed)
        print(
            f"shape {shape.name}: {shape.cdrs:,} CDRs generated in {result['generated']:.1f} s, "
            f"checked in {result['total']:.2f} s",
            file=sys.stderr,
        )
        results.append(result)
    report(results, part_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
