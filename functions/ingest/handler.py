"""The ingest Lambda: S3 `ObjectCreated` notifications, delivered through SQS.

Powertools' BatchProcessor hands each SQS record to `ingest_record` and reports the records
that raised in `batchItemFailures` (they come back after the visibility timeout, then go to
the dead-letter queue); a batch whose every record failed raises instead, so Lambda retries it
even where the event source mapping ignores partial responses. Each new file's counts go out
as one EMF record (functions.store.monitoring); logs carry tenant, switch, file id and the
drop's SQS message id as correlation id.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes.s3_event import S3Event
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from functions.ingest.service import DroppedFile, IngestOutcome, ingest
from functions.shared.passes import over_tenants, scheduled_time
from functions.store import accounts, batches, files, lake, monitoring, queues

logger = Logger(service=monitoring.INGEST)
# Only AWS calls become subsegments; tracing is off outside Lambda (and where
# POWERTOOLS_TRACE_DISABLED is set), so tests and the local stack run untraced.
tracer = Tracer(service=monitoring.INGEST, patch_modules=("botocore",))
DROP_KEYS = ["tenant", "switch", "file_id", "cdr_file"]


def dropped_files(event: S3Event) -> list[DroppedFile]:
    """The CDR files an S3 notification names; none for S3's `s3:TestEvent`."""
    if "Records" not in event:  # the s3:TestEvent S3 sends when the notification is set up
        return []
    drops = []
    for record in event.records:
        if not record.event_name.startswith("ObjectCreated"):
            continue
        s3 = record.s3
        key = unquote_plus(s3.get_object.key)  # S3 event keys are URL-encoded
        try:
            where = lake.parse_cdr_key(key)
        except ValueError:
            logger.warning("ignoring an object outside incoming/", key=key)
            continue
        drops.append(
            DroppedFile(
                bucket=s3.bucket.name,
                key=key,
                etag=s3.get_object.etag.strip('"'),
                tenant=where.tenant,
                switch=where.switch,
                name=where.name,
                arrived=dt.datetime.fromisoformat(record.event_time.replace("Z", "+00:00")).date(),
                size=s3.get_object.size,
            )
        )
    return drops


@tracer.capture_method(capture_response=False)
def ingest_record(record: SQSRecord) -> None:
    """One SQS message: the S3 notification of (normally) one dropped file."""
    logger.remove_keys(DROP_KEYS)  # the previous record's file
    logger.set_correlation_id(record.message_id)
    for drop in dropped_files(record.decoded_nested_s3_event):
        logger.append_keys(
            tenant=drop.tenant, switch=drop.switch, file_id=drop.file_id, cdr_file=drop.name
        )
        tracer.put_annotation(key="tenant", value=drop.tenant)
        tracer.put_annotation(key="file_id", value=drop.file_id)
        with files.failure_recorded(  # the last delivery's failure leaves the file `failed`
            drop.tenant,
            drop.file_id,
            "ingest",
            last_delivery=lambda: queues.is_last_delivery(record),
            meta=asdict(drop),
        ):
            outcome = ingest(
                drop,
                lake=lake,
                switches=accounts,
                files=files,
                rate_requests=CorrelatedRateRequests(record.message_id),
            )
        logger.info(
            "cdr file ingested",
            status=outcome.status,
            rows=outcome.rows,
            quarantined=outcome.quarantined,
            error=outcome.error or None,
        )
        publish_metrics(drop, outcome, correlation_id=record.message_id)


def publish_metrics(drop: DroppedFile, outcome: IngestOutcome, *, correlation_id: str) -> None:
    """A new file's EMF record; nothing for a redelivered drop (already counted once)."""
    if outcome.status == "already":
        return
    values: dict[str, float] = {monitoring.FILES_RECEIVED: 1}
    if outcome.status == "rejected":
        values[monitoring.FILES_REJECTED] = 1
    else:
        values[monitoring.CDRS_IN] = outcome.rows
        values[monitoring.CDRS_QUARANTINED] = outcome.quarantined
        if outcome.rows:
            values[monitoring.QUARANTINE_SHARE] = round(100 * outcome.quarantined / outcome.rows, 2)
    monitoring.put_file_metrics(
        monitoring.INGEST,
        drop.tenant,
        drop.switch,
        outcome.file_id,
        values,
        cdr_file=drop.name,
        correlation_id=correlation_id,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handle_cdr_drops(event: dict, context: Any) -> dict:
    return batches.process_sqs_batch(event, context, ingest_record, logger=logger)


class CorrelatedRateRequests:
    """The rate queue, carrying this drop's correlation id to the rate function's logs."""

    def __init__(self, correlation_id: str) -> None:
        self.correlation_id = correlation_id

    def send_rate_request(self, tenant: str, switch: str, file_id: str) -> None:
        queues.send_rate_request(tenant, switch, file_id, correlation_id=self.correlation_id)


# --- revenue assurance: yesterday's files and calls of every tenant, once a day -----------


class AssurancePassFailed(Exception):
    """Some tenant's daily assurance check failed; the others were done."""


@logger.inject_lambda_context(clear_state=True)
def handle_assurance_schedule(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Check the day before the schedule's time for every tenant (functions.ingest.assurance)
    and publish each alert once. A tenant that fails does not stop the others; the invocation
    fails after them (the alarm fires; EventBridge's retry reruns it, and what was published
    is not published again)."""
    from functions.ingest.assurance import run_assurance
    from functions.store import events

    now = scheduled_time(event, lambda: dt.datetime.now(dt.UTC))
    day = now.date() - dt.timedelta(days=1)

    def check(tenant: str):
        return run_assurance(
            tenant, day, files=files, accounts=accounts, lake=lake, events=events, now=now
        )

    done = over_tenants(
        [t.tenant for t in accounts.list_tenants()],
        check,
        lambda tenant: logger.exception("assurance check failed", extra={"tenant": tenant}),
    )
    summary: dict[str, Any] = {
        "day": day.isoformat(),
        "tenants": len(done.done),
        "alerts": sum(len(checked.published) for _, checked in done.done),
        "failed": done.failed,
    }
    logger.info("assurance checks", extra=summary)
    if summary["failed"]:
        raise AssurancePassFailed(f"assurance check failed for {', '.join(summary['failed'])}")
    return summary
