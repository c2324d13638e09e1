"""`tollgate fraud evaluate|alerts|rules|ranges`, in-process on moto; and a fraud suspension
lifted with `tollgate account resume`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from functions.cli.fraud import ALERT_COLUMNS
from functions.fraud.alerts import Finding, alert_record
from functions.fraud.counters import Counter
from functions.fraud.policy import DEFAULTS
from functions.fraud.ranges import SEEDED
from functions.shared.settings import settings
from functions.store import accounts, client, fraud
from tests.cli.conftest import json_document, run_command, tollgate

# 03:00 UTC on Monday 2 March 2026, as epoch hours: the hour of the incident below.
HOUR = int(dt.datetime(2026, 3, 2, 3, tzinfo=dt.UTC).timestamp()) // 3600
WEEK = 168


@pytest.fixture
def acme(tenant_numbers):
    """A fresh tenant with the customers cust and other; its name."""
    tenant = f"acme{next(tenant_numbers)}"
    tollgate("tenant", "create", tenant, "--currency", "USD")
    tollgate("account", "create", tenant, "cust", "--kind", "customer")
    tollgate("account", "create", tenant, "other", "--kind", "customer")
    return tenant


def fails(capsys, code: int, *argv: str) -> str:
    status, out, err = run_command(capsys, *argv)
    assert (status, out) == (code, "")
    return err


def row(table: list[dict], name: str) -> dict:
    rule, key = name.split(".")
    (found,) = [r for r in table if (r["rule"], r["key"]) == (rule, key)]
    return found


def test_rules_are_stored_per_tenant_and_account_and_shown_with_their_source(acme, capsys):
    shown = json_document(capsys, "fraud", "rules", acme)
    assert len(shown["rules"]) == sum(len(keys) for keys in DEFAULTS.values())
    assert row(shown["rules"], "spike.k") == {
        "rule": "spike", "key": "k", "value": "3", "default": "3", "source": "default"
    }  # fmt: skip
    assert (shown["version"], shown["changed"], shown["allow"]) == (0, [], {})

    json_document(capsys, "fraud", "rules", acme, "--set", "spike.k=4",
                  "--set", "velocity.spend_per_day=2000", "--by", "alice")  # fmt: skip
    changed = json_document(
        capsys, "fraud", "rules", acme, "--account", "cust", "--set", "spike.k=6",
        "--allow", "Somalia", "--allow", "25261", "--by", "bob",
    )  # fmt: skip
    assert changed["changed"] == ["spike.k=6", "allow 25261", "allow Somalia"]
    assert changed["version"] == 2
    document, version = fraud.get_rules_versioned(acme)
    assert version == 2
    assert document == {
        "rules": {"spike.k": "4", "velocity.spend_per_day": "2000"},
        "accounts": {"cust": {"spike.k": "6"}},
        "allow": {"cust": ["25261", "Somalia"]},
    }
    item = client("dynamodb").get_item(
        TableName=settings().fraud_table, Key={"pk": {"S": f"T#{acme}"}, "sk": {"S": "RULES"}}
    )["Item"]
    assert item["changed_by"]["S"] == "bob"

    cust = json_document(capsys, "fraud", "rules", acme, "--account", "cust")
    assert row(cust["rules"], "spike.k")["value"] == "6"
    assert row(cust["rules"], "spike.k")["source"] == "account"
    assert row(cust["rules"], "velocity.spend_per_day") == {
        "rule": "velocity", "key": "spend_per_day", "value": "2000", "default": "1000",
        "source": "tenant",
    }  # fmt: skip
    assert cust["allow"] == {"cust": ["25261", "Somalia"]}
    other = json_document(capsys, "fraud", "rules", acme, "--account", "other")
    assert (row(other["rules"], "spike.k")["value"], other["allow"]) == ("4", {})

    json_document(capsys, "fraud", "rules", acme, "--account", "cust", "--disallow", "25261")
    assert fraud.get_rules_versioned(acme)[0]["allow"] == {"cust": ["Somalia"]}
    capsys.readouterr()
    assert tollgate("fraud", "rules", acme, "--account", "cust") == 0
    text = capsys.readouterr().out
    lines = [line.split() for line in text.splitlines()]
    assert ["setting", "value", "default", "source"] in lines
    assert ["spike.k", "6", "3", "account"] in lines
    assert "allowed for cust: Somalia" in text


BAD_SETTINGS = [
        (("--set", "spike.kk=4"), "spike.kk is not a setting"),
        (("--set", "spike.k=-1"), "spike.k: '-1' must be zero or more"),
        (("--set", "spike.weeks=2.5"), "spike.weeks: '2.5' must be a whole number"),
        (("--set", "spikes.k=4"), "rule 'spikes' is not known"),
        (("--set", "spike.k"), "write RULE.KEY=VALUE"),
        (("--allow", "Somalia"), "--allow and --disallow need --account"),
        (("--account", "cust", "--allow", "Somalai"), "--allow 'Somalai': not a destination"),
        (("--account", "ghost", "--set", "spike.k=4"), "unknown account 'ghost'"),
]  # fmt: skip


def test_a_bad_setting_exits_2_naming_it_and_stores_nothing(acme, capsys):
    good = ("--set", "velocity.enabled=0")  # checked with the bad one: nothing is written
    for argv, message in BAD_SETTINGS:
        assert message in fails(capsys, 2, "fraud", "rules", acme, *good, *argv)
    assert fraud.get_rules_versioned(acme) == (None, 0)


def test_rules_changed_meanwhile_are_not_overwritten(acme, capsys, monkeypatch):
    read = fraud.get_rules_versioned

    def read_then_someone_else_writes(tenant):
        seen = read(tenant)
        fraud.put_rules(tenant, {"rules": {"spike.z": "5"}}, version=seen[1], actor="carol")
        return seen

    monkeypatch.setattr(fraud, "get_rules_versioned", read_then_someone_else_writes)
    message = fails(capsys, 1, "fraud", "rules", acme, "--set", "spike.k=4")
    assert f"rules of {acme} changed meanwhile; run it again" in message
    monkeypatch.undo()
    assert fraud.get_rules_versioned(acme) == ({"rules": {"spike.z": "5"}}, 1)


def test_ranges_shown_added_and_removed(acme, capsys):
    seeded = json_document(capsys, "fraud", "ranges", acme)
    assert len(seeded) == len(SEEDED)
    assert {
        "prefix": "252",
        "kind": "high_risk",
        "label": "Somalia",
        "source": "Cox default block list (TransNexus 2014)",
    } in seeded
    edited = json_document(
        capsys, "fraud", "ranges", acme, "--add", "25261:premium:Somalia: Golis mobile",
        "--add", "252:satellite", "--remove", "239", "--by", "alice",
    )  # fmt: skip
    by_prefix = {r["prefix"]: r for r in edited}
    assert len(edited) == len(SEEDED) + 1 - 1  # 25261 added, 239 removed, 252 replaced
    assert "239" not in by_prefix
    assert by_prefix["25261"] == {
        "prefix": "25261", "kind": "premium", "label": "Somalia: Golis mobile",
        "source": "operator edit",
    }  # fmt: skip
    assert by_prefix["252"] == {
        "prefix": "252", "kind": "satellite", "label": "Somalia", "source": "operator edit"
    }  # fmt: skip
    assert json_document(capsys, "fraud", "ranges", acme) == edited
    # Edits of one prefix collapse to the last one: the document does not grow with each.
    json_document(capsys, "fraud", "ranges", acme, "--remove", "252")
    edits, version = fraud.get_ranges_versioned(acme)
    assert version == 2
    assert edits == [
        {"prefix": "25261", "kind": "premium", "label": "Somalia: Golis mobile"},
        {"prefix": "239", "removed": True},
        {"prefix": "252", "removed": True},
    ]
    capsys.readouterr()
    assert tollgate("fraud", "ranges", acme, "--add", "8816:test") == 0
    assert capsys.readouterr().out.startswith("added 8816 (test: ")


BAD_EDITS = [
        (("--add", "25261:gold"), "--add '25261:gold': kind: 'gold' is not one of test,"),
        (("--add", "+25261:premium"), "prefix: '+25261' is not a string of digits"),
        (("--add", "1234567890123456:test"), "prefix: 1234567890123456 has 16 digits"),
        (("--remove", "999"), "--remove '999': prefix: 999 is not listed"),
        (("--add", "239:test", "--remove", "239"), "both name prefix 239"),
]  # fmt: skip


def test_a_bad_range_edit_exits_2_naming_the_field(acme, capsys):
    for argv, message in BAD_EDITS:
        assert message in fails(capsys, 2, "fraud", "ranges", acme, *argv)
    assert fraud.get_ranges_versioned(acme) == ([], 0)


def finding(account: str, rule: str, severity: str, hour: int, observed: str) -> Finding:
    return Finding(
        rule=rule, party="customer", account=account, scope="Somalia",
        window_start=hour * 3600, window_end=(hour + 1) * 3600,
        window_key=dt.datetime.fromtimestamp(hour * 3600, dt.UTC).strftime("%Y-%m-%dT%H"),
        severity=severity, observed=Decimal(observed), threshold=Decimal(60), unit="minutes",
        summary=f"{observed} minutes to Somalia", baseline=Decimal("1.50"),
    )  # fmt: skip


def test_alerts_are_listed_most_severe_first_with_the_columns(acme, capsys):
    now = dt.datetime(2026, 3, 2, 4, 5, tzinfo=dt.UTC)
    for f in (
        finding("cust", "spike", "warning", HOUR - 1, "90.50"),
        finding("cust", "spike", "critical", HOUR, "700.00"),
        finding("other", "high_risk", "warning", HOUR, "12.00"),
    ):
        fraud.put_alert(acme, alert_record(acme, f, None, now))
    listed = json_document(capsys, "fraud", "alerts", acme)
    seen = [(a["account"], a["rule"], a["severity"], a["observed"]) for a in listed]
    assert seen[0] == ("cust", "spike", "critical", "700.00")
    assert sorted(seen[1:]) == [
        ("cust", "spike", "warning", "90.50"),
        ("other", "high_risk", "warning", "12.00"),
    ]
    assert listed[0]["window"] == {
        "key": "2026-03-02T03", "start": "2026-03-02T03:00:00Z", "end": "2026-03-02T04:00:00Z"
    }  # fmt: skip
    mine = json_document(capsys, "fraud", "alerts", acme, "--account", "other")
    assert mine == [a for a in listed if a["account"] == "other"]
    capsys.readouterr()
    assert tollgate("fraud", "alerts", acme, "--account", "cust") == 0
    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split() == list(ALERT_COLUMNS)
    assert first.split() == [
        listed[0]["alert_id"], "cust", "spike", "critical", "Somalia", "700.00", "1.50", "60",
        "2026-03-02T04:05:00Z", "2026-03-02T04:05:00Z", "pending",
    ]  # fmt: skip
    assert second.split()[3] == "warning"
    assert "unknown account 'ghost'" in fails(
        capsys, 2, "fraud", "alerts", acme, "--account", "ghost"
    )


def test_evaluate_raises_the_spike_and_suspends_the_account(acme, capsys):
    # 700 minutes to Somalia in one hour; the account was first counted 5 weeks earlier and
    # never called Somalia: baseline 0 over 5 weeks, 700 >= critical_minutes (600).
    somalia = Counter("customer", "cust", "Somalia", HOUR, calls=260, answered=240,
                      seconds=42_000, amount=35_000_000)  # fmt: skip
    assert fraud.add_counters(acme, "incident.csv", [somalia]) == 1
    fraud.touch_active(acme, {("customer", "cust"): (HOUR - 5 * WEEK, HOUR)})

    outcome = json_document(capsys, "fraud", "evaluate", acme, "--at", "2026-03-02T04:10Z")
    assert (outcome["at"], outcome["hours"], outcome["status"]) == (
        "2026-03-02T04:10:00Z",
        3,
        "evaluated",
    )
    assert outcome["suspended"] == ["cust"]
    (alert,) = outcome["alerts"]
    assert (alert["rule"], alert["severity"], alert["account"], alert["destination"]) == (
        "spike", "critical", "cust", "Somalia"
    )  # fmt: skip
    assert (alert["observed"], alert["baseline"], alert["threshold"]) == ("700.00", "0.00", "60.00")
    stored = accounts.get_account(acme, "cust")
    assert stored.status == "suspended"
    assert stored.status_reason == f"fraud: alert {alert['alert_id']} (spike, Somalia)"
    (listed,) = json_document(capsys, "fraud", "alerts", acme)
    assert (listed["alert_id"], listed["action"]) == (alert["alert_id"], "suspended")

    # Forced again: the same alert, nothing new raised or suspended.
    capsys.readouterr()
    assert tollgate("fraud", "evaluate", acme, "--at", "2026-03-02T04:15") == 0
    assert capsys.readouterr().out.strip() == (
        f"fraud pass of {acme} at 2026-03-02T04:15:00Z over 3 hours: "
        "1 findings, 0 alerts new or escalated"
    )
    assert len(fraud.list_alerts(acme)) == 1
    # Two hours later the hour of the incident is out of a 1-hour pass.
    late = json_document(capsys, "fraud", "evaluate", acme, "--at", "2026-03-02T06:10Z",
                         "--hours", "1")  # fmt: skip
    assert (late["findings"], late["alerts"], late["suspended"]) == (0, [], [])


def test_a_fraud_suspension_is_lifted_by_account_resume_with_who_and_why(acme, capsys):
    reason = "fraud: alert 5e1f00c2a9d4b7e3f012 (spike, Somalia)"
    accounts.set_account_status(
        acme, "cust", "suspended", actor=accounts.caller("system:fraud"), reason=reason
    )
    resumed = json_document(capsys, "account", "resume", acme, "cust",
                            "--reason", "customer confirmed the Somalia campaign",
                            "--by", "alice")  # fmt: skip
    assert (resumed["status"], resumed["audit"]["by"]) == ("active", "alice")
    assert accounts.get_account(acme, "cust").status == "active"
    history = json_document(capsys, "account", "history", acme, "cust")
    assert [(e["by"], e["reason"], e["changes"]) for e in history] == [
        ("system:fraud", reason, [{"field": "status", "old": "active", "new": "suspended"}]),
        ("alice", "customer confirmed the Somalia campaign",
         [{"field": "status", "old": "suspended", "new": "active"}]),
    ]  # fmt: skip
