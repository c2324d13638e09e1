"""The seed incident on the local stack: four weeks of ordinary traffic for a reseller to the US
and the UK (one monthly export), then 50,000 minutes to Somalia within a few hours. The files
go through the whole pipeline (drop, ingest, rate); each FileRated event runs the fraud check
(app.py's rule on the tollgate bus), and the check of the Somalia file suspends the reseller."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from functions.cli import main
from functions.store import accounts, fraud
from tests.conftest import local_stack

TENANT, SWITCH = "acme", "sbc1"
HEADER = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier"
)
DECKS = {
    "res-7": "prefix,destination,rate\n1,United States,0.0065\n44,United Kingdom,0.0090\n"
    "252,Somalia,0.0500\n",
    "carrier-a": "prefix,destination,rate\n1,United States,0.0040\n44,United Kingdom,0.0060\n"
    "252,Somalia,0.0300\n",
}
MONDAY = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)


def run(*argv: str) -> None:
    assert main(list(argv)) == 0, argv


@pytest.fixture
def stack(aws_environment):
    with local_stack() as running:
        yield running


def _line(i: int, callee: str, start: dt.datetime, billsec: int) -> str:
    stamp = [
        (start + dt.timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for s in (0, 5, 5 + billsec)
    ]
    return (
        f"c{i},4420790{i % 997:05d},{callee},{stamp[0]},{stamp[1]},{stamp[2]},{billsec},"
        f"ANSWERED,res-7,carrier-a"
    )


def _ordinary_week(week: int) -> str:
    """Mondays and Thursdays (its customers' calling days) 09:00-17:00, a call every 20
    minutes to New York or London: ~500 minutes a week. Two days a week keep the test short:
    rating costs per day of a file, and the baselines read the same hour of each week."""
    lines = [HEADER]
    for day in (0, 3):
        for slot in range(24):
            i = week * 1000 + day * 100 + slot
            start = MONDAY + dt.timedelta(weeks=week, days=day, hours=9, minutes=20 * slot)
            callee = f"1212555{i % 9000:04d}" if slot % 2 else f"44207946{i % 9000:04d}"
            lines.append(_line(i, callee, start, 60 + (i * 37) % 240))
    return "\n".join(lines) + "\n"


def _somalia() -> str:
    """Monday of week 5, from 01:00: 12,600 calls of 4 minutes, one every second."""
    start = MONDAY + dt.timedelta(weeks=4, hours=1)
    lines = [HEADER] + [
        _line(10**6 + i, f"25261{(i * 7919) % 100000:07d}", start + dt.timedelta(seconds=i), 240)
        for i in range(12_600)
    ]
    return "\n".join(lines) + "\n"


def test_the_seed_incident_suspends_the_reseller_and_names_somalia_minutes_and_baseline(
    stack, tmp_path
):
    run("tenant", "create", TENANT)
    run("switch", "create", TENANT, SWITCH, "--format", "generic")
    run("account", "create", TENANT, "res-7", "--kind", "reseller")
    run("account", "create", TENANT, "carrier-a", "--kind", "supplier")
    for account, text in DECKS.items():
        path = tmp_path / f"{account}.csv"
        path.write_text(text)
        run("deck", "upload", TENANT, account, str(path))
    # One file of four weeks (the switch's monthly export): counted by the hour of each call.
    path = tmp_path / "four-weeks.csv"
    path.write_text(HEADER + "\n" + "".join(_ordinary_week(w).split("\n", 1)[1] for w in range(4)))
    run("cdr", "drop", TENANT, SWITCH, str(path))
    stack.wait_idle(timeout=60)
    assert fraud.list_alerts(TENANT) == [] or all(
        a["severity"] == "warning" for a in fraud.list_alerts(TENANT)
    )
    assert accounts.get_account(TENANT, "res-7").status == "active"

    path = tmp_path / "somalia.csv"
    path.write_text(_somalia())
    run("cdr", "drop", TENANT, SWITCH, str(path))
    stack.wait_idle(timeout=120)

    assert list(stack.runner.errors) == []
    account = accounts.get_account(TENANT, "res-7")
    assert account.status == "suspended"
    assert account.status_reason.startswith("fraud: alert ")
    spikes = [a for a in fraud.list_alerts(TENANT, "res-7") if a["rule"] == "spike"]
    assert spikes and {a["destination"] for a in spikes} == {"Somalia"}
    first_hour = min(spikes, key=lambda a: a["window"]["start"])
    # 01:00-02:00: 3,600 calls of 4 minutes; never a call at that hour before.
    assert first_hour["observed"] == "14400.00" and first_hour["baseline"] == "0.00"
    assert first_hour["severity"] == "critical" and first_hour["unit"] == "minutes"
    # 04:00-04:30 is judged against a young baseline that already holds 01:00-04:00: the
    # minutes-per-hour and high-risk limits cover it, every minute counted once.
    high_risk = next(a for a in fraud.list_alerts(TENANT, "res-7") if a["rule"] == "high_risk")
    assert high_risk["destination"] == "Somalia (252)" and high_risk["severity"] == "critical"
    assert Decimal(high_risk["observed"]) == 12_600 * 4
    assert first_hour["top_numbers"][0]["number"].startswith("25261")
    assert first_hour["action"] in ("suspended", "notified (already suspended)")
