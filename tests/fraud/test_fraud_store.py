"""The fraud service on the real adapter (functions/store/fraud.py on moto): the same results
as the in-memory stand-in, and exactly once under redelivery and crashes (fault injection:
a crash half-way through a file's counters, a crash between an alert and its notification,
the same event delivered again)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from functions.fraud.policy import Policy
from functions.fraud.ranges import RangeList
from functions.fraud.service import check_file, tally_file
from functions.store import accounts, fraud
from tests.fraud.fakes import MemoryAccounts, MemoryFraudStore, Published
from tests.fraud.traffic import T0, Flow, calls, hourly_starts, office_profile

TENANT = "acme"


def _files():
    """Five days of office traffic to the US for res-1, then an hour to Somalia."""
    rng = np.random.default_rng(17)
    files = []
    for day in range(5):
        start = T0 + dt.timedelta(days=day)
        counts = office_profile(24, start, 2.0, rng)
        table = calls(
            Flow("res-1", "1212", "0.0065"),
            hourly_starts(counts, start, rng),
            rng,
            first_id=day * 10**5,
        )
        files.append((f"day-{day}", [table], start + dt.timedelta(days=1)))
    start = T0 + dt.timedelta(days=5, hours=2)
    table = calls(
        Flow("res-1", "25261", "0.05", callers=30, numbers=40, answer_share=0.9),
        hourly_starts(np.array([900]), start, rng),
        rng,
        first_id=10**7,
    )
    files.append(("incident", [table], start + dt.timedelta(hours=1)))
    return files


def _check(file_id, tables, now, *, store=fraud, accounts_port=accounts, published=None):
    published = published or Published()
    return check_file(
        TENANT,
        file_id,
        lambda: tables,
        store=store,
        accounts=accounts_port,
        events=published,
        notices=published,
        now=now,
    )


@pytest.fixture
def tenant(aws):
    accounts.create_tenant(TENANT)
    accounts.create_account(TENANT, "res-1", kind="reseller")
    accounts.create_account(TENANT, "carrier-a", kind="supplier")


def _every_counter(store_span) -> dict:
    first = int(T0.timestamp()) // 3600 - 1
    out = {}
    for party, account in (("customer", "res-1"), ("supplier", "carrier-a")):
        for counter in store_span(TENANT, party, account, first, first + 24 * 8):
            out[counter.key] = counter.values()
    return out


def test_the_adapter_counts_alerts_and_suspends_as_the_in_memory_store_does(tenant):
    memory, memory_accounts = MemoryFraudStore(), MemoryAccounts()
    published = Published()
    for file_id, tables, now in _files():
        ours = _check(file_id, tables, now, published=published)
        theirs = _check(file_id, tables, now, store=memory, accounts_port=memory_accounts)
        assert ours.counters > 0 and theirs.counters > 0
        assert [a["alert_id"] for a in ours.alerts] == [a["alert_id"] for a in theirs.alerts]
    assert _every_counter(fraud.get_span) == _every_counter(memory.get_span)
    stored = {a["alert_id"]: (a["rule"], a["severity"]) for a in fraud.list_alerts(TENANT)}
    assert stored == {a: (r["rule"], r["severity"]) for a, r in memory.alerts.items()}
    assert ("high_risk", "critical") in stored.values()
    account = accounts.get_account(TENANT, "res-1")
    assert account.status == "suspended" and account.status_reason.startswith("fraud: alert ")
    assert memory_accounts.get_account(TENANT, "res-1").status_reason == account.status_reason
    assert sorted(e["alert_id"] for e in published.events) == sorted(stored)  # once each
    assert fraud.outbox(TENANT) == []


def test_a_redelivered_file_counts_nothing_again_and_notifies_nobody_again(tenant):
    published = Published()
    for file_id, tables, now in _files():
        _check(file_id, tables, now, published=published)
    before = _every_counter(fraud.get_span)
    sent = len(published.events)
    # The same events again, and once more with the file's "checked" mark lost (a crash just
    # before it was written): every counter item already holds the file.
    for file_id, tables, now in _files():
        assert _check(file_id, tables, now, published=published).status == "already_checked"
    client_table = fraud._table()
    fraud.client("dynamodb").delete_item(
        TableName=client_table, Key={"pk": {"S": f"T#{TENANT}"}, "sk": {"S": "FILE#incident"}}
    )
    file_id, tables, now = _files()[-1]
    again = _check(file_id, tables, now, published=published)
    assert again.status == "checked" and again.counters == 0 and again.alerts == []
    assert _every_counter(fraud.get_span) == before
    assert len(published.events) == sent
    history = accounts.list_audit(TENANT, "account", "res-1")
    assert len([e for e in history if "suspended" in str(e.changes)]) == 1


def test_a_crash_half_way_through_a_files_counters_is_finished_by_the_retry(tenant, monkeypatch):
    files = _files()
    for file_id, tables, now in files[:-1]:
        _check(file_id, tables, now)
    # Two attributes per update: the incident's items are written in several claimed parts,
    # and the crash falls between two parts of one item.
    monkeypatch.setattr(fraud, "CLAUSES", 2)
    monkeypatch.setattr(fraud, "WRITERS", 1)  # a deterministic crash point
    file_id, tables, now = files[-1]
    updates = fraud._updates(tally_file(tables, Policy(), RangeList.of()).counters)
    assert len(updates) > 4 and updates[0][0] == updates[1][0]  # one item, parts 0 and 1
    real = fraud._add_item
    written = []

    def crash_after_one(*args):
        if len(written) == 1:
            raise ConnectionError("Lambda killed mid-file")
        written.append(args)
        return real(*args)

    monkeypatch.setattr(fraud, "_add_item", crash_after_one)
    with pytest.raises(ConnectionError):
        _check(file_id, tables, now)
    monkeypatch.setattr(fraud, "_add_item", real)
    retried = _check(file_id, tables, now)
    assert retried.counters == len(updates) - 1  # the part written before the crash is not
    memory = MemoryFraudStore()
    for file_id, tables, now in files:
        _check(file_id, tables, now, store=memory, accounts_port=MemoryAccounts())
    assert _every_counter(fraud.get_span) == _every_counter(memory.get_span)
    assert accounts.get_account(TENANT, "res-1").status == "suspended"


def test_a_crash_between_an_alert_and_its_notification_delays_it_never_loses_or_doubles_it(
    tenant, monkeypatch
):
    files = _files()
    for file_id, tables, now in files[:-1]:
        _check(file_id, tables, now)
    published = Published()
    real = published.publish_fraud_alert
    calls_made = []

    def refused_once(detail):
        calls_made.append(detail["alert_id"])
        if len(calls_made) == 1:
            raise ConnectionError("EventBridge unreachable")
        real(detail)

    monkeypatch.setattr(published, "publish_fraud_alert", refused_once)
    file_id, tables, now = files[-1]
    with pytest.raises(ConnectionError):
        _check(file_id, tables, now, published=published)
    assert fraud.outbox(TENANT)  # the alerts wait there
    assert accounts.get_account(TENANT, "res-1").status == "suspended"
    _check(file_id, tables, now, published=published)  # the event's retry
    alerts = fraud.list_alerts(TENANT)
    assert sorted(e["alert_id"] for e in published.events) == sorted(a["alert_id"] for a in alerts)
    # one notice for the account's incident, listing every alert once
    assert len(published.notices) == 1
    subject, message, attributes = published.notices[0]
    assert subject.startswith("[critical] fraud ") and "res-1" in subject
    assert sorted(a["alert_id"] for a in alerts) == sorted(
        line.split()[1] for line in message.splitlines() if line.startswith("alert: ")
    )
    assert attributes["severity"] == "critical" and attributes["account"] == "res-1"
    assert fraud.outbox(TENANT) == []
    suspensions = [
        e for e in accounts.list_audit(TENANT, "account", "res-1") if "suspended" in str(e.changes)
    ]
    assert len(suspensions) == 1
    assert all(
        a["action"] in ("suspended", "notified", "notified (already suspended)") for a in alerts
    )


def test_the_five_minute_pass_judges_what_two_concurrent_files_added_up_to(tenant):
    """Two files of the same hour whose checks ran side by side: each saw only itself (80
    minutes to Somalia, a warning at most). The pass sees 160 minutes (critical at 120) and
    explains them with the numbers both files stored."""
    from functions.fraud.service import _notable, evaluate

    rng = np.random.default_rng(29)
    hour = T0 + dt.timedelta(days=3, hours=4)
    flow = Flow(
        "res-1",
        "25261",
        "0.05",
        callers=20,
        numbers=5,
        mean_seconds=120,
        answer_share=1.0,
        short_share=0.0,
    )
    for name in ("sbc-a", "sbc-b"):
        table = calls(
            flow,
            hourly_starts(np.array([40]), hour, rng),
            rng,
            first_id=len(name) * 1000 + ord(name[-1]),
        )
        scale = 80 * 60 / int(np.sum(table["billsec"].to_numpy()))  # exactly 80 minutes
        seconds = np.round(table["billsec"].to_numpy() * scale).astype(np.int64)
        seconds[-1] += 80 * 60 - int(seconds.sum())
        table = table.set_column(
            table.schema.get_field_index("billsec"), "billsec", pa.array(seconds)
        )
        tally = tally_file([table], Policy(), RangeList.of())
        fraud.add_counters(TENANT, name, tally.counters)
        fraud.put_evidence(TENANT, name, _notable(tally, Policy()))
        fraud.touch_active(
            TENANT,
            {
                ("customer", "res-1"): (tally.counters[0].hour,) * 2,
                ("supplier", "carrier-a"): (tally.counters[0].hour,) * 2,
            },
        )
    published = Published()
    outcome = evaluate(
        TENANT,
        store=fraud,
        accounts=accounts,
        events=published,
        notices=published,
        now=hour + dt.timedelta(minutes=65),
    )
    risky = [a for a in outcome.alerts if a["rule"] == "high_risk"]
    assert len(risky) == 1 and risky[0]["severity"] == "critical"
    assert risky[0]["observed"] == "160.00" and risky[0]["destination"] == "Somalia (252)"
    assert {t["number"][:5] for t in risky[0]["top_numbers"]} == {"25261"}
    assert sum(t["seconds"] for t in risky[0]["top_numbers"]) == 160 * 60  # 5 numbers in all
    assert accounts.get_account(TENANT, "res-1").status == "suspended"
    # The pass again an hour later: nothing new, nothing delivered twice.
    again = evaluate(
        TENANT,
        store=fraud,
        accounts=accounts,
        events=published,
        notices=published,
        now=hour + dt.timedelta(minutes=70),
    )
    assert again.alerts == [] and len(published.events) == len(outcome.alerts)
