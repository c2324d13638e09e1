"""Push one 1,000,000-CDR file through the ingest and rate handlers on the local stack.

Issue 3 §3 and §7, issue 9 §3: time per stage, peak RSS of each handler (<= 700 MiB, so that
the functions fit a 1,024 MB Lambda), the S3 / SQS / EventBridge / DynamoDB requests per
operation, DynamoDB capacity, Lambda GB-seconds, bytes written to S3, and the resulting AWS
bill per 1,000,000 CDRs at us-east-1 list prices (target <= $0.10). Two more files follow on
the same switch and UTC day: a smaller one (100,000 CDRs) shows that DynamoDB writes per file
follow the accounts in the file, not its CDRs; another 1,000,000-CDR one shows what the day's
duplicate-claim set, which every later file of the switch-day reads and rewrites, adds to
time and memory.

Processes, so that the measured RSS is the handler's own:
  this script (stdlib only, stays ~10 MB)
  ├── generate   CDR files and rate decks (numpy/pyarrow; over 1 GB, then exits)
  ├── stack      moto server + template + set-up through the CLI; drops each file with
  │              `tollgate cdr drop` (functions.cli.main) when asked; holds every object
  └── handler    one fresh interpreter per Lambda invocation (ingest, then rate): imports
                 app.py and the handler module (the cold start), then one SQS receive ->
                 handler -> delete through functions.local.runner.LambdaRunner. Its peak
                 RSS is ru_maxrss from os.wait4 (a child's figure also covers the few MB it
                 inherits from this small parent before exec).

Requests are counted in every process by a botocore event hook installed on each client as
it is created (`before-call.*.*`, with `after-call` for retries and DynamoDB read sizes):
the adapters' `functions.store.client` clients, PynamoDB's own clients and the runner's.
Sub-stage times come from wrapping the adapter and service functions from the outside; no
timing code lives in functions/. Requests that AWS makes on our behalf are added as
modelled: one SQS SendMessage per S3 event notification, and one ReceiveMessage plus one
DeleteMessage per message for Lambda's SQS pollers at batch size 1.

    .venv/bin/python bench/pipeline_bench.py [--rows N] [--small-rows N] [--later-rows N]
                                             [--prefixes N] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.util
import io
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# --- AWS list prices, us-east-1 (checked against the public pricing pages, 2025) ----------
# AWS Lambda, x86: $0.0000166667 per GB-second (first pricing tier) + $0.20 per 1M requests.
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1e6
# Amazon S3 Standard: PUT, COPY, POST, LIST $0.005 per 1,000; GET, SELECT, HEAD and all other
# requests $0.0004 per 1,000; DELETE (and CANCEL) free. Storage $0.023 per GB-month (first
# 50 TB); not a per-request cost, reported as bytes written.
S3_PUT_CLASS = 0.005 / 1000
S3_GET_CLASS = 0.0004 / 1000
S3_STORAGE_GB_MONTH = 0.023
# Amazon SQS standard queue: $0.40 per 1M requests; every 64 KB chunk of a payload is a request.
SQS_REQUEST = 0.40 / 1e6
# Amazon EventBridge: custom events $1.00 per 1M; every 64 KB chunk of an entry is an event.
EVENTBRIDGE_EVENT = 1.00 / 1e6
# Amazon DynamoDB on-demand (prices since Nov 2024): $0.625 per 1M write request units,
# $0.125 per 1M read request units. 1 WRU = a standard write of up to 1 KB; transactional
# writes 2 WRU per KB; 1 RRU = a strongly consistent read of up to 4 KB, 0.5 if eventually
# consistent. Control-plane calls (DescribeTable) are free.
DDB_WRU = 0.625 / 1e6
FREE_SERVICES = ("iam", "sts")  # no charge for IAM or STS requests
DDB_RRU = 0.125 / 1e6
CHUNK = 64 * 1024

TARGET_PER_MILLION = 0.10  # USD per 1,000,000 CDRs (issue 3 §7)
# bytes: what each handler may peak at on a 1,000,000-CDR file (issue 9 §3): a 1,024 MB Lambda
# with room for the runtime, the deck cache's growth and Python's own overhead
RSS_LIMIT = 700 * 2**20
LAMBDA_MB = 1024

TENANT = "benchcarrier"
SWITCH = "gen-ams1"
FORMAT = "generic"  # the fastest parser (ISO times, one header, customer/supplier columns)
# account, kind, parent, India mobile rate, rate level (% of the sample deck's rates)
ACCOUNTS = (
    ("VEND_TATA", "supplier", None, "0.0065", 78),
    ("VEND_BT", "supplier", None, "0.0066", 80),
    ("ACME_TEL", "customer", None, "0.008", 100),
    ("BLUEWAVE", "customer", None, "0.0085", 104),
    ("ORBITALK", "customer", None, "0.0082", 102),
    ("NORDCOM", "customer", None, "0.0079", 99),
    ("DESI_CONNECT", "reseller", None, "0.0075", 95),
    ("DESI_RETAIL", "customer", "DESI_CONNECT", "0.0095", 115),
)
CUSTOMERS = ("ACME_TEL", "BLUEWAVE", "ORBITALK", "NORDCOM", "DESI_RETAIL")
SUPPLIERS = ("VEND_TATA", "VEND_BT")
INGEST, RATE = "handle_cdr_drops", "handle_normalized_files"
WHO = {INGEST: "ingest", RATE: "rate"}
GLUE = "other (event parsing, logging, glue)"
VISIBILITY_TIMEOUT = 900  # s: a slow handler on this machine is never redelivered mid-run

GENERATE = """
import sys
from pathlib import Path
from functions.ingest.samples import generate_generic_csv
from functions.rate.samples import generate_deck_csv
work, prefixes = Path(sys.argv[1]), int(sys.argv[2])
customers, suppliers = tuple(sys.argv[3].split(",")), tuple(sys.argv[4].split(","))
for spec in sys.argv[5:]:
    name, rows, seed = spec.split(":")
    (work / name).write_bytes(
        generate_generic_csv(
            int(rows), seed=int(seed), bad_fraction=0.001,
            customers=customers, suppliers=suppliers,
        )
    )
"""


# --- request counting (runs inside the measured processes) -------------------------------


def _dynamodb_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB bills for one attribute value (its documented item-size rules)."""
    kind, inner = next(iter(value.items()))
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = inner.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_dynamodb_size({kind[0]: element}) for element in inner)
    if kind == "L":
        return 3 + sum(1 + _dynamodb_size(element) for element in inner)
    if kind == "M":
        return 3 + sum(
            1 + len(name.encode()) + _dynamodb_size(element) for name, element in inner.items()
        )
    return 0


def _item_size(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + _dynamodb_size(v) for name, v in (item or {}).items())


def _max_rss() -> int:
    """This process's peak RSS so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss_now() -> int:
    """This process's resident set now, in bytes."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _s3_area(key: str) -> str:
    parts = key.split("/")
    if parts[0] == "dedup" and len(parts) > 4:
        return f"dedup/{parts[4]}"  # set/ or claims/
    return parts[0]


class Meter:
    """Counts every AWS request of this process, by stage, through botocore's event hooks."""

    def __init__(self) -> None:
        self.stage = "outside"  # the invocation window: init, runner, handler, upload
        self.span: str | None = None  # the timed sub-stage running now (top level only)
        self.spans: dict[str, float] = {}
        self.peaks: dict[str, int] = {}  # bytes: the most RSS sampled while each span ran
        self.counting = True
        self.requests: list[dict[str, Any]] = []

    def sample(self, every: float = 0.002) -> None:
        """Sample the RSS on a daemon thread, keeping each span's highest (Linux only).

        The thread only reads /proc/self/statm; a spike shorter than `every` can be missed,
        the process's own peak (wait4) is reported beside."""
        import threading

        if not os.path.exists("/proc/self/statm"):
            return

        def run() -> None:
            while True:
                if self.stage == "handler":
                    span = self.span or GLUE
                    self.peaks[span] = max(self.peaks.get(span, 0), _rss_now())
                time.sleep(every)

        threading.Thread(target=run, name="rss-sampler", daemon=True).start()

    def install(self) -> None:
        import botocore.session

        original = botocore.session.Session.create_client
        meter = self

        @functools.wraps(original)
        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            events = client.meta.events
            events.register("provide-client-params.*.*", meter._params)
            events.register("before-call.*.*", meter._before_call)
            events.register("after-call.*.*", meter._after_call)
            return client

        botocore.session.Session.create_client = create_client

    @contextlib.contextmanager
    def window(self, stage: str) -> Any:
        previous, self.stage = self.stage, stage
        try:
            yield
        finally:
            self.stage = previous

    def time(self, module: Any, name: str, label: Any) -> None:
        """Wrap module.name so its wall time (and its requests) go to a sub-stage."""
        original = getattr(module, name)
        meter = self

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if meter.span is not None:  # nested inside a timed call: the outer one owns it
                return original(*args, **kwargs)
            meter.span = label(*args, **kwargs) if callable(label) else label
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                span, meter.span = meter.span, None
                meter.spans[span] = meter.spans.get(span, 0.0) + time.perf_counter() - began

        setattr(module, name, timed)

    def time_parts(self, module: Any, name: str, label: str) -> None:
        """Wrap the generator function module.name so the time of each part it yields (the
        work done inside `next`) goes to a sub-stage."""
        original = getattr(module, name)
        meter = self

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            parts = original(*args, **kwargs)
            while True:
                outer, began = meter.span, time.perf_counter()
                if outer is None:
                    meter.span = label
                try:
                    part = next(parts)
                except StopIteration:
                    return
                finally:
                    if outer is None:
                        meter.span = None
                        meter.spans[label] = meter.spans.get(label, 0.0) + (
                            time.perf_counter() - began
                        )
                yield part

        setattr(module, name, timed)

    # botocore handlers ----------------------------------------------------------------------

    def _params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        # The caller's own arguments, before botocore wraps an S3 body in a file object.
        context["bench_params"] = dict(params)

    def _before_call(self, model: Any, context: dict[str, Any], event_name: str, **_: Any) -> None:
        if not self.counting:
            return
        service = event_name.split(".")[1]
        params = context.get("bench_params") or {}
        record: dict[str, Any] = {
            "stage": self.stage,
            "span": self.span or "(handler glue)",
            "service": service,
            "op": model.name,
            "attempts": 1,
            "status": 0,
        }
        if service == "s3":
            record["area"] = _s3_area(params.get("Key", ""))
            body = params.get("Body")
            if isinstance(body, bytes | bytearray):
                record["bytes"] = len(body)
            elif hasattr(body, "fileno"):  # a file streamed from disk (the lake's spool)
                record["bytes"] = os.fstat(body.fileno()).st_size
        elif service == "sqs" and "MessageBody" in params:
            record["chunks"] = max(1, math.ceil(len(params["MessageBody"].encode()) / CHUNK))
        elif service == "eventbridge" and model.name == "PutEvents":
            sizes = [
                sum(len(str(entry.get(k, "")).encode()) for k in ("Source", "DetailType", "Detail"))
                for entry in params.get("Entries", [])
            ]
            record["chunks"] = sum(max(1, math.ceil(size / CHUNK)) for size in sizes)
            record["bytes"] = sum(sizes)
        elif service == "dynamodb":
            record["consistent"] = bool(params.get("ConsistentRead"))
            writes = []
            if model.name in ("PutItem", "UpdateItem", "DeleteItem"):
                writes.append((params["TableName"], params.get("Item") or params["Key"], False))
            elif model.name == "TransactWriteItems":
                for entry in params.get("TransactItems", []):
                    ((kind, op),) = entry.items()
                    if kind != "ConditionCheck":
                        writes.append((op["TableName"], op.get("Item") or op["Key"], True))
                record["transact_items"] = len(params.get("TransactItems", []))
            record["writes"] = [
                {"table": t, "pk": key["pk"], "sk": key["sk"], "transactional": tx}
                for t, key, tx in writes
            ]
        context["bench_record"] = record
        self.requests.append(record)

    def _after_call(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        record = context.get("bench_record")
        if record is None:
            return
        metadata = parsed.get("ResponseMetadata", {})
        record["attempts"] = 1 + int(metadata.get("RetryAttempts", 0))
        record["status"] = getattr(http_response, "status_code", 0)
        if record["service"] == "s3" and record["op"] == "GetObject":
            record["response_bytes"] = int(parsed.get("ContentLength") or 0)
        if record["service"] == "dynamodb" and record["op"] in ("GetItem", "Query", "Scan"):
            items = [parsed["Item"]] if parsed.get("Item") else parsed.get("Items", [])
            size = sum(_item_size(item) for item in items)
            units = max(1, math.ceil(size / 4096))
            record["rru"] = units * (1.0 if record["consistent"] else 0.5)

    def item_sizes(self) -> None:
        """Price every DynamoDB write by the size of the item it wrote (read back, uncounted).

        On-demand bills a write by the larger of the item before and after; these items only
        grow, so the size read back afterwards is the one billed.
        """
        import boto3

        self.counting = False
        dynamodb = boto3.session.Session().client("dynamodb")
        sizes: dict[tuple[str, str, str], int] = {}
        for record in self.requests:
            wru = 0
            for write in record.get("writes", []):
                key = (write["table"], json.dumps(write["pk"]), json.dumps(write["sk"]))
                if key not in sizes:
                    item = dynamodb.get_item(
                        TableName=write["table"],
                        Key={"pk": write["pk"], "sk": write["sk"]},
                        ConsistentRead=True,
                    ).get("Item")
                    sizes[key] = _item_size(item)
                write["size"] = sizes[key]
                units = max(1, math.ceil(sizes[key] / 1024))
                wru += 2 * units if write["transactional"] else units
            if record.get("writes"):
                record["wru"] = wru


# --- the handler process ------------------------------------------------------------------


def handler_role(args: argparse.Namespace) -> None:
    """One Lambda invocation in a fresh interpreter: cold start, then receive -> run -> delete."""
    began = time.perf_counter()
    meter = Meter()
    meter.install()
    with meter.window("init"):  # what a cold container imports before and at the first call
        spec = importlib.util.spec_from_file_location("app", ROOT / "app.py")
        assert spec and spec.loader
        app_module = importlib.util.module_from_spec(spec)
        sys.modules["app"] = app_module
        spec.loader.exec_module(app_module)
        handler_module = (
            "functions.ingest.handler" if args.function == INGEST else ("functions.rate.handler")
        )
        importlib.import_module(handler_module)
    init_seconds = time.perf_counter() - began
    init_rss = _max_rss()
    _instrument(meter, args.function)
    meter.sample()

    from functions.local.runner import LambdaRunner
    from functions.shared.settings import settings

    with meter.window("runner"):
        runner = LambdaRunner(
            app_module.app,
            os.environ["AWS_ENDPOINT_URL"],
            event_bus=settings().event_bus,
            chalice_config=ROOT / ".chalice" / "config.json",
            visibility_timeout=VISIBILITY_TIMEOUT,
            poll_wait_seconds=0,
        )
    invoke = runner.invoke
    handler_seconds: list[float] = []
    results: list[Any] = []

    def timed_invoke(name: str, event: Any) -> Any:
        with meter.window("handler"):
            started = time.perf_counter()
            try:
                result = invoke(name, event)
            finally:
                handler_seconds.append(time.perf_counter() - started)
        results.append(result)
        return result

    runner.invoke = timed_invoke  # type: ignore[method-assign]
    with meter.window("runner"):
        received = 0
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            received = runner.poll_once(args.function, wait_seconds=1)
    if not handler_seconds:
        raise SystemExit(f"{args.function}: no message arrived within 30 s")
    if runner.errors:
        raise SystemExit(f"{args.function} raised: {runner.errors[-1].error!r}")
    if any(r.get("batchItemFailures") for r in results if isinstance(r, dict)):
        raise SystemExit(f"{args.function} reported a failed record: {results}")

    meter.item_sizes()
    out = {
        "function": args.function,
        "memory_mb": runner.configs[args.function].memory_mb,
        "init_seconds": init_seconds,
        "handler_seconds": sum(handler_seconds),
        "invocations": len(handler_seconds),
        "spans": meter.spans,
        "peaks": meter.peaks,
        "init_rss": init_rss,
        "requests": meter.requests,
    }
    if args.function == RATE:
        from functions.store import files

        out["files"] = {
            r.meta.get("name", r.file_id): {"status": r.status, "counts": dict(r.counts)}
            for r in files.list_files(TENANT)
        }
    Path(args.out).write_text(json.dumps(out))


def _instrument(meter: Meter, function: str) -> None:
    """Time the sub-stages by wrapping the adapters and the services' own steps."""
    from functions.store import accounts, events, files, lake, ledger, queues

    def spooled(name: Any, *_a: Any, **_k: Any) -> str:
        area = name[0] if isinstance(name, tuple) else name
        return f"encode {area} Parquet (to /tmp)"

    meter.time(lake.Spool, "write", lambda _spool, name, *_a, **_k: spooled(name))
    if function == INGEST:
        from functions.ingest import service

        meter.time(files, "get_file", "look up file + switch")
        meter.time(accounts, "get_switch", "look up file + switch")
        meter.time(lake, "fetch_cdr", "download CDR file (to /tmp)")
        meter.time_parts(service, "iter_cdr_chunks", "parse + validate")
        for name in ("assign_parties", "split_by_day"):
            meter.time(service, name, "parse + validate")
        meter.time(lake, "put_spooled", lambda area, *_a, **_k: f"upload {area}")
        meter.time(files, "put_file", "record file (ingested)")
        meter.time(queues, "send_rate_request", "hand-off to rate queue")
    else:
        from functions.rate import service

        meter.time(files, "get_file", "read file record")
        meter.time(lake, "fetch_table", lambda area, *_a, **_k: f"download {area} (to /tmp)")
        meter.time(service, "day_attempts", "claim (dedup)")
        meter.time(service, "claim_new_calls", "claim (dedup)")
        meter.time(accounts, "get_trunk_plan", "load accounts + decks")
        meter.time(service.PartyBook, "__init__", "load accounts + decks")
        meter.time(service.PartyBook, "parties", "load accounts + decks")
        meter.time_parts(service, "_new_calls", "read normalized parts")
        meter.time(service, "resolve_parties", "resolve trunks")
        meter.time(service, "rate_parties", "rate (all parties)")
        meter.time(service.RunTotals, "add_rated", "add up the run's totals")
        meter.time(service.RunTotals, "add_charges", "add up the run's totals")
        meter.time(lake, "stage_spooled", lambda area, *_a, **_k: f"upload {area} (staged)")
        meter.time(lake, "put_run_totals", "stage the run's totals")
        meter.time(files, "commit_pricing_run", "commit pricing run")
        meter.time(lake, "get_run_totals", "read the committed run's totals")
        meter.time(lake, "publish_staged", lambda area, *_a, **_k: f"publish {area}")
        meter.time(ledger, "post_balances", "post balances")
        meter.time(service, "file_rated_detail", "publish FileRated")
        meter.time(events, "publish_file_rated", "publish FileRated")
        meter.time(files, "set_file_status", "mark file done")


# --- the stack process ----------------------------------------------------------------------


def stack_role(args: argparse.Namespace) -> None:
    """moto server + provisioned template + set-up; drops files through the CLI on request."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # the CLI and moto talk to stderr; stdout carries the protocol
    workdir = Path(args.workdir)
    meter = Meter()
    meter.install()
    from functions.cli import main
    from functions.local.stack import LocalStack, environment
    from functions.rate.samples import generate_deck_csv
    from functions.store import reset

    def tollgate(*argv: str) -> None:
        with contextlib.redirect_stdout(io.StringIO()) as said:
            status = main(list(argv))
        if status:
            raise SystemExit(f"tollgate {' '.join(argv)} failed: {said.getvalue()}")

    with LocalStack(
        0, visibility_timeout=VISIBILITY_TIMEOUT, start_pollers=False, poll_wait_seconds=0
    ) as stack:
        reset()  # adapters bound to the local endpoint from here on
        began = time.perf_counter()
        tollgate("tenant", "create", TENANT, "--currency", "USD")
        for name, kind, parent, _, _ in ACCOUNTS:
            extra = ["--parent", parent] if parent else []
            tollgate("account", "create", TENANT, name, "--kind", kind, "--postpaid", *extra)
        tollgate("switch", "create", TENANT, SWITCH, "--format", FORMAT)
        for name, _, _, india_mobile, percent in ACCOUNTS:
            deck = workdir / f"deck-{name}.csv"
            deck.write_bytes(
                generate_deck_csv(
                    args.prefixes, seed=7, india_mobile_rate=india_mobile, rate_percent=percent
                )
            )
            tollgate("deck", "upload", TENANT, name, str(deck))
        # S3 sends s3:TestEvent when the notification is configured: drain it now.
        while stack.runner.poll_once(INGEST, wait_seconds=0):
            pass
        ready = {"env": environment(stack.endpoint_url), "setup_seconds": time.perf_counter()}
        ready["setup_seconds"] -= began
        protocol.write(json.dumps(ready) + "\n")
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] != "drop":
                break
            meter.requests.clear()
            with meter.window("upload"):
                started = time.perf_counter()
                tollgate("cdr", "drop", TENANT, SWITCH, command["path"])
                seconds = time.perf_counter() - started
            reply = {"seconds": seconds, "requests": meter.requests}
            protocol.write(json.dumps(reply) + "\n")


# --- the orchestrating process (stdlib only) ----------------------------------------------


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[float, int, float]:
    """Wall seconds, peak RSS in bytes (ru_maxrss) and CPU seconds (user + system) of one
    child process, from os.wait4: CPU time stays comparable on a busy machine."""
    began = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - began
        if os.waitstatus_to_exitcode(status) != 0:
            log.seek(0)
            raise SystemExit(f"{argv[2:5]} failed:\n{log.read().decode(errors='replace')}")
    return wall, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


class Stack:
    """The stack process, spoken to one JSON line at a time."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=ROOT, text=True
        )

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the stack process exited ({self.process.wait()})")
        return json.loads(line)

    def send(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.close()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _memory_mb(function: str) -> int:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    scoped = config.get("stages", {}).get("dev", {}).get("lambda_functions", {}).get(function, {})
    return int(scoped.get("lambda_memory_size", config.get("lambda_memory_size", 128)))


def bill(run: dict[str, Any]) -> dict[str, Any]:
    """Billable units and USD of one file's trip through the pipeline."""
    rows: list[dict[str, Any]] = [r | {"who": "upload (CLI)"} for r in run["upload"]["requests"]]
    for function, who in ((INGEST, "ingest handler"), (RATE, "rate handler")):
        rows += [r | {"who": who} for r in run[function]["requests"] if r["stage"] == "handler"]
    # Requests AWS makes for us (the stack's moto and the runner made them, but not billably
    # in the same way): S3 -> SQS notification, Lambda's SQS poller receive + delete.
    modelled = [
        {"service": "sqs", "op": "SendMessage", "attempts": 1, "who": "S3 event notification"},
        *[
            {"service": "sqs", "op": op, "attempts": 1, "who": f"Lambda poller, {WHO[f]}"}
            for f in (INGEST, RATE)
            for op in ("ReceiveMessage", "DeleteMessage")
        ],
    ]
    units = {
        "s3_put": 0,
        "s3_get": 0,
        "s3_free": 0,
        "sqs": 0,
        "events": 0,
        "wru": 0.0,
        "rru": 0.0,
        "ddb_free": 0,
        "lambda_requests": run[INGEST]["invocations"] + run[RATE]["invocations"],
        "gb_seconds": 0.0,
    }
    for r in rows + modelled:
        attempts = r.get("attempts", 1)
        if r["service"] == "s3":
            if r["op"].startswith("Delete"):
                units["s3_free"] += attempts
            elif r["op"] in (
                "PutObject",
                "CopyObject",
                "PostObject",
                "CreateMultipartUpload",
                "UploadPart",
                "CompleteMultipartUpload",
            ) or r["op"].startswith("List"):
                units["s3_put"] += attempts
            else:
                units["s3_get"] += attempts
        elif r["service"] == "sqs":
            units["sqs"] += attempts * r.get("chunks", 1)
        elif r["service"] == "eventbridge":
            units["events"] += r.get("chunks", 1)
        elif r["service"] == "dynamodb":
            if "wru" in r:
                units["wru"] += r["wru"]
            elif "rru" in r:
                units["rru"] += r["rru"]
            else:
                units["ddb_free"] += attempts
    for f in (INGEST, RATE):
        seconds = run[f]["init_seconds"] + run[f]["handler_seconds"]
        units["gb_seconds"] += seconds * run[f]["memory_mb"] / 1024
    usd = {
        "Lambda compute (GB-s)": units["gb_seconds"] * LAMBDA_GB_SECOND,
        "Lambda requests": units["lambda_requests"] * LAMBDA_REQUEST,
        "S3 PUT-class requests": units["s3_put"] * S3_PUT_CLASS,
        "S3 GET-class requests": units["s3_get"] * S3_GET_CLASS,
        "SQS requests": units["sqs"] * SQS_REQUEST,
        "EventBridge events": units["events"] * EVENTBRIDGE_EVENT,
        "DynamoDB writes (WRU)": units["wru"] * DDB_WRU,
        "DynamoDB reads (RRU)": units["rru"] * DDB_RRU,
    }
    return {"units": units, "usd": usd, "rows": rows, "modelled": modelled}


def report(runs: list[dict[str, Any]], setup: dict[str, Any]) -> bool:
    def heading(text: str) -> None:
        print(f"\n== {text} " + "=" * max(0, 92 - len(text)))

    names = [f"{run['rows'] / 1e3:,.0f}k CDRs #{i + 1}" for i, run in enumerate(runs)]
    width = 18

    def line(label: str, values: list[str], note: str = "") -> None:
        print(f"  {label:<44}" + "".join(f"{v:>{width}}" for v in values) + f"  {note}")

    heading(
        "files, in the order dropped (same switch, same UTC day: #2 and #3 come later that day)"
    )
    line("", names)
    line("calls already claimed that switch-day", [f"{run['claimed_before']:,}" for run in runs])
    line("file size", [f"{run['bytes'] / 1e6:,.1f} MB" for run in runs])
    line("upload (tollgate cdr drop)", [f"{run['upload']['seconds']:.2f} s" for run in runs])
    for count in ("rows", "rated", "unrated", "quarantined", "duplicates"):
        line(count, [f"{run['counts'].get(count, 0):,}" for run in runs])
    reconciled = all(
        run["counts"]["rows"]
        == sum(run["counts"].get(c, 0) for c in ("rated", "unrated", "quarantined", "duplicates"))
        for run in runs
    )
    line(
        "status",
        [run["status"] for run in runs],
        "rows = rated + unrated + quarantined + "
        f"duplicates: {'reconciles' if reconciled else 'DOES NOT RECONCILE'}",
    )

    for function, title in ((INGEST, "ingest handler"), (RATE, "rate handler")):
        heading(f"{title} ({function}): wall time per stage; most RSS while it ran")
        line("", names)

        def cell(seconds: float, peak: int | None) -> str:
            return f"{seconds:.3f} s" + (f" {peak / 2**20:>6,.0f}M" if peak else " " * 8)

        line(
            "cold start: import app.py + handler module",
            [cell(run[function]["init_seconds"], run[function]["init_rss"]) for run in runs],
        )
        labels: list[str] = []
        for run in runs:
            labels += [k for k in run[function]["spans"] if k not in labels]
        for label in labels:
            line(
                f"  {label}",
                [
                    cell(run[function]["spans"].get(label, 0.0), run[function]["peaks"].get(label))
                    for run in runs
                ],
            )
        line(
            f"  {GLUE}",
            [
                cell(
                    run[function]["handler_seconds"] - sum(run[function]["spans"].values()),
                    run[function]["peaks"].get(GLUE),
                )
                for run in runs
            ],
        )
        line(
            "handler invocation total",
            [cell(run[function]["handler_seconds"], None) for run in runs],
        )
        line(
            "CPU time of the invocation's process (user + sys)",
            [f"{run[function]['cpu']:.2f} s" for run in runs],
            "cold start included",
        )
        line(
            "peak RSS of the invocation's process (wait4)",
            [f"{run[function]['rss'] / 2**20:,.0f} MiB" for run in runs],
            f"limit {RSS_LIMIT / 2**20:,.0f} MiB",
        )

    heading("requests per operation (billed ones; per file)")
    print(
        f"  {'service':<12}{'operation':<22}{'made by':<22}"
        + "".join(f"{n:>{width}}" for n in names)
    )
    keys: list[tuple[str, str, str]] = []
    tallies: list[dict[tuple[str, str, str], int]] = []
    for run in runs:
        tally: dict[tuple[str, str, str], int] = {}
        for r in run["bill"]["rows"]:
            key = (r["service"], r["op"], r["who"])
            tally[key] = tally.get(key, 0) + r["attempts"]
        for r in run["bill"]["modelled"]:
            key = (r["service"], r["op"], r["who"])
            tally[key] = tally.get(key, 0) + 1
        tallies.append(tally)
        keys += [k for k in tally if k not in keys]
    order = {"s3": 0, "sqs": 1, "eventbridge": 2, "dynamodb": 3}
    # IAM and STS cost nothing: the CLI upload ensures and assumes the switch's drop role.
    free = [sum(n for k, n in t.items() if k[0] in FREE_SERVICES) for t in tallies]
    for key in sorted(keys, key=lambda k: (order.get(k[0], 9), k[2], k[1])):
        service, op, who = key
        if service in FREE_SERVICES:
            continue
        print(
            f"  {service:<12}{op:<22}{who[:21]:<22}"
            + "".join(f"{t.get(key, 0):>{width},}" for t in tallies)
        )
    print(
        f"  {'iam, sts':<12}{'(free)':<22}{'upload (CLI)':<22}"
        + "".join(f"{n:>{width},}" for n in free)
    )
    print(
        "  (modelled: S3 event notification = 1 SQS SendMessage per object created under "
        "incoming/;\n   Lambda's SQS poller = 1 ReceiveMessage + 1 DeleteMessage per message, "
        "batch size 1)"
    )
    retried = sum(r["attempts"] - 1 for run in runs for r in run["bill"]["rows"])
    if retried:
        print(f"  note: {retried} retried attempt(s) are included above")

    heading("requests per stage (where the handlers' requests come from)")
    for function in (INGEST, RATE):
        labels = []
        for run in runs:
            for r in run[function]["requests"]:
                if r["stage"] == "handler" and r["span"] not in labels:
                    labels.append(r["span"])
        for label in labels:
            counts = []
            for run in runs:
                mine = [
                    r
                    for r in run[function]["requests"]
                    if r["stage"] == "handler" and r["span"] == label
                ]
                ops: dict[str, int] = {}
                for r in mine:
                    ops[r["op"]] = ops.get(r["op"], 0) + r["attempts"]
                counts.append(", ".join(f"{n} {op}" for op, n in ops.items()))
            tag = "ingest" if function == INGEST else "rate"
            print(f"  {tag:<7}{label:<30}" + " | ".join(f"{c:<48}" for c in counts).rstrip())

    heading("S3 bytes written per file (storage is billed per GB-month, not per request)")
    line("", names)
    areas: list[str] = []
    for run in runs:
        for r in run["bill"]["rows"]:
            if r["service"] == "s3" and r["op"] == "PutObject" and r["area"] not in areas:
                areas.append(r["area"])
    for area in areas:
        line(
            area,
            [
                f"{sum(r.get('bytes', 0) for r in run['bill']['rows'] if r['service'] == 's3' and r['op'] == 'PutObject' and r['area'] == area) / 1e6:,.2f} MB"  # noqa: E501
                for run in runs
            ],
        )
    line(
        "claimed-call set read by the claim",
        [f"{run['claim_set_read'] / 1e6:,.2f} MB" for run in runs],
        "grows with the switch-day's calls so far",
    )
    line(
        "EventBridge FileRated detail",
        [
            f"{sum(r.get('bytes', 0) for r in run['bill']['rows'] if r['service'] == 'eventbridge') / 1e3:,.1f} KB"  # noqa: E501
            for run in runs
        ],
    )

    heading("DynamoDB per file: writes follow the accounts in the file, not its CDRs")
    line("", names)
    line(
        "balance + journal items posted (1 transaction)",
        [str(run["accounts_posted"]) for run in runs],
    )
    line(
        "write requests (Put/Update/TransactWrite)",
        [str(run["ddb_write_requests"]) for run in runs],
    )
    line(
        "items written (transaction items counted)", [str(run["ddb_items_written"]) for run in runs]
    )
    line("write request units (WRU)", [f"{run['bill']['units']['wru']:g}" for run in runs])
    line("read request units (RRU)", [f"{run['bill']['units']['rru']:g}" for run in runs])
    line("largest item written", [f"{run['largest_item']:,} B" for run in runs])
    line(
        "free control-plane calls (DescribeTable)",
        [str(run["bill"]["units"]["ddb_free"]) for run in runs],
    )

    heading("AWS bill (us-east-1 list prices)")
    print(f"  {'':<24}" + "".join(f"{n:>26}" for n in names))
    print(f"  {'':<24}" + f"{'per file':>13}{'per 1M CDRs':>13}" * len(runs))
    for item in [*runs[0]["bill"]["usd"], "total"]:
        cells = ""
        for run in runs:
            usd = run["bill"]["usd"]
            usd = sum(usd.values()) if item == "total" else usd[item]
            cells += f"{usd:>13.6f}{usd * 1e6 / run['rows']:>13.6f}"
        print(f"  {item:<24}{cells}")
    print(
        "  units: "
        + " | ".join(
            f"{n}: {u['gb_seconds']:.2f} GB-s, {u['lambda_requests']} invocations, "
            f"{u['s3_put']} S3 PUT + {u['s3_get']} GET (+{u['s3_free']} free DELETE), "
            f"{u['sqs']} SQS, {u['events']} events, {u['wru']:g} WRU, {u['rru']:g} RRU"
            for n, u in (
                (name, run["bill"]["units"]) for name, run in zip(names, runs, strict=True)
            )
        )
    )
    memory = ", ".join(f"{f} {_memory_mb(f)} MB" for f in (INGEST, RATE))
    print(
        f"  Lambda memory from .chalice/config.json: {memory}; GB-s = (cold start + "
        "invocation) wall time x memory, measured on this machine against moto"
    )

    big = runs[0]
    per_million = sum(big["bill"]["usd"].values()) * 1e6 / big["rows"]
    peaks = {f: big[f]["rss"] for f in (INGEST, RATE)}
    storage = (
        sum(r.get("bytes", 0) for r in big["bill"]["rows"] if r["service"] == "s3")
        * 1e6
        / big["rows"]
    )
    heading("at scale (files like the first one; 30-day month)")
    for per_day in (10_000_000, 1_000_000_000):
        day = per_million * per_day / 1e6
        print(
            f"  {per_day:>13,} CDRs/day: ${day:,.2f}/day, ${day * 30:,.2f}/month in requests and "
            f"compute; S3 grows {storage * per_day / 1e6 / 1e9:,.1f} GB/day "
            f"(${storage * per_day / 1e6 / 1e9 * S3_STORAGE_GB_MONTH:,.2f} per month kept)"
        )

    heading("verdict")
    cost_ok = per_million <= TARGET_PER_MILLION
    rss_ok = all(peak <= RSS_LIMIT for peak in peaks.values())
    print(
        f"  cost per 1,000,000 CDRs: ${per_million:.4f} (target <= ${TARGET_PER_MILLION:.2f}): "
        f"{'MET' if cost_ok else 'NOT MET'}"
    )
    for function, peak in peaks.items():
        print(
            f"  peak RSS of the {WHO[function]}, {big['rows']:,}-CDR file: "
            f"{peak / 2**20:,.0f} MiB (limit {RSS_LIMIT / 2**20:,.0f} MiB, to fit a "
            f"{LAMBDA_MB:,} MB Lambda): {'MET' if peak <= RSS_LIMIT else 'NOT MET'}; "
            f"headroom {(RSS_LIMIT - peak) / 2**20:,.0f} MiB"
        )
    for i, run in enumerate(runs[1:], start=2):
        rss = {f: run[f]["rss"] for f in (INGEST, RATE)}
        print(
            f"  peak RSS, file #{i} ({run['rows']:,} CDRs after {run['claimed_before']:,} calls "
            f"claimed that switch-day): ingest {rss[INGEST] / 2**20:,.0f} MiB, rate "
            f"{rss[RATE] / 2**20:,.0f} MiB: "
            f"{'within' if max(rss.values()) <= RSS_LIMIT else 'OVER'} the limit"
        )
    print(
        f"  set-up (tenant, {len(ACCOUNTS)} accounts, {len(ACCOUNTS)} decks, switch) took "
        f"{setup['setup_seconds']:.1f} s; this process peaked at "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB"
    )
    return cost_ok and rss_ok


def summarise(run: dict[str, Any]) -> None:
    """Per-file facts drawn from the counted requests."""
    rate_rows = [r for r in run[RATE]["requests"] if r["stage"] == "handler"]
    handler_rows = rate_rows + [r for r in run[INGEST]["requests"] if r["stage"] == "handler"]
    transactions = [r for r in rate_rows if r["op"] == "TransactWriteItems"]
    run["accounts_posted"] = sum(r["transact_items"] - 1 for r in transactions)
    writes = [r for r in handler_rows if r.get("writes")]
    run["ddb_write_requests"] = sum(r["attempts"] for r in writes)
    run["ddb_items_written"] = sum(len(r["writes"]) for r in writes)
    run["largest_item"] = max((w["size"] for r in writes for w in r["writes"]), default=0)
    run["claim_set_read"] = 0  # filled from the object sizes the rate child reported
    run["bill"] = bill(run)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="CDRs in the main file")
    parser.add_argument("--small-rows", type=int, default=100_000, help="CDRs in the 2nd file")
    parser.add_argument(
        "--later-rows", type=int, default=1_000_000, help="CDRs in the 3rd file (0: none)"
    )
    parser.add_argument("--prefixes", type=int, default=20_000, help="prefixes per deck")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--role", choices=("main", "stack", "handler"), default="main")
    parser.add_argument("--function", choices=(INGEST, RATE), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "stack":
        return stack_role(args)
    if args.role == "handler":
        return handler_role(args)

    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="tollgate-pipeline-bench-"))
    env = dict(os.environ, TOLLGATE_CACHE_DIR=str(work / "cache"), POWERTOOLS_LOG_LEVEL="WARNING")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    python, script = sys.executable, str(Path(__file__).resolve())
    plan = [
        (f"cdrs-{args.rows}.csv", args.rows, 1),
        (f"cdrs-{args.small_rows}.csv", args.small_rows, 2),
        (f"cdrs-{args.later_rows}-later.csv", args.later_rows, 3),
    ]
    plan = [step for step in plan if step[1] > 0]
    stack = None
    try:
        print(
            f"Tollgate pipeline bench: {args.rows:,}-CDR file ({FORMAT} format) through the "
            f"ingest and rate handlers on the local stack\n  tenant {TENANT}: "
            f"{len(CUSTOMERS)} customers (DESI_RETAIL under reseller DESI_CONNECT), "
            f"{len(SUPPLIERS)} suppliers, {args.prefixes:,}-prefix decks; switch {SWITCH}; "
            f"{os.cpu_count()} cores"
        )
        subprocess.run(
            [
                python,
                "-c",
                GENERATE,
                str(work),
                str(args.prefixes),
                ",".join(CUSTOMERS),
                ",".join(SUPPLIERS),
                *(f"{name}:{rows}:{seed}" for name, rows, seed in plan),
            ],
            check=True,
            env=env,
            cwd=ROOT,
        )
        print(f"  generated the CDR files in {time.perf_counter() - began:.1f} s")
        stack = Stack(
            [
                python,
                script,
                "--role",
                "stack",
                "--workdir",
                str(work),
                "--prefixes",
                str(args.prefixes),
            ],
            env,
        )
        ready = stack.read()
        child_env = env | ready["env"]
        print(
            f"  local stack up and set up in {ready['setup_seconds']:.1f} s "
            f"({ready['env']['AWS_ENDPOINT_URL']})"
        )
        runs: list[dict[str, Any]] = []
        claimed = 0
        for index, (name, rows, _) in enumerate(plan):
            path = work / name
            run: dict[str, Any] = {"name": name, "rows": rows, "bytes": path.stat().st_size}
            run["upload"] = stack.send({"op": "drop", "path": str(path)})
            for function in (INGEST, RATE):
                out = work / f"{function}-{index}.json"
                wall, rss, cpu = run_measured(
                    [
                        python,
                        script,
                        "--role",
                        "handler",
                        "--function",
                        function,
                        "--out",
                        str(out),
                    ],
                    child_env,
                )
                measured = {"rss": rss, "wall": wall, "cpu": cpu}
                run[function] = json.loads(out.read_text()) | measured
            record = run[RATE]["files"][name]
            run["status"], run["counts"] = record["status"], record["counts"]
            run["claimed_before"] = claimed
            counts = run["counts"]
            claimed += counts["rows"] - counts["quarantined"] - counts["duplicates"]
            summarise(run)
            reads = [
                r
                for r in run[RATE]["requests"]
                if r["service"] == "s3"
                and r["op"] == "GetObject"
                and r["area"].startswith("dedup/")
            ]
            run["claim_set_read"] = sum(r.get("response_bytes", 0) for r in reads)
            runs.append(run)
            print(
                f"  {name}: ingest {run[INGEST]['handler_seconds']:.1f} s, rate "
                f"{run[RATE]['handler_seconds']:.1f} s"
            )
        ok = report(runs, ready)
        print(f"\nbench finished in {time.perf_counter() - began:.1f} s")
    finally:
        if stack is not None:
            stack.close()
        if args.keep:
            print(f"files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
