"""functions.store.batches: the partial batch response both Lambdas return."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools import Logger

from functions.store.batches import process_sqs_batch

LOGGER = Logger(service="test-batches")


def sqs_event(prefix: str, *bodies: str) -> dict:
    return {"Records": [{"messageId": f"{prefix}{i}", "body": b} for i, b in enumerate(bodies)]}


def test_only_the_records_that_raised_come_back_for_redelivery():
    handled = []

    def record_handler(record):
        if record.body == "bad":
            raise ValueError("bad record")
        handled.append(record.message_id)

    response = process_sqs_batch(
        sqs_event("m", "ok", "bad", "ok"), None, record_handler, logger=LOGGER
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert handled == ["m0", "m2"]


def test_batches_processed_at_once_in_two_threads_each_report_only_their_own_failures():
    """The local stack runs a handler in several threads of one process: a processor shared
    between invocations would mix one batch's failures into the other's response."""
    # Each record waits for one of the other batch, so the two batches run interleaved.
    together = threading.Barrier(2, timeout=30)

    def record_handler(record):
        together.wait()
        if record.body == "bad":
            raise ValueError("bad record")

    events = (sqs_event("a", "ok", "bad"), sqs_event("b", "bad", "ok"))
    with ThreadPoolExecutor(2) as pool:
        responses = list(
            pool.map(lambda e: process_sqs_batch(e, None, record_handler, logger=LOGGER), events)
        )
    assert responses == [
        {"batchItemFailures": [{"itemIdentifier": "a1"}]},
        {"batchItemFailures": [{"itemIdentifier": "b0"}]},
    ]
