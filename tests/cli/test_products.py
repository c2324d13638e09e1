"""`tollgate did|recurring` and the monthly schedule's handler (issue 10 §4), against moto."""

from __future__ import annotations

import datetime as dt

import pytest

from functions.cli import CliError, OperationError
from functions.invoice.handler import handle_month_end
from functions.rate.recurring_job import RecurringJobError
from functions.store import accounts, ledger
from tests.cli.conftest import last_json, tollgate

NUMBER = "442071234567"


@pytest.fixture
def acme(aws, ledger_clock):
    tollgate("tenant", "create", "acme", "--timezone", "Asia/Kolkata")
    tollgate("account", "create", "acme", "cust", "--kind", "customer", "--decimals", "2")
    tollgate("account", "create", "acme", "res", "--kind", "reseller", "--rounding", "down")
    tollgate("account", "create", "acme", "sup", "--kind", "supplier")


def add_march_17(*extra: str) -> int:
    return tollgate(
        "did", "add", "acme", f"+{NUMBER}", "--account", "cust", "--monthly", "2.00",
        "--setup", "5.00", "--from", "2026-03-17", *extra,
    )  # fmt: skip


def test_did_add_list_release_round_trip_exactly(acme, capsys):
    assert add_march_17("--per-minute", "0.002", "--json") == 0
    added = {
        "tenant": "acme",
        "number": NUMBER,
        "account": "cust",
        "monthly": "2.000000",
        "setup": "5.000000",
        "per_minute": "0.00200000",
        "from": "2026-03-17",
        "to": None,
    }
    assert last_json(capsys) == added
    tollgate("did", "list", "acme", "--json")
    assert last_json(capsys) == [added]
    tollgate("did", "release", "acme", f"+{NUMBER}", "--to", "2026-04-09", "--json")
    assert last_json(capsys) == {**added, "to": "2026-04-09"}
    tollgate("did", "list", "acme")
    assert capsys.readouterr().out == (
        f"+{NUMBER} cust from 2026-03-17 to 2026-04-09: monthly 2.000000, setup 5.000000, "
        "per minute 0.00200000\n"
    )
    assert accounts.list_dids("acme")[0].per_minute_e8 == 200_000


def test_did_dates_default_to_today_in_the_tenants_zone(acme, capsys, monkeypatch):
    """Kolkata is 5:30 ahead: at 20:00 UTC on 31 March it is already 1 April there."""

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime(2026, 3, 31, 20, 0, tzinfo=dt.UTC).astimezone(tz)

    monkeypatch.setattr("functions.cli.dt.datetime", Clock)
    tollgate("did", "add", "acme", NUMBER, "--account", "res", "--monthly", "1", "--json")
    assert last_json(capsys)["from"] == "2026-04-01"
    tollgate("did", "release", "acme", NUMBER, "--json")
    assert last_json(capsys)["to"] == "2026-04-01"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--account", "sup"), "'sup' is a supplier"),
        (("--account", "ghost"), "unknown account 'ghost'"),
        (("--account", "cust", "--monthly", "2.0000001"), "invalid monthly fee"),
        (("--account", "cust", "--setup", "-5"), "invalid setup fee '-5': must not be negative"),
        (("--account", "cust", "--per-minute", "x"), "invalid per-minute rate 'x'"),
    ],
)
def test_bad_did_input_is_refused_with_its_field_named(acme, argv, message):
    base = {"--monthly": "2"}
    flags = list(argv) + [x for k, v in base.items() if k not in argv for x in (k, v)]
    with pytest.raises(CliError, match=message) as refused:
        tollgate("did", "add", "acme", NUMBER, *flags)
    assert refused.value.exit_code == 2
    assert accounts.list_dids("acme") == []


def test_a_bad_day_is_a_usage_error_naming_its_option(acme, capsys):
    with pytest.raises(SystemExit) as refused:
        tollgate(
            "did", "add", "acme", NUMBER, "--account", "cust", "--monthly", "2", "--from",
            "17/03/2026",
        )  # fmt: skip
    assert refused.value.code == 2
    assert "argument --from: invalid date '17/03/2026': use YYYY-MM-DD" in capsys.readouterr().err
    assert accounts.list_dids("acme") == []


def test_a_bad_number_and_an_unknown_tenant_are_usage_errors(acme):
    with pytest.raises(CliError, match="invalid DID number '0044207'"):
        tollgate("did", "add", "acme", "0044207", "--account", "cust", "--monthly", "2")
    with pytest.raises(CliError, match="unknown tenant 'nope'"):
        tollgate("did", "list", "nope")
    with pytest.raises(CliError, match="not in service on 2026-03-01"):
        tollgate("did", "release", "acme", NUMBER, "--to", "2026-03-01")


def test_overlap_and_double_add_are_conflicts_exit_1(acme):
    add_march_17()
    for again in (add_march_17, lambda: tollgate(
        "did", "add", "acme", NUMBER, "--account", "res", "--monthly", "1", "--from", "2026-05-01"
    )):  # fmt: skip
        with pytest.raises(OperationError, match="overlaps") as refused:
            again()
        assert refused.value.exit_code == 1
    assert len(accounts.list_dids("acme")) == 1


def test_recurring_run_posts_each_fee_once_to_the_micro_unit(acme, capsys):
    """17 March in a 31-day month, 2.00 monthly + 5.00 setup, 2 decimals half up: 0.97 + 5.00."""
    add_march_17()
    assert tollgate("recurring", "run", "acme", "--period", "2026-03", "--json") == 0
    march = [
        {
            "account": "cust",
            "component": "recurring",
            "item": f"did:{NUMBER}:monthly",
            "period": "2026-03",
            "amount": "0.970000",
            "reference": f"rec:2026-03:cust:did:{NUMBER}:monthly",
            "recorded": True,
        },
        {
            "account": "cust",
            "component": "recurring",
            "item": f"did:{NUMBER}:setup",
            "period": "2026-03",
            "amount": "5.000000",
            "reference": f"rec:once:cust:did:{NUMBER}:setup",
            "recorded": True,
        },
    ]
    assert last_json(capsys) == march
    assert ledger.get_balance("acme", "cust") == (-5_970_000, 0)
    tollgate("recurring", "run", "acme", "--period", "2026-03", "--json")
    assert last_json(capsys) == [{**charge, "recorded": False} for charge in march]
    assert ledger.get_balance("acme", "cust") == (-5_970_000, 0)
    for _ in range(2):
        tollgate("recurring", "run", "acme", "--period", "2026-04")
    assert ledger.get_balance("acme", "cust") == (-7_970_000, 0)
    capsys.readouterr()
    tollgate("recurring", "run", "acme", "--period", "2026-03")
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "already", "posted", "cust", f"did:{NUMBER}:monthly", "0.970000", march[0]["reference"]
    ]  # fmt: skip
    assert out[-1] == "acme 2026-03: 0 fee(s) posted (0.000000), 2 already posted"
    assert ledger.get_balance("acme", "cust") == (-7_970_000, 0)


def test_the_statement_shows_the_fees_as_recurring(acme, capsys):
    add_march_17()
    tollgate("recurring", "run", "acme", "--period", "2026-03")
    tollgate("statement", "acme", "cust", "--from", "2024-05-01", "--to", "2024-05-02", "--json")
    statement = last_json(capsys)
    assert statement["totals"]["recurring"] == "-5.970000"
    assert sorted((line["kind"], line["amount"]) for line in statement["lines"]) == [
        ("recurring", "-0.970000"),
        ("recurring", "-5.000000"),
    ]
    assert statement["closing_balance"] == "-5.970000"


def test_a_period_whose_fee_changed_after_posting_is_reported_not_posted(acme, capsys):
    """A DID released back into a period already posted: its fee differs; the run says so,
    posts the rest, and leaves the posted fee to an adjustment."""
    add_march_17()
    tollgate("did", "add", "acme", "441130000000", "--account", "res", "--monthly", "3",
             "--from", "2026-03-01")  # fmt: skip
    tollgate("recurring", "run", "acme", "--period", "2026-03")
    tollgate("did", "release", "acme", NUMBER, "--to", "2026-03-20")
    tollgate("did", "add", "acme", "441130000001", "--account", "res", "--monthly", "3",
             "--from", "2026-03-01")  # fmt: skip
    with pytest.raises(OperationError, match=r"1 fee\(s\) of 2026-03 not posted") as refused:
        tollgate("recurring", "run", "acme", "--period", "2026-03")
    assert "rec:2026-03:cust:did:442071234567:monthly" in str(refused.value)
    assert ledger.get_balance("acme", "cust") == (-5_970_000, 0)
    assert ledger.get_balance("acme", "res") == (-6_000_000, 0)  # the new DID's 3.00 posted


@pytest.mark.parametrize("period", ["2026-3", "2026-13", "march"])
def test_a_bad_period_is_a_usage_error(acme, period):
    with pytest.raises(CliError, match="invalid period"):
        tollgate("recurring", "run", "acme", "--period", period)


# --- the scheduled job ---------------------------------------------------------------------


def schedule_event(time: str) -> dict:
    return {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": time,
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/recurring"],
        "detail": {},
    }


def test_the_schedule_posts_the_previous_month_for_every_tenant_once(acme):
    add_march_17()
    tollgate("tenant", "create", "beta")
    tollgate("account", "create", "beta", "cust", "--kind", "customer")
    tollgate("did", "add", "beta", "15551230000", "--account", "cust", "--monthly", "10",
             "--from", "2026-02-20")  # fmt: skip
    event = schedule_event("2026-04-01T02:00:00Z")
    summary = handle_month_end(event, None)
    assert summary == {
        "period": "2026-03",
        "tenants": 2,
        "posted": 3,
        "already_posted": 0,
        "amount": "15.970000",
        "true_ups": 0,  # no volume tiers
        "true_up_amount": "0.000000",
    }
    assert handle_month_end(event, None)["already_posted"] == 3
    assert ledger.get_balance("acme", "cust") == (-5_970_000, 0)
    assert ledger.get_balance("beta", "cust") == (-10_000_000, 0)  # February was not run
    handle_month_end(schedule_event("2026-03-01T02:00:00Z"), None)
    # beta's 9 days of February (20..28): 10.00 x 9/28 = 3.214285714... -> 3.214286
    assert ledger.get_balance("beta", "cust") == (-13_214_286, 0)
    assert ledger.get_balance("acme", "cust") == (-5_970_000, 0)


def test_a_failing_tenant_fails_the_invocation_after_the_others_posted(acme, monkeypatch):
    add_march_17()
    tollgate("tenant", "create", "beta")
    real = accounts.list_dids

    def broken_for_aaa(tenant):
        if tenant == "aaa":
            raise ValueError("a broken DID record")
        return real(tenant)

    tollgate("tenant", "create", "aaa")
    monkeypatch.setattr(accounts, "list_dids", broken_for_aaa)
    with pytest.raises(RecurringJobError, match="aaa: a broken DID record") as failed:
        handle_month_end(schedule_event("2026-04-01T02:00:00Z"), None)
    assert [run.tenant for run in failed.value.runs] == ["acme", "beta"]
    assert ledger.get_balance("acme", "cust") == (-5_970_000, 0)
