"""Benchmark the API in-process: p50/p99 latency of its read routes through Chalice's local
gateway with a warm container (app imported, clients made, the first requests thrown away),
on moto, and the AWS calls each request makes (DynamoDB above all: a balance in one or two).

The figures are the function's own time on one core with moto standing in for DynamoDB (a
moto call costs about a millisecond in-process, a real one some 3-8 ms over the network), so
read the latency for the code's share and the calls per request for what AWS will add.

    .venv/bin/python bench/api_bench.py [--requests 100] [--accounts 50]
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import botocore.client  # noqa: E402

from tests.conftest import FAKE_ENVIRONMENT, moto_account  # noqa: E402

ROLES = {  # key name: (role, account)
    "tenant-admin": ("tenant-admin", None),
    "reseller-admin": ("reseller-admin", "RES_A"),
    "customer": ("customer", "CUST_A1"),
}
DAYS = "from=2024-05-01&to=2024-05-02"
ROUTES = [  # (label, path): the routes the portal's pages call
    ("GET /v1/me", "/v1/me"),
    ("GET /v1/accounts", "/v1/accounts"),
    ("GET /v1/accounts/{id}", "/v1/accounts/CUST_A1"),
    ("GET /v1/accounts/{id}/balance", "/v1/accounts/CUST_A1/balance"),
    ("GET /v1/accounts/{id}/statement", f"/v1/accounts/CUST_A1/statement?{DAYS}"),
    ("GET /v1/rates", "/v1/rates?account=CUST_A1"),
    ("GET /v1/invoices", "/v1/invoices"),
    ("GET /v1/payments", "/v1/payments"),
    ("GET /v1/branding", "/v1/branding"),
    ("GET /v1/usage (by day)", f"/v1/usage?{DAYS}&group_by=day"),
    ("GET /v1/cdrs (a page of 50)", f"/v1/cdrs?{DAYS}&limit=50"),
]


class Calls:
    """Every AWS API call any botocore client makes (boto3's and PynamoDB's alike)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    @contextmanager
    def counting(self) -> Iterator[None]:
        original = botocore.client.BaseClient._make_api_call

        def counted(client, operation, params):
            self.counts[f"{client.meta.service_model.service_name}:{operation}"] += 1
            return original(client, operation, params)

        botocore.client.BaseClient._make_api_call = counted
        try:
            yield
        finally:
            botocore.client.BaseClient._make_api_call = original


def traffic(calls_count: int) -> None:
    """Decks for RES_A, CUST_A1 (RES_A's price), DIRECT and CARRIER_X, and `calls_count` calls
    of CUST_A1 and DIRECT over two days in four files, through ingest and rate on moto (the
    tests' carrier helpers: tests/api/test_traffic.py's decks)."""
    import tempfile

    from tests.api.test_traffic import DECKS, cdr
    from tests.pipeline.carrier import HEADER, SWITCH, process_file, run

    run("switch", "create", "acme", SWITCH, "--format", "generic")
    folder = Path(tempfile.mkdtemp(prefix="api-bench-"))
    for account, text in DECKS.items():
        (folder / f"{account}.csv").write_text(text)
        run("deck", "upload", "acme", account, str(folder / f"{account}.csv"))
    rows = [
        cdr(
            f"c{n}",
            ("CUST_A1", "DIRECT")[n % 2],
            ("9170123", "4477009")[n % 3 == 0] + f"{n % 100_000:05d}",
            (0, 30, 61, 150)[n % 4],
            f"2024-05-0{1 + n % 2}T{n % 24:02d}:{n % 60:02d}:00",
        )
        for n in range(calls_count)
    ]
    for part in range(4):
        process_file(f"bench-{part}.csv", "\n".join([HEADER, *rows[part::4]]) + "\n")


def world(accounts_count: int, calls_count: int) -> dict[str, str]:
    """acme: RES_A with CUST_A1 and (accounts_count - 4) more customers, DIRECT, CARRIER_X,
    a payment, rated traffic; a key per role. The presented keys by role."""
    from functions.store import accounts, apikeys, ledger

    accounts.create_tenant("acme", currency="EUR")
    accounts.create_account("acme", "RES_A", kind="reseller", credit_limit_micro=500_000_000)
    accounts.create_account("acme", "CUST_A1", kind="customer", parent="RES_A", prepaid=True)
    accounts.create_account("acme", "DIRECT", kind="customer")
    accounts.create_account("acme", "CARRIER_X", kind="supplier")
    for i in range(max(0, accounts_count - 4)):
        parent = "RES_A" if i % 2 else None
        accounts.create_account("acme", f"C{i:05d}", kind="customer", parent=parent)
    ledger.record_payment(
        "acme", "CUST_A1", 123_456_789, reference="SEPA-1", account_kind="customer"
    )
    traffic(calls_count)
    actor = accounts.Actor(by="bench", principal="arn:aws:iam::123456789012:user/bench")
    return {
        name: apikeys.create_key("acme", role, account=account, actor=actor)[1]
        for name, (role, account) in ROLES.items()
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="per route and role")
    parser.add_argument("--accounts", type=int, default=50, help="accounts in the tenant")
    parser.add_argument("--calls", type=int, default=20_000, help="rated calls over two days")
    args = parser.parse_args()
    os.environ.update(FAKE_ENVIRONMENT)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from chalice.test import Client

    from app import app
    from functions.api import handler
    from functions.api.throttle import Limit, Limiter

    # The bench asks far faster than a key may: its own limiter, as generous as it needs.
    handler.LIMITER = Limiter(Limit(1e9, 10**9), clock=time.monotonic)
    calls = Calls()
    with moto_account():
        keys = world(args.accounts, args.calls)
        with Client(app) as client, calls.counting():
            print(
                f"{args.requests} requests per route and role, {args.accounts} accounts, "
                f"{args.calls:,} rated calls in 4 files, moto"
            )
            print(f"{'route':32} {'role':15} {'p50 ms':>7} {'p99 ms':>7}  AWS calls per request")
            for label, path in ROUTES:
                for role, key in keys.items():
                    headers = {"Authorization": f"Bearer {key}"}
                    for _ in range(20):  # warm: imports, clients, caches
                        assert client.http.get(path, headers=headers).status_code == 200
                    calls.counts.clear()
                    took = []
                    for _ in range(args.requests):
                        started = time.perf_counter()
                        answer = client.http.get(path, headers=headers)
                        took.append((time.perf_counter() - started) * 1000)
                        assert answer.status_code == 200, answer.body
                    per = {op: n / args.requests for op, n in sorted(calls.counts.items())}
                    dynamodb = sum(n for op, n in per.items() if op.startswith("dynamodb:"))
                    detail = ", ".join(f"{op} {n:g}" for op, n in per.items())
                    print(
                        f"{label:32} {role:15} {statistics.median(took):7.2f} "
                        f"{percentile(took, 0.99):7.2f}  {dynamodb:g} DynamoDB ({detail})"
                    )


if __name__ == "__main__":
    main()
