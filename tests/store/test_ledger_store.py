"""Balances, postings and payments against moto: exact money, exactly once, concurrent ADDs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from botocore.exceptions import ClientError

from functions import store
from functions.shared.settings import settings
from functions.store import ConflictError, ledger


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


def test_posting_of_250_accounts_is_three_chunks_applied_once(aws):
    deltas = {f"acct-{i:03d}": -(i + 1) for i in range(250)}
    assert ledger.post_balances("acme", "file-1", deltas)
    assert not ledger.post_balances("acme", "file-1", deltas)
    assert all(ledger.get_balance("acme", a)[0] == d for a, d in deltas.items())
    dynamodb = store.client("dynamodb")
    markers = [
        dynamodb.get_item(
            TableName=settings().ledger_table,
            Key={"pk": {"S": "acme"}, "sk": {"S": f"POST#file-1#{chunk}"}},
        ).get("Item")
        for chunk in range(4)
    ]
    assert [int(m["accounts"]["N"]) for m in markers[:3]] == [99, 99, 52]
    assert markers[3] is None
    assert ledger.posting_applied("acme", "file-1")


def test_retry_after_crash_between_chunks_completes_exactly(aws, monkeypatch):
    deltas = {f"acct-{i:03d}": 1_000 + i for i in range(150)}  # chunks 0 (99) and 1 (51)
    original = ledger._post_chunk

    def crash_on_second_chunk(tenant, posting_id, index, count, chunk):
        if index == 1:
            raise RuntimeError("Lambda timed out")
        return original(tenant, posting_id, index, count, chunk)

    monkeypatch.setattr(ledger, "_post_chunk", crash_on_second_chunk)
    with pytest.raises(RuntimeError):
        ledger.post_balances("acme", "file-1", deltas)
    assert ledger.get_balance("acme", "acct-000") == (1_000, 0)  # chunk 0 landed
    assert ledger.get_balance("acme", "acct-149") == (0, 0)  # chunk 1 did not
    assert not ledger.posting_applied("acme", "file-1")

    monkeypatch.setattr(ledger, "_post_chunk", original)
    assert ledger.post_balances("acme", "file-1", deltas) is True  # chunk 1 applied now
    assert ledger.post_balances("acme", "file-1", deltas) is False
    assert all(ledger.get_balance("acme", a)[0] == d for a, d in deltas.items())
    assert ledger.posting_applied("acme", "file-1")


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
    ledger.record_payment("globex", "cust", 50, "pay-1")
    assert ledger.get_balance("acme", "cust") == (-100, 0)
    assert ledger.get_balance("globex", "cust") == (43, 0)


def test_ids_that_could_forge_keys_are_refused(aws):
    with pytest.raises(ValueError, match="tenant"):
        ledger.get_balance("acme#BALANCE", "cust")
    with pytest.raises(ValueError, match="account"):
        ledger.post_balances("acme", "file-1", {"cust#x": 1})
    with pytest.raises(ValueError, match="posting id"):
        ledger.post_balances("acme", "file#1", {"cust": 1})


def test_payments_are_idempotent_by_id_and_balance_is_payments_minus_charges(aws):
    ledger.post_balances("acme", "file-1", {"cust": -12_345_600})
    assert ledger.record_payment("acme", "cust", 10_000_000, "bank-77", reference="wire 77")
    assert not ledger.record_payment("acme", "cust", 10_000_000, "bank-77")
    assert ledger.record_payment("acme", "cust", 1, "bank-78")
    assert ledger.get_balance("acme", "cust") == (-2_345_599, 0)


def test_payment_id_reused_with_another_amount_is_a_conflict(aws):
    ledger.record_payment("acme", "cust", 5_000_000, "bank-77")
    with pytest.raises(ConflictError, match="another amount"):
        ledger.record_payment("acme", "cust", 6_000_000, "bank-77")
    with pytest.raises(ValueError, match="positive"):
        ledger.record_payment("acme", "cust", 0, "bank-79")
    assert ledger.get_balance("acme", "cust") == (5_000_000, 0)


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
