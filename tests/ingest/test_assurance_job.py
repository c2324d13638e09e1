"""The revenue assurance check on moto: the registry and lake seeded directly with 14 days of
history (tests/ingest/test_assurance.py's world), the settings in the accounts table, the
daily job publishing each alert once on the tollgate bus, and `tollgate assurance`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from functions.cli import main
from functions.ingest import assurance
from functions.ingest.handler import AssurancePassFailed, handle_assurance_schedule
from functions.ingest.service import DroppedFile, ingest
from functions.shared.settings import settings
from functions.store import accounts, client, events, files, lake
from tests.conftest import operator_account
from tests.ingest.test_assurance import PATTERN, D, build_world

TENANT = "acme"
# What the world's sw1 raises on D: every check but refused files (it has none).
RAISED = [c for c in assurance.CHECKS if c != "rejected_files"]
BROKEN = "broken"  # a tenant whose lake lost a rated table: its check fails
AFTER = "2026-11-21T06:30:00Z"  # the schedule's run for D
NOW = dt.datetime(2026, 11, 21, 6, 30, tzinfo=dt.UTC)


class LambdaContext:
    function_name = "tollgate-assurance"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:tollgate-assurance"
    aws_request_id = "req-1"


def seed(tenant: str, world) -> None:
    model = files._m().file
    for r in world.records:
        model(
            tenant,
            f"FILE#{r.file_id}",
            status=r.status,
            meta=r.meta,
            created_at=r.created_at,
            updated_at=r.created_at,
            **r.counts,
        ).save()
    for (area, day, file_id), table in world.lake.tables.items():
        lake.put_table(area, tenant, day, file_id, table)


@pytest.fixture(scope="module")
def stack():
    """One moto account: acme seeded with the world, a queue catching assurance alerts."""
    with operator_account():
        for tenant in (BROKEN, TENANT):
            accounts.create_tenant(tenant)
            for switch in ("sw1", "sw2"):
                accounts.create_switch(tenant, switch, format="generic")
        world = build_world()
        seed(TENANT, world)
        seed(BROKEN, world)
        client("s3").delete_object(
            Bucket=settings().lake_bucket,
            Key=lake.table_key("rated", BROKEN, D.isoformat(), "fa"),
        )
        sqs = client("sqs")
        queue = sqs.create_queue(QueueName="assurance-alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        bus = client("events")
        bus.put_rule(
            Name="assurance",
            EventBusName=settings().event_bus,
            EventPattern=json.dumps(
                {"source": [events.ASSURANCE_SOURCE], "detail-type": [events.ASSURANCE_ALERT]}
            ),
        )
        bus.put_targets(
            Rule="assurance",
            EventBusName=settings().event_bus,
            Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}],
        )
        yield queue


def delivered(queue: str) -> list[dict]:
    sqs, out = client("sqs"), []
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        messages = got.get("Messages", [])
        if not messages:
            return out
        for message in messages:
            event = json.loads(message["Body"])
            assert event["detail-type"] == "Tollgate Assurance Alert"
            out.append(event["detail"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


def run(capsys, *argv: str) -> tuple[int, dict | str]:
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    if status == 0 and "--json" in argv:
        return status, json.loads(out)
    return status, out + err


def test_switch_and_tenant_settings_are_stored_audited_and_checked(stack, capsys):
    for tenant in (TENANT, BROKEN):
        status, shown = run(
            capsys, "switch", "assurance", tenant, "sw1", "--sequence-pattern", PATTERN,
            "--sequence-modulus", "10000", "--json",
        )  # fmt: skip
        assert status == 0, shown
    assert shown == {
        "tenant": BROKEN,
        "switch": "sw1",
        "sequence_pattern": PATTERN,
        "sequence_modulus": 10000,
    }
    assert accounts.get_assurance_settings(TENANT)["switches"] == {
        "sw1": {"sequence_pattern": PATTERN, "sequence_modulus": 10000}
    }
    [entry] = accounts.list_audit(TENANT, "switch", "sw1")
    assert [(c.field, c.old, c.new) for c in entry.changes] == [
        ("sequence_pattern", None, PATTERN),
        ("sequence_modulus", None, 10000),
    ]
    status, message = run(capsys, "switch", "assurance", TENANT, "sw1", "--sequence-pattern", "(")
    assert status == 2 and "regular expression" in message
    status, message = run(capsys, "switch", "assurance", TENANT, "nope", "--sequence-modulus", "9")
    assert status == 2 and "nope" in message
    status, message = run(capsys, "assurance", TENANT, "--set", "unrated_share=7")
    assert status == 2 and "unrated_share" in message
    status, shown = run(capsys, "assurance", TENANT, "--set", "late_hours=8", "--json")
    assert status == 0 and shown["thresholds"]["late_hours"] == 8
    status, shown = run(capsys, "assurance", TENANT, "--set", "late_hours=", "--json")
    assert shown["thresholds"]["late_hours"] == 6  # back to the default
    assert accounts.get_assurance_settings(TENANT)["thresholds"] == {}


def test_the_check_on_demand_reads_the_stores_and_publishes_nothing(stack, capsys):
    status, report = run(capsys, "assurance", TENANT, "--day", D.isoformat(), "--json")
    assert status == 0
    sw1, sw2 = report["switches"]
    assert sw1["sequence"]["gaps"] == [[9999, 9999], [0, 0]]
    assert sw1["hours"]["silent"] == [14]
    assert [f["name"] for f in sw1["late_files"]] == ["cdr_0003.csv"]
    assert sw1["duplicate_calls"] == 3
    assert sw1["quarantine"]["reasons"] == {"bad_number": 1, "malformed": 1}
    assert sw1["unknown_account"] == {"calls": 3, "money_not_billed": "0.051500"}
    assert sw1["money_not_billed"] == "0.066724"
    assert [a["check"] for a in sw1["alerts"]] == RAISED
    assert sw1["rejected_files"] == [] and sw1["files"]["rejected"] == 0
    assert sw2["alerts"] == [] and report["published"] == []
    assert delivered(stack) == []
    status, text = run(capsys, "assurance", TENANT, "--day", D.isoformat(), "--switch", "sw1")
    assert status == 0
    assert "0.066724 USD" in text and "sequence_gap 2 (threshold 0)" in text
    with pytest.raises(SystemExit) as usage:
        main(["assurance", TENANT, "--day", "2026-13-01"])
    assert usage.value.code == 2


def test_the_job_publishes_each_alert_once_and_a_failing_tenant_stops_no_other(stack):
    with pytest.raises(AssurancePassFailed, match=BROKEN):
        handle_assurance_schedule({"time": AFTER}, LambdaContext())
    first = delivered(stack)
    assert sorted(e["check"] for e in first) == sorted(RAISED)
    assert {(e["tenant"], e["switch"], e["day"]) for e in first} == {(TENANT, "sw1", "2026-11-20")}
    money = next(e for e in first if e["check"] == "money_not_billed")
    assert (money["value"], money["currency"]) == ("0.066724", "USD")
    assert money["alert_id"] == assurance.alert_id(TENANT, "sw1", D, "money_not_billed")
    # The rerun (EventBridge's retry of the failed invocation) publishes nothing again.
    with pytest.raises(AssurancePassFailed):
        handle_assurance_schedule({"time": AFTER}, LambdaContext())
    assert delivered(stack) == []
    for check in RAISED:
        assert files.alert_state(TENANT, f"sw1#{D}#{check}") == "sent"


def test_a_crash_between_publish_and_record_publishes_once(stack, monkeypatch):
    tenant = "crashy"
    accounts.create_tenant(tenant)
    accounts.create_switch(tenant, "sw1", format="generic")
    accounts.create_switch(tenant, "sw2", format="generic")
    accounts.set_assurance_settings(
        tenant, {"sequence_pattern": PATTERN, "sequence_modulus": 10000}, switch="sw1"
    )
    seed(tenant, build_world())
    real = files.alert_sent
    crashes = []

    def crash(tenant_, key):
        crashes.append(key)
        raise RuntimeError("the Lambda died after the publish")

    monkeypatch.setattr(files, "alert_sent", crash)
    with pytest.raises(RuntimeError):
        assurance.run_assurance(
            tenant, D, files=files, accounts=accounts, lake=lake, events=events, now=NOW
        )
    assert len(delivered(stack)) == 1  # the first alert went out, then the crash
    key = crashes[0]
    assert files.alert_state(tenant, key) == "pending"
    monkeypatch.setattr(files, "alert_sent", real)
    again = assurance.run_assurance(
        tenant, D, files=files, accounts=accounts, lake=lake, events=events,
        now=NOW + dt.timedelta(minutes=5),
    )  # fmt: skip
    rest = delivered(stack)
    assert len(rest) == 5 and len(again.published) == 5  # the crashed one is not sent again
    assert key.split("#")[2] not in {e["check"] for e in rest}
    assert files.alert_state(tenant, key) == "pending"
    # Past the lease the pending one goes out again, under the same alert_id.
    later = assurance.run_assurance(
        tenant, D, files=files, accounts=accounts, lake=lake, events=events,
        now=NOW + files.ALERT_LEASE + dt.timedelta(minutes=1),
    )  # fmt: skip
    [repeat] = delivered(stack)
    assert later.published == [repeat["alert_id"]]
    assert repeat["alert_id"] == assurance.alert_id(tenant, "sw1", D, key.split("#")[2])
    assert files.alert_state(tenant, key) == "sent"


# --- files refused whole or failed: seen through the registry's arrival index -------------

DROPS = "drops"  # a tenant whose files of D are refused whole or failed


class CountedFiles:
    """The files adapter, with the file ids whose records a check read."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def __getattr__(self, name):
        return getattr(files, name)

    def get_files(self, tenant, file_ids):
        self.read += file_ids
        return files.get_files(tenant, file_ids)


class RateRequests:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_rate_request(self, tenant, switch, file_id):
        self.sent.append(file_id)


def drop(monkeypatch, switch: str, name: str, data: bytes, when: dt.datetime):
    """Drop a file and ingest it at `when` (the registry's clock) through the real service."""
    where = lake.put_cdr(DROPS, switch, name, data)
    _, etag = lake.get_cdr(DROPS, switch, name)
    dropped = DroppedFile(
        settings().cdr_bucket, where.key, etag.strip('"'), DROPS, switch, name, when.date(),
        size=len(data),
    )  # fmt: skip
    monkeypatch.setattr(files, "now", lambda: when)
    outcome = ingest(
        dropped, lake=lake, switches=accounts, files=files, rate_requests=RateRequests()
    )
    return dropped, outcome


def test_files_refused_whole_or_failed_are_reported_and_alert_once(stack, capsys, monkeypatch):
    accounts.create_tenant(DROPS)
    accounts.create_switch(DROPS, "sw1", format="generic")
    on_d = dt.datetime.combine(D, dt.time(8), dt.UTC)
    # A switch nobody registered sends a file: refused, none of its calls billed.
    ghost, outcome = drop(monkeypatch, "ghost", "g_0001.csv", b"call_id,caller\n1,2\n", on_d)
    assert outcome.status == "rejected"
    # sw1 sends a file that is not readable at all (a truncated gzip).
    junk, outcome = drop(
        monkeypatch, "sw1", "cdr_0007.csv", b"\x1f\x8b\x08junk", on_d + dt.timedelta(hours=1)
    )
    assert outcome.status == "rejected"
    # Redelivered: the same drop again writes nothing new.
    assert drop(monkeypatch, "sw1", "cdr_0007.csv", b"\x1f\x8b\x08junk", on_d)[1].status == (
        "already"
    )
    # sw1's next file crashed on its last delivery: failed, waiting for a retry.
    crashed = DroppedFile(
        settings().cdr_bucket, "incoming/drops/sw1/cdr_0008.csv", "e8", DROPS, "sw1",
        "cdr_0008.csv", D,
    )  # fmt: skip
    monkeypatch.setattr(files, "now", lambda: on_d + dt.timedelta(hours=2))
    assert (
        files.record_failure(
            DROPS,
            crashed.file_id,
            "MemoryError: out of memory",
            stage="ingest",
            final=True,
            meta=dataclasses.asdict(crashed),
        )
        == "failed"
    )
    # Refused files of other days: outside the check's window, never read.
    before, _ = drop(monkeypatch, "ghost", "g_0000.csv", b"x", on_d - dt.timedelta(days=20))
    after, _ = drop(monkeypatch, "ghost", "g_0002.csv", b"x", on_d + dt.timedelta(days=1))
    monkeypatch.undo()

    counted = CountedFiles()
    delivered(stack)
    report = None
    for _ in range(2):  # the rerun publishes nothing again
        result = assurance.run_assurance(
            DROPS, D, files=counted, accounts=accounts, lake=lake, events=events, now=NOW
        )
        report = report or result.as_json()
    assert before.file_id not in counted.read and after.file_id not in counted.read
    assert sorted(set(counted.read)) == sorted([ghost.file_id, junk.file_id, crashed.file_id])
    by_switch = {s["switch"]: s for s in report["switches"]}
    assert sorted(by_switch) == ["ghost", "sw1"]
    [refused] = by_switch["ghost"]["rejected_files"]
    assert refused["file_id"] == ghost.file_id and refused["name"] == "g_0001.csv"
    assert refused["status"] == "rejected" and "ghost" in refused["reason"]
    assert refused["not_billed"] == "the whole file" and refused["rows"] is None
    assert refused["bytes"] == len(b"call_id,caller\n1,2\n")
    assert refused["arrived"] == "2026-11-20T08:00:00Z"
    sw1_files = by_switch["sw1"]["rejected_files"]
    assert [(f["name"], f["status"]) for f in sw1_files] == [
        ("cdr_0007.csv", "rejected"),
        ("cdr_0008.csv", "failed"),
    ]
    assert "gzip" in sw1_files[0]["reason"]
    assert sw1_files[1]["reason"] == "MemoryError: out of memory"
    assert sw1_files[1]["stage"] == "ingest" and sw1_files[1]["rows"] is None
    assert [f["bytes"] for f in sw1_files] == [len(b"\x1f\x8b\x08junk"), None]
    # The day index: one item per file, where it first arrived; a retry's write of the
    # record (here the refusal again, later) rewrites the same item.
    monkeypatch.setattr(files, "now", lambda: on_d + dt.timedelta(days=3))
    assert files.put_file(DROPS, junk.file_id, "rejected", meta={"switch": "sw1"})
    monkeypatch.undo()
    assert files.arrived_files(DROPS, D - dt.timedelta(days=30), D + dt.timedelta(days=5)) == [
        ("2026-10-31", "ghost", before.file_id),
        *sorted(
            [("2026-11-20", "ghost", ghost.file_id), ("2026-11-20", "sw1", junk.file_id),
             ("2026-11-20", "sw1", crashed.file_id)]
        ),
        ("2026-11-21", "ghost", after.file_id),
    ]  # fmt: skip
    assert [f["name"] for f in by_switch["sw1"]["files"]["received"]] == [
        "cdr_0007.csv",
        "cdr_0008.csv",
    ]
    alerts = delivered(stack)
    assert sorted((a["switch"], a["check"], a["value"]) for a in alerts) == [
        ("ghost", "rejected_files", 1),
        ("sw1", "rejected_files", 2),
    ]
    # The command line shows the same, the unregistered switch by its name.
    status, shown = run(capsys, "assurance", DROPS, "--day", D.isoformat(), "--json")
    assert status == 0
    assert [s["switch"] for s in shown["switches"]] == ["ghost", "sw1"]
    assert shown["switches"][0]["rejected_files"] == by_switch["ghost"]["rejected_files"]
    status, shown = run(
        capsys, "assurance", DROPS, "--day", D.isoformat(), "--switch", "ghost", "--json"
    )
    assert status == 0 and [s["switch"] for s in shown["switches"]] == ["ghost"]
    status, text = run(capsys, "assurance", DROPS, "--day", D.isoformat())
    assert "ghost: rejected_files 1 (threshold 0)" in text
    # A tenant that tolerates one refused file a day hears of sw1's two, not of ghost's one.
    status, shown = run(capsys, "assurance", DROPS, "--set", "rejected_files=1", "--json")
    assert status == 0 and shown["thresholds"]["rejected_files"] == 1
    status, shown = run(capsys, "assurance", DROPS, "--day", D.isoformat(), "--json")
    assert [(s["switch"], s["alerts"]) for s in shown["switches"]] == [
        ("ghost", []),
        ("sw1", [{"check": "rejected_files", "value": 2, "threshold": "1"}]),
    ]
