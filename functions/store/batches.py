"""SQS batches as the Lambdas consume them: Powertools' partial batch response.

Each record goes to the function's record handler; the records that raised are reported in
`batchItemFailures` (SQS delivers them again after the visibility timeout, then moves them to
the dead-letter queue), and a batch whose every record failed raises instead, so Lambda
retries it even where the event source mapping ignores partial responses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord


def process_sqs_batch(
    event: dict, context: Any, record_handler: Callable[[SQSRecord], None], *, logger: Logger
) -> dict:
    """Run each SQS record through `record_handler`; the partial batch response."""
    # A processor per invocation: it keeps the batch's state, and the local stack may run
    # a handler in several threads of one process.
    processor = BatchProcessor(event_type=EventType.SQS, logger=logger)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
