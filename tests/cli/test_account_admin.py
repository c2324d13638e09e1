"""`tollgate tenant|switch|account list|show|update`, `account suspend|resume|history`.

Issue 9 §6: none of these existed (only `account set`, for rounding, without any record of
who changed it), so every test here fails on that code. Each change is checked in the store
and in the audit trail the command leaves: field, old, new, who, when and why.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from functions.cli import main
from functions.store import accounts, ledger
from tests.cli.conftest import json_document

MOTO = "arn:aws:sts::123456789012:user/moto"  # moto's STS caller identity


def tollgate(*argv: str) -> int:
    return main(list(argv))


def fails(capsys, status: int, *argv: str) -> str:
    """Run a command that must fail with `status`; its one-line message."""
    capsys.readouterr()
    assert tollgate(*argv) == status
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def history(account: str) -> list[dict]:
    return [
        {"by": e.by, "reason": e.reason, "changes": [(c.field, c.old, c.new) for c in e.changes]}
        for e in accounts.list_audit("acme", "account", account)
    ]


@pytest.fixture
def acme(aws, capsys):
    tollgate("tenant", "create", "acme")
    tollgate("account", "create", "acme", "res", "--kind", "reseller")
    tollgate("account", "create", "acme", "cust", "--kind", "customer", "--parent", "res")
    tollgate("account", "create", "acme", "sup", "--kind", "supplier")
    tollgate("switch", "create", "acme", "sbc-1", "--format", "generic")
    capsys.readouterr()


# --- tenants -----------------------------------------------------------------------------


def test_tenants_are_listed_shown_and_updated_with_an_audit_entry(aws, capsys):
    tollgate("tenant", "create", "globex", "--currency", "EUR")
    tollgate("tenant", "create", "acme")
    closed = {"authz_fallback": "closed", "authz_fallback_seconds": 600}  # the defaults
    assert json_document(capsys, "tenant", "list") == [
        {"tenant": "acme", "currency": "USD", "timezone": "UTC", **closed},
        {"tenant": "globex", "currency": "EUR", "timezone": "UTC", **closed},
    ]
    updated = json_document(
        capsys, "tenant", "update", "acme", "--timezone", "Europe/London",
        "--reason", "head office moved", "--by", "alice",
    )  # fmt: skip
    audit = updated.pop("audit")
    assert updated == {
        "tenant": "acme", "currency": "USD", "timezone": "Europe/London", **closed
    }  # fmt: skip
    assert (audit["by"], audit["principal"], audit["reason"]) == (
        "alice",
        MOTO,
        "head office moved",
    )
    assert audit["changes"] == [{"field": "timezone", "old": "UTC", "new": "Europe/London"}]
    assert accounts.get_tenant("acme").timezone == "Europe/London"
    # The same value again changes nothing and records nothing.
    again = json_document(capsys, "tenant", "update", "acme", "--timezone", "Europe/London")
    assert again["audit"] is None
    shown = json_document(capsys, "tenant", "show", "acme")
    assert shown["history"] == [audit]
    assert (shown["switches"], shown["accounts"]) == (
        [],
        {"customer": 0, "supplier": 0, "reseller": 0},
    )
    assert accounts.get_tenant("globex").timezone == "UTC"  # another tenant: untouched
    assert "unknown time zone" in fails(capsys, 2, "tenant", "update", "acme", "--timezone", "X/Y")
    assert "nothing to change" in fails(capsys, 2, "tenant", "update", "acme")
    assert "unknown tenant 'nope'" in fails(capsys, 2, "tenant", "show", "nope")


# --- switches ----------------------------------------------------------------------------


def test_switches_are_listed_and_updated_and_the_next_files_read_by_the_new_settings(acme, capsys):
    tollgate("switch", "create", "acme", "vos", "--format", "vos3000")
    listed = json_document(capsys, "switch", "list", "acme")
    assert [(s["switch"], s["format"], s["timezone"]) for s in listed] == [
        ("sbc-1", "generic", "UTC"),
        ("vos", "vos3000", "UTC"),
    ]
    updated = json_document(
        capsys, "switch", "update", "acme", "sbc-1", "--timezone", "Asia/Tokyo",
        "--default-supplier", "sup", "--customer-field", "accountcode", "--by", "bob",
    )  # fmt: skip
    assert updated["audit"]["changes"] == [
        {"field": "timezone", "old": "UTC", "new": "Asia/Tokyo"},
        {"field": "customer_field", "old": "customer", "new": "accountcode"},
        {"field": "default_supplier", "old": None, "new": "sup"},
    ]
    plan = accounts.get_trunk_plan("acme", "sbc-1")  # what rating reads
    assert (plan.customer_field, plan.default_supplier) == ("accountcode", "sup")
    assert accounts.get_switch("acme", "sbc-1").timezone == "Asia/Tokyo"
    tollgate("switch", "numbering", "acme", "sbc-1", "--strip", "9999", "--reason", "tech prefix")
    shown = json_document(capsys, "switch", "show", "acme", "sbc-1")
    assert [e["by"] for e in shown["history"]] == ["bob", MOTO]
    numbering = shown["history"][1]["changes"]
    assert [(c["field"], c["new"]["strip"]) for c in numbering] == [("numbering", ["9999"])]
    cleared = json_document(capsys, "switch", "update", "acme", "sbc-1", "--no-default-supplier")
    assert cleared["default_supplier"] is None
    assert accounts.get_switch("acme", "vos").timezone == "UTC"  # the other switch: untouched


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--default-supplier", "cust"), "default supplier 'cust' is a customer"),
        (("--default-supplier", "ghost"), "unknown account 'ghost'"),
        (("--format", "cisco"), "unknown format 'cisco'"),
        (("--template", "uuid,billsec"), "template: only a freeswitch-csv switch"),
        (("--customer-field", " "), "customer field must not be empty"),
        ((), "nothing to change"),
    ],
)
def test_a_switch_update_refuses_bad_settings_and_writes_nothing(acme, capsys, flags, message):
    assert message in fails(capsys, 2, "switch", "update", "acme", "sbc-1", *flags)
    assert accounts.list_audit("acme", "switch", "sbc-1") == []
    assert accounts.get_switch("acme", "sbc-1").default_supplier is None


# --- accounts ----------------------------------------------------------------------------


def test_accounts_are_listed_and_filtered(acme, capsys):
    listed = json_document(capsys, "account", "list", "acme")
    assert [(a["account"], a["kind"], a["parent"]) for a in listed] == [
        ("cust", "customer", "res"),
        ("res", "reseller", None),
        ("sup", "supplier", None),
    ]
    under = json_document(capsys, "account", "list", "acme", "--parent", "res")
    assert [a["account"] for a in under] == ["cust"]
    assert [
        a["account"] for a in json_document(capsys, "account", "list", "acme", "--kind", "supplier")
    ] == ["sup"]
    tollgate("account", "suspend", "acme", "sup", "--reason", "fraud")
    suspended = json_document(capsys, "account", "list", "acme", "--status", "suspended")
    assert [a["account"] for a in suspended] == ["sup"]
    assert "unknown tenant 'nope'" in fails(capsys, 2, "account", "list", "nope")


def test_an_update_changes_the_contract_exactly_and_records_each_field(acme, capsys):
    updated = json_document(
        capsys, "account", "update", "acme", "cust", "--credit-limit", "250.5", "--prepaid",
        "--rounding", "up", "--decimals", "2", "--reason", "contract v2", "--by", "alice",
    )  # fmt: skip
    audit = updated.pop("audit")
    assert (updated["billing"], updated["credit_limit"], updated["rounding"]) == (
        "prepaid",
        "250.500000",
        "up",
    )
    assert audit["changes"] == [
        {"field": "billing", "old": "postpaid", "new": "prepaid"},
        {"field": "credit_limit", "old": "0.000000", "new": "250.500000"},
        {"field": "rounding", "old": "half_up", "new": "up"},
        {"field": "decimals", "old": 6, "new": 2},
    ]
    stored = accounts.get_account("acme", "cust")
    assert (stored.credit_limit_micro, stored.prepaid) == (250_500_000, True)
    assert (stored.rounding, stored.rounding_decimals) == ("up", 2)
    [entry] = accounts.list_audit("acme", "account", "cust")
    assert entry.changes[1] == accounts.Change("credit_limit_micro", 0, 250_500_000)
    shown = json_document(capsys, "account", "show", "acme", "cust")
    assert shown["history"] == [audit]
    assert (shown["balance"], shown["credit_limit"]) == ("0.000000", "250.500000")
    # `account set` (issue 8) is another name for update.
    assert json_document(capsys, "account", "set", "acme", "cust", "--rounding", "down")["audit"]
    assert accounts.get_account("acme", "cust").rounding == "down"
    moved = json_document(capsys, "account", "update", "acme", "cust", "--no-parent")
    assert moved["parent"] is None and accounts.get_account("acme", "cust").parent is None
    assert "nothing to change" in fails(capsys, 2, "account", "update", "acme", "cust")
    assert "more than 6 decimal places" in fails(
        capsys, 2, "account", "update", "acme", "cust", "--credit-limit", "1.0000001"
    )
    assert len(accounts.list_audit("acme", "account", "cust")) == 3


def test_suspend_and_resume_record_who_when_and_why(acme, capsys, monkeypatch):
    monkeypatch.setenv("TOLLGATE_OPERATOR", "carol")
    suspended = json_document(
        capsys, "account", "suspend", "acme", "cust", "--reason", "invoice 1043 unpaid"
    )
    audit = suspended["audit"]
    assert (suspended["status"], suspended["status_reason"]) == ("suspended", "invoice 1043 unpaid")
    assert (audit["by"], audit["principal"]) == ("carol", MOTO)
    assert audit["changes"] == [{"field": "status", "old": "active", "new": "suspended"}]
    # Where real-time authorization and fraud rules will read it.
    stored = accounts.get_account("acme", "cust")
    assert (stored.status, stored.status_reason) == ("suspended", "invoice 1043 unpaid")
    assert stored.status_since == datetime.fromisoformat(audit["at"])
    # Suspending it again changes nothing, records nothing, and is not an error.
    capsys.readouterr()
    assert tollgate("account", "suspend", "acme", "cust", "--reason", "still unpaid") == 0
    assert "already suspended; nothing changed" in capsys.readouterr().out
    monkeypatch.delenv("TOLLGATE_OPERATOR")
    json_document(capsys, "account", "resume", "acme", "cust", "--reason", "paid")
    entries = json_document(capsys, "account", "history", "acme", "cust")
    assert [(e["by"], e["reason"], e["changes"]) for e in entries] == [
        ("carol", "invoice 1043 unpaid", audit["changes"]),
        (MOTO, "paid", [{"field": "status", "old": "suspended", "new": "active"}]),
    ]
    assert entries[0]["at"] < entries[1]["at"]
    assert accounts.get_account("acme", "cust").status == "active"
    capsys.readouterr()
    tollgate("account", "history", "acme", "cust")
    text = capsys.readouterr().out
    assert f"carol ({MOTO}): status active -> suspended (invoice 1043 unpaid)" in text
    with pytest.raises(SystemExit) as usage:
        tollgate("account", "suspend", "acme", "cust")
    assert usage.value.code == 2
    assert "--reason must not be empty" in fails(
        capsys, 2, "account", "suspend", "acme", "cust", "--reason", " "
    )
    assert len(accounts.list_audit("acme", "account", "cust")) == 2


def test_a_parent_that_would_make_a_cycle_is_refused(acme, capsys):
    tollgate("account", "create", "acme", "r2", "--kind", "reseller", "--parent", "res")
    tollgate("account", "create", "acme", "r3", "--kind", "reseller", "--parent", "r2")
    message = fails(capsys, 1, "account", "update", "acme", "res", "--parent", "r3")
    assert "parent 'r3' would make a cycle: res -> r3 -> r2 -> res" in message
    assert "cannot be its own parent" in fails(
        capsys, 2, "account", "update", "acme", "res", "--parent", "res"
    )
    assert "parent 'cust' is a customer, not a reseller" in fails(
        capsys, 2, "account", "update", "acme", "r3", "--parent", "cust"
    )
    assert "unknown parent account 'ghost'" in fails(
        capsys, 2, "account", "update", "acme", "r3", "--parent", "ghost"
    )
    assert accounts.get_account("acme", "res").parent is None
    assert history("res") == []
    # Moving r3 up the chain is fine: it still ends at the carrier.
    json_document(capsys, "account", "update", "acme", "r3", "--parent", "res")
    assert history("r3") == [{"by": MOTO, "reason": None, "changes": [("parent", "r2", "res")]}]


def test_currency_and_kind_cannot_change_once_decks_or_money_exist(acme, capsys, tmp_path):
    json_document(capsys, "account", "update", "acme", "cust", "--currency", "eur")
    assert accounts.get_account("acme", "cust").currency == "EUR"  # nothing priced in USD yet
    deck = tmp_path / "deck.csv"
    deck.write_text("prefix,rate\n44,0.01\n")
    tollgate("deck", "upload", "acme", "cust", str(deck))
    assert "has rate decks in EUR: its currency cannot change" in fails(
        capsys, 1, "account", "update", "acme", "cust", "--currency", "USD"
    )
    tollgate("account", "create", "acme", "paid", "--kind", "customer")
    ledger.record_payment("acme", "paid", 1_000_000, reference="BANK-1", account_kind="customer")
    assert "has a balance history" in fails(
        capsys, 1, "account", "update", "acme", "paid", "--currency", "EUR"
    )
    assert "its kind cannot change" in fails(
        capsys, 1, "account", "update", "acme", "paid", "--kind", "supplier"
    )
    stored = accounts.get_account("acme", "paid")
    assert (stored.currency, stored.kind) == ("USD", "customer")
    assert accounts.get_account("acme", "cust").currency == "EUR"
    assert history("paid") == []
    # in order: the currency, then the deck's version (deck uploads are audited too)
    assert [e["changes"] for e in history("cust")] == [
        [("currency", "USD", "EUR")],
        [("deck_version", None, 1)],
    ]
    # A contract change is still fine for an account with money.
    json_document(capsys, "account", "update", "acme", "paid", "--credit-limit", "10")


def test_kind_changes_that_would_break_the_chain_or_a_switch_are_refused(acme, capsys):
    assert "reseller 'res' has accounts under it (cust)" in fails(
        capsys, 1, "account", "update", "acme", "res", "--kind", "customer"
    )
    tollgate("switch", "map", "acme", "sbc-1", "--egress", "GW-7", "sup")
    assert "is mapped on switch 'sbc-1' (egress GW-7)" in fails(
        capsys, 1, "account", "update", "acme", "sup", "--kind", "customer"
    )
    tollgate("switch", "unmap", "acme", "sbc-1", "--egress", "GW-7")
    tollgate("switch", "update", "acme", "sbc-1", "--default-supplier", "sup")
    assert "is the default supplier of switch 'sbc-1'" in fails(
        capsys, 1, "account", "update", "acme", "sup", "--kind", "customer"
    )
    assert [a.kind for a in map(lambda n: accounts.get_account("acme", n), ("res", "sup"))] == [
        "reseller",
        "supplier",
    ]
    # A customer without money, trunks or accounts under it may become a reseller.
    json_document(capsys, "account", "update", "acme", "cust", "--kind", "reseller")
    assert accounts.get_account("acme", "cust").kind == "reseller"
