"""One invoice cycle for N accounts (default 10,000) on the local stack, timed and priced.

Issue 11 §6: the run's wall time and each step's, documents per second, the AWS requests per
service and operation, Step Functions state transitions, and the estimated AWS bill per
1,000 invoices at us-east-1 list prices (bench/pipeline_bench.py's constants, same sources).

Set-up (timed, not part of the run): a tenant (EUR, Europe/Berlin) with N customers and one
supplier, created through functions.store.accounts; each customer's own two-row rate deck
uploaded through the CLI's `deck upload` code path (functions.cli.main); one CDR file with
three calls per customer on 15 March 2026, dropped with `tollgate cdr drop` and ingested and
rated by the handlers on the local stack, so the ledger and the lake hold real charges;
complete billing profiles (German VAT, address, e-mail, IBAN) for the carrier and every
customer through functions.store.billing.put_profile, so every e-invoice is valid.

The run: states.start_invoice_cycle + wait_cycle for March 2026, issued 2 April, with the
invoice cycle's clock (functions.invoice.handler._now) set to 2 April 06:00 UTC, as the
end-to-end test does. Everything runs in this one process: moto's server, its Step Functions
interpreter (Map: 4 chunks of 100 accounts at a time) and the Lambda tasks in-process, so the
peak RSS reported is all of that together.

Measured from the outside, no timing code in functions/: each task invocation is timed by
wrapping functions.invoice.handler's task functions (app.py imports them at call time);
each state's span comes from the execution's history; requests are counted by a botocore
event hook on every client (a thread-local tag says which task made them).

    .venv/bin/python bench/invoice_cycle_bench.py [--accounts N] [--calls N]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import io
import json
import math
import os
import resource
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline_bench import (  # noqa: E402  (bench/ is on the path above)
    DDB_RRU,
    DDB_WRU,
    LAMBDA_GB_SECOND,
    LAMBDA_REQUEST,
    S3_GET_CLASS,
    S3_PUT_CLASS,
    _item_size,
    _memory_mb,
)

# Amazon SES outbound: $0.10 per 1,000 e-mails, plus $0.12 per GB of attachments sent.
SES_EMAIL = 0.10 / 1000
SES_ATTACHMENT_GB = 0.12
# AWS Step Functions Standard workflows: $0.025 per 1,000 state transitions.
SFN_TRANSITION = 0.025 / 1000
# Amazon Athena: $5.00 per TB of data scanned, at least 10 MB per query.
ATHENA_TB = 5.00
ATHENA_MIN_BYTES = 10 * 10**6

TENANT = "benchcarrier"
SWITCH = "sbc1"
SUPPLIER = "CARRIER1"
PERIOD, ISSUE_DATE = "2026-03", "2026-04-02"
BOOKED = dt.datetime(2026, 3, 15, 12, 0, tzinfo=dt.UTC)  # the ledger's clock while rating
RUN_AT = dt.datetime(2026, 4, 2, 6, 0, tzinfo=dt.UTC)  # the invoice cycle's clock
HEADER = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier"
)
CALLEES = ("4915112345678", "493012345678")  # German mobile, Berlin landline
STEPS = ("aggregate", "draft", "number", "render", "send", "post")
# The documents render stores per invoice (functions.invoice.cycle.documents_of).
DOCUMENT_KINDS = ("PDF", "UBL XML", "lines CSV", "summary CSV", "CDR annex CSV")
S3_PUT_OPS = ("PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart")


def customer(index: int) -> str:
    return f"CUST{index:05d}"


def deck_csv(index: int) -> str:
    # a rate level per customer, so the decks (and the invoices) are not all alike
    mobile = 0.0400 + (index % 50) * 0.0002
    return (
        "prefix,destination,rate,increment\n"
        f"4915,Germany Mobile,{mobile:.4f},60/60\n49,Germany,0.0100,60/60\n"
    )


def cdr_file(accounts: int, calls: int) -> str:
    lines = [HEADER]
    n = 0
    for index in range(1, accounts + 1):
        for call in range(calls):
            n += 1
            start = BOOKED.replace(hour=8) + dt.timedelta(seconds=n % 30_000)
            seconds = 60 + (n * 37) % 1_200
            end = start + dt.timedelta(seconds=seconds)
            stamp = f"{start:%Y-%m-%dT%H:%M:%SZ}"
            lines.append(
                f"c{n},4930123456,{CALLEES[call % 2]},{stamp},{stamp},"
                f"{end:%Y-%m-%dT%H:%M:%SZ},{seconds},ANSWERED,{customer(index)},{SUPPLIER}"
            )
    return "\n".join(lines) + "\n"


# --- a moto artefact set aside ------------------------------------------------------------


def lighter_moto_transactions() -> None:
    """moto 5.2.5's TransactWriteItems deep-copies every table it names, once per item, to
    roll back on failure: its cost grows with the table (on this box a 4-item transaction on
    a billing table of ~50,000 items takes seconds), so at 10,000 accounts the numbering,
    deck commits and ledger postings would measure moto, not Tollgate; DynamoDB has no such
    cost. Here the backup is the items the transaction names (a deep copy of each, or its
    absence), restored when moto rolls back: the same outcome, at the transaction's size."""
    import copy

    from moto.dynamodb.models import DynamoDBBackend, dynamo_type
    from moto.dynamodb.models import copy as moto_copy

    original = DynamoDBBackend.transact_write_items

    class _NoTableCopy:
        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            from moto.dynamodb.models.table import Table

            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = []
        for entry in transact_items:
            ((_, op),) = entry.items()
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key") or op.get("Item") or {}
            hash_key = dynamo_type.DynamoType(key[table.hash_key_attr])
            range_key = (
                dynamo_type.DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            )
            found = table.get_item(hash_key, range_key)
            saved.append((table, hash_key, range_key, copy.deepcopy(found)))
        import moto.dynamodb.models as models

        models.copy = _NoTableCopy  # type: ignore[assignment]
        try:
            return original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(saved):
                partition = table.items[hash_key] if range_key is not None else table.items
                inner = range_key if range_key is not None else hash_key
                if item is None:
                    partition.pop(inner, None)
                else:
                    partition[inner] = item
            raise
        finally:
            models.copy = moto_copy

    DynamoDBBackend.transact_write_items = transact_write_items


def narrower_moto_queries() -> None:
    """moto 5.2.5 answers a Query by sorting its whole table (every tenant's items) and then
    comparing each item of the partition with the key condition: a per-account query costs
    the size of the table, so the aggregate step's two queries per account grow with the
    square of the accounts (9 s at 300 accounts, 299 s at 2,000), which DynamoDB's B-tree
    reads do not. Here a main-table query with BEGINS_WITH or BETWEEN on the sort key gets
    only the items in that key range (a bisect over the partition's sorted keys, re-sorted
    when the partition's size changes) as moto's candidate list; moto's own code does the
    rest (the condition, the limit, the pages, the copies), so the answers are the same.
    One lock per table keeps two threads of moto's server from sharing the narrowed list."""
    import bisect
    import inspect

    from moto.dynamodb.models.table import Table

    original = Table.query
    signature = inspect.signature(original)
    locks: dict[int, threading.Lock] = {}
    sorted_keys: dict[tuple[int, Any], tuple[int, list[Any], list[Any]]] = {}
    guard = threading.Lock()

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        given = bound.arguments
        comparison = given.get("range_comparison")
        values = [v.value for v in given.get("range_objs") or []]
        if (
            given.get("index_name")
            or comparison not in ("BEGINS_WITH", "BETWEEN")
            or not all(isinstance(v, str) for v in values)
        ):
            return original(self, *args, **kwargs)
        partition = self.items.get(given["hash_key"]) or {}
        lo, hi = (values[0], values[0] + "\U0010ffff") if comparison == "BEGINS_WITH" else values
        with guard:
            lock = locks.setdefault(id(self), threading.Lock())
        with lock:
            cached = sorted_keys.get((id(self), given["hash_key"]))
            if cached is None or cached[0] != len(partition):
                keys = sorted(partition, key=lambda k: k.value)
                cached = (len(partition), [k.value for k in keys], keys)
                sorted_keys[(id(self), given["hash_key"])] = cached
            _, texts, keys = cached
            chosen = keys[bisect.bisect_left(texts, lo) : bisect.bisect_right(texts, hi)]
            narrowed = [partition[k] for k in chosen]
            self.all_items = lambda: narrowed  # moto's candidates for this one query
            try:
                return original(self, *args, **kwargs)
            finally:
                del self.all_items

    Table.query = query


# --- counting requests ---------------------------------------------------------------------


class Counter:
    """Every AWS request this process makes, tagged with the task (thread-local) making it."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.counting = False
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def tag(self) -> str | None:
        return getattr(self.local, "tag", None)

    @contextlib.contextmanager
    def tagged(self, tag: str) -> Any:
        outer, self.local.tag = self.tag, tag
        try:
            yield
        finally:
            self.local.tag = outer

    def install(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import botocore.session

        original = botocore.session.Session.create_client
        counter = self
        # A task's reader threads (functions.invoice.cycle.READERS) make requests for it.
        submit = ThreadPoolExecutor.submit

        def tagged_submit(pool: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            tag = counter.tag

            def run(*a: Any, **k: Any) -> Any:
                if tag is None:
                    return fn(*a, **k)
                with counter.tagged(tag):
                    return fn(*a, **k)

            return submit(pool, run, *args, **kwargs)

        ThreadPoolExecutor.submit = tagged_submit  # type: ignore[method-assign]

        @functools.wraps(original)
        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            client.meta.events.register("provide-client-params.*.*", counter._params)
            client.meta.events.register("before-call.*.*", counter._before)
            client.meta.events.register("after-call.*.*", counter._after)
            return client

        botocore.session.Session.create_client = create_client

    def _params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = dict(params)

    def _before(self, model: Any, context: dict[str, Any], event_name: str, **_: Any) -> None:
        if not self.counting or self.tag is None:
            return  # set-up, the CLI's polling of the run, moto's own calls
        service = event_name.split(".")[1]
        params = context.get("bench_params") or {}
        record: dict[str, Any] = {"tag": self.tag, "service": service, "op": model.name}
        if service == "s3" and isinstance(params.get("Body"), bytes | bytearray):
            record["bytes"] = len(params["Body"])
            record["key"] = params.get("Key", "")
        elif service == "sesv2":
            attachments = params.get("Content", {}).get("Simple", {}).get("Attachments", [])
            record["bytes"] = sum(len(a["RawContent"]) for a in attachments)
        elif service == "dynamodb":
            record["consistent"] = bool(params.get("ConsistentRead"))
            writes = []  # (table, key, item written whole or None, transactional)
            if model.name == "PutItem":
                writes.append((params["TableName"], params["Item"], params["Item"], False))
            elif model.name in ("UpdateItem", "DeleteItem"):
                writes.append((params["TableName"], params["Key"], None, False))
            elif model.name == "TransactWriteItems":
                for entry in params.get("TransactItems", []):
                    ((kind, op),) = entry.items()
                    if kind == "Put":
                        writes.append((op["TableName"], op["Item"], op["Item"], True))
                    elif kind != "ConditionCheck":
                        writes.append((op["TableName"], op["Key"], None, True))
            elif model.name == "BatchWriteItem":
                for table, entries in params.get("RequestItems", {}).items():
                    for entry in entries:
                        if "PutRequest" in entry:
                            item = entry["PutRequest"]["Item"]
                            writes.append((table, item, item, False))
                        else:
                            writes.append((table, entry["DeleteRequest"]["Key"], None, False))
            record["writes"] = writes
        context["bench_record"] = record
        with self.lock:
            self.requests.append(record)

    def _after(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        record = context.get("bench_record")
        if record is None:
            return
        record["attempts"] = 1 + int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        if record["service"] == "dynamodb" and record["op"] in ("GetItem", "Query", "Scan"):
            items = [parsed["Item"]] if parsed.get("Item") else parsed.get("Items", [])
            units = max(1, math.ceil(sum(_item_size(i) for i in items) / 4096))
            record["rru"] = units * (1.0 if record["consistent"] else 0.5)
        if record["service"] == "dynamodb" and record["op"] == "BatchGetItem":
            items = [i for found in parsed.get("Responses", {}).values() for i in found]
            record["rru"] = sum(max(1, math.ceil(_item_size(i) / 4096)) for i in items) * (
                1.0 if record["consistent"] else 0.5
            )

    def price_writes(self) -> None:
        """WRU of every write: a Put by the item it wrote; an Update or Delete by the item
        as it is now, read back once per key (uncounted). On-demand bills the larger of the
        item before and after; the invoice cycle's items only grow."""
        import boto3

        self.counting = False
        dynamodb = boto3.session.Session().client("dynamodb")
        sizes: dict[tuple[str, str], int] = {}
        for record in self.requests:
            if not record.get("writes"):
                continue
            wru = 0
            for table, key_or_item, item, transactional in record["writes"]:
                if item is not None:
                    size = _item_size(item)
                else:
                    cache = (table, json.dumps(key_or_item, sort_keys=True))
                    if cache not in sizes:
                        found = dynamodb.get_item(
                            TableName=table, Key=key_or_item, ConsistentRead=True
                        ).get("Item")
                        sizes[cache] = _item_size(found)
                    size = sizes[cache]
                units = max(1, math.ceil(size / 1024))
                wru += 2 * units if transactional else units
            record["wru"] = wru


# --- the bench ------------------------------------------------------------------------------


def quiet(argv: list[str]) -> None:
    from functions.cli import main

    with contextlib.redirect_stdout(io.StringIO()) as said:
        status = main(argv)
    if status:
        raise SystemExit(f"tollgate {' '.join(argv)} failed ({status}): {said.getvalue()}")


class Phases(dict):
    """Set-up phases' seconds, each printed as it ends (a 10,000-account set-up is long)."""

    def __setitem__(self, label: str, seconds: float) -> None:
        super().__setitem__(label, seconds)
        print(f"  {label}: {seconds:.1f} s", flush=True)


def set_up(args: argparse.Namespace, stack: Any, work: Path) -> dict[str, float]:
    from functions.invoice.profiles import BillingProfile, TaxTreatment
    from functions.store import accounts, billing, files

    took = Phases()
    began = time.perf_counter()
    accounts.create_tenant(TENANT, currency="EUR", timezone="Europe/Berlin")
    accounts.create_account(TENANT, SUPPLIER, kind="supplier")
    for index in range(1, args.accounts + 1):
        accounts.create_account(TENANT, customer(index), kind="customer")
    quiet(["switch", "create", TENANT, SWITCH, "--format", "generic"])
    took["tenant, switch and accounts (functions.store.accounts)"] = time.perf_counter() - began

    began = time.perf_counter()
    path = work / f"{SUPPLIER}.csv"
    path.write_text("prefix,destination,rate\n49,Germany,0.0050\n")
    quiet(["deck", "upload", TENANT, SUPPLIER, str(path), "--effective", "2026-01-01"])
    for index in range(1, args.accounts + 1):
        path = work / "deck.csv"
        path.write_text(deck_csv(index))
        quiet(["deck", "upload", TENANT, customer(index), str(path), "--effective", "2026-01-01"])
    took[f"{args.accounts + 1:,} deck uploads (tollgate deck upload)"] = time.perf_counter() - began

    began = time.perf_counter()
    # what `tollgate billing set` stores: the whole profile (functions.store.billing)
    billing.put_profile(
        BillingProfile(TENANT, None, legal_name="Bench Voice Carrier GmbH",
                       address="Friedrichstrasse 123", city="Berlin", postcode="10117",
                       country="DE", email="billing@bench-voice.example", vat_id="DE123456789",
                       iban="DE89370400440532013000", phone="+49 30 1234567")
    )  # fmt: skip
    vat = (TaxTreatment("standard", Decimal("19"), dt.date(2026, 1, 1), None),)
    for index in range(1, args.accounts + 1):
        name = customer(index)
        billing.put_profile(
            BillingProfile(TENANT, name, legal_name=f"Customer {index:05d} GmbH",
                           address=f"Hauptstrasse {index % 200 + 1}", city="Hamburg",
                           postcode="20095", country="DE", email=f"{name.lower()}@example.com",
                           vat_id=f"DE{100000000 + index}", taxes=vat)
        )  # fmt: skip
    took[f"{args.accounts + 1:,} billing profiles (put_profile)"] = time.perf_counter() - began

    began = time.perf_counter()
    cdrs = work / "march.csv"
    cdrs.write_text(cdr_file(args.accounts, args.calls))
    quiet(["cdr", "drop", TENANT, SWITCH, str(cdrs)])
    stack.wait_idle(timeout=3600)
    if stack.runner.errors:
        raise SystemExit(f"the pipeline failed: {stack.runner.errors[-1].error!r}")
    (record,) = [f for f in files.list_files(TENANT) if f.meta.get("name") == cdrs.name]
    if record.status != "done" or record.counts.get("rated") != args.accounts * args.calls:
        raise SystemExit(f"{cdrs.name}: {record.status} {dict(record.counts)}")
    took[f"{args.accounts * args.calls:,} CDRs dropped, ingested and rated"] = (
        time.perf_counter() - began
    )
    return took


FILE_ID = "bench-march-file"
DAY = "2026-03-15"


def direct_charges(
    args: argparse.Namespace,
) -> tuple[dict[str, int], Any, Any]:
    """What rating leaves for one file of `calls` calls per customer: each account's charge
    (micro-units, for the ledger), and the file's cdrs_rated and cdrs_charges tables, built
    with the lake's own schemas (functions.invoice.lake_sql). Rates as deck_csv's, 60/60."""
    import pyarrow as pa

    from functions.invoice.lake_sql import CHARGES_COLUMNS, RATED_COLUMNS, arrow_type

    rows: dict[str, list[Any]] = {name: [] for name in ("line", "call_id", "start_time",
        "callee", "billsec", "account", "destination", "rate", "billed", "amount")}  # fmt: skip
    owed: dict[str, int] = {}
    line = 1
    for index in range(1, args.accounts + 1):
        mobile = Decimal("0.0400") + (index % 50) * Decimal("0.0002")
        for call in range(args.calls):
            line += 1
            start = BOOKED.replace(hour=8) + dt.timedelta(seconds=line % 30_000)
            seconds = 60 + (line * 37) % 1_200
            billed = -(-seconds // 60) * 60
            rate = mobile if call % 2 == 0 else Decimal("0.0100")
            amount = Decimal(billed) / 60 * rate
            rows["line"].append(line)
            rows["call_id"].append(f"c{line}")
            rows["start_time"].append(start)
            rows["callee"].append(CALLEES[call % 2])
            rows["billsec"].append(seconds)
            rows["account"].append(customer(index))
            rows["destination"].append("Germany Mobile" if call % 2 == 0 else "Germany")
            rows["rate"].append(rate)
            rows["billed"].append(billed)
            rows["amount"].append(amount)
            owed[customer(index)] = owed.get(customer(index), 0) - int(amount * 10**6)
    n = len(rows["line"])

    def table(columns: Any, values: dict[str, Any]) -> Any:
        return pa.table(
            {c.name: pa.array(values.get(c.name, [None] * n), arrow_type(c.type)) for c in columns}
        )

    common = {"file_id": [FILE_ID] * n, "line": rows["line"], "call_id": rows["call_id"],
              "start_time": rows["start_time"], "status": ["rated"] * n,
              "destination": rows["destination"], "billed_seconds": rows["billed"],
              "currency": ["EUR"] * n, "plan": ["default"] * n}  # fmt: skip
    rated = table(RATED_COLUMNS, common | {
        "caller": ["4930123456"] * n, "callee": rows["callee"], "dialled": rows["callee"],
        "billsec": rows["billsec"], "disposition": ["ANSWERED"] * n, "customer": rows["account"],
        "customer_rate": rows["rate"], "customer_amount": rows["amount"],
    })  # fmt: skip
    charges = table(CHARGES_COLUMNS, common | {
        "account": rows["account"], "role": ["customer"] * n, "level": [0] * n,
        "counterparty": ["carrier"] * n, "component": ["usage"] * n, "rate": rows["rate"],
        "amount": rows["amount"],
    })  # fmt: skip
    return owed, rated, charges


def set_up_direct(args: argparse.Namespace) -> dict[str, float]:
    """Accounts and profiles as set_up makes them; the file's charges written where rating
    writes them (the lake's cdrs_rated and cdrs_charges Parquet, the ledger's posting
    through functions.store.ledger.post_balances) instead of N deck uploads and a rating:
    10,000 decks take ~45 minutes to upload here, and pipeline_bench measures rating."""
    import pyarrow.parquet as pq

    from functions.invoice.profiles import BillingProfile, TaxTreatment
    from functions.shared.settings import settings
    from functions.store import accounts, billing, client, ledger

    took = Phases()
    began = time.perf_counter()
    accounts.create_tenant(TENANT, currency="EUR", timezone="Europe/Berlin")
    for index in range(1, args.accounts + 1):
        accounts.create_account(TENANT, customer(index), kind="customer")
    took["tenant and accounts (functions.store.accounts)"] = time.perf_counter() - began
    began = time.perf_counter()
    _profiles(args, billing, BillingProfile, TaxTreatment)
    took[f"{args.accounts + 1:,} billing profiles (put_profile)"] = time.perf_counter() - began
    began = time.perf_counter()
    owed, rated, charges = direct_charges(args)
    for area, table in (("rated", rated), ("charges", charges)):
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        client("s3").put_object(
            Bucket=settings().lake_bucket,
            Key=f"{area}/tenant={TENANT}/date={DAY}/{FILE_ID}.parquet",
            Body=sink.getvalue(),
        )
    ledger.post_balances(TENANT, FILE_ID, owed, kind="charges", description="march.csv")
    took[f"{charges.num_rows:,} charges to the lake and the ledger (as rating writes them)"] = (
        time.perf_counter() - began
    )
    return took


def _profiles(args: argparse.Namespace, billing: Any, profile: Any, treatment: Any) -> None:
    """What `tollgate billing set` stores: the whole profile (functions.store.billing)."""
    billing.put_profile(
        profile(TENANT, None, legal_name="Bench Voice Carrier GmbH",
                address="Friedrichstrasse 123", city="Berlin", postcode="10117",
                country="DE", email="billing@bench-voice.example", vat_id="DE123456789",
                iban="DE89370400440532013000", phone="+49 30 1234567")
    )  # fmt: skip
    vat = (treatment("standard", Decimal("19"), dt.date(2026, 1, 1), None),)
    for index in range(1, args.accounts + 1):
        name = customer(index)
        billing.put_profile(
            profile(TENANT, name, legal_name=f"Customer {index:05d} GmbH",
                    address=f"Hauptstrasse {index % 200 + 1}", city="Hamburg",
                    postcode="20095", country="DE", email=f"{name.lower()}@example.com",
                    vat_id=f"DE{100000000 + index}", taxes=vat)
        )  # fmt: skip


def instrument(counter: Counter) -> dict[str, list[float]]:
    """Time every task invocation and tag its requests; returns step -> durations."""
    from functions.invoice import handler

    durations: dict[str, list[float]] = {step: [] for step in STEPS}
    for step in STEPS:
        original = getattr(handler, step)

        def timed(event: Any, context: Any, original: Any = original, step: str = step) -> Any:
            began = time.perf_counter()
            with counter.tagged(step):
                try:
                    return original(event, context)
                finally:
                    durations[step].append(time.perf_counter() - began)

        setattr(handler, step, timed)
    return durations


def tag_lake_copy(counter: Counter) -> dict[str, int]:
    """The local stand-in for Athena copies the lake's Parquet to a folder for DuckDB: its S3
    requests are tagged apart (on AWS, Athena reads the lake), its bytes and queries counted
    as the data an Athena query of the same partitions would scan."""
    from functions.invoice import handler
    from functions.store import lake

    seen = {"queries": 0, "bytes": 0}
    copy_area, lake_rows = lake.copy_area, handler._lake_rows

    def copied(area: str, tenant: str, target: Path, days: Any = None) -> list[Path]:
        with counter.tagged("lake copy (local stand-in for Athena)"):
            paths = copy_area(area, tenant, target, days)
        with counter.lock:
            seen["bytes"] += sum(p.stat().st_size for p in paths)
        return paths

    def query(tenant: str, sql: str, days: Any) -> list[dict[str, Any]]:
        with counter.lock:
            seen["queries"] += 1
        return lake_rows(tenant, sql, days)

    lake.copy_area = copied
    handler._lake_rows = query
    return seen


def history(arn: str) -> list[dict[str, Any]]:
    from functions.store import client

    events: list[dict[str, Any]] = []
    pages = client("stepfunctions").get_paginator("get_execution_history")
    for page in pages.paginate(executionArn=arn):
        events += page["events"]
    return events


def spans(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per state name: entered/exited counts, first entry, last exit, summed time inside."""
    found: dict[str, dict[str, Any]] = {}
    open_at: dict[int, tuple[str, dt.datetime]] = {}
    for event in events:
        kind = event["type"]
        details = event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails")
        if details is None:
            continue
        name, moment = details["name"], event["timestamp"]
        state = found.setdefault(name, {"entered": 0, "first": moment, "last": moment, "sum": 0.0})
        if kind.endswith("StateEntered"):
            state["entered"] += 1
            state["first"] = min(state["first"], moment)
            open_at[event["id"]] = (name, moment)
        elif kind.endswith("StateExited"):
            state["last"] = max(state["last"], moment)
            entered = open_at.pop(event.get("previousEventId", -1), None)
            if entered is None:  # the entry is not the previous event: the newest open one
                candidates = [k for k, (n, _) in open_at.items() if n == name]
                entered = open_at.pop(max(candidates)) if candidates else (name, moment)
            state["sum"] += (moment - entered[1]).total_seconds()
    return found


def run_cycle(counter: Counter) -> tuple[dict[str, Any], float]:
    from functions.store import states

    counter.counting = True
    began = time.perf_counter()
    with counter.tagged("start (client)"):
        arn = states.start_invoice_cycle(TENANT, PERIOD, issue_date=ISSUE_DATE)
    with counter.tagged("wait (client polling, not priced)"):
        described = states.wait_cycle(arn, timeout=3600, interval=0.5)
    counter.counting = False
    wall = time.perf_counter() - began
    return described | {"arn": arn}, wall


def bill(
    counter: Counter, durations: dict[str, list[float]], transitions: int, lake: dict[str, int]
) -> tuple[dict[str, float], dict[str, Any]]:
    memory = {step: _memory_mb(f"invoice_{step}") for step in STEPS}
    gb_seconds = sum(sum(durations[s]) * memory[s] / 1024 for s in STEPS)
    invocations = sum(len(durations[s]) for s in STEPS)
    billed = [r for r in counter.requests if r["tag"] in STEPS or r["tag"].startswith("start")]
    units = {"s3_put": 0, "s3_get": 0, "wru": 0.0, "rru": 0.0, "emails": 0, "attach": 0}
    for r in billed:
        attempts = r.get("attempts", 1)
        if r["service"] == "s3":
            put = r["op"] in S3_PUT_OPS or r["op"].startswith("List")
            units["s3_put" if put else "s3_get"] += attempts
        elif r["service"] == "dynamodb":
            units["wru"] += r.get("wru", 0)
            units["rru"] += r.get("rru", 0)
        elif r["service"] == "sesv2" and r["op"] == "SendEmail":
            units["emails"] += 1
            units["attach"] += r.get("bytes", 0)
    athena_bytes = max(lake["bytes"], lake["queries"] * ATHENA_MIN_BYTES)
    usd = {
        "Lambda compute (GB-s)": gb_seconds * LAMBDA_GB_SECOND,
        "Lambda requests": invocations * LAMBDA_REQUEST,
        "Step Functions transitions": transitions * SFN_TRANSITION,
        "DynamoDB writes (WRU)": units["wru"] * DDB_WRU,
        "DynamoDB reads (RRU)": units["rru"] * DDB_RRU,
        "S3 PUT-class requests": units["s3_put"] * S3_PUT_CLASS,
        "S3 GET-class requests": units["s3_get"] * S3_GET_CLASS,
        "SES e-mails": units["emails"] * SES_EMAIL,
        "SES attachments": units["attach"] / 1e9 * SES_ATTACHMENT_GB,
        "Athena (estimate)": athena_bytes / 1e12 * ATHENA_TB,
    }
    facts = units | {
        "gb_seconds": gb_seconds,
        "invocations": invocations,
        "memory": memory,
        "athena_bytes": athena_bytes,
    }
    return usd, facts


def report(
    args: argparse.Namespace,
    took: dict[str, float],
    described: dict[str, Any],
    wall: float,
    counter: Counter,
    durations: dict[str, list[float]],
    events: list[dict[str, Any]],
    lake: dict[str, int],
) -> None:
    from functions.store import billing

    def heading(text: str) -> None:
        print(f"\n== {text} " + "=" * max(0, 88 - len(text)))

    issued = [i for i in billing.list_invoices(TENANT) if i.invoice.kind == "invoice"]
    output = described.get("output") or {}
    heading("set-up (not part of the run)")
    for label, seconds in took.items():
        print(f"  {label:<62}{seconds:>10.1f} s")

    heading(f"the run: {TENANT} {PERIOD}, issued {ISSUE_DATE}")
    gaps = sum(len(i.invoice.gaps) for i in issued)
    print(f"  status {described['status']}; accounts {args.accounts:,}; invoices issued "
          f"{len(issued):,}; e-invoice gaps {gaps}")  # fmt: skip
    print(f"  wall time (start_invoice_cycle .. wait_cycle saw it end) {wall:,.1f} s")
    for key in ("aggregate", "numbers", "posted"):
        if key in output:
            print(f"  {key}: {json.dumps(output[key])[:160]}")

    heading("per step: state spans from the history; task invocations timed in-process")
    print(f"  {'state':<12}{'entered':>9}{'first->last':>13}{'sum inside':>12}"
          f"{'invocations':>13}{'task time':>11}{'mean':>9}")  # fmt: skip
    found = spans(events)
    step_of = {s.capitalize(): s for s in STEPS}
    for name, state in found.items():
        span = (state["last"] - state["first"]).total_seconds()
        step = step_of.get(name)
        times = durations.get(step, []) if step else []
        extra = (
            f"{len(times):>13,}{sum(times):>10.1f}s{sum(times) / len(times):>8.2f}s"
            if times
            else ""
        )
        print(f"  {name:<12}{state['entered']:>9,}{span:>12.1f}s{state['sum']:>11.1f}s{extra}")
    transitions = sum(1 for e in events if e["type"].endswith("StateEntered"))
    print(f"  state transitions (states entered, Map iterations' included): {transitions:,}; "
          f"history events {len(events):,}")  # fmt: skip

    documents = [
        r
        for r in counter.requests
        if r["tag"] == "render" and r["service"] == "s3" and r["op"] == "PutObject"
    ]
    render_time = sum(durations["render"])
    heading("documents")
    per = len(documents) / max(1, len(issued))
    size = sum(r.get("bytes", 0) for r in documents)
    print(f"  stored by render: {len(documents):,} objects ({per:.1f} per invoice: "
          f"{', '.join(DOCUMENT_KINDS)}), {size / 1e6:,.1f} MB")  # fmt: skip
    print(f"  documents per second: {len(documents) / wall:,.1f} over the run's wall time; "
          f"{len(documents) / max(render_time, 1e-9):,.1f} per second of render task time "
          f"({len(issued) / wall:,.1f} invoices per second over the run)")  # fmt: skip

    usd, facts = bill(counter, durations, transitions, lake)
    heading("AWS requests per service and operation (made by the tasks)")
    tally: dict[tuple[str, str, str], int] = {}
    for r in counter.requests:
        key = (r["service"], r["op"], r["tag"])
        tally[key] = tally.get(key, 0) + r.get("attempts", 1)
    for (service, op, tag), n in sorted(tally.items()):
        print(f"  {service:<14}{op:<28}{tag:<40}{n:>10,}")
    print(f"  {'stepfunctions':<14}{'state transitions':<28}{'(history)':<40}{transitions:>10,}")
    print(f"  DynamoDB: {facts['wru']:,.0f} WRU, {facts['rru']:,.1f} RRU; Lambda: "
          f"{facts['invocations']:,} invocations, {facts['gb_seconds']:,.1f} GB-s; SES: "
          f"{facts['emails']:,} e-mails, {facts['attach'] / 1e6:,.1f} MB attached")  # fmt: skip
    print(f"  lake: {lake['queries']:,} queries reading {lake['bytes'] / 1e6:,.2f} MB of Parquet "
          f"in all (the partitions each query touches)")  # fmt: skip

    heading("estimated AWS bill (us-east-1 list prices)")
    count = max(1, len(issued))
    print(f"  {'':<30}{'this run':>14}{'per 1,000 invoices':>22}")
    for item, amount in [*usd.items(), ("total", sum(usd.values()))]:
        print(f"  {item:<30}{amount:>14.6f}{amount * 1000 / count:>22.6f}")
    memories = ", ".join(f"{step} {mb} MB" for step, mb in facts["memory"].items())
    print(
        f"  Lambda memory as .chalice/config.json gives each task ({memories}); GB-s = each "
        "invocation's in-process wall time x its memory, cold starts not included (all tasks "
        "run warm in this process)."
    )
    print(
        "  Athena: an estimate: each query scans the Parquet of the partitions it touches "
        "(the bytes the local stand-in copied), at least 10 MB a query as Athena bills; "
        "Parquet's column pruning would scan less. The stand-in's own S3 LIST/GET of the lake "
        "are not priced (Athena's reads are its own line)."
    )
    print(
        "  DynamoDB WRU: Puts by the item written, Updates by the item read back afterwards, "
        "transactional writes 2x; ConditionChecks not priced (as bench/pipeline_bench.py)."
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n  peak RSS of this process (moto, its Step Functions and the tasks together): "
          f"{peak:,.0f} MiB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=10_000, help="customers invoiced")
    parser.add_argument("--calls", type=int, default=3, help="calls per customer in the file")
    parser.add_argument(
        "--plain-moto", action="store_true", help="without narrower_moto_queries (slow)"
    )
    parser.add_argument(
        "--via-pipeline",
        action="store_true",
        help="set up through deck uploads and the rating pipeline (slow: ~0.3 s per account)",
    )
    args = parser.parse_args()
    if args.accounts < 1 or args.calls < 1:
        parser.error("--accounts and --calls must be at least 1")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # no EMF lines on stdout
    began = time.perf_counter()
    counter = Counter()
    counter.install()
    lighter_moto_transactions()
    if not args.plain_moto:
        narrower_moto_queries()

    from functions.invoice import handler
    from functions.local.stack import LocalStack
    from functions.store import ledger, reset

    print(f"Tollgate invoice cycle bench: {args.accounts:,} customers x {args.calls} calls, "
          f"on the local stack; {os.cpu_count()} cores")  # fmt: skip
    ledger._now = lambda: BOOKED  # the CDRs' charges are booked in March
    handler._now = lambda: RUN_AT  # the cycle runs after March has ended
    with (
        tempfile.TemporaryDirectory(prefix="tollgate-invoice-bench-") as folder,
        LocalStack(0, visibility_timeout=3600, poll_wait_seconds=0) as stack,
    ):
        reset()  # the store's clients bound to the local stack
        took = set_up(args, stack, Path(folder)) if args.via_pipeline else set_up_direct(args)
        stack.runner.stop()  # the queue pollers: their requests are no part of the run
        durations = instrument(counter)
        lake = tag_lake_copy(counter)
        described, wall = run_cycle(counter)
        print(f"  the invoice run: {described['status']} in {wall:.1f} s")
        events = history(described["arn"])
        if described["status"] != "SUCCEEDED":
            raise SystemExit(f"the run failed: {described.get('error')} {described.get('cause')}")
        counter.price_writes()
        report(args, took, described, wall, counter, durations, events, lake)
    print(f"\nbench finished in {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
