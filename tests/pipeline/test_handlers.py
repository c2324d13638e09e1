"""The Lambda entry points: S3 events through SQS in, partial-batch responses out."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.data_classes.s3_event import S3Event

from functions.ingest.handler import dropped_files, handle_cdr_drops
from functions.ingest.service import assign_parties
from functions.rate.handler import handle_normalized_files
from functions.store import files, lake
from tests.pipeline.carrier import FIRST_FILE, SWITCH, TENANT, set_up_carrier


def s3_event(key: str, etag: str = "abc123") -> str:
    """The body S3 sends to SQS: keys URL-encoded (spaces as '+', '/' kept by AWS)."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "eventTime": "2024-05-02T00:05:00.000Z",
                    "s3": {
                        "bucket": {"name": "tollgate-cdr"},
                        "object": {"key": key, "eTag": etag, "size": 10},
                    },
                }
            ]
        }
    )


class LambdaContext:
    function_name = "tollgate-test"
    memory_limit_in_mb = 2048
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:tollgate-test"
    aws_request_id = "req-1"


def sqs_event(*bodies: str) -> dict:
    return {"Records": [{"messageId": f"m{i}", "body": b} for i, b in enumerate(bodies)]}


def drops_in(body: str) -> list:
    return dropped_files(S3Event(json.loads(body)))


def test_s3_keys_are_url_decoded_and_name_tenant_switch_and_file():
    [drop] = drops_in(s3_event("incoming%2Facme%2Fsbc1%2FMaster+2024-05-01.csv"))
    assert (drop.tenant, drop.switch, drop.name) == ("acme", "sbc1", "Master 2024-05-01.csv")
    assert drop.key == "incoming/acme/sbc1/Master 2024-05-01.csv"
    assert drop.arrived.isoformat() == "2024-05-02"


def test_s3_test_events_and_objects_outside_incoming_name_no_file():
    assert drops_in(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []
    assert drops_in(s3_event("exports/report.csv")) == []


def test_the_same_object_always_gets_the_same_file_id_and_new_content_a_new_one():
    [a] = drops_in(s3_event("incoming/acme/sbc1/x.csv", etag="e1"))
    [b] = drops_in(s3_event("incoming/acme/sbc1/x.csv", etag="e1"))
    [c] = drops_in(s3_event("incoming/acme/sbc1/x.csv", etag="e2"))
    assert a.file_id == b.file_id != c.file_id


def test_ingest_handler_reports_only_the_failed_record_for_redelivery(aws, tmp_path):
    set_up_carrier(tmp_path)
    lake.put_cdr(TENANT, SWITCH, "day1.csv", FIRST_FILE.encode())
    _, etag = lake.get_cdr(TENANT, SWITCH, "day1.csv")
    event = sqs_event("{not json", s3_event(f"incoming/{TENANT}/{SWITCH}/day1.csv", etag))
    assert handle_cdr_drops(event, LambdaContext()) == {
        "batchItemFailures": [{"itemIdentifier": "m0"}]
    }
    [record] = files.list_files(TENANT)
    assert (record.status, record.counts["rows"], record.counts["quarantined"]) == (
        "ingested",
        7,
        2,
    )

    request = json.dumps({"tenant": TENANT, "switch": SWITCH, "file_id": record.file_id})
    assert handle_normalized_files(sqs_event(request), LambdaContext()) == {"batchItemFailures": []}
    assert files.get_file(TENANT, record.file_id).status == "done"


def test_a_file_for_an_unknown_switch_is_rejected_with_the_reason_not_retried(aws, tmp_path):
    set_up_carrier(tmp_path)
    lake.put_cdr(TENANT, "nosuch", "x.csv", b"call_id\n")
    event = sqs_event(s3_event(f"incoming/{TENANT}/nosuch/x.csv"))
    assert handle_cdr_drops(event, LambdaContext()) == {"batchItemFailures": []}
    [record] = files.list_files(TENANT)
    assert record.status == "rejected"
    assert "nosuch" in record.meta["error"]


def test_a_switch_default_supplier_fills_cdrs_that_name_none():
    table = pa.table(
        {"customer": ["a", "b", "c"], "supplier": [None, "", "VEND_X"], "caller": ["1", "2", "3"]}
    )
    out = assign_parties(table, "customer", "supplier", "VEND_BT")
    assert out.column("supplier").to_pylist() == ["VEND_BT", "VEND_BT", "VEND_X"]
    out = assign_parties(table, "caller", "supplier")
    assert out.column("customer").to_pylist() == ["1", "2", "3"]


def test_a_batch_whose_every_record_failed_raises_so_lambda_retries_it(aws):
    """Powertools' BatchProcessor raises when nothing succeeded (the hand-written loop raised
    its own BatchFailedError): Lambda then retries the batch even without partial responses."""
    with pytest.raises(BatchProcessingError, match="All records failed"):
        handle_cdr_drops(sqs_event("{not json"), LambdaContext())
    with pytest.raises(BatchProcessingError, match="All records failed"):
        handle_normalized_files(sqs_event('{"tenant": "acme"}'), LambdaContext())
