"""The rate Lambda: one SQS message per normalised file to rate and charge.

Powertools' BatchProcessor hands each rate request to `rate_record` and reports those that
raised in `batchItemFailures`; a batch whose every record failed raises, so Lambda retries it.
A file that reaches `done` here emits one EMF record (functions.store.monitoring) with its
counts and its rating lag; logs carry tenant, switch, file id and a correlation id (the one
ingest put in the request, else this message's id).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from functions.rate.service import DeckCache, RateOutcome, rate_file
from functions.store import (
    accounts,
    batches,
    events,
    files,
    holds,
    lake,
    ledger,
    monitoring,
    queues,
)

logger = Logger(service=monitoring.RATE)
# Only AWS calls become subsegments; tracing is off outside Lambda (and where
# POWERTOOLS_TRACE_DISABLED is set), so tests and the local stack run untraced.
tracer = Tracer(service=monitoring.RATE, patch_modules=("botocore",))
# Compiled decks outlive one invocation: a warm container rates the next file at once.
DECKS = DeckCache()
FILE_KEYS = ["tenant", "switch", "file_id"]


@tracer.capture_method(capture_response=False)
def rate_record(record: SQSRecord) -> None:
    """One rate request: {"tenant", "switch", "file_id"[, "correlation_id"]}."""
    logger.remove_keys(FILE_KEYS)  # the previous record's file
    request = record.json_body
    tenant, switch, file_id = request["tenant"], request["switch"], request["file_id"]
    correlation_id = request.get("correlation_id") or record.message_id
    logger.set_correlation_id(correlation_id)
    logger.append_keys(tenant=tenant, switch=switch, file_id=file_id)
    tracer.put_annotation(key="tenant", value=tenant)
    tracer.put_annotation(key="file_id", value=file_id)
    with files.failure_recorded(  # the last delivery's failure leaves the file `failed`
        tenant, file_id, "rate", last_delivery=lambda: queues.is_last_delivery(record)
    ):
        outcome = rate_file(
            tenant,
            switch,
            file_id,
            lake=lake,
            files=files,
            accounts=accounts,
            ledger=ledger,
            events=events,
            decks=DECKS,
            holds=holds,
        )
    logger.info("cdr file rated", status=outcome.status, **outcome.counts)
    publish_metrics(tenant, switch, outcome, correlation_id=correlation_id)


def publish_metrics(tenant: str, switch: str, outcome: RateOutcome, *, correlation_id: str) -> None:
    """The EMF record of a file rated by this call; nothing for one rated before."""
    if outcome.status != "done":
        return
    counts = outcome.counts
    values: dict[str, float] = {
        monitoring.FILES_RATED: 1,
        monitoring.CDRS_RATED: counts["rated"],
        monitoring.CDRS_UNRATED: counts["unrated"],
        monitoring.CDRS_DUPLICATE: counts["duplicates"],
    }
    # Drop to done, as the files table saw it: the first ingest record (a retried ingest
    # keeps it) to the `done` status just written.
    record = files.get_file(tenant, outcome.file_id)
    if record.created_at and record.updated_at:
        lag = (record.updated_at - record.created_at).total_seconds()
        values[monitoring.RATING_LAG] = round(lag, 3)
    monitoring.put_file_metrics(
        monitoring.RATE,
        tenant,
        switch,
        outcome.file_id,
        values,
        correlation_id=correlation_id,
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handle_normalized_files(event: dict, context: Any) -> dict:
    return batches.process_sqs_batch(event, context, rate_record, logger=logger)
