"""`tollgate tenant|switch|account|cdr|file`, in-process (balances, payments: test_ledger_cli.py;
decks: test_deck_cli.py)."""

from __future__ import annotations

import json

import pytest

from functions import store
from functions.cli import CliError
from functions.shared.settings import settings
from functions.store import accounts, files
from tests.cli.conftest import last_json, tollgate


@pytest.fixture
def acme(aws):
    tollgate("tenant", "create", "acme", "--currency", "USD", "--timezone", "Europe/London")
    tollgate("switch", "create", "acme", "sbc-1", "--format", "freeswitch-csv")
    tollgate("account", "create", "acme", "cust", "--kind", "customer", "--credit-limit", "100")


def test_tenant_switch_and_account_create_print_what_was_stored(aws, capsys):
    assert tollgate("tenant", "create", "acme", "--currency", "eur", "--json") == 0
    assert last_json(capsys) == {"tenant": "acme", "currency": "EUR", "timezone": "UTC"}
    tollgate(
        "switch", "create", "acme", "vos", "--format", "vos3000", "--timezone", "Asia/Shanghai",
        "--customer-field", "callerip", "--supplier-field", "calleeip", "--json",
    )  # fmt: skip
    assert last_json(capsys) == {
        "tenant": "acme",
        "switch": "vos",
        "format": "vos3000",
        "timezone": "Asia/Shanghai",
        "customer_field": "callerip",
        "supplier_field": "calleeip",
        "default_supplier": None,
    }
    tollgate("account", "create", "acme", "res", "--kind", "reseller")
    tollgate(
        "account", "create", "acme", "cust", "--kind", "customer", "--parent", "res",
        "--prepaid", "--credit-limit", "250.5", "--json",
    )  # fmt: skip
    assert last_json(capsys) == {
        "tenant": "acme",
        "account": "cust",
        "kind": "customer",
        "parent": "res",
        "billing": "prepaid",
        "credit_limit": "250.500000",
        "currency": "EUR",
        "status": "active",
        "deck_version": None,
        "rounding": "half_up",
        "decimals": 6,
        "status_reason": None,
        "status_since": None,
    }
    assert accounts.get_account("acme", "cust").credit_limit_micro == 250_500_000
    tollgate("account", "create", "acme", "sup", "--kind", "supplier")
    assert "created supplier acme/sup (postpaid, credit limit 0.000000 EUR)" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("switch", "create", "nope", "sw", "--format", "generic"), "unknown tenant 'nope'"),
        (("switch", "create", "acme", "sw", "--format", "cisco"), "unknown format 'cisco'"),
        (("account", "create", "nope", "a", "--kind", "customer"), "unknown tenant 'nope'"),
        (("account", "create", "acme", "a", "--kind", "customer", "--parent", "cust"),
         "parent 'cust' is a customer, not a reseller"),
        (("account", "create", "acme", "a", "--kind", "customer", "--parent", "ghost"),
         "unknown parent account 'ghost'"),
        (("account", "create", "acme", "a", "--kind", "customer", "--credit-limit", "1.0000001"),
         "more than 6 decimal places"),
        (("account", "create", "acme", "a", "--kind", "customer", "--credit-limit", "-5"),
         "must not be negative"),
        (("account", "create", "acme", "cust", "--kind", "customer"), "already exists"),
        (("tenant", "create", "acme"), "tenant 'acme' already exists"),
        (("tenant", "create", "x", "--timezone", "Mars/Olympus"), "unknown time zone"),
        (("tenant", "create", "x", "--currency", "dollars"), "invalid currency"),
        (("tenant", "create", "a#b"), "invalid tenant id"),
        (("balance", "acme", "ghost"), "unknown account 'ghost'"),
        (("balance", "nope", "cust"), "unknown account 'cust' in tenant 'nope'"),
        (("file", "status", "nope"), "unknown tenant 'nope'"),
        (("file", "status", "acme", "f404"), "no file 'f404' in tenant acme"),
        (("cdr", "drop", "acme", "ghost", "x.csv"), "unknown switch 'ghost'"),
    ],
)  # fmt: skip
def test_errors_name_what_is_wrong(acme, argv, message):
    with pytest.raises(CliError, match=message):
        tollgate(*argv)


def test_cli_errors_exit_non_zero_through_main(acme, capsys):
    import functions.cli as cli

    assert cli.main(["balance", "acme", "ghost"]) == 2
    assert "tollgate: error: unknown account 'ghost'" in capsys.readouterr().err


def test_cdr_drop_puts_the_file_under_incoming(acme, tmp_path, capsys):
    path = tmp_path / "cdr-0001.csv"
    path.write_bytes(b"call_id,callee\n1,4420\n")
    assert tollgate("cdr", "drop", "acme", "sbc-1", str(path), "--json") == 0
    assert last_json(capsys) == {
        "tenant": "acme",
        "switch": "sbc-1",
        "file": "cdr-0001.csv",
        "bucket": settings().cdr_bucket,
        "key": "incoming/acme/sbc-1/cdr-0001.csv",
        "bytes": 22,
    }
    got = store.client("s3").get_object(
        Bucket=settings().cdr_bucket, Key="incoming/acme/sbc-1/cdr-0001.csv"
    )
    assert got["Body"].read() == path.read_bytes()
    with pytest.raises(CliError, match="cannot read"):
        tollgate("cdr", "drop", "acme", "sbc-1", str(tmp_path / "missing.csv"))


def test_file_status_json_prints_one_list_of_files(acme, capsys):
    """`file status --json` printed JSON Lines (one object per file), not one document."""
    files.put_file(
        "acme",
        "f1",
        "ingested",
        {"rows": 10, "quarantined": 1},
        {"name": "a.csv", "switch": "sbc-1"},
    )
    files.put_file("acme", "f2", "ingested", {"rows": 4}, {"name": "b.csv", "switch": "sbc-1"})
    files.set_file_status(
        "acme", "f2", "done", {"rated": 2, "unrated": 1, "duplicates": 1, "unknown_account": 1}
    )
    files.put_file("globex", "f3", "ingested", {"rows": 1})  # another tenant: not listed
    capsys.readouterr()
    assert tollgate("file", "status", "acme", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [
        {"file": "a.csv", "switch": "sbc-1", "file_id": "f1", "status": "ingested", "rows": 10,
         "rated": 0, "unrated": 0, "quarantined": 1, "duplicates": 0, "unknown_account": 0},
        {"file": "b.csv", "switch": "sbc-1", "file_id": "f2", "status": "done", "rows": 4,
         "rated": 2, "unrated": 1, "quarantined": 0, "duplicates": 1, "unknown_account": 1},
    ]  # fmt: skip
    tollgate("file", "status", "acme", "b.csv", "--json")  # by the name it was dropped under
    [by_name] = json.loads(capsys.readouterr().out)
    assert by_name["status"] == "done"
    tollgate("file", "status", "acme", "f2", "--json")  # or by its id
    assert [f["file"] for f in json.loads(capsys.readouterr().out)] == ["b.csv"]
    tollgate("file", "status", "acme")
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["file", "status", "rows", "rated", "unrated", "quarantined",
                              "duplicates", "unknown_account"]  # fmt: skip
    assert out[2].split() == ["b.csv", "done", "4", "2", "1", "0", "1", "1"]


def test_an_accounts_rounding_rule_is_stored_and_can_be_changed(aws, capsys):
    tollgate("tenant", "create", "acme")
    tollgate(
        "account", "create", "acme", "cust", "--kind", "customer",
        "--rounding", "up", "--decimals", "4", "--json",
    )  # fmt: skip
    assert last_json(capsys)["rounding"] == "up"
    stored = accounts.get_account("acme", "cust")
    assert (stored.rounding, stored.rounding_decimals) == ("up", 4)
    tollgate("account", "set", "acme", "cust", "--rounding", "down", "--json")
    assert last_json(capsys)["rounding"] == "down"
    stored = accounts.get_account("acme", "cust")
    assert (stored.rounding, stored.rounding_decimals) == ("down", 4)
    with pytest.raises(CliError, match=r"use 0\.\.6"):
        tollgate("account", "set", "acme", "cust", "--decimals", "8")
