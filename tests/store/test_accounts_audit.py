"""Settings changes and their audit trail in the accounts table, against moto.

Issue 9 §6: before it, `set_rounding` and `set_account_status` overwrote an account's item
with no record of who changed it, and nothing stopped a change that breaks history (a
currency change under a deck or a balance) or the reseller chain (a cycle). Every test here
fails on that code. A change and its audit entry are one transaction, conditioned on what the
change was decided on: crashes, retries and concurrent operators leave one true history.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import botocore.client
import pytest

from functions import store
from functions.shared.settings import settings
from functions.store import ConflictError, accounts, ledger

ALICE = accounts.Actor(by="alice", principal="arn:aws:iam::123456789012:user/alice")


@pytest.fixture
def acme(aws):
    accounts.create_tenant("acme")
    accounts.create_account("acme", "res", kind="reseller")
    accounts.create_account("acme", "cust", kind="customer", parent="res")


def test_an_entry_is_an_item_under_its_tenant_that_no_other_tenant_reads(acme):
    accounts.create_tenant("globex")
    accounts.create_account("globex", "cust", kind="customer")
    account, entry = accounts.update_account(
        "acme", "cust", {"credit_limit_micro": 5_000_000}, actor=ALICE, reason="review"
    )
    assert account.credit_limit_micro == 5_000_000
    assert accounts.list_audit("acme", "account", "cust") == [entry]
    assert accounts.list_audit("globex", "account", "cust") == []
    raw = store.client("dynamodb").scan(TableName=settings().accounts_table)["Items"]
    audit = [i for i in raw if i["sk"]["S"].startswith("AUDIT#")]
    assert [(i["pk"]["S"], i["sk"]["S"].split("#")[:3]) for i in audit] == [
        ("acme", ["AUDIT", "ACCOUNT", "cust"])
    ]
    assert (entry.by, entry.principal, entry.reason) == (ALICE.by, ALICE.principal, "review")
    assert entry.changes == (accounts.Change("credit_limit_micro", 0, 5_000_000),)


def test_without_a_name_the_caller_is_its_aws_identity(acme):
    _, entry = accounts.update_account("acme", "cust", {"prepaid": True})
    assert entry.by == entry.principal == "arn:aws:sts::123456789012:user/moto"
    assert accounts.caller("dave") == accounts.Actor(by="dave", principal=entry.principal)
    with pytest.raises(ValueError, match="invalid by"):
        accounts.update_account("acme", "cust", {"prepaid": False}, actor=accounts.caller(" "))


def test_an_unknown_field_or_value_is_refused_before_anything_is_written(acme):
    with pytest.raises(ValueError, match="cannot update account field"):
        accounts.update_account("acme", "cust", {"deck_version": 3}, actor=ALICE)
    with pytest.raises(ValueError, match="invalid status"):
        accounts.update_account("acme", "cust", {"status": "closed"}, actor=ALICE)
    with pytest.raises(ValueError, match="credit limit must not be negative"):
        accounts.update_account("acme", "cust", {"credit_limit_micro": -1}, actor=ALICE)
    with pytest.raises(ValueError, match="invalid currency"):
        accounts.update_account("acme", "cust", {"currency": "usd"}, actor=ALICE)
    assert accounts.list_audit("acme", "account", "cust") == []


# --- crashes -------------------------------------------------------------------------------


class Crash(Exception):
    """The process dying between two AWS calls."""


def crash_at(monkeypatch, at_call: int, *, after: bool) -> list[str]:
    """Make AWS call number `at_call` (boto3's and PynamoDB's alike) crash, before or after it
    ran; returns the operations called."""
    original = botocore.client.BaseClient._make_api_call
    count, calls = itertools.count(1), []

    def call(self, operation, params):
        number = next(count)
        calls.append(operation)
        if number == at_call and not after:
            raise Crash(f"before {operation}")
        result = original(self, operation, params)
        if number == at_call and after:
            raise Crash(f"after {operation}")
        return result

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", call)
    return calls


CHANGE = {"parent": None, "kind": "reseller", "credit_limit_micro": 7_000_000}


def test_an_update_makes_the_aws_calls_the_crash_test_covers(acme, monkeypatch):
    with monkeypatch.context() as patch:
        calls = crash_at(patch, 0, after=False)
        accounts.update_account("acme", "cust", CHANGE, reason="upgrade")
    # caller, the account, its ledger balance, trunks, switches, then one transaction
    assert calls == [
        "GetCallerIdentity",
        "GetItem",
        "GetItem",
        "Query",
        "Query",
        "TransactWriteItems",
    ]


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("at_call", range(1, 7))
def test_a_crash_at_any_call_then_a_retry_leaves_one_change_and_one_entry(
    acme, monkeypatch, at_call, after
):
    with monkeypatch.context() as patch:
        crash_at(patch, at_call, after=after)
        with pytest.raises(Crash):
            accounts.update_account("acme", "cust", CHANGE, reason="upgrade")
    half = accounts.get_account("acme", "cust")
    entries = accounts.list_audit("acme", "account", "cust")
    # Never a change without its entry, nor an entry without its change.
    assert (half.kind == "reseller") == (len(entries) == 1)
    accounts.update_account("acme", "cust", CHANGE, reason="upgrade")  # the operator retries
    final = accounts.get_account("acme", "cust")
    assert (final.parent, final.kind, final.credit_limit_micro) == (None, "reseller", 7_000_000)
    [entry] = accounts.list_audit("acme", "account", "cust")
    assert entry.changes == (
        accounts.Change("kind", "customer", "reseller"),
        accounts.Change("parent", "res", None),
        accounts.Change("credit_limit_micro", 0, 7_000_000),
    )


# --- concurrent operators ---------------------------------------------------------------------


def test_concurrent_changes_leave_a_history_whose_entries_chain(acme, atomic_items):
    """Each entry's old value is the previous entry's new one: none was decided on a value
    another operator had already replaced."""
    limits = [(n + 1) * 1_000_000 for n in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(
            pool.map(
                lambda limit: accounts.update_account(
                    "acme", "cust", {"credit_limit_micro": limit}, actor=ALICE
                ),
                limits,
            )
        )
    entries = accounts.list_audit("acme", "account", "cust")
    changes = [e.changes for e in sorted(entries, key=lambda e: e.at)]
    assert all(len(c) == 1 for c in changes)
    assert len(changes) == len(limits)
    assert [c[0].old for c in changes] == [0] + [c[0].new for c in changes[:-1]]
    assert sorted(c[0].new for c in changes) == limits
    assert accounts.get_account("acme", "cust").credit_limit_micro == changes[-1][0].new


def both_decide_first(monkeypatch, parties: int = 2) -> None:
    """Hold each change until every party has decided, so all decide on the same state."""
    barrier = threading.Barrier(parties, timeout=30)
    original = accounts._commit
    waited = threading.local()

    def commit(*args, **kwargs):
        if not getattr(waited, "done", False):
            waited.done = True
            barrier.wait()
        return original(*args, **kwargs)

    monkeypatch.setattr(accounts, "_commit", commit)


def test_two_parent_changes_racing_into_a_cycle_leave_one_and_refuse_the_other(
    aws, atomic_items, monkeypatch
):
    """Each alone is fine (a -> b, b -> a); together they would make a cycle."""
    accounts.create_tenant("acme")
    accounts.create_account("acme", "a", kind="reseller")
    accounts.create_account("acme", "b", kind="reseller")
    both_decide_first(monkeypatch)

    def move(child: str, parent: str) -> str:
        try:
            accounts.update_account("acme", child, {"parent": parent}, actor=ALICE)
        except ConflictError as error:
            return str(error)
        return "moved"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(lambda pair: move(*pair), (("a", "b"), ("b", "a"))))
    assert outcomes[0] == "moved"
    assert "would make a cycle" in outcomes[1]
    parents = {n: accounts.get_account("acme", n).parent for n in ("a", "b")}
    assert parents in ({"a": "b", "b": None}, {"a": None, "b": "a"})
    changed = [n for n in ("a", "b") if accounts.list_audit("acme", "account", n)]
    assert changed == [n for n, p in parents.items() if p is not None]


def test_money_arriving_while_a_currency_change_commits_refuses_the_change(acme, monkeypatch):
    """The balance is checked again inside the change's transaction, not only before it."""
    original = accounts._commit

    def commit(*args, **kwargs):
        monkeypatch.setattr(accounts, "_commit", original)
        ledger.record_payment("acme", "cust", 100, reference="BANK-9", account_kind="customer")
        return original(*args, **kwargs)

    monkeypatch.setattr(accounts, "_commit", commit)
    with pytest.raises(ConflictError, match="has a balance history"):
        accounts.update_account("acme", "cust", {"currency": "EUR"}, actor=ALICE)
    assert accounts.get_account("acme", "cust").currency == "USD"
    assert accounts.list_audit("acme", "account", "cust") == []


def test_a_deck_upload_and_a_currency_change_cannot_both_win(acme):
    """An upload that has reserved its number refuses the change; a change that lands
    between an upload's check and its commit refuses the deck."""
    accounts.create_account("acme", "late", kind="customer")
    version = accounts.reserve_deck_version("acme", "late")
    with pytest.raises(ConflictError, match="has rate decks in USD"):
        accounts.update_account("acme", "late", {"currency": "EUR"}, actor=ALICE)
    accounts.update_account("acme", "cust", {"currency": "EUR"}, actor=ALICE)
    record = accounts.DeckVersion(
        tenant="acme",
        account="cust",
        version=1,
        mode="full",
        key="decks/tenant=acme/account=cust/v1.parquet",
        upload_key=None,
        currency="USD",  # what the upload checked against, before the change
        effective=None,
        rows=1,
        skipped=0,
        timeline_rows=1,
        effective_min=None,
        effective_max=None,
        source="deck.csv",
        sha256="",
        timeline_sha256="t",
        base=None,
    )
    with pytest.raises(ConflictError, match="is now in EUR, not USD"):
        accounts.commit_deck_version(record)
    assert accounts.get_account("acme", "cust").deck_version is None
    assert accounts.commit_deck_version(dataclasses.replace(record, currency="EUR")).version == 1
    assert version == 1


def test_a_tenant_and_a_switch_change_are_audited_like_an_account(acme):
    accounts.create_switch("acme", "sw", format="generic")
    tenant, entry = accounts.update_tenant("acme", {"currency": "EUR"}, actor=ALICE)
    assert tenant.currency == "EUR" and accounts.get_tenant("acme").currency == "EUR"
    assert accounts.list_audit("acme", "tenant", "acme") == [entry]
    assert accounts.get_account("acme", "cust").currency == "USD"  # existing accounts keep it
    switch, entry = accounts.update_switch("acme", "sw", {"timezone": "Asia/Tokyo"}, actor=ALICE)
    assert accounts.get_switch("acme", "sw") == switch
    assert accounts.list_audit("acme", "switch", "sw") == [entry]
    assert accounts.update_switch("acme", "sw", {"timezone": "Asia/Tokyo"}, actor=ALICE)[1] is None
    assert len(accounts.list_audit("acme", "switch", "sw")) == 1
