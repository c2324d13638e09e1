"""The ingest Lambda: S3 `ObjectCreated` notifications, delivered through SQS.

Parses the event, calls the ingest service once per dropped file, maps failures to SQS
partial-batch responses (a failed record comes back after its visibility timeout, then goes
to the dead-letter queue).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger

from functions.ingest.service import DroppedFile, ingest
from functions.store import accounts, files, lake, queues

logger = Logger(service="ingest")


def dropped_files(body: str) -> list[DroppedFile]:
    """The CDR files an S3 notification names; none for S3's `s3:TestEvent`."""
    message = json.loads(body)
    drops = []
    for record in message.get("Records", []):
        if not record.get("eventName", "").startswith("ObjectCreated"):
            continue
        s3 = record["s3"]
        key = unquote_plus(s3["object"]["key"])  # S3 event keys are URL-encoded
        try:
            where = lake.parse_cdr_key(key)
        except ValueError:
            logger.warning("ignoring an object outside incoming/", key=key)
            continue
        drops.append(
            DroppedFile(
                bucket=s3["bucket"]["name"],
                key=key,
                etag=s3["object"].get("eTag", "").strip('"'),
                tenant=where.tenant,
                switch=where.switch,
                name=where.name,
                arrived=dt.datetime.fromisoformat(
                    record["eventTime"].replace("Z", "+00:00")
                ).date(),
            )
        )
    return drops


@logger.inject_lambda_context(clear_state=True)
def handle_cdr_drops(event: dict, context: Any) -> dict:
    failures = []
    for record in event.get("Records", []):
        try:
            for drop in dropped_files(record["body"]):
                outcome = ingest(
                    drop, lake=lake, switches=accounts, files=files, rate_requests=queues
                )
                logger.info(
                    "cdr file ingested",
                    tenant=drop.tenant,
                    switch=drop.switch,
                    cdr_file=drop.name,
                    file_id=outcome.file_id,
                    status=outcome.status,
                    rows=outcome.rows,
                    quarantined=outcome.quarantined,
                    error=outcome.error or None,
                )
        except Exception:
            logger.exception("cdr drop failed; SQS will redeliver", message_id=record["messageId"])
            failures.append({"itemIdentifier": record["messageId"]})
    if failures and len(failures) == len(event.get("Records", [])):
        # Nothing succeeded: raise, so Lambda retries the batch even where the event source
        # mapping does not report partial failures (Chalice does not enable it).
        raise BatchFailedError(f"{len(failures)} record(s) failed; SQS will redeliver")
    return {"batchItemFailures": failures}


class BatchFailedError(RuntimeError):
    """Every record of an SQS batch failed."""
