"""What the handlers tell CloudWatch: one EMF record per file and stage, logs that name the
tenant, the file and a correlation id, and X-Ray traces on Lambda.

The files are real (the carrier's, on moto); the EMF records are the JSON lines Powertools
prints, read back from stdout. Before issue 9 the handlers printed no metric at all, logged
no correlation id and were not traced: every test here failed on that code.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.ingest import handler as ingest_handler
from functions.rate import handler as rate_handler
from functions.shared.settings import settings
from functions.store import client, files, lake, monitoring
from tests.conftest import FAKE_ENVIRONMENT
from tests.pipeline.carrier import FIRST_FILE, SECOND_FILE, SWITCH, TENANT, set_up_carrier
from tests.pipeline.test_handlers import LambdaContext, s3_event

PROJECT_DIR = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2024, 5, 2, 0, 5, tzinfo=dt.UTC)


def emf_records(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def metric_values(record: dict[str, Any]) -> dict[str, tuple[str, float]]:
    """{name: (unit, value)} of one EMF record (Powertools writes each value as a list)."""
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    out = {}
    for metric in directive["Metrics"]:
        (value,) = record[metric["Name"]]
        out[metric["Name"]] = (metric["Unit"], value)
    return out


def sqs_record(message_id: str, body: str) -> dict[str, Any]:
    """An SQS record as Lambda delivers it."""
    return {
        "messageId": message_id,
        "receiptHandle": f"rh-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1714608300000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tollgate-ingest",
        "awsRegion": "us-east-1",
    }


class Clock:
    """The files table's clock: ingest and rating at chosen instants."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fixed = Clock()
    monkeypatch.setattr(files, "now", fixed)
    return fixed


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Both handlers' JSON log lines, at INFO (their loggers hold the stdout of import time)."""
    stream = io.StringIO()
    saved = []
    for logger in (ingest_handler.logger, rate_handler.logger):
        handler = logger.registered_handler
        saved.append((logger, handler, handler.setStream(stream), logger.log_level))
        logger.setLevel("INFO")
    yield stream
    for logger, handler, previous, level in saved:
        handler.setStream(previous)
        logger.setLevel(level)


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def drop_event(name: str, text: str, message_id: str) -> dict[str, Any]:
    lake.put_cdr(TENANT, SWITCH, name, text.encode())
    _, etag = lake.get_cdr(TENANT, SWITCH, name)
    body = s3_event(f"incoming/{TENANT}/{SWITCH}/{name}", etag)
    return {"Records": [sqs_record(message_id, body)]}


def rate_event(file_id: str, message_id: str, **extra: str) -> dict[str, Any]:
    body = json.dumps({"tenant": TENANT, "switch": SWITCH, "file_id": file_id, **extra})
    return {"Records": [sqs_record(message_id, body)]}


def file_id_of(name: str) -> str:
    [record] = [r for r in files.list_files(TENANT) if r.meta.get("name") == name]
    return record.file_id


# --- metrics ---------------------------------------------------------------------------------


def test_a_file_emits_its_counts_and_rating_lag_per_tenant_and_switch(aws, tmp_path, capsys, clock):
    set_up_carrier(tmp_path)
    capsys.readouterr()

    clock.now = T0
    ingest_handler.handle_cdr_drops(drop_event("day1.csv", FIRST_FILE, "drop-1"), LambdaContext())
    file_id = file_id_of("day1.csv")
    clock.now = T0 + dt.timedelta(minutes=7, seconds=30)
    rate_handler.handle_normalized_files(rate_event(file_id, "rate-1"), LambdaContext())

    ingested, rated = emf_records(capsys.readouterr().out)
    for record, service in ((ingested, "ingest"), (rated, "rate")):
        (directive,) = record["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Tollgate"
        # per tenant and switch, and the fleet-wide set the stack's alarms read
        assert directive["Dimensions"] == [["tenant", "switch", "service"], ["service"]]
        assert (record["tenant"], record["switch"], record["service"]) == (TENANT, SWITCH, service)
        assert record["file_id"] == file_id  # a property: searchable, not a metric per file
    assert metric_values(ingested) == {
        "FilesReceived": ("Count", 1),
        "CdrsIn": ("Count", 7),
        "CdrsQuarantined": ("Count", 2),
        "QuarantineShare": ("Percent", 28.57),  # 2 of 7 rows
    }
    assert metric_values(rated) == {
        "FilesRated": ("Count", 1),
        "CdrsRated": ("Count", 4),
        "CdrsUnrated": ("Count", 1),
        "CdrsDuplicate": ("Count", 0),
        "RatingLag": ("Seconds", 450.0),  # ingest record at T0, done at T0 + 7 min 30 s
    }
    # every CDR accounted for, in the metrics as in the files table
    rows = metric_values(ingested)["CdrsIn"][1]
    accounted = sum(
        metric_values(r)[name][1]
        for r, name in (
            (ingested, "CdrsQuarantined"),
            (rated, "CdrsRated"),
            (rated, "CdrsUnrated"),
            (rated, "CdrsDuplicate"),
        )
    )
    assert rows == accounted
    assert (ingested["cdr_file"], ingested["correlation_id"]) == ("day1.csv", "drop-1")


def test_resent_calls_count_as_duplicates_and_redeliveries_count_nothing(aws, tmp_path, capsys):
    set_up_carrier(tmp_path)
    context = LambdaContext()
    first = drop_event("day1.csv", FIRST_FILE, "drop-1")
    ingest_handler.handle_cdr_drops(first, context)
    rate_handler.handle_normalized_files(rate_event(file_id_of("day1.csv"), "rate-1"), context)
    capsys.readouterr()

    # SQS delivers the same drop and the same rate request again: the file was counted once
    ingest_handler.handle_cdr_drops(first, context)
    rate_handler.handle_normalized_files(rate_event(file_id_of("day1.csv"), "rate-1"), context)
    assert emf_records(capsys.readouterr().out) == []

    ingest_handler.handle_cdr_drops(drop_event("day2.csv", SECOND_FILE, "drop-2"), context)
    rate_handler.handle_normalized_files(rate_event(file_id_of("day2.csv"), "rate-2"), context)
    ingested, rated = emf_records(capsys.readouterr().out)
    assert metric_values(ingested)["CdrsIn"] == ("Count", 3)
    assert metric_values(ingested)["QuarantineShare"] == ("Percent", 0)
    assert {k: v for k, v in metric_values(rated).items() if k != "RatingLag"} == {
        "FilesRated": ("Count", 1),
        "CdrsRated": ("Count", 1),
        "CdrsUnrated": ("Count", 0),
        "CdrsDuplicate": ("Count", 2),  # c1 and c2 were charged with day1.csv
    }


def test_a_rejected_file_counts_as_received_and_rejected_only(aws, tmp_path, capsys):
    set_up_carrier(tmp_path)
    lake.put_cdr(TENANT, "nosuch", "x.csv", b"call_id\n")
    body = s3_event(f"incoming/{TENANT}/nosuch/x.csv")
    capsys.readouterr()
    ingest_handler.handle_cdr_drops({"Records": [sqs_record("drop-9", body)]}, LambdaContext())
    [record] = emf_records(capsys.readouterr().out)
    assert (record["tenant"], record["switch"]) == (TENANT, "nosuch")
    assert metric_values(record) == {
        "FilesReceived": ("Count", 1),
        "FilesRejected": ("Count", 1),
    }


def test_a_function_emits_only_the_metrics_it_owns():
    with pytest.raises(ValueError, match="CdrsRated"):
        monitoring.put_file_metrics("ingest", TENANT, SWITCH, "f1", {"CdrsRated": 1})


# --- logs ------------------------------------------------------------------------------------


def test_logs_name_tenant_file_and_a_correlation_id_carried_from_ingest_to_rate(
    aws, tmp_path, logs
):
    set_up_carrier(tmp_path)
    ingest_handler.handle_cdr_drops(drop_event("day1.csv", FIRST_FILE, "drop-1"), LambdaContext())
    file_id = file_id_of("day1.csv")
    # the rate request ingest sent carries the drop's correlation id (the rate function reads it
    # and it wins over the rate message's own id)
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=settings().rate_queue)["QueueUrl"]
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    sent = json.loads(message["Body"])
    assert sent == {
        "tenant": TENANT, "switch": SWITCH, "file_id": file_id, "correlation_id": "drop-1"
    }  # fmt: skip
    event = rate_event(file_id, "rate-1", correlation_id=sent["correlation_id"])
    rate_handler.handle_normalized_files(event, LambdaContext())

    by_message = {line["message"]: line for line in log_lines(logs)}
    ingested, rated = by_message["cdr file ingested"], by_message["cdr file rated"]
    for line in (ingested, rated):
        assert (line["tenant"], line["switch"], line["file_id"]) == (TENANT, SWITCH, file_id)
        assert line["correlation_id"] == "drop-1"
    assert (ingested["service"], rated["service"]) == ("ingest", "rate")
    assert ingested["cdr_file"] == "day1.csv"


def test_a_rate_request_without_a_correlation_id_is_correlated_by_its_message_id(
    aws, tmp_path, logs
):
    set_up_carrier(tmp_path)
    ingest_handler.handle_cdr_drops(drop_event("day1.csv", FIRST_FILE, "drop-1"), LambdaContext())
    rate_handler.handle_normalized_files(
        rate_event(file_id_of("day1.csv"), "rate-7"), LambdaContext()
    )
    [rated] = [line for line in log_lines(logs) if line["message"] == "cdr file rated"]
    assert rated["correlation_id"] == "rate-7"


def test_a_failed_record_is_reported_and_logged_with_its_file_and_correlation_id(
    aws, tmp_path, logs
):
    set_up_carrier(tmp_path)
    ingest_handler.handle_cdr_drops(drop_event("day1.csv", FIRST_FILE, "drop-1"), LambdaContext())
    file_id = file_id_of("day1.csv")
    unknown = "0" * 32  # no such file: rating fails and SQS will redeliver the request
    event = {
        "Records": [
            rate_event(unknown, "rate-2")["Records"][0],
            rate_event(file_id, "rate-1")["Records"][0],
        ]
    }
    result = rate_handler.handle_normalized_files(event, LambdaContext())

    assert result == {"batchItemFailures": [{"itemIdentifier": "rate-2"}]}
    assert files.get_file(TENANT, file_id).status == "done"  # the other record went on
    [warning] = [line for line in log_lines(logs) if line["level"] == "WARNING"]
    assert (warning["tenant"], warning["file_id"], warning["correlation_id"]) == (
        TENANT,
        unknown,
        "rate-2",
    )
    assert "unknown file" in warning["exception"]


# --- traces ----------------------------------------------------------------------------------

_TRACED_RUN = """
import json, sys
from tests.conftest import moto_account
from tests.pipeline.test_handlers import LambdaContext, s3_event
from functions.ingest.handler import handle_cdr_drops

with moto_account():
    from functions.store import lake
    lake.put_cdr("acme", "sbc9", "x.csv", b"call_id\\n")  # no such switch: rejected
    body = s3_event("incoming/acme/sbc9/x.csv")
    event = {"Records": [{"messageId": "m1", "body": body}]}
    print(json.dumps(handle_cdr_drops(event, LambdaContext())))
"""


def _run_on_lambda(trace_disabled: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the ingest handler in a fresh interpreter that looks like Lambda; collect what the
    X-Ray SDK sends to its daemon address (a UDP socket here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(0.5)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))},
            **{k: v for k, v in FAKE_ENVIRONMENT.items() if k != "POWERTOOLS_TRACE_DISABLED"},
            "LAMBDA_TASK_ROOT": str(PROJECT_DIR),
            "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;"
            "Parent=53995c3f42cd8ad8;Sampled=1",
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
        }
        if trace_disabled:
            env["POWERTOOLS_TRACE_DISABLED"] = "1"
        result = subprocess.run(
            [sys.executable, "-c", _TRACED_RUN],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        segments = []
        while True:
            try:
                datagram = daemon.recv(65536).decode()
            except TimeoutError:
                break
            _, _, document = datagram.partition("\n")
            segments.append(json.loads(document))
    response = json.loads(result.stdout.strip().splitlines()[-1])
    return response, segments


def _walk(segments: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for segment in segments:
        yield segment
        yield from _walk(segment.get("subsegments", []))


def test_on_lambda_the_handler_and_each_record_are_traced_with_tenant_and_file():
    response, segments = _run_on_lambda(trace_disabled=False)
    assert response == {"batchItemFailures": []}
    names = {s["name"]: s for s in _walk(segments)}
    assert "## handle_cdr_drops" in names
    [record] = [s for name, s in names.items() if name.endswith("ingest_record")]
    assert record["annotations"]["tenant"] == "acme"
    assert len(record["annotations"]["file_id"]) == 32
    # the AWS calls the record made (switch look-up, the file record written with its item
    # of the day index in one transaction), as its subsegments
    calls = {
        (s["name"], s["aws"]["operation"])
        for s in _walk(segments)
        if s.get("namespace") == "aws" and s.get("parent_id") == record["id"]
    }
    assert {("dynamodb", "GetItem"), ("dynamodb", "TransactWriteItems")} <= calls


def test_powertools_trace_disabled_runs_the_handler_untraced():
    response, segments = _run_on_lambda(trace_disabled=True)
    assert response == {"batchItemFailures": []}
    assert segments == []
