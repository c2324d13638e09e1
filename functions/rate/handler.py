"""The rate Lambda: one SQS message per normalised file to rate and charge."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger

from functions.rate.service import DeckCache, rate_file
from functions.store import accounts, events, files, lake, ledger

logger = Logger(service="rate")
# Compiled decks outlive one invocation: a warm container rates the next file at once.
DECKS = DeckCache()


@logger.inject_lambda_context(clear_state=True)
def handle_normalized_files(event: dict, context: Any) -> dict:
    failures = []
    for record in event.get("Records", []):
        try:
            request = json.loads(record["body"])
            outcome = rate_file(
                request["tenant"],
                request["switch"],
                request["file_id"],
                lake=lake,
                files=files,
                accounts=accounts,
                ledger=ledger,
                events=events,
                decks=DECKS,
            )
            logger.info(
                "cdr file rated",
                tenant=request["tenant"],
                file_id=outcome.file_id,
                status=outcome.status,
                **outcome.counts,
            )
        except Exception:
            logger.exception("rating failed; SQS will redeliver", message_id=record["messageId"])
            failures.append({"itemIdentifier": record["messageId"]})
    if failures and len(failures) == len(event.get("Records", [])):
        # Nothing succeeded: raise, so Lambda retries the batch even where the event source
        # mapping does not report partial failures (Chalice does not enable it).
        raise BatchFailedError(f"{len(failures)} record(s) failed; SQS will redeliver")
    return {"batchItemFailures": failures}


class BatchFailedError(RuntimeError):
    """Every record of an SQS batch failed."""
