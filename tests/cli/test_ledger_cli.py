"""`tollgate balance|payment record|adjust|statement`, in-process against moto."""

from __future__ import annotations

import datetime as dt

import pytest

import functions.cli as cli
from functions.cli import CliError
from functions.store import ledger
from tests.cli.conftest import last_json, tollgate
from tests.conftest import BOOKED_AT


@pytest.fixture
def acme(aws, ledger_clock):
    tollgate("tenant", "create", "acme", "--currency", "USD", "--timezone", "Asia/Kolkata")
    tollgate("account", "create", "acme", "cust", "--kind", "customer", "--credit-limit", "100")
    tollgate("account", "create", "acme", "res", "--kind", "reseller")
    tollgate("account", "create", "acme", "sup", "--kind", "supplier")


# --- balance and payments -------------------------------------------------------------------


def test_balance_json_shows_exact_six_place_amounts(acme, capsys):
    ledger.post_balances("acme", "f1", {"cust": -12_345_600})
    assert tollgate("balance", "acme", "cust", "--json") == 0
    assert last_json(capsys) == {
        "tenant": "acme",
        "account": "cust",
        "currency": "USD",
        "balance": "-12.345600",
        "reserved": "0.000000",
    }
    tollgate("balance", "acme", "cust")
    assert capsys.readouterr().out == "acme/cust: balance -12.345600 USD (reserved 0.000000)\n"


def test_a_payment_to_a_supplier_lowers_what_the_carrier_owes_it(acme, capsys):
    """The old command added every payment: paying a supplier 5 made the carrier owe it 5 more."""
    ledger.post_balances("acme", "f1", {"cust": -12_345_600, "sup": 7_000_001})
    tollgate("payment", "record", "acme", "sup", "5", "--reference", "OUT/2024/1", "--json")
    assert ledger.get_balance("acme", "sup") == (2_000_001, 0)  # the old code: 12.000001
    paid = last_json(capsys)
    assert (paid["amount"], paid["balance_change"], paid["balance"]) == (
        "5.000000",
        "-5.000000",
        "2.000001",
    )
    tollgate("payment", "record", "acme", "cust", "10.000001", "--reference", "IN-1")
    assert capsys.readouterr().out == (
        "recorded payment 10.000001 USD from acme/cust, reference 'IN-1'; balance -2.345599\n"
    )
    tollgate("payment", "record", "acme", "res", "1", "--reference", "IN-2")
    assert ledger.get_balance("acme", "res") == (1_000_000, 0)
    tollgate("payment", "record", "acme", "sup", "1", "--reference", "OUT/2024/2")
    assert capsys.readouterr().out.endswith(
        "reference 'OUT/2024/2'; balance 1.000001 (what the carrier owes it)\n"
    )


def test_a_payment_without_a_reference_is_refused_and_records_nothing(acme, capsys):
    """The old command made up a random id: a retried command paid twice."""
    with pytest.raises(SystemExit) as exit_:
        tollgate("payment", "record", "acme", "cust", "0.5")
    assert exit_.value.code == 2
    assert "the following arguments are required: --reference" in capsys.readouterr().err
    with pytest.raises(CliError, match="reference is required"):
        tollgate("payment", "record", "acme", "cust", "0.5", "--reference", "  ")
    assert ledger.get_balance("acme", "cust") == (0, 0)
    assert ledger.list_entries("acme", "cust") == []


def test_the_same_reference_twice_is_one_payment_and_the_second_says_so(acme, ledger_clock, capsys):
    ledger.post_balances("acme", "f1", {"cust": -12_345_600})
    tollgate("payment", "record", "acme", "cust", "10.000001", "--reference", "wire 77/A", "--json")
    first = last_json(capsys)
    assert first == {
        "tenant": "acme",
        "account": "cust",
        "account_kind": "customer",
        "reference": "wire 77/A",
        "recorded": True,
        "status": "recorded",
        "currency": "USD",
        "balance_change": "10.000001",
        "booked_at": "2024-05-01T23:30:00.000000+00:00",
        "balance": "-2.345599",
        "payment_id": first["payment_id"],
        "amount": "10.000001",
        "allocations": [],  # the customer has no invoice: all of it is account credit
        "credit": "10.000001",
    }
    assert first["payment_id"].startswith("payment:")
    ledger_clock.now = BOOKED_AT + dt.timedelta(hours=2)  # the operator retries later
    tollgate("payment", "record", "acme", "cust", "10.000001", "--reference", "wire 77/A", "--json")
    again = last_json(capsys)
    assert again == {**first, "recorded": False, "status": "already recorded"}
    tollgate("payment", "record", "acme", "cust", "10.000001", "--reference", "wire 77/A")
    assert capsys.readouterr().out == (
        "already recorded, nothing changed: payment 10.000001 USD from acme/cust, "
        "reference 'wire 77/A'; balance -2.345599\n"
    )
    assert ledger.get_balance("acme", "cust") == (-2_345_599, 0)
    assert [e.kind for e in ledger.list_entries("acme", "cust")] == ["charges", "payment"]


def test_a_reference_reused_for_another_payment_is_refused_naming_the_recorded_one(acme):
    tollgate("payment", "record", "acme", "cust", "10", "--reference", "wire 77")
    named = (
        r"reference 'wire 77' is already a payment of 10\.000000 USD to account 'cust', "
        r"booked 2024-05-01T23:30:00\+00:00; nothing recorded"
    )
    with pytest.raises(CliError, match=named):
        tollgate("payment", "record", "acme", "cust", "11", "--reference", "wire 77")
    with pytest.raises(CliError, match=named):
        tollgate("payment", "record", "acme", "res", "10", "--reference", "wire 77")
    assert ledger.get_balance("acme", "cust") == (10_000_000, 0)
    assert ledger.get_balance("acme", "res") == (0, 0)


# --- adjustments ---------------------------------------------------------------------------


def test_adjust_credits_and_debits_to_the_micro_unit_once_per_reference(acme, capsys):
    """New command, through the real parser: a negative AMOUNT is an amount, not an option."""
    argv = ["adjust", "acme", "cust", "-5.000001", "--reason", "late fee", "--reference", "C-1"]
    assert cli.main([*argv, "--json"]) == 0
    debit = last_json(capsys)
    assert (debit["amount"], debit["balance_change"], debit["balance"], debit["recorded"]) == (
        "-5.000001",
        "-5.000001",
        "-5.000001",
        True,
    )
    assert (debit["reason"], debit["reference"], debit["adjustment_id"][:11]) == (
        "late fee",
        "C-1",
        "adjustment:",
    )
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == (
        "already recorded, nothing changed: debit -5.000001 USD to acme/cust (late fee), "
        "reference 'C-1'; balance -5.000001\n"
    )
    assert cli.main(["adjust", "acme", "cust", "12.5", "--reason", "goodwill", "--reference",
                     "C-2"]) == 0  # fmt: skip
    assert capsys.readouterr().out == (
        "recorded credit 12.500000 USD to acme/cust (goodwill), reference 'C-2'; balance 7.499999\n"
    )
    assert ledger.get_balance("acme", "cust") == (7_499_999, 0)
    assert cli.main(["adjust", "acme", "sup", "--reason", "x", "--reference", "C-3", "-0.5"]) == 0
    assert ledger.get_balance("acme", "sup") == (-500_000, 0)
    assert cli.main(["adjust", "acme", "sup", "0", "--reason", "x", "--reference", "C-4"]) == 2
    assert "an adjustment must not be zero" in capsys.readouterr().err


def test_adjusting_a_supplier_moves_what_is_owed_as_written(acme):
    tollgate("adjust", "acme", "sup", "3", "--reason", "missed invoice", "--reference", "S-1")
    assert ledger.get_balance("acme", "sup") == (3_000_000, 0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("payment", "record", "acme", "cust", "1.2345678", "--reference", "r"),
         "more than 6 decimal places"),
        (("payment", "record", "acme", "cust", "abc", "--reference", "r"), "invalid amount 'abc'"),
        (("payment", "record", "acme", "cust", "0", "--reference", "r"), "must be positive"),
        (("payment", "record", "acme", "cust", "-3", "--reference", "r"), "must be positive"),
        (("payment", "record", "acme", "ghost", "5", "--reference", "r"),
         "unknown account 'ghost'"),
        (("payment", "record", "acme", "cust", "5", "--reference", "a\tb"), "printable"),
        (("adjust", "acme", "cust", "0", "--reason", "x", "--reference", "r"), "not be zero"),
        (("adjust", "acme", "cust", "1", "--reason", " ", "--reference", "r"),
         "--reason must not be empty"),
        (("adjust", "acme", "cust", "1", "--reason", "x", "--reference", ""),
         "reference is required"),
        (("adjust", "acme", "ghost", "1", "--reason", "x", "--reference", "r"),
         "unknown account 'ghost'"),
        (("statement", "acme", "cust", "--from", "2024-05-02", "--to", "2024-05-01"),
         r"starts \(2024-05-02\) after it ends"),
        (("statement", "acme", "ghost", "--from", "2024-05-01", "--to", "2024-05-01"),
         "unknown account 'ghost'"),
        (("statement", "nope", "cust", "--from", "2024-05-01", "--to", "2024-05-01"),
         "unknown tenant 'nope'"),
    ],
)  # fmt: skip
def test_errors_name_what_is_wrong(acme, argv, message):
    with pytest.raises(CliError, match=message):
        tollgate(*argv)
    assert ledger.list_entries("acme", "cust") == []


def test_an_adjustment_reference_reused_with_another_reason_is_refused(acme):
    tollgate("adjust", "acme", "cust", "-1", "--reason", "late fee", "--reference", "C-1")
    with pytest.raises(CliError, match=r"already an adjustment of -1\.000000 USD \(late fee\)"):
        tollgate("adjust", "acme", "cust", "-1", "--reason", "fee", "--reference", "C-1")
    assert ledger.get_balance("acme", "cust") == (-1_000_000, 0)


def test_statement_dates_must_be_days(acme, capsys):
    with pytest.raises(SystemExit):
        tollgate("statement", "acme", "cust", "--from", "May 1", "--to", "2024-05-01")
    assert "invalid date 'May 1': use YYYY-MM-DD" in capsys.readouterr().err


# --- statements ----------------------------------------------------------------------------


def _history(ledger_clock) -> None:
    """Charges, a payment, an adjustment and a re-rate difference over three Kolkata days."""
    ledger_clock.now = dt.datetime(2024, 4, 30, 12, 0, tzinfo=dt.UTC)  # 30 April in Kolkata
    ledger.post_balances(
        "acme", "file-0", {"cust": -1_000_000, "sup": 400_000}, description="a.csv"
    )
    ledger_clock.now = BOOKED_AT  # 2 May in Kolkata, 1 May in UTC
    ledger.post_balances(
        "acme", "file-1", {"cust": -2_500_001, "sup": 900_000}, description="b.csv"
    )
    ledger_clock.now = dt.datetime(2024, 5, 2, 6, 0, tzinfo=dt.UTC)  # 2 May, 11:30 in Kolkata
    tollgate("payment", "record", "acme", "cust", "3", "--reference", "wire 1")
    tollgate("payment", "record", "acme", "sup", "1", "--reference", "OUT-1")
    ledger_clock.now = dt.datetime(2024, 5, 2, 19, 0, tzinfo=dt.UTC)  # 3 May, 00:30 in Kolkata
    tollgate("adjust", "acme", "cust", "-0.25", "--reason", "porting fee", "--reference", "ADJ-1")
    ledger.post_balances(
        "acme",
        "rerate:2024-05-01:file-1:g1",
        {"cust": 100, "sup": -7},
        kind="rerate",
        description="re-rate 2024-05-01 b.csv",
    )


def test_statement_json_opening_every_posting_and_closing(acme, ledger_clock, capsys):
    _history(ledger_clock)
    tollgate("statement", "acme", "cust", "--from", "2024-05-01", "--to", "2024-05-02", "--json")
    statement = last_json(capsys)
    payment_id = statement["lines"][1].pop("posting_id")
    assert payment_id.startswith("payment:")
    assert statement == {
        "tenant": "acme",
        "account": "cust",
        "account_kind": "customer",
        "currency": "USD",
        "timezone": "Asia/Kolkata",
        "from": "2024-05-01",
        "to": "2024-05-02",
        "opening_balance": "-1.000000",
        "closing_balance": "-0.500001",
        "net_change": "0.499999",
        "totals": {
            "charges": "-2.500001",
            "rerate": "0.000000",
            "payment": "3.000000",
            "adjustment": "0.000000",
            "recurring": "0.000000",
            "tier": "0.000000",
            "tax": "0.000000",
            "credit": "0.000000",
        },
        "lines": [
            {
                "booked_at": "2024-05-01T23:30:00.000000+00:00",
                "day": "2024-05-02",  # 23:30 UTC is already 2 May in Kolkata
                "kind": "charges",
                "posting_id": "file-1",
                "description": "b.csv",
                "reference": None,
                "amount": "-2.500001",
                "balance": "-3.500001",
            },
            {
                "booked_at": "2024-05-02T06:00:00.000000+00:00",
                "day": "2024-05-02",
                "kind": "payment",
                "description": "payment received",
                "reference": "wire 1",
                "amount": "3.000000",
                "balance": "-0.500001",
            },
        ],
    }
    tollgate("statement", "acme", "cust", "--from", "2024-05-03", "--to", "2024-05-03", "--json")
    next_day = last_json(capsys)
    assert next_day["opening_balance"] == statement["closing_balance"]
    assert [(line["kind"], line["amount"]) for line in next_day["lines"]] == [
        ("adjustment", "-0.250000"),
        ("rerate", "0.000100"),
    ]
    assert next_day["closing_balance"] == "-0.749901"


def test_a_statement_to_today_closes_at_the_balance(acme, ledger_clock, capsys):
    _history(ledger_clock)
    today = dt.date(2024, 5, 3)  # the clock's day in Kolkata
    for account in ("cust", "sup"):
        tollgate("statement", "acme", account, "--from", "2024-04-01", "--to", str(today), "--json")
        statement = last_json(capsys)
        balance, _ = ledger.get_balance("acme", account)
        assert statement["opening_balance"] == "0.000000"
        assert statement["closing_balance"] == cli.money_text(balance)
    assert ledger.get_balance("acme", "sup") == (1_299_993 - 1_000_000, 0)
    tollgate("statement", "acme", "sup", "--from", "2024-05-02", "--to", str(today), "--json")
    supplier = last_json(capsys)
    assert [(line["kind"], line["amount"]) for line in supplier["lines"]] == [
        ("charges", "0.900000"),
        ("payment", "-1.000000"),  # paying a supplier lowers what it is owed
        ("rerate", "-0.000007"),
    ]


def test_statement_text_shows_local_times_and_the_balance_meaning(acme, ledger_clock, capsys):
    _history(ledger_clock)
    capsys.readouterr()
    tollgate("statement", "acme", "sup", "--from", "2024-05-02", "--to", "2024-05-03")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("statement of acme/sup (supplier, USD; balance = what the carrier owes it)")
    assert lines[1] == "2024-05-02 to 2024-05-03, days in Asia/Kolkata"
    assert lines[3].split() == ["opening", "balance", "0.400000"]
    assert lines[4].split() == ["2024-05-02", "05:00", "charges", "0.900000", "1.300000", "b.csv"]
    assert lines[5].split() == ["2024-05-02", "11:30", "payment", "-1.000000", "0.300000",
                                "payment", "made", "[OUT-1]"]  # fmt: skip
    assert lines[6].split()[:5] == ["2024-05-03", "00:30", "rerate", "-0.000007", "0.299993"]
    assert lines[7].split() == ["closing", "balance", "0.299993"]
    assert lines[2].split() == ["booked", "(local)", "kind", "amount", "balance", "description",
                                "[reference]"]  # fmt: skip
    assert len(lines[3]) == len(lines[7]) == 68  # the balances in one column
    assert lines[4][48:68] == f"{'1.300000':>20}"
