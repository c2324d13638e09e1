"""Benchmark real-time authorization in-process (issue 14 §5): p50/p99 of a START with a warm
container (decks compiled, clients made, the route service's caches warm), on moto, and the
AWS calls each START makes (DynamoDB above all: the goal is at most 3).

The tenant: a prepaid customer on a 20,000-prefix deck with money for every call, and three
suppliers on their own 20,000-prefix decks with SIP targets, so each START is priced by the
max-duration oracle, holds its money and answers three ordered routes. moto stands in for
DynamoDB (about a millisecond a call in-process; a real one is some 3-8 ms over the network),
so the time is printed with and without the stores' share.

With `--contracts` the customer also has a graduated tier and a bundle on India mobile (a
bundle far larger than the run uses): each START then reads the tier's and the bundle's
counters in the same BatchGetItem and holds bundle seconds with its money (the transaction
checks the bundle's counter too), still 3 DynamoDB calls.

    .venv/bin/python bench/authz_bench.py [--calls 500] [--prefixes 20000] [--contracts]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import botocore.client  # noqa: E402

from bench.api_bench import Calls, percentile  # noqa: E402
from tests.conftest import FAKE_ENVIRONMENT, moto_account  # noqa: E402

TENANT = "acme"
SUPPLIERS = {"vend_a": "0.0065", "vend_b": "0.0062", "vend_c": "0.0070"}  # India mobile buy
AT = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.UTC)


def world(prefixes: int, contracts: bool = False) -> None:
    from functions.rate.routing import check_target
    from functions.rate.samples import generate_deck_csv
    from functions.store import accounts, ledger
    from functions.store import routes as routes_store
    from tests.pipeline.carrier import run

    folder = Path(tempfile.mkdtemp(prefix="authz-bench-"))
    run("tenant", "create", TENANT)
    run("account", "create", TENANT, "retail", "--kind", "customer", "--prepaid")
    decks = {"retail": generate_deck_csv(prefixes, seed=2, india_mobile_rate="0.008")}
    for n, (supplier, rate) in enumerate(SUPPLIERS.items()):
        run("account", "create", TENANT, supplier, "--kind", "supplier")
        decks[supplier] = generate_deck_csv(
            prefixes, seed=2, india_mobile_rate=rate, rate_percent=80 + 5 * n
        )
    for account, text in decks.items():
        (folder / f"{account}.csv").write_bytes(text)
        run("deck", "upload", TENANT, account, str(folder / f"{account}.csv"))
    actor = accounts.caller(by="bench")
    for n, supplier in enumerate(SUPPLIERS):
        target = check_target(f"sip{n}.example.net", 5060, "udp")
        routes_store.set_target(TENANT, supplier, target, actor=actor)
    ledger.record_payment(
        TENANT, "retail", 1_000_000_000_000, reference="BENCH", account_kind="customer"
    )
    if contracts:
        from functions.rate.samples import INDIA_MOBILE_PREFIXES
        from functions.rate.tiers import Bundle, Tier, TierSchedule

        india = tuple(INDIA_MOBILE_PREFIXES)
        tiers = (Tier(6_000_000, 700_000), Tier(None, 600_000))
        accounts.set_contract(TENANT, "retail", TierSchedule("india", india, "graduated", tiers))
        bundle = Bundle("india", india, included_seconds=10**9, fee_units=0)
        accounts.set_contract(TENANT, "retail", bundle, start=dt.date(2026, 12, 1))


class StoreTime:
    """The seconds spent inside AWS calls (moto's share of a START)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> StoreTime:
        self._original = original = botocore.client.BaseClient._make_api_call

        def timed(client, operation, params):
            began = time.perf_counter()
            try:
                return original(client, operation, params)
            finally:
                self.seconds += time.perf_counter() - began

        botocore.client.BaseClient._make_api_call = timed
        return self

    def __exit__(self, *exc: object) -> None:
        botocore.client.BaseClient._make_api_call = self._original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="STARTs measured")
    parser.add_argument("--prefixes", type=int, default=20_000, help="codes per deck")
    parser.add_argument(
        "--contracts", action="store_true", help="give the customer a tier and a bundle"
    )
    args = parser.parse_args()
    os.environ.update(FAKE_ENVIRONMENT)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from functions.authz import service

    calls = Calls()
    with moto_account():
        world(args.prefixes, args.contracts)

        def start(n: int) -> dict:
            request = service.Request(
                TENANT, "start", f"bench-{n}@sbc1", account="retail",
                callee=f"9170{n % 10_000_000:08d}", at=AT,
            )  # fmt: skip
            return service.authorize(request)

        for n in range(20):  # warm: decks compiled, clients made, caches filled
            warm = start(10_000_000 + n)
            assert warm["allow"], warm
        took, own, stores = [], [], []
        with calls.counting(), StoreTime() as store_time:
            for n in range(args.calls):
                calls.counts.clear()
                store_time.seconds = 0.0
                began = time.perf_counter()
                answer = start(n)
                took.append((time.perf_counter() - began) * 1000)
                own.append(took[-1] - store_time.seconds * 1000)
                assert answer["allow"] and len(answer["routes"]) == len(SUPPLIERS), answer
                stores.append(dict(calls.counts))
        per_call = {
            op: sum(s.get(op, 0) for s in stores) / len(stores) for s in stores[:1] for op in s
        }
        dynamodb = sum(n for op, n in per_call.items() if op.startswith("dynamodb:"))
        print(
            f"{args.calls} STARTs for one prepaid account, {args.prefixes:,}-prefix decks "
            f"(customer + {len(SUPPLIERS)} suppliers with targets), moto in-process"
            + (", the customer with a tier and a bundle" if args.contracts else "")
        )
        print(
            f"  p50 {statistics.median(took):6.2f} ms   p99 {percentile(took, 0.99):6.2f} ms  (all)"
        )
        print(
            f"  p50 {statistics.median(own):6.2f} ms   p99 {percentile(own, 0.99):6.2f} ms  "
            "(without the AWS calls: the code's own share; goal p99 < 10 ms)"
        )
        print(f"  AWS calls per START: {dynamodb:g} DynamoDB ({per_call})")
        print(
            f"  last answer: {answer['max_duration_seconds']} s, hold {answer['hold_amount']}, "
            f"routes {[r['supplier'] for r in answer['routes']]}"
        )


if __name__ == "__main__":
    main()
