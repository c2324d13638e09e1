"""`tollgate demo`: what `make demo` runs.

The pipeline on the embedded local stack: one tenant, two suppliers, three customers (one a
reseller with its own customer), their rate decks, and a generated day of traffic from a
FreeSWITCH, an Asterisk and a VOS3000 switch (malformed rows included, one file resent),
dropped into the CDR bucket through the CLI's own code path. It prints per-file counts,
traffic per customer x destination (SQL on DuckDB over the lake's Parquet), balances, and
ASR/ACD per supplier. At the end it prints the reseller's API key (and its customer's) and
the portal's URL (the API and the portal on one origin, functions/local/web.py); `--serve`
keeps them up until Ctrl-C.

`--offline` instead rates one generated file with `tollgate rate` (the what-if path).
With `--json` the narrative goes to stderr and stdout gets one JSON document: the files,
balances and balance checks at the end (offline: what `tollgate rate --json` prints).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from functions.cli import CliError, json_flag, main, money_text

TENANT = "globalvoice"
# account, kind, parent, India mobile rate, rate level (% of the sample deck's rates)
ACCOUNTS = (
    ("VEND_TATA", "supplier", None, "0.0065", 78),
    ("VEND_BT", "supplier", None, "0.0066", 80),
    ("ACME_TEL", "customer", None, "0.008", 100),
    ("BLUEWAVE", "customer", None, "0.0085", 104),
    ("DESI_CONNECT", "reseller", None, "0.0075", 95),  # what the carrier sells the reseller
    ("DESI_RETAIL", "customer", "DESI_CONNECT", "0.0095", 115),  # what the reseller sells on
)
CALLING = ("ACME_TEL", "BLUEWAVE", "DESI_RETAIL")  # the accounts whose CDRs name them
SUPPLIERS = ("VEND_TATA", "VEND_BT")
# The VOS3000 switch names its gateways, not our accounts. SG-DESI is left unmapped at first:
# its calls arrive as unknown_account until the operator maps it and re-rates.
VOS_GATEWAYS = {
    "ACME_TEL": "SG-ACME",
    "BLUEWAVE": "SG-BLUE",
    "DESI_RETAIL": "SG-DESI",
    "VEND_TATA": "SG-TATA",
    "VEND_BT": "SG-BT",
}
DID = "442038080000"  # a London number ACME_TEL rents since 17 April
INBOUND_CALLS = 40  # delivered to it by VEND_BT on 1 May
DAYS = ("2024-04-30", "2024-05-02")  # the traffic's UTC days (London's midnight is 23:00 UTC)
DECK_PREFIXES = 20_000
TIER_MINUTES = 20_000  # BLUEWAVE's first 20,000 India minutes of a month at 0.0080, then 0.0070


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the demonstration (what `make demo` does)")
    parser.add_argument("--workdir", type=Path, default=Path("demo-output"))
    parser.add_argument("--cdrs", type=int, default=200_000, help="CDRs to generate")
    parser.add_argument("--offline", action="store_true", help="only the offline rating demo")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep the stack, the API and the portal up after the demo, until Ctrl-C",
    )
    json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.cdrs < 1_000:
        raise CliError("--cdrs must be at least 1,000")
    if args.offline:
        return offline_demo(args.workdir, args.cdrs, as_json=args.json)
    return pipeline_demo(args.workdir, args.cdrs, as_json=args.json, serve=args.serve)


def _narrative(as_json: bool) -> contextlib.AbstractContextManager:
    """With --json the story is told on stderr, so stdout holds only the JSON document."""
    return contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()


class Progress:
    """A one-line progress bar on stderr (no dependency, no per-item cost)."""

    def __init__(self, label: str, total: int, unit: str = "") -> None:
        self.label, self.total, self.unit = label, max(total, 1), unit
        self.began = time.perf_counter()

    def show(self, done: int, note: str = "") -> None:
        width = 30
        filled = min(width, width * done // self.total)
        bar = "#" * filled + "." * (width - filled)
        elapsed = time.perf_counter() - self.began
        sys.stderr.write(
            f"\r  {self.label:<22} [{bar}] {done:>9,}/{self.total:,}{self.unit} "
            f"{elapsed:5.1f}s {note}"
        )
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")


def heading(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 86 - len(text)))


def pipeline_demo(workdir: Path, n_cdrs: int, *, as_json: bool = False, serve: bool = False) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    out = sys.stdout  # the narrative may go to stderr; the JSON document and the URLs not

    def finished(outcome: dict) -> None:
        seconds = time.perf_counter() - began
        if as_json:
            print(json.dumps({**outcome, "seconds": round(seconds, 1)}), file=out, flush=True)
        else:
            print(f"\ndemo finished in {seconds:.1f} s")
            portal = outcome["portal"]
            heading("the portal (API and web app on one origin)")
            print(f"  reseller {RESELLER}'s API key (shown once): {portal['reseller_key']}")
            print(f"  its customer {RESELLER_CUSTOMER}'s API key:       {portal['customer_key']}")
            print(f"TOLLGATE_API_URL={portal['api_url']}")
            print(f"TOLLGATE_PORTAL_URL={portal['portal_url']}", flush=True)
            if not serve:
                print("  (it stops with the demo: `make demo SERVE=1` keeps it up until Ctrl-C)")

    with _narrative(as_json):
        _pipeline(workdir, n_cdrs, finished, serve=serve)
    return 0


def _pipeline(workdir: Path, n_cdrs: int, finished, *, serve: bool = False) -> None:
    from functions.local.stack import LocalStack
    from functions.local.web import PortalServer
    from functions.store import reset

    # The handlers log one JSON line per file (as on Lambda); the demo prints its own report.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    # EMF records are for CloudWatch; in the demo's narrative they would be noise
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    # Import the handlers now, so their loggers bind to the narrative's stream (stdout, or
    # stderr with --json, where stdout must hold only the JSON document).
    for handler in ("functions.ingest.handler", "functions.rate.handler"):
        importlib.import_module(handler)

    # Failed deliveries come back after 5 s, not the queues' 30 minutes: a demo of minutes.
    with LocalStack(0, visibility_timeout=5) as stack:
        reset()  # clients bound to the local endpoint from here on
        print(f"local stack up at {stack.endpoint_url} (moto server, handlers from app.py)")
        heading("set-up: tenant, switches, accounts, rate decks")
        set_up(workdir)
        heading("a day of traffic")
        drops = generate_traffic(workdir, n_cdrs)
        heading("dropping the files into s3://tollgate-cdr/incoming/ (tollgate cdr drop)")
        for switch, path in drops:
            _tollgate("cdr", "drop", TENANT, switch, str(path), quiet=True)
            print(f"  dropped {path.name:<28} -> switch {switch}")
        wait_for_pipeline(stack, len(drops))
        report(workdir)
        corrections()
        checks = money_in_and_out(workdir)
        invoices = invoicing(workdir)
        fraud = fraud_incident(workdir, stack)
        with PortalServer(0, documents_origin=stack.endpoint_url) as web:
            portal = portal_access(web)
            finished(final_state(checks) | {"invoices": invoices, "fraud": fraud, "portal": portal})
            if serve:
                _serve_until_stopped()


RESELLER, RESELLER_CUSTOMER = "DESI_CONNECT", "DESI_RETAIL"


def portal_access(web) -> dict:
    """A reseller's key and its customer's (each shown once) and the reseller's white label,
    so its customer's portal shows the reseller's name, not the carrier's."""
    from functions.api.brands import Brand
    from functions.store import accounts, apikeys, branding

    actor = accounts.caller(by="demo")
    brand = Brand(name="Desi Connect", primary="#6a1b4d", accent="#f5a623")
    branding.put_brand(TENANT, RESELLER, brand, actor=actor)
    _, reseller_key = apikeys.create_key(
        TENANT, "reseller-admin", account=RESELLER, label="demo: the portal", actor=actor
    )
    _, customer_key = apikeys.create_key(
        TENANT, "customer", account=RESELLER_CUSTOMER, label="demo: the portal", actor=actor
    )
    return {
        "api_url": web.api_url,
        "portal_url": web.portal_url,
        "reseller": RESELLER,
        "reseller_key": reseller_key,
        "customer_key": customer_key,
    }


def _serve_until_stopped() -> None:
    import signal
    import threading

    stopping = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stopping.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    print("  serving until Ctrl-C", file=sys.stderr, flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def final_state(checks: list[dict]) -> dict:
    """What `demo --json` prints: every file's counts, every balance and its proof."""
    from functions.cli.ops import _file_payload
    from functions.store import accounts, files, ledger

    records = sorted(files.list_files(TENANT), key=lambda r: r.meta.get("name", ""))
    balances = []
    for account in accounts.list_accounts(TENANT):
        balance, _ = ledger.get_balance(TENANT, account.account)
        balances.append(
            {
                "account": account.account,
                "kind": account.kind,
                "currency": account.currency,
                "balance": money_text(balance),
            }
        )
    return {
        "tenant": TENANT,
        "files": [_file_payload(r) for r in records],
        "balances": balances,
        "balance_check": checks,
    }


def _tollgate(*argv: str, quiet: bool = False) -> None:
    if quiet:
        with contextlib.redirect_stdout(io.StringIO()):
            status = main(list(argv))
    else:
        print("$ tollgate " + " ".join(argv))
        status = main(list(argv))
    if status:
        raise CliError(f"tollgate {' '.join(argv)} failed")


def set_up(workdir: Path) -> None:
    from functions.rate.samples import generate_deck_csv

    _tollgate("tenant", "create", TENANT, "--currency", "USD")
    # Its query scope: the role the API's usage and CDR routes read the lake as (on AWS they
    # cannot without it), its Glue database and workgroup.
    _tollgate("access", "provision", TENANT)
    for name, kind, parent, _, _ in ACCOUNTS:
        extra = ["--parent", parent] if parent else []
        extra += ["--prepaid", "--credit-limit", "0"] if name == "BLUEWAVE" else ["--postpaid"]
        _tollgate("account", "create", TENANT, name, "--kind", kind, *extra)
    # Wholesale accounts send thousands of minutes an hour: the carrier raises the velocity
    # limits (defaults sized for a small reseller); the other rules keep their defaults.
    _tollgate(
        "fraud", "rules", TENANT, "--set", "velocity.minutes_per_hour=20000",
        "--set", "velocity.critical_minutes_per_hour=80000",
        "--set", "velocity.spend_per_day=20000", "--set", "velocity.critical_spend_per_day=100000",
    )  # fmt: skip
    _tollgate(
        "switch",
        "create",
        TENANT,
        "fs-lon1",
        "--format",
        "freeswitch-csv",
        "--timezone",
        "Europe/London",
        "--default-supplier",
        "VEND_BT",
    )
    _tollgate("switch", "create", TENANT, "ast-nyc1", "--format", "asterisk-csv")
    _tollgate("switch", "create", TENANT, "vos-sg1", "--format", "vos3000")
    _tollgate("switch", "create", TENANT, "sbc-in1", "--format", "generic")
    _tollgate(
        "did", "add", TENANT, DID, "--account", "ACME_TEL", "--monthly", "2.00",
        "--setup", "5.00", "--per-minute", "0.002", "--from", "2024-04-17",
    )  # fmt: skip
    # BLUEWAVE buys India by volume: its tiers replace its deck's India rates, month by month.
    # ACME_TEL's UK minutes: the tier the month's total reaches prices all of them (volume),
    # charged provisionally as they come and trued up when the month is closed.
    _tollgate(
        "tier", "set", TENANT, "BLUEWAVE", "india", "--prefixes", "91", "--mode", "graduated",
        "--tiers", f"{TIER_MINUTES}:0.0080,:0.0070",
    )  # fmt: skip
    _tollgate(
        "tier", "set", TENANT, "ACME_TEL", "uk", "--prefixes", "44", "--mode", "volume",
        "--tiers", "500:0.0120,:0.0100",
    )  # fmt: skip
    for account, gateway in VOS_GATEWAYS.items():
        if gateway == "SG-DESI":
            continue
        side = "--egress" if account in SUPPLIERS else "--ingress"
        _tollgate("switch", "map", TENANT, "vos-sg1", side, gateway, account)
    for name, _, _, india_mobile, percent in ACCOUNTS:
        deck = workdir / f"deck-{name}.csv"
        deck.write_bytes(
            generate_deck_csv(
                DECK_PREFIXES, seed=7, india_mobile_rate=india_mobile, rate_percent=percent
            )
        )
        _tollgate("deck", "upload", TENANT, name, str(deck))


def generate_traffic(workdir: Path, n_cdrs: int) -> list[tuple[str, Path]]:
    """Files of the three switches (about 2:2:1), malformed rows, and one file resent."""
    from functions.ingest import samples

    parties = {"customers": CALLING, "suppliers": SUPPLIERS}
    per = max(n_cdrs // 5, 200)
    plan = [
        (
            "fs-lon1",
            "Master.csv.2024-05-01-00-00-00",
            lambda n, s: samples.generate_freeswitch_csv(
                n, s, timezone="Europe/London", bad_fraction=0.002, **parties
            ),
        ),
        (
            "fs-lon1",
            "Master.csv.2024-05-01-12-00-00",
            lambda n, s: samples.generate_freeswitch_csv(
                n, s, template="default", timezone="Europe/London", bad_fraction=0.002, **parties
            ),
        ),
        (
            "ast-nyc1",
            "Master-0001.csv",
            lambda n, s: samples.generate_asterisk_csv(n, s, bad_fraction=0.002, **parties),
        ),
        (
            "ast-nyc1",
            "Master-0002.csv.gz",
            lambda n, s: _gzip(
                samples.generate_asterisk_csv(n, s, columns=16, bad_fraction=0.002, **parties)
            ),
        ),
        (
            "vos-sg1",
            "GetCdr-20240501.json",
            lambda n, s: samples.generate_vos3000_json(
                n, s, bad_fraction=0.002, gateways=VOS_GATEWAYS, **parties
            ),
        ),
    ]
    progress = Progress("generating CDR files", per * len(plan), " CDRs")
    drops = []
    for i, (switch, name, make) in enumerate(plan):
        path = workdir / name
        path.write_bytes(make(per, 100 + i))
        drops.append((switch, path))
        progress.show(per * (i + 1), name)
    progress.close()
    inbound = workdir / "inbound-2024-05-01.csv"
    inbound.write_text(_inbound_calls(INBOUND_CALLS))
    drops.append(("sbc-in1", inbound))
    # A switch operator re-exports a file under a new name: every call in it is a duplicate.
    resent = workdir / "Master-0001-resent.csv"
    shutil.copyfile(workdir / "Master-0001.csv", resent)
    drops.append(("ast-nyc1", resent))
    print(
        f"  {per * len(plan):,} CDRs in {len(plan)} files, plus {resent.name} "
        f"(a copy of Master-0001.csv) — {per * (len(plan) + 1):,} rows in all"
    )
    return drops


def _inbound_calls(n: int) -> str:
    """Calls VEND_BT delivers to the DID (generic CSV): 30 to 299 s, a few unanswered."""
    may_1 = 1714521600  # 2024-05-01T00:00:00Z

    def clock(offset: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(may_1 + offset))

    lines = [
        "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,"
        "customer,supplier"
    ]
    for i in range(n):
        start = 9 * 3600 + i * 600  # from 09:00 UTC, every ten minutes
        billsec = 0 if i % 8 == 7 else 30 + (i * 37) % 270
        answer = clock(start + 4) if billsec else ""
        end = clock(start + 4 + billsec) if billsec else clock(start)
        status = "ANSWERED" if billsec else "NO_ANSWER"
        lines.append(
            f"in-{i:04d},447700900{i:03d},{DID},{clock(start)},{answer},{end},{billsec},"
            f"{status},VEND_BT,"
        )
    return "\n".join(lines) + "\n"


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=1)


def wait_for_pipeline(stack, n_files: int) -> None:
    from functions.store import files

    heading("the pipeline: S3 -> SQS -> ingest -> SQS -> rate -> DynamoDB + lake + EventBridge")
    progress = Progress("files rated", n_files)
    deadline = time.monotonic() + 240
    while True:
        if time.monotonic() > deadline:
            progress.close()
            raise CliError(f"the pipeline did not finish: {stack.runner.errors[-1:]}")
        records = files.list_files(TENANT)
        # failed = the pipeline gave up after SQS's last delivery: finished, and reported below
        done = [r for r in records if r.status in ("done", "rejected", "failed")]
        rows = sum(r.counts.get("rows", 0) for r in done)
        progress.show(len(done), f"{rows:,} rows accounted for")
        if len(done) >= n_files:
            break
        time.sleep(0.25)
    progress.close()
    stack.wait_idle(timeout=120)
    errors = stack.runner.errors
    if errors:
        print(f"  note: {len(errors)} handler failure(s) were retried by SQS redelivery")


def report(workdir: Path) -> None:
    from functions.store import accounts, files, lake, ledger

    heading("per file (tollgate file status)")
    records = sorted(files.list_files(TENANT), key=lambda r: r.meta.get("name", ""))
    columns = ("rows", "rated", "unrated", "quarantined", "duplicates")
    print(f"  {'file':<32}{'switch':<10}{'status':<8}" + "".join(f"{c:>12}" for c in columns))
    unknown = sum(r.counts.get("unknown_account", 0) for r in records)
    totals = dict.fromkeys(columns, 0)
    for r in records:
        counts = [r.counts.get(c, 0) for c in columns]
        for c, v in zip(columns, counts, strict=True):
            totals[c] += v
        print(
            f"  {r.meta.get('name', r.file_id):<32}{r.meta.get('switch', ''):<10}{r.status:<8}"
            + "".join(f"{v:>12,}" for v in counts)
        )
    print(f"  {'total':<50}" + "".join(f"{totals[c]:>12,}" for c in columns))
    reconciled = totals["rows"] == sum(totals[c] for c in columns[1:])
    print(
        f"  rows = rated + unrated + quarantined + duplicates: "
        f"{'reconciles' if reconciled else 'DOES NOT RECONCILE'}"
    )
    print(f"  calls on a trunk mapped to no account (unknown_account): {unknown:,}")

    lake_dir = Path(tempfile.mkdtemp(prefix="tollgate-lake-", dir=workdir))
    lake.copy_area("rated", TENANT, lake_dir)
    from functions.invoice.lake_sql import LocalLakeSql

    sql = LocalLakeSql(TENANT, lake_dir)

    heading("traffic per customer x destination (DuckDB over the lake's rated Parquet)")
    rows = sql.named("traffic_by_customer_destination")
    print(
        f"  {'customer':<13}{'destination':<40}{'minutes':>11}{'rate':>17}"
        f"{'revenue':>14}{'cost':>14}{'margin':>13}"
    )
    for shown, row in enumerate(rows):
        if shown == 24:
            print(f"  ... {len(rows) - shown} more customer x destination rows")
            break
        rate = (
            f"{row['min_rate']:.4f}"
            if row["min_rate"] == row["max_rate"]
            else f"{row['min_rate']:.4f}-{row['max_rate']:.4f}"
        )
        print(
            f"  {row['customer']:<13}{(row['destination'] or '')[:39]:<40}"
            f"{row['minutes']:>11,.1f}{rate:>17}{_money(row['revenue'])}{_money(row['cost'])}"
            f"{_money(row['margin'], 13)}"
        )
    totals = sql.query(
        "SELECT sum(customer_amount) AS revenue, sum(supplier_amount) AS cost, "
        "sum(margin) AS margin FROM cdrs_rated WHERE status = 'rated'"
    )[0]
    print(
        f"  {'all customers, all destinations':<81}{_money(totals['revenue'])}"
        f"{_money(totals['cost'])}{_money(totals['margin'], 13)}"
    )
    india = sql.query(
        "SELECT customer, min(customer_rate) AS sell, min(supplier_rate) AS buy "
        "FROM cdrs_rated WHERE destination = 'India - Mobile' AND status = 'rated' "
        "AND customer = 'ACME_TEL' GROUP BY customer"
    )
    for row in india:
        print(
            f"  India mobile for {row['customer']}: sold at {row['sell']:.4f}, "
            f"bought at {row['buy']:.4f}"
        )

    heading("balances (tollgate balance; customers: payments minus charges; suppliers: owed)")
    for account in accounts.list_accounts(TENANT):
        balance, reserved = ledger.get_balance(TENANT, account.account)
        print(
            f"  {account.account:<14}{account.kind:<10}{Decimal(balance).scaleb(-6):>16.6f} "
            f"{account.currency}  (reserved {Decimal(reserved).scaleb(-6):.6f})"
        )

    heading("supplier quality (ASR = answered / attempts, ACD = mean answered minutes)")
    print(
        f"  {'supplier':<14}{'attempts':>10}{'answered':>10}{'ASR':>8}{'ACD':>8}"
        f"{'minutes':>13}{'cost':>14}"
    )
    for row in sql.named("supplier_quality"):
        print(
            f"  {row['supplier'] or '(none)':<14}{row['attempts']:>10,}{row['answered']:>10,}"
            f"{row['asr']:>8.1%}{row['acd_minutes']:>8.2f}{row['minutes']:>13,.1f}"
            f"{_money(row['cost'])}"
        )
    shutil.rmtree(lake_dir, ignore_errors=True)


def corrections() -> None:
    heading("the operator maps the VOS gateway SG-DESI and re-rates the day")
    _tollgate("switch", "map", TENANT, "vos-sg1", "--ingress", "SG-DESI", "DESI_RETAIL")
    _tollgate("rerate", TENANT, "--from", DAYS[0], "--to", DAYS[1])

    heading(f"a rented number: {DID} (ACME_TEL), its fees posted once per month")
    _tollgate("did", "list", TENANT)
    for period in ("2024-04", "2024-05", "2024-04"):  # April again: nothing new
        _tollgate("recurring", "run", TENANT, "--period", period)

    heading("tiered customers: priced by tier as the files came; the month closed once")
    _tollgate("tier", "show", TENANT, "BLUEWAVE", "india", "--period", "2024-05")
    _tollgate("tier", "show", TENANT, "ACME_TEL", "uk", "--period", "2024-05")
    for _ in range(2):  # again: nothing more is owed
        _tollgate("tier", "close", TENANT, "--period", "2024-05")


def money_in_and_out(workdir: Path) -> list[dict]:
    from functions.store import accounts, lake, ledger

    heading("payments by reference, and a statement")
    _tollgate("payment", "record", TENANT, "ACME_TEL", "500.00", "--reference", "BANK-0001")
    _tollgate("payment", "record", TENANT, "ACME_TEL", "500.00", "--reference", "BANK-0001")
    _tollgate("payment", "record", TENANT, "VEND_TATA", "100.00", "--reference", "WIRE-7731")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    _tollgate("statement", TENANT, "DESI_RETAIL", "--from", today, "--to", today)

    heading("the lake proves the balances (DuckDB over cdrs_charges)")
    lake_dir = Path(tempfile.mkdtemp(prefix="tollgate-lake-", dir=workdir))
    lake.copy_area("charges", TENANT, lake_dir)
    from functions.invoice.lake_sql import LocalLakeSql

    checks = []
    with LocalLakeSql(TENANT, lake_dir) as sql:
        effects = {row["account"]: row["balance_effect"] for row in sql.named("balance_check")}
        paid = {"ACME_TEL": Decimal("500"), "VEND_TATA": Decimal("-100")}
        print(
            f"  {'account':<14}{'charges (lake)':>18}{'fees, tiers':>12}{'payments':>12}"
            f"{'balance':>18}  check"
        )
        for account in accounts.list_accounts(TENANT):
            balance = Decimal(ledger.get_balance(TENANT, account.account)[0]).scaleb(-6)
            effect = effects.get(account.account, Decimal(0))
            payment = paid.get(account.account, Decimal(0))
            entries = ledger.list_entries(TENANT, account.account)
            # Fees and volume-tier true-ups are ledger postings, not rows of cdrs_charges.
            fees = Decimal(
                sum(e.amount for e in entries if e.kind in ("recurring", "tier"))
            ).scaleb(-6)
            ok = "ok" if effect + fees + payment == balance else "MISMATCH"
            print(
                f"  {account.account:<14}{effect:>18.6f}{fees:>12.6f}{payment:>12.2f}"
                f"{balance:>18.6f}  {ok}"
            )
            checks.append(
                {
                    "account": account.account,
                    "charges": f"{effect:.6f}",
                    "fees": f"{fees:.6f}",
                    "payments": f"{payment:.2f}",
                    "balance": f"{balance:.6f}",
                    "reconciles": ok == "ok",
                }
            )
        heading("reseller margin per month (named query reseller_margin)")
        for row in sql.named("reseller_margin"):
            print(
                f"  {row['reseller']:<14}{row['period']:<9}{row['calls']:>9,} calls"
                f"  revenue {row['revenue']:>10.4f}  cost {row['cost']:>10.4f}"
                f"  margin {row['margin']:>10.4f} {row['currency']}"
            )
    shutil.rmtree(lake_dir, ignore_errors=True)
    return checks


# The carrier invoices from Amsterdam: a German customer under the EU reverse charge, a Dutch
# one at 21 % VAT billed in EUR at the ECB's rate of the period's end, a reseller in India
# with no tax treatment on file (the run reports what its e-invoice lacks), and the reseller's
# own customer, invoiced under the reseller's brand and series (white label).
PROFILES = {
    None: ["--legal-name", "GlobalVoice Carrier B.V.", "--address", "Herengracht 100", "--city",
           "Amsterdam", "--postcode", "1015 BS", "--country", "NL", "--email",
           "billing@globalvoice.example", "--vat-id", "NL123456789B01", "--iban",
           "NL91ABNA0417164300", "--phone", "+31 20 123 4567"],
    "ACME_TEL": ["--legal-name", "Acme Telecom GmbH", "--address", "Friedrichstrasse 1",
                 "--city", "Berlin", "--postcode", "10117", "--country", "DE", "--email",
                 "ap@acme-tel.example", "--vat-id", "DE811907980", "--tax", "reverse_charge",
                 "--tax-from", "2024-01-01"],
    "BLUEWAVE": ["--legal-name", "Bluewave Communicatie B.V.", "--address", "Coolsingel 40",
                 "--city", "Rotterdam", "--postcode", "3011 AD", "--country", "NL", "--email",
                 "factuur@bluewave.example", "--vat-id", "NL859641213B01", "--currency", "EUR",
                 "--tax", "standard:21", "--tax-from", "2024-01-01", "--terms-days", "14"],
    "DESI_CONNECT": ["--legal-name", "Desi Connect Pvt Ltd", "--brand", "Desi Connect",
                     "--series", "DESI", "--address", "MG Road 12", "--city", "Bengaluru",
                     "--postcode", "560001", "--country", "IN", "--email",
                     "accounts@desiconnect.example", "--iban", "GB33BUKB20201555555555"],
    "DESI_RETAIL": ["--legal-name", "Desi Retail Traders", "--country", "IN", "--email",
                    "owner@desiretail.example", "--tax", "exempt", "--certificate",
                    "LUT/2024/0042", "--tax-from", "2024-01-01"],
}  # fmt: skip


def invoicing(workdir: Path) -> list[dict]:
    """Billing profiles, then May's invoice cycle on the state machine; the PDFs on disk."""
    from functions.cli.invoices import run_report
    from functions.store import billing, documents

    heading("invoicing: billing profiles, then May's cycle (Step Functions on the local stack)")
    for account, fields in PROFILES.items():
        _tollgate("billing", "set", TENANT, *([account] if account else []), *fields, quiet=True)
        print(f"  billing profile: {account or TENANT + ' (the carrier, as seller)'}")
    _tollgate("billing", "fx", TENANT, "--from", "USD", "--to", "EUR", "--rate", "0.9245",
              "--day", "2024-05-31", "--source-name", "ECB")  # fmt: skip
    _tollgate("invoice", "run", TENANT, "--period", "2024-05", "--wait")
    _tollgate("invoice", "run", TENANT, "--period", "2024-05", "--wait", quiet=True)
    print("  (run again: the same execution, nothing issued, sent or posted twice)")
    report = run_report(TENANT, "2024-05", None)
    reverse = next(i for i in report["invoices"] if i["account"] == "ACME_TEL")
    shown = billing.get_invoice(TENANT, reverse["number"]).invoice
    print(f"$ tollgate invoice show {TENANT} {shown.number}   (abridged)")
    for line in (*shown.lines[:3], None, *shown.lines[-4:]):
        if line is None:
            print(f"  ... {len(shown.lines) - 7} more lines (one per destination and price)")
            continue
        print(f"  {line.description[:44]:<44} {line.quantity:>11} {line.unit} x "
              f"{line.unit_price:<8} {line.amount:>10}")  # fmt: skip
    for tax in shown.taxes:
        print(f"  subtotal {shown.subtotal}  tax {tax.category} {tax.rate}% {tax.amount}  "
              f"total {shown.total} {shown.currency}  due {shown.due_date}")  # fmt: skip
    print(f"  notes: {' / '.join(shown.notes)}")
    folder = (workdir / "invoices").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    heading(f"the invoices' PDFs, e-invoices (UBL) and CDR annexes: {folder}")
    for item in report["invoices"]:
        found = billing.get_invoice(TENANT, item["number"])
        for kind in ("pdf", "xml", "cdrs"):
            name = found.documents[kind].rsplit("/", 1)[1]
            (folder / name).write_bytes(documents.get(found.documents[kind]))
        print(f"  {folder / (item['number'] + '.pdf')}  ({item['account']}, {item['total']} "
              f"{item['currency']}, {item['delivery']})")  # fmt: skip
    print(f"  (in the stack: s3://{_documents_bucket()}/invoices/{TENANT}/<number>/)")
    return report["invoices"]


def _somalia_calls(n: int) -> str:
    """A hacked DESI_RETAIL on 1 June: calls of 3 to 6 minutes to Somalia mobile, from
    01:00 UTC, one every 3 s over four handsets (generic CSV)."""
    june_1 = 1717203600  # 2024-06-01T01:00:00Z
    lines = [
        "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,"
        "customer,supplier"
    ]
    for i in range(n):
        start = june_1 + i * 3
        billsec = 180 + (i * 53) % 181
        stamp = [
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
            for t in (start, start + 5, start + 5 + billsec)
        ]
        lines.append(
            f"so-{i:05d},4420790000{i % 4},25261{(i * 7919) % 1000:07d},{stamp[0]},{stamp[1]},"
            f"{stamp[2]},{billsec},ANSWERED,DESI_RETAIL,VEND_BT"
        )
    return "\n".join(lines) + "\n"


def fraud_incident(workdir: Path, stack) -> list[dict]:
    """A month later, DESI_RETAIL's PBX is hacked: 3 hours of calls to Somalia. The file is
    rated like any other; its FileRated event runs the fraud check, which suspends it."""
    from functions.store import accounts, files, fraud

    heading("fraud: DESI_RETAIL is hacked on 1 June (3 hours of calls to Somalia)")
    path = workdir / "irsf-2024-06-01.csv"
    path.write_text(_somalia_calls(3600))
    _tollgate("cdr", "drop", TENANT, "sbc-in1", str(path), quiet=True)
    print(f"  dropped {path.name} -> switch sbc-in1 (3,600 calls)")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        record = next(
            (r for r in files.list_files(TENANT) if r.meta.get("name") == path.name), None
        )
        if record is not None and record.status in ("done", "rejected", "failed"):
            break
        time.sleep(0.25)
    stack.wait_idle(timeout=120)
    _tollgate("fraud", "alerts", TENANT, "--account", "DESI_RETAIL")
    account = accounts.get_account(TENANT, "DESI_RETAIL")
    print(f"  DESI_RETAIL is {account.status}: {account.status_reason}")
    return [
        {k: a[k] for k in ("alert_id", "rule", "severity", "destination", "observed", "action")}
        for a in fraud.list_alerts(TENANT, "DESI_RETAIL")
    ]


def _documents_bucket() -> str:
    from functions.shared.settings import settings

    return settings().documents_bucket


def _money(value, width: int = 14) -> str:
    return f"{'-' if value is None else f'{value:,.2f}':>{width}}"


def offline_demo(workdir: Path, n_cdrs: int, *, as_json: bool = False) -> int:
    from functions.ingest.samples import generate_generic_csv
    from functions.rate.samples import generate_deck_csv

    workdir.mkdir(parents=True, exist_ok=True)
    sell, buy, cdrs = workdir / "sell-deck.csv", workdir / "buy-deck.csv", workdir / "cdrs.csv"
    sell.write_bytes(generate_deck_csv(DECK_PREFIXES, seed=7, india_mobile_rate="0.008"))
    buy.write_bytes(
        generate_deck_csv(DECK_PREFIXES, seed=7, india_mobile_rate="0.0065", rate_percent=80)
    )
    cdrs.write_bytes(generate_generic_csv(n_cdrs, seed=11, bad_fraction=0.002))
    story = sys.stderr if as_json else sys.stdout
    print(
        f"generated {sell}, {buy} ({DECK_PREFIXES:,} prefixes each) and {cdrs} ({n_cdrs:,} CDRs)\n",
        file=story,
    )
    argv = [
        "rate",
        str(cdrs),
        "--format",
        "generic",
        "--customer-deck",
        str(sell),
        "--supplier-deck",
        str(buy),
        "--out",
        str(workdir / "rated.parquet"),
        "--quarantine",
        str(workdir / "quarantine.csv"),
        *(["--json"] if as_json else []),
    ]
    print("$ tollgate " + " ".join(argv), file=story)
    return main(argv)
