"""SQS: the hand-off from ingest to rating."""

from __future__ import annotations

import json
from functools import cache

from functions.shared.settings import settings
from functions.store import check_name, check_token, client


@cache
def _queue_url(name: str) -> str:
    return client("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def send_rate_request(tenant: str, switch: str, file_id: str) -> None:
    """Ask the rate function to rate a normalised file (at least once; rating is idempotent)."""
    body = {
        "tenant": check_name("tenant", tenant),
        "switch": check_name("switch", switch),
        "file_id": check_token("file id", file_id),
    }
    client("sqs").send_message(
        QueueUrl=_queue_url(settings().rate_queue), MessageBody=json.dumps(body)
    )


def reset() -> None:
    _queue_url.cache_clear()
