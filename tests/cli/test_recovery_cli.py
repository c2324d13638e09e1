"""`tollgate file status|retry` for failed and rejected files, `tollgate dlq list|redrive`.

In-process moto (the `aws` fixture) with the pipeline queues given dead-letter queues; the
ingest and rate handlers are fed what the commands queue, as their event sources would.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from functions.cli import main
from functions.ingest.handler import handle_cdr_drops
from functions.ingest.service import DroppedFile
from functions.rate.handler import handle_normalized_files
from functions.shared.settings import settings
from functions.store import client, files, lake
from tests.cli.conftest import json_document, run_command
from tests.pipeline.deliveries import (
    deliver_queued,
    ingest_delivery,
    s3_notification,
    with_dead_letter_queues,
)

TENANT = "acme"
ARRIVED = dt.date(2024, 5, 2)
CDRS = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier\n"
    "c1,15551230000,917012345678,2024-05-01T10:00:00Z,2024-05-01T10:00:05Z,"
    "2024-05-01T10:01:05Z,60,ANSWERED,cust,\n"
)


@pytest.fixture
def acme(aws, capsys):
    with_dead_letter_queues()
    for argv in (
        ("tenant", "create", TENANT),
        ("switch", "create", TENANT, "sbc-1", "--format", "generic"),
        ("account", "create", TENANT, "cust", "--kind", "customer"),
    ):
        assert run_command(capsys, *argv)[0] == 0


def queue_bodies(name: str) -> list[str]:
    """Every body waiting in a queue (received, then made visible again)."""
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for message in messages:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return sorted(message["Body"] for message in messages)


def send(name: str, body: str) -> None:
    sqs = client("sqs")
    sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"], MessageBody=body)


def rejected_drop(switch: str = "sbc-2", name: str = "x.csv"):
    """A file from a switch nobody registered, through the ingest handler: rejected."""
    obj = lake.put_cdr(TENANT, switch, name, CDRS.encode())
    _, etag = lake.get_cdr(TENANT, switch, name)
    dropped = DroppedFile(settings().cdr_bucket, obj.key, etag, TENANT, switch, name, ARRIVED)
    ingest_delivery(dropped, 1)
    return dropped


# --- file status --------------------------------------------------------------------------------


def test_file_status_shows_a_rejected_files_reason_and_a_failed_files_error(acme, capsys):
    """The old payload had no `reason`, and `failed` was not a status a file could have."""
    rejected_drop()
    files.put_file(TENANT, "f2", "ingested", {"rows": 4}, {"name": "b.csv", "switch": "sbc-1"})
    files.record_failure(TENANT, "f2", "RuntimeError: deck store down", stage="rate", final=True)

    listed = {row["file"]: row for row in json_document(capsys, "file", "status", TENANT)}

    assert listed["x.csv"]["status"] == "rejected"
    assert "sbc-2" in listed["x.csv"]["reason"] and "error" not in listed["x.csv"]
    assert {k: listed["b.csv"][k] for k in ("status", "error", "stage", "rows")} == {
        "status": "failed",
        "error": "RuntimeError: deck store down",
        "stage": "rate",
        "rows": 4,
    }
    # The table says it too, under the counts: an operator reads the text view at 3 a.m.
    assert main(["file", "status", TENANT]) == 0
    text = capsys.readouterr().out.splitlines()
    assert "b.csv (failed): RuntimeError: deck store down" in text
    assert any(line.startswith("x.csv (rejected): ") and "sbc-2" in line for line in text)


# --- file retry ---------------------------------------------------------------------------------


def test_a_rejected_file_is_retried_after_its_switch_is_registered(acme, capsys):
    """Before, the file item blocked the same object for good: it had to be renamed."""
    dropped = rejected_drop()
    assert run_command(capsys, "switch", "create", TENANT, "sbc-2", "--format", "generic")[0] == 0

    [row] = json_document(capsys, "file", "retry", TENANT, "x.csv")

    assert row == {
        "tenant": TENANT,
        "file": "x.csv",
        "file_id": dropped.file_id,
        "was": "rejected",
        "status": "retrying",
        "requested": "ingest",
    }
    assert deliver_queued(settings().ingest_queue, handle_cdr_drops) == 1
    record = files.get_file(TENANT, dropped.file_id)
    assert (record.status, record.counts["rows"], record.retries) == ("ingested", 1, 1)
    assert deliver_queued(settings().rate_queue, handle_normalized_files) == 1
    assert files.get_file(TENANT, dropped.file_id).status == "done"


def test_a_file_whose_rating_failed_is_retried_with_a_rate_request(acme, capsys):
    files.put_file(
        TENANT, "f1", "ingested", {"rows": 0}, {"name": "a.csv", "switch": "sbc-1", "days": []}
    )
    files.record_failure(TENANT, "f1", "Broken: ledger", stage="rate", final=True)

    status, out, _ = run_command(capsys, "file", "retry", TENANT, "f1")

    assert status == 0
    assert out.strip() == "a.csv (f1): failed -> ingested; rating requested"
    assert queue_bodies(settings().rate_queue) == [
        json.dumps({"tenant": TENANT, "switch": "sbc-1", "file_id": "f1"})
    ]
    assert files.get_file(TENANT, "f1").status == "ingested"


def test_retry_refuses_a_done_file_an_unknown_file_and_a_replaced_object(acme, capsys):
    files.put_file(TENANT, "f1", "ingested", {"rows": 1}, {"name": "a.csv", "switch": "sbc-1"})
    files.set_file_status(TENANT, "f1", "done", {"rated": 1})
    status, _, err = run_command(capsys, "file", "retry", TENANT, "a.csv")
    assert status == 1
    assert "a.csv is done: its calls were charged once, so there is nothing to retry" in err

    status, _, err = run_command(capsys, "file", "retry", TENANT, "nope.csv")
    assert (status, err.strip()) == (2, "tollgate: error: no file 'nope.csv' in tenant acme")

    dropped = rejected_drop()
    lake.put_cdr(TENANT, "sbc-2", "x.csv", CDRS.encode() + b"\n")  # new content, same key
    status, _, err = run_command(capsys, "file", "retry", TENANT, dropped.file_id)
    assert status == 1
    assert "was replaced since it was dropped; the new object is its own file" in err

    assert files.get_file(TENANT, dropped.file_id).status == "rejected"
    assert queue_bodies(settings().ingest_queue) == []
    assert queue_bodies(settings().rate_queue) == []


# --- dlq list / redrive -------------------------------------------------------------------------


@pytest.fixture
def dead_letters(acme):
    """One dead letter per queue, each naming a failed file, and one that names no file."""
    obj = lake.put_cdr(TENANT, "sbc-1", "in.csv", CDRS.encode())
    _, etag = lake.get_cdr(TENANT, "sbc-1", "in.csv")
    drop = DroppedFile(settings().cdr_bucket, obj.key, etag, TENANT, "sbc-1", "in.csv", ARRIVED)
    meta = {"switch": "sbc-1", "name": "in.csv", "key": obj.key, "etag": etag}
    files.record_failure(TENANT, drop.file_id, "Broken: S3", stage="ingest", final=True, meta=meta)
    files.put_file(
        TENANT, "r1", "ingested", {"rows": 0}, {"name": "r.csv", "switch": "sbc-1", "days": []}
    )
    files.record_failure(TENANT, "r1", "Broken: ledger", stage="rate", final=True)
    send(f"{settings().ingest_queue}-dlq", s3_notification(drop))
    send(
        f"{settings().rate_queue}-dlq",
        json.dumps({"tenant": TENANT, "switch": "sbc-1", "file_id": "r1"}),
    )
    send(f"{settings().rate_queue}-dlq", "not json")
    return drop


def test_dlq_list_names_each_dead_letters_file_and_error_and_leaves_them(dead_letters, capsys):
    rows = json_document(capsys, "dlq", "list")

    named = [(r["queue"], r["tenant"], r["file"], r["status"], r["error"]) for r in rows]
    assert sorted(named, key=str) == [
        ("ingest", TENANT, "in.csv", "failed", "Broken: S3"),
        ("rate", TENANT, "r.csv", "failed", "Broken: ledger"),
        ("rate", None, None, None, None),
    ]
    by_file = {r["file"]: r for r in rows}
    assert by_file["in.csv"]["file_id"] == dead_letters.file_id
    assert by_file["r.csv"]["dead_letter_queue"] == f"{settings().rate_queue}-dlq"
    assert [r["body"] for r in rows if r["file"] is None] == ["not json"]
    assert json_document(capsys, "dlq", "list") == rows  # listing moved nothing
    assert [r["file"] for r in json_document(capsys, "dlq", "list", "--queue", "ingest")] == [
        "in.csv"
    ]
    _, out, _ = run_command(capsys, "dlq", "list", "--queue", "rate")
    assert f"rate    {TENANT}/r.csv (r1, 1 failed deliveries) failed: Broken: ledger" in out


def test_dlq_redrive_sends_dead_letters_back_and_reopens_their_failed_files(dead_letters, capsys):
    """Redriven alone, the rate request of a `failed` file would be ignored (rating runs only
    `ingested` files): the redrive reopens it first."""
    rows = json_document(capsys, "dlq", "redrive", "--queue", "rate")

    assert sorted((r["file"] or "", r["status"] or "") for r in rows) == [
        ("", ""),
        ("r.csv", "ingested"),
    ]
    assert queue_bodies(f"{settings().rate_queue}-dlq") == []
    assert queue_bodies(settings().rate_queue) == sorted(
        ["not json", json.dumps({"tenant": TENANT, "switch": "sbc-1", "file_id": "r1"})]
    )
    assert files.get_file(TENANT, "r1").status == "ingested"
    assert files.find_file(TENANT, dead_letters.file_id).status == "failed"  # not redriven

    status, out, _ = run_command(capsys, "dlq", "redrive")
    assert status == 0
    assert out.splitlines()[:2] == [
        f"moved 1 message(s) from {settings().ingest_queue}-dlq to {settings().ingest_queue}",
        f"moved 0 message(s) from {settings().rate_queue}-dlq to {settings().rate_queue}",
    ]
    assert files.find_file(TENANT, dead_letters.file_id).status == "retrying"
    assert deliver_queued(settings().ingest_queue, handle_cdr_drops) == 1
    assert files.get_file(TENANT, dead_letters.file_id).status == "ingested"
