"""Balances, postings, payments, adjustments and the journal against moto: exact, once."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from botocore.exceptions import ClientError

from functions import store
from functions.invoice.statement import Entry
from functions.shared.settings import settings
from functions.store import ConflictError, ledger
from functions.store.ledger import ReferenceConflictError
from tests.conftest import BOOKED_AT


def ledger_items(prefix: str) -> list[dict]:
    dynamodb = store.client("dynamodb")
    items = dynamodb.scan(TableName=settings().ledger_table)["Items"]
    return sorted((i for i in items if i["sk"]["S"].startswith(prefix)), key=lambda i: i["sk"]["S"])


def test_posting_adds_exact_micro_unit_deltas(aws):
    assert ledger.post_balances("acme", "file-1", {"cust": -12_345_600, "supp": 7_000_001})
    assert ledger.get_balance("acme", "cust") == (-12_345_600, 0)
    assert ledger.get_balance("acme", "supp") == (7_000_001, 0)
    assert ledger.get_balance("acme", "never-posted") == (0, 0)


def test_amounts_beyond_float_precision_stay_exact(aws):
    big = 2**60 + 1  # a float would round this
    ledger.post_balances("acme", "file-1", {"cust": big})
    ledger.post_balances("acme", "file-2", {"cust": np.int64(-3)})
    assert ledger.get_balance("acme", "cust") == (big - 3, 0)


def test_float_and_bool_amounts_are_refused(aws):
    with pytest.raises(TypeError, match="micro-units"):
        ledger.post_balances("acme", "file-1", {"cust": 1.5})
    with pytest.raises(TypeError, match="micro-units"):
        ledger.post_balances("acme", "file-1", {"cust": True})
    assert not ledger.posting_applied("acme", "file-1")


def test_same_posting_twice_is_applied_once(aws):
    deltas = {"cust": -1_000_000, "supp": 400_000}
    assert ledger.post_balances("acme", "file-1", deltas) is True
    assert ledger.post_balances("acme", "file-1", deltas) is False
    assert ledger.get_balance("acme", "cust") == (-1_000_000, 0)
    assert ledger.get_balance("acme", "supp") == (400_000, 0)


def test_posting_of_120_accounts_is_three_chunks_of_at_most_100_items(aws, monkeypatch):
    """Each account now costs two items (balance, journal entry): 49 accounts per chunk."""
    dynamodb = store.client("dynamodb")
    real = dynamodb.transact_write_items
    sizes = []

    def counting(**kwargs):
        sizes.append(len(kwargs["TransactItems"]))
        return real(**kwargs)

    monkeypatch.setattr(dynamodb, "transact_write_items", counting)
    deltas = {f"acct-{i:03d}": -(i + 1) for i in range(120)}
    assert ledger.post_balances("acme", "file-1", deltas)
    assert not ledger.post_balances("acme", "file-1", deltas)
    assert all(ledger.get_balance("acme", a)[0] == d for a, d in deltas.items())
    assert max(sizes) <= 100  # DynamoDB's limit per transaction
    markers = [
        dynamodb.get_item(
            TableName=settings().ledger_table,
            Key={"pk": {"S": "acme"}, "sk": {"S": f"POST#file-1#{chunk}"}},
        ).get("Item")
        for chunk in range(4)
    ]
    assert [int(m["accounts"]["N"]) for m in markers[:3]] == [49, 49, 22]
    assert markers[3] is None
    assert ledger.posting_applied("acme", "file-1")
    assert len(ledger_items("ENTRY#")) == 120  # one entry per account, none from the retry


def test_retry_after_crash_between_chunks_completes_exactly(aws, monkeypatch):
    deltas = {f"acct-{i:03d}": 1_000 + i for i in range(100)}  # chunks of 49, 49, 2
    original = ledger._post_chunk

    def crash_on_second_chunk(tenant, posting_id, index, count, chunk, journal):
        if index == 1:
            raise RuntimeError("Lambda timed out")
        return original(tenant, posting_id, index, count, chunk, journal)

    monkeypatch.setattr(ledger, "_post_chunk", crash_on_second_chunk)
    with pytest.raises(RuntimeError):
        ledger.post_balances("acme", "file-1", deltas)
    assert ledger.get_balance("acme", "acct-000") == (1_000, 0)  # chunk 0 landed
    assert ledger.get_balance("acme", "acct-049") == (0, 0)  # chunk 1 did not
    assert ledger.get_balance("acme", "acct-099") == (0, 0)
    assert not ledger.posting_applied("acme", "file-1")

    monkeypatch.setattr(ledger, "_post_chunk", original)
    assert ledger.post_balances("acme", "file-1", deltas) is True  # chunk 1 applied now
    assert ledger.post_balances("acme", "file-1", deltas) is False
    assert all(ledger.get_balance("acme", a)[0] == d for a, d in deltas.items())
    assert ledger.posting_applied("acme", "file-1")
    entries = ledger_items("ENTRY#")
    assert sorted(i["account"]["S"] for i in entries) == sorted(deltas)  # each once
    assert all(int(i["amount"]["N"]) == deltas[i["account"]["S"]] for i in entries)


def test_retry_with_other_amounts_is_a_conflict_and_changes_nothing(aws):
    ledger.post_balances("acme", "file-1", {"cust": -500})
    with pytest.raises(ConflictError, match="other amounts"):
        ledger.post_balances("acme", "file-1", {"cust": -600})
    assert ledger.get_balance("acme", "cust") == (-500, 0)


def test_zero_deltas_post_nothing_but_mark_the_posting(aws):
    assert ledger.post_balances("acme", "empty-file", {"cust": 0})
    assert ledger.posting_applied("acme", "empty-file")
    assert not ledger.post_balances("acme", "empty-file", {})
    assert ledger.get_balance("acme", "cust") == (0, 0)


def test_same_account_in_two_tenants_never_mixes(aws):
    ledger.post_balances("acme", "file-1", {"cust": -100})
    ledger.post_balances("globex", "file-1", {"cust": -7})  # same posting id, other tenant
    ledger.record_payment("globex", "cust", 50, reference="wire 1", account_kind="customer")
    ledger.record_payment("acme", "cust", 50, reference="wire 1", account_kind="customer")
    assert ledger.get_balance("acme", "cust") == (-50, 0)
    assert ledger.get_balance("globex", "cust") == (43, 0)
    assert [e.amount for e in ledger.list_entries("globex", "cust")] == [-7, 50]


def test_ids_that_could_forge_keys_are_refused(aws):
    with pytest.raises(ValueError, match="tenant"):
        ledger.get_balance("acme#BALANCE", "cust")
    with pytest.raises(ValueError, match="account"):
        ledger.post_balances("acme", "file-1", {"cust#x": 1})
    with pytest.raises(ValueError, match="posting id"):
        ledger.post_balances("acme", "file#1", {"cust": 1})


# --- the journal ---------------------------------------------------------------------------


def test_every_posting_journals_one_entry_per_account_with_what_moved(aws, ledger_clock):
    """The old ledger moved balances and kept no record of why: no statement was possible."""
    ledger.post_balances(
        "acme", "file-1", {"cust": -12_345_600, "supp": 7_000_001, "idle": 0}, description="a.csv"
    )
    ledger_clock.now = BOOKED_AT + dt.timedelta(hours=1)
    ledger.post_balances(
        "acme", "rerate:2024-05-01:file-1:g1", {"cust": 3}, kind="rerate", description="re-rate"
    )
    assert ledger.list_entries("acme", "cust") == [
        Entry("cust", BOOKED_AT, "charges", "file-1", -12_345_600, "a.csv"),
        Entry("cust", BOOKED_AT + dt.timedelta(hours=1), "rerate", "rerate:2024-05-01:file-1:g1", 3,
              "re-rate"),
    ]  # fmt: skip
    assert ledger.list_entries("acme", "supp") == [
        Entry("supp", BOOKED_AT, "charges", "file-1", 7_000_001, "a.csv")
    ]
    assert ledger.list_entries("acme", "idle") == []  # a zero delta moves nothing
    assert (
        sum(e.amount for e in ledger.list_entries("acme", "cust"))
        == ledger.get_balance("acme", "cust")[0]
    )


def test_a_retried_posting_adds_no_second_entry(aws, ledger_clock):
    deltas = {"cust": -500, "supp": 300}
    ledger.post_balances("acme", "file-1", deltas, description="a.csv")
    ledger_clock.now = BOOKED_AT + dt.timedelta(minutes=5)  # the redelivery comes later
    assert not ledger.post_balances("acme", "file-1", deltas, description="a.csv")
    assert [e.booked_at for e in ledger.list_entries("acme", "cust")] == [BOOKED_AT]
    assert len(ledger_items("ENTRY#")) == 2


def test_entries_before_a_moment_exclude_it_and_other_accounts(aws, ledger_clock):
    for minute, account in enumerate(("cust", "cust2", "cust.x", "cust", "cus")):
        ledger_clock.now = BOOKED_AT + dt.timedelta(minutes=minute)
        ledger.post_balances("acme", f"file-{minute}", {account: -(minute + 1)})
    assert [e.amount for e in ledger.list_entries("acme", "cust")] == [-1, -4]
    cut = BOOKED_AT + dt.timedelta(minutes=3)  # exactly the second entry's booking time
    assert [e.amount for e in ledger.list_entries("acme", "cust", before=cut)] == [-1]
    assert [e.amount for e in ledger.list_entries("acme", "cust", before=cut.replace(
        microsecond=1))] == [-1, -4]  # fmt: skip


def test_a_long_journal_is_read_across_pages(aws, ledger_clock, monkeypatch):
    dynamodb = store.client("dynamodb")
    real = dynamodb.query
    pages = []

    def small_pages(**kwargs):  # as DynamoDB pages at 1 MB, here at 3 items
        pages.append(kwargs.get("ExclusiveStartKey"))
        return real(**kwargs, Limit=3)

    monkeypatch.setattr(dynamodb, "query", small_pages)
    for n in range(10):
        ledger_clock.now = BOOKED_AT + dt.timedelta(seconds=n)
        ledger.post_balances("acme", f"file-{n}", {"cust": -(n + 1)})
    entries = ledger.list_entries("acme", "cust")
    assert [e.posting_id for e in entries] == [f"file-{n}" for n in range(10)]
    assert len(pages) == 4
    assert sum(e.amount for e in entries) == ledger.get_balance("acme", "cust")[0] == -55
    before = ledger.list_entries("acme", "cust", before=BOOKED_AT + dt.timedelta(seconds=7))
    assert [e.amount for e in before] == [-1, -2, -3, -4, -5, -6, -7]


def test_posting_kinds_and_descriptions_are_checked(aws):
    with pytest.raises(ValueError, match="posting kind"):
        ledger.post_balances("acme", "file-1", {"cust": 1}, kind="payment")
    with pytest.raises(ValueError, match="1024"):
        ledger.post_balances("acme", "file-1", {"cust": 1}, description="x" * 1025)
    assert not ledger.posting_applied("acme", "file-1")


# --- payments and adjustments ------------------------------------------------------------


def test_a_payment_to_a_supplier_lowers_what_the_carrier_owes_it(aws, ledger_clock):
    """The old record_payment added every payment: paying a supplier raised what it was owed."""
    ledger.post_balances("acme", "file-1", {"cust": -12_345_600, "supp": 7_000_001})
    paid = ledger.record_payment(
        "acme", "supp", 5_000_000, reference="BANK/2024/77", account_kind="supplier"
    )
    assert (paid.recorded, paid.paid, paid.entry.amount) == (True, 5_000_000, -5_000_000)
    assert ledger.get_balance("acme", "supp") == (2_000_001, 0)
    ledger.record_payment("acme", "cust", 10_000_001, reference="psp ch_1", account_kind="customer")
    assert ledger.get_balance("acme", "cust") == (-2_345_599, 0)
    assert ledger.list_entries("acme", "supp")[-1] == Entry(
        "supp",
        BOOKED_AT,
        "payment",
        paid.entry.posting_id,
        -5_000_000,
        "payment made",
        "BANK/2024/77",
    )


def test_the_same_reference_twice_is_one_payment(aws, ledger_clock):
    first = ledger.record_payment(
        "acme", "cust", 10_000_000, reference="wire 77/A", account_kind="customer"
    )
    ledger_clock.now = BOOKED_AT + dt.timedelta(days=1)
    again = ledger.record_payment(
        "acme", "cust", 10_000_000, reference="  wire 77/A ", account_kind="customer"
    )
    assert (first.recorded, again.recorded) == (True, False)
    assert again.entry == first.entry  # the recorded payment, as booked the first time
    assert ledger.get_balance("acme", "cust") == (10_000_000, 0)
    assert len(ledger.list_entries("acme", "cust")) == 1
    assert len(ledger_items("PAYMENT#")) == 1


def test_a_reference_reused_for_another_account_or_amount_is_refused(aws, ledger_clock):
    ledger.record_payment("acme", "cust", 5_000_000, reference="wire 77", account_kind="customer")
    named = r"'wire 77' already names a payment of 5000000 micro-units to account 'cust', booked"
    with pytest.raises(ReferenceConflictError, match=named) as error:
        ledger.record_payment(
            "acme", "cust", 6_000_000, reference="wire 77", account_kind="customer"
        )
    assert error.value.recorded.entry.reference == "wire 77"
    with pytest.raises(ReferenceConflictError, match="to account 'cust'"):
        ledger.record_payment(
            "acme", "other", 5_000_000, reference="wire 77", account_kind="customer"
        )
    assert ledger.get_balance("acme", "cust") == (5_000_000, 0)
    assert ledger.get_balance("acme", "other") == (0, 0)
    assert len(ledger_items("ENTRY#")) == 1


def test_payments_need_a_reference_and_a_positive_amount(aws):
    for reference in ("", "   ", None):
        with pytest.raises(ValueError, match="reference is required"):
            ledger.record_payment("acme", "cust", 5, reference=reference, account_kind="customer")
    with pytest.raises(ValueError, match="printable"):
        ledger.record_payment("acme", "cust", 5, reference="a\nb", account_kind="customer")
    with pytest.raises(ValueError, match="printable"):
        ledger.record_payment("acme", "cust", 5, reference="x" * 257, account_kind="customer")
    with pytest.raises(ValueError, match="positive"):
        ledger.record_payment("acme", "cust", 0, reference="r", account_kind="customer")
    with pytest.raises(TypeError, match="micro-units"):
        ledger.record_payment("acme", "cust", 5.0, reference="r", account_kind="customer")
    assert ledger_items("") == []


def test_adjustments_credit_and_debit_exactly_once_per_reference(aws, ledger_clock):
    credit = ledger.record_adjustment(
        "acme", "cust", 2_500_001, reference="CASE-1", reason="goodwill"
    )
    debit = ledger.record_adjustment(
        "acme", "cust", -1_000_000, reference="CASE-2", reason="late fee"
    )
    again = ledger.record_adjustment(
        "acme", "cust", -1_000_000, reference="CASE-2", reason="late fee"
    )
    assert (credit.recorded, debit.recorded, again.recorded) == (True, True, False)
    assert ledger.get_balance("acme", "cust") == (1_500_001, 0)
    assert [(e.kind, e.amount, e.description, e.reference) for e in ledger.list_entries(
        "acme", "cust")] == [("adjustment", 2_500_001, "goodwill", "CASE-1"),
                             ("adjustment", -1_000_000, "late fee", "CASE-2")]  # fmt: skip
    with pytest.raises(ReferenceConflictError, match="late fee"):
        ledger.record_adjustment("acme", "cust", -1_000_000, reference="CASE-2", reason="other")
    # references name payments and adjustments separately
    paid = ledger.record_payment("acme", "cust", 1, reference="CASE-1", account_kind="customer")
    assert paid.recorded
    with pytest.raises(ValueError, match="zero"):
        ledger.record_adjustment("acme", "cust", 0, reference="CASE-3", reason="x")
    with pytest.raises(ValueError, match="reason"):
        ledger.record_adjustment("acme", "cust", 5, reference="CASE-3", reason=" ")
    assert ledger.get_balance("acme", "cust") == (1_500_002, 0)


def test_a_reused_reference_is_named_even_when_the_store_returns_no_old_item(aws, monkeypatch):
    """Some DynamoDB endpoints omit the old item on a failed condition: it is read instead."""
    dynamodb = store.client("dynamodb")
    real = dynamodb.transact_write_items

    def without_old_items(**kwargs):
        try:
            return real(**kwargs)
        except ClientError as error:
            for reason in error.response.get("CancellationReasons", []):
                reason.pop("Item", None)
            raise

    monkeypatch.setattr(dynamodb, "transact_write_items", without_old_items)
    ledger.record_payment("acme", "cust", 7, reference="r-1", account_kind="customer")
    again = ledger.record_payment("acme", "cust", 7, reference="r-1", account_kind="customer")
    assert (again.recorded, again.paid, again.entry.reference) == (False, 7, "r-1")
    with pytest.raises(ReferenceConflictError, match="of 7 micro-units"):
        ledger.record_payment("acme", "cust", 8, reference="r-1", account_kind="customer")
    assert ledger.get_balance("acme", "cust") == (7, 0)


def test_concurrent_recordings_of_one_reference_make_one_payment(aws, atomic_items):
    def pay(_):
        return ledger.record_payment(
            "acme", "supp", 1_000_000, reference="wire 9", account_kind="supplier"
        ).recorded

    with ThreadPoolExecutor(max_workers=8) as pool:
        recorded = list(pool.map(pay, range(16)))
    assert sorted(recorded) == [False] * 15 + [True]
    assert ledger.get_balance("acme", "supp") == (-1_000_000, 0)
    assert len(ledger.list_entries("acme", "supp")) == 1


def test_concurrent_files_for_one_account_sum_and_duplicates_apply_once(aws, atomic_items):
    # 40 files, each delivered twice, posted from 8 threads at once.
    postings = [(f"file-{i}", {"cust": -(1_000_003 + i), "supp": 10 + i}) for i in range(40)]
    work = postings + postings
    with ThreadPoolExecutor(max_workers=8) as pool:
        applied = list(pool.map(lambda p: ledger.post_balances("acme", *p), work))
    assert sum(applied) == 40
    assert ledger.get_balance("acme", "cust") == (-sum(1_000_003 + i for i in range(40)), 0)
    assert ledger.get_balance("acme", "supp") == (sum(10 + i for i in range(40)), 0)


def test_transaction_conflicts_are_retried_not_taken_for_applied(aws, monkeypatch):
    dynamodb = store.client("dynamodb")
    real = dynamodb.transact_write_items
    calls = []

    def conflict_once(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
                },
                "TransactWriteItems",
            )
        return real(**kwargs)

    monkeypatch.setattr(dynamodb, "transact_write_items", conflict_once)
    assert ledger.post_balances("acme", "file-1", {"cust": -42}) is True
    assert len(calls) == 2
    assert ledger.get_balance("acme", "cust") == (-42, 0)
