"""Exactly once for every posting the ledger journals: charges per party, payments by
reference, adjustments, re-rate differences.

House style of test_exactly_once.py: a crash is injected before every DynamoDB call of the
sequence, and (separately) right after each call returned, when the write happened but the
caller never learnt it; the crashed step is then retried, as a redelivery or an operator
would, until it succeeds. Every run must end in exactly the state of a clean run: every item of
the ledger table (balances, markers, payments, adjustments, journal entries) and every
account's statements. The journal is new in issue 8: on the old code there were no entries
to compare and a payment without a reference was a new payment on every retry.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from functions import store
from functions.invoice.statement import build_statement
from functions.shared.settings import settings
from functions.store import ledger
from tests.conftest import moto_account

TENANT = "acme"
START = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)
TIMEZONE = "Asia/Kolkata"
DAYS = [dt.date(2024, 5, 1) + dt.timedelta(days=n) for n in range(4)]

# One file charging 60 parties, so the posting is two transactions (49 and 11 accounts):
# customers and resellers are charged (balances fall), suppliers are owed (balances rise).
# (60, not more: moto copies the table for every item of a transaction, so each crash point
# costs seconds per hundred accounts; two chunks already put a crash between chunks.)
CUSTOMERS = [f"cust-{i:02d}" for i in range(24)]
RESELLERS = [f"res-{i:02d}" for i in range(12)]
SUPPLIERS = [f"supp-{i:02d}" for i in range(24)]
CHARGES = {
    **{a: -(1_000_003 + 17 * i) for i, a in enumerate(CUSTOMERS)},
    **{a: -(700_001 + 11 * i) for i, a in enumerate(RESELLERS)},
    **{a: 400_007 + 13 * i for i, a in enumerate(SUPPLIERS)},
}
ACCOUNTS = sorted(CHARGES)
# every account a payment, adjustment or re-rate touched, one only charged, one per chunk
STATED = ["cust-00", "cust-01", "cust-02", "res-00", "supp-01", "supp-23"]


class Crash(Exception):
    """A Lambda or a CLI process dying mid-way (timeout, lost connection, Ctrl-C)."""


class Faults:
    """Counts the ledger's DynamoDB calls; raises Crash before (or after) call `at`."""

    METHODS = ("transact_write_items", "get_item", "query", "put_item", "update_item")

    def __init__(self, at: int | None = None, *, after: bool = False) -> None:
        self.at, self.after = at, after
        self.calls = 0
        self.crashed = False

    def install(self, patch: pytest.MonkeyPatch) -> None:
        dynamodb = store.client("dynamodb")
        for name in self.METHODS:
            patch.setattr(dynamodb, name, self._wrap(name, getattr(dynamodb, name)))

    def _wrap(self, name: str, target: Callable) -> Callable:
        def call(**kwargs):
            self.calls += 1
            crash = self.calls == self.at
            if crash and not self.after:
                self.crashed = True
                raise Crash(f"crash before {name} (call {self.calls})")
            try:
                result = target(**kwargs)
            except Exception as error:  # e.g. a cancelled transaction: still a response
                if crash:
                    self.crashed = True
                    raise Crash(f"crash after {name} (call {self.calls})") from error
                raise
            if crash:
                self.crashed = True
                raise Crash(f"crash after {name} (call {self.calls})")
            return result

        return call


def steps() -> list[Callable[[], object]]:
    """The sequence: a file's charges, payments both ways, adjustments both ways, a re-rate."""
    return [
        lambda: ledger.post_balances(TENANT, "file-1", CHARGES, description="day1.csv"),
        lambda: ledger.record_payment(
            TENANT, "cust-00", 5_000_001, reference="wire 2024/05 #1", account_kind="customer"
        ),
        lambda: ledger.record_payment(
            TENANT, "supp-23", 300_000, reference="OUT-77", account_kind="supplier"
        ),
        lambda: ledger.record_payment(
            TENANT, "res-00", 1, reference="psp ch_9", account_kind="reseller"
        ),
        lambda: ledger.record_adjustment(
            TENANT, "cust-01", 2_500_000, reference="CASE-1", reason="goodwill"
        ),
        lambda: ledger.record_adjustment(
            TENANT, "supp-01", -750_000, reference="CASE-2", reason="short-paid invoice"
        ),
        lambda: ledger.post_balances(
            TENANT,
            "rerate:2024-05-01:file-1:g1",
            {"cust-00": 7, "res-00": -2, "supp-23": -3},
            kind="rerate",
            description="re-rate 2024-05-01 day1.csv",
        ),
        # the operator runs the first payment's command again: nothing changes
        lambda: ledger.record_payment(
            TENANT, "cust-00", 5_000_001, reference="wire 2024/05 #1", account_kind="customer"
        ),
    ]


def process(faults: Faults, *, twice: bool = False) -> None:
    """Every step at its own booking time; a crashed step is retried until it succeeds."""
    clock = {"now": START}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ledger, "_now", lambda: clock["now"])
        faults.install(patch)
        for n, step in enumerate(steps()):
            # 11 hours apart: the steps spread over several days in UTC and in Kolkata
            clock["now"] = START + dt.timedelta(hours=11 * n)
            for _ in range(2 if twice else 1):
                for _attempt in range(5):
                    try:
                        step()
                        break
                    except Crash:
                        continue
                else:
                    raise AssertionError("a step kept failing after retries")


def snapshot() -> dict:
    """Every ledger item (so every balance and journal entry) and statements, daily and whole."""
    dynamodb = store.client("dynamodb")
    items, query = [], {"TableName": settings().ledger_table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**query)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    statements = {}
    for account in STATED:
        entries = ledger.list_entries(TENANT, account)
        whole = build_statement(account, TIMEZONE, DAYS[0], DAYS[-1], entries)
        daily = [build_statement(account, TIMEZONE, day, day, entries) for day in DAYS]
        assert [s.opening for s in daily[1:]] == [s.closing for s in daily[:-1]]
        assert whole.closing == ledger.get_balance(TENANT, account)[0]
        statements[account] = (whole, daily)
    return {
        "items": sorted(items, key=lambda item: item["sk"]["S"]),
        "balances": {a: ledger.get_balance(TENANT, a) for a in ACCOUNTS},
        "statements": statements,
    }


def clean_run() -> tuple[dict, int]:
    """The end state of a run without faults, and how many DynamoDB calls it made."""
    with moto_account():
        faults = Faults()
        process(faults)
        return snapshot(), faults.calls


def test_a_clean_run_moves_every_balance_once_and_journals_it(aws_environment):
    state, calls = clean_run()
    assert calls == 9  # 2 chunk transactions + 7 single ones: every call is a crash point
    balances = {a: b for a, (b, _) in state["balances"].items()}
    expected = dict(CHARGES)
    expected["cust-00"] += 5_000_001 + 7  # paid, then re-rated up by 7 micro-units
    expected["supp-23"] += -300_000 - 3  # paying a supplier lowers what it is owed
    expected["res-00"] += 1 - 2
    expected["cust-01"] += 2_500_000
    expected["supp-01"] += -750_000
    assert balances == expected
    entries = [item for item in state["items"] if item["sk"]["S"].startswith("ENTRY#")]
    assert len(entries) == 60 + 3 + 2 + 3  # charges, payments, adjustments, re-rate
    whole, daily = state["statements"]["cust-00"]
    assert [(line.entry.kind, line.entry.amount) for line in whole.lines] == [
        ("charges", -1_000_003),
        ("payment", 5_000_001),
        ("rerate", 7),
    ]
    # 08:00 UTC + 11 h steps, in Kolkata (+05:30): charges 1 May, the payment 2 May, ...
    assert [len(day.lines) for day in daily] == [1, 1, 0, 1]


def test_a_crash_before_any_ledger_call_then_a_retry_changes_nothing(aws_environment):
    expected, calls = clean_run()
    for at in range(1, calls + 1):
        with moto_account():
            faults = Faults(at)
            process(faults)
            assert faults.crashed, at
            assert snapshot() == expected, f"crash before ledger call {at}"


def test_a_crash_after_a_write_landed_then_a_retry_changes_nothing(aws_environment):
    expected, calls = clean_run()
    for at in range(1, calls + 1):
        with moto_account():
            faults = Faults(at, after=True)
            process(faults)
            assert faults.crashed, at
            assert snapshot() == expected, f"crash after ledger call {at}"


def test_every_step_delivered_twice_is_applied_once(aws_environment):
    expected, _ = clean_run()
    with moto_account():
        process(Faults(), twice=True)
        assert snapshot() == expected


@pytest.mark.parametrize("kind", ["payment", "adjustment"])
def test_two_recordings_of_one_reference_at_once_make_one(aws, atomic_items, kind):
    both_ready = threading.Barrier(2)

    def record(_):
        both_ready.wait()  # both commands reach DynamoDB together
        if kind == "payment":
            return ledger.record_payment(
                TENANT, "supp-00", 1_000_000, reference="wire 9", account_kind="supplier"
            )
        return ledger.record_adjustment(
            TENANT, "supp-00", -1_000_000, reference="wire 9", reason="fee"
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(record, range(2)))
    assert sorted(r.recorded for r in results) == [False, True]
    assert results[0].entry == results[1].entry  # the loser reports the winner's booking
    assert ledger.get_balance(TENANT, "supp-00") == (-1_000_000, 0)
    assert [e.amount for e in ledger.list_entries(TENANT, "supp-00")] == [-1_000_000]
