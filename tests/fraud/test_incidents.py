"""Incident shapes from published cases (docs/fraud.md), each run through the fraud service on
in-memory stores: the seed incident, a PBX hacked over a weekend, Wangiri callbacks and a slow
ramp that only a daily limit catches."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pyarrow as pa

from functions.fraud.service import check_file
from tests.fraud.fakes import MemoryAccounts, MemoryFraudStore, Published
from tests.fraud.traffic import T0, Flow, calls, hourly_starts, office_profile

TENANT = "acme"


def run(store, accounts, published, file_id, tables, now):
    return check_file(
        TENANT,
        file_id,
        lambda: tables,
        store=store,
        accounts=accounts,
        events=published,
        notices=published,
        now=now,
    )


def ordinary_weeks(account, weeks, rng, *, peak=6.0):
    """Daily files of office traffic to the US and the UK for `weeks` weeks from T0."""
    files = []
    for day in range(7 * weeks):
        start = T0 + dt.timedelta(days=day)
        tables = []
        for prefix, rate in (("1212", "0.0065"), ("4420", "0.0090")):
            counts = office_profile(24, start, peak, rng)
            flow = Flow(account, prefix, rate)
            tables.append(calls(flow, hourly_starts(counts, start, rng), rng, first_id=day * 10**5))
        files.append((f"{account}-day-{day}", tables, start + dt.timedelta(days=1)))
    return files


def test_seed_incident_suspends_the_reseller_within_one_evaluation():
    rng = np.random.default_rng(7)
    store, accounts, published = MemoryFraudStore(), MemoryAccounts(), Published()
    for file_id, tables, now in ordinary_weeks("res-7", 4, rng):
        outcome = run(store, accounts, published, file_id, tables, now)
        assert not [a for a in outcome.alerts if a["severity"] == "critical"], outcome.alerts
    assert accounts.get_account(TENANT, "res-7").status == "active"
    # Monday of week 5, 01:00-05:00: 50,000 minutes to Somalia mobile at 0.05/min.
    start = T0 + dt.timedelta(weeks=4, hours=1)
    somalia = Flow(
        "res-7", "25261", "0.05", callers=40, numbers=300, mean_seconds=240, answer_share=0.9
    )
    table = calls(somalia, hourly_starts(np.full(4, 3700), start, rng), rng)
    minutes = Decimal(int(np.sum(table["billsec"].to_numpy()))) / 60
    assert minutes > 50_000
    outcome = run(
        store, accounts, published, "res-7-incident", [table], start + dt.timedelta(hours=5)
    )
    assert outcome.suspended == ["res-7"]
    account = accounts.get_account(TENANT, "res-7")
    assert account.status == "suspended" and account.status_reason.startswith("fraud: alert ")
    spikes = [a for a in store.alerts.values() if a["rule"] == "spike"]
    assert {a["destination"] for a in spikes} == {"Somalia"}
    worst = max(spikes, key=lambda a: Decimal(a["observed"]))
    assert worst["severity"] == "critical" and worst["baseline"] == "0.00"
    hour = worst["window"]["start"]
    assert Decimal(worst["observed"]) == Decimal(
        store.counters[
            (
                "customer",
                "res-7",
                "Somalia",
                int(dt.datetime.fromisoformat(hour).timestamp()) // 3600,
            )
        ].seconds
        / 60
    ).quantize(Decimal("0.01"))
    top = worst["top_numbers"][0]
    assert top["number"].startswith("25261")
    # the top number's calls in the file behind the alert, to the second and the micro-unit
    rows = [r for r in table.to_pylist() if r["callee"] == top["number"]]
    assert top["calls"] == len(rows) and top["seconds"] == sum(r["billsec"] for r in rows)
    assert Decimal(top["amount"]) == sum((r["customer_amount"] for r in rows), Decimal(0))
    # The range's and the all-destination rules' alerts are explained by the same calls.
    for rule in ("high_risk", "velocity.minutes_per_hour"):
        alert = next(a for a in store.alerts.values() if a["rule"] == rule)
        assert alert["top_numbers"] and alert["sample_call_ids"], rule
        assert all(t["number"].startswith("25261") for t in alert["top_numbers"]), rule
    assert len(published.events) == len(store.alerts)  # each alert published once
    print(sorted((a["rule"], a["severity"], a["destination"]) for a in store.alerts.values()))


def test_a_pbx_hacked_over_a_weekend_is_suspended_and_explained():
    """Architecture firm, March 2014: up to 220 minutes of calls a minute to Gambia, Somalia
    and the Maldives over a weekend from an office PBX."""
    rng = np.random.default_rng(11)
    store, accounts, published = MemoryFraudStore(), MemoryAccounts(), Published()
    for file_id, tables, now in ordinary_weeks("pbx-office", 4, rng, peak=3.0):
        run(store, accounts, published, file_id, tables, now)
    saturday = T0 + dt.timedelta(weeks=4, days=5, hours=2)  # 02:00 on a Saturday
    tables = [
        calls(
            Flow("pbx-office", prefix, rate, callers=3, mean_seconds=600, answer_share=0.8),
            hourly_starts(np.full(3, 600), saturday, rng),
            rng,
            first_id=i * 10**5,
        )
        for i, (prefix, rate) in enumerate((("2207", "0.28"), ("25261", "0.05"), ("9607", "0.30")))
    ]
    outcome = run(
        store, accounts, published, "pbx-weekend", tables, saturday + dt.timedelta(hours=3)
    )
    assert outcome.suspended == ["pbx-office"]
    rules = {(a["rule"], a["severity"]) for a in store.alerts.values()}
    assert ("off_hours", "critical") in rules
    assert ("velocity.minutes_per_hour", "critical") in rules
    assert {a["destination"] for a in store.alerts.values() if a["rule"] == "high_risk"} == {
        "Gambia (220)",
        "Somalia (252)",
        "Maldives (960)",
    }
    off = next(a for a in store.alerts.values() if a["rule"] == "off_hours")
    assert off["baseline"] == "0" and "last 4 weeks" in off["summary"]


def test_wangiri_callbacks_to_one_range_raise_a_critical_alert():
    rng = np.random.default_rng(5)
    store, accounts, published = MemoryFraudStore(), MemoryAccounts(), Published()
    for file_id, tables, now in ordinary_weeks("mobile-op", 1, rng, peak=40.0):
        run(store, accounts, published, file_id, tables, now)
    # After a burst of one-ring calls from +269 3xx, 260 subscribers call back within an hour.
    hour = T0 + dt.timedelta(days=8, hours=19)
    callbacks = Flow(
        "mobile-op", "2693", "0.35", callers=10**6, numbers=50, mean_seconds=45, answer_share=0.95
    )
    table = calls(callbacks, hourly_starts(np.array([260]), hour, rng), rng)
    run(store, accounts, published, "callbacks", [table], hour + dt.timedelta(hours=1))
    wangiri = [a for a in store.alerts.values() if a["rule"] == "wangiri"]
    assert len(wangiri) == 1
    alert = wangiri[0]
    callers = len(set(table["caller"].to_pylist()))
    assert alert["severity"] == "critical" and alert["observed"] == str(callers)
    assert alert["destination"].startswith("Comoros (26930")
    assert accounts.get_account(TENANT, "mobile-op").status == "suspended"


def test_a_slow_ramp_no_spike_sees_is_caught_by_the_daily_spend_limit():
    """Traffic to a dear destination the account always called, round the clock, growing 12 %
    a day: never k times its own recent hours, so no spike fires; the 24 h spend limit
    (1,000 warns, 5,000 suspends) stops it in its fourth week."""
    rng = np.random.default_rng(3)
    store, accounts, published = MemoryFraudStore(), MemoryAccounts(), Published()
    flow = Flow("trunk-9", "63917", "0.20", mean_seconds=180, answer_share=0.7)
    suspended_on = None
    for day in range(35):
        start = T0 + dt.timedelta(days=day)
        per_hour = int(30 * 1.12**day)
        table = calls(
            flow, hourly_starts(np.full(24, per_hour), start, rng), rng, first_id=day * 10**6
        )
        outcome = run(
            store, accounts, published, f"ramp-{day}", [table], start + dt.timedelta(days=1)
        )
        if outcome.suspended:
            suspended_on = day
            break
    assert suspended_on is not None and 21 <= suspended_on < 28
    assert not [a for a in store.alerts.values() if a["rule"] == "spike"]
    spend = [a for a in store.alerts.values() if a["rule"] == "velocity.spend_per_day"]
    critical = [a for a in spend if a["severity"] == "critical"]
    assert critical and Decimal(critical[0]["observed"]) >= 5000
    assert [a for a in spend if a["severity"] == "warning"]  # warned on earlier days
    account = accounts.get_account(TENANT, "trunk-9")
    assert "velocity.spend_per_day" in account.status_reason


def test_a_month_of_ordinary_traffic_for_50_accounts_raises_no_critical_alert():
    """Daily files of 50 accounts with daily and weekly seasonality, of every size, to the
    usual destinations; one of them runs a legitimate marketing campaign (four times its
    US traffic for three weekdays)."""
    rng = np.random.default_rng(2026)
    store, accounts, published = MemoryFraudStore(), MemoryAccounts(), Published()
    destinations = (
        ("1212", "0.0065"),
        ("4420", "0.0090"),
        ("919", "0.0080"),
        ("5255", "0.0120"),
        ("4930", "0.0070"),
        ("3361", "0.0150"),
    )
    plans = []
    for n in range(50):
        picked = rng.choice(len(destinations), size=int(rng.integers(1, 4)), replace=False)
        peak = float(rng.choice([1.0, 3.0, 8.0, 20.0, 60.0]))
        plans.append([(Flow(f"cust-{n:02d}", *destinations[i]), peak) for i in picked])
    for day in range(30):
        start = T0 + dt.timedelta(days=day)
        tables = []
        for plan in plans:
            for flow, peak in plan:
                counts = office_profile(24, start, peak, rng)
                if (
                    flow.account == "cust-07"
                    and flow.prefix == plans[7][0][0].prefix
                    and 22 <= day <= 24
                ):
                    counts = counts * 4  # the campaign
                tables.append(
                    calls(
                        flow,
                        hourly_starts(counts, start, rng),
                        rng,
                        first_id=day * 10**6 + len(tables) * 10**4,
                    )
                )
        outcome = run(
            store,
            accounts,
            published,
            f"day-{day}",
            [pa.concat_tables(tables)],
            start + dt.timedelta(days=1),
        )
        assert not outcome.suspended
    critical = [a for a in store.alerts.values() if a["severity"] == "critical"]
    assert critical == []
    assert all(a.status == "active" for a in accounts.accounts.values())
