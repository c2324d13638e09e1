"""SQS: the hand-off from ingest to rating, the drop notifications, and the dead-letter queues.

The pipeline's two queues are named here by their role, `ingest` and `rate`; each has a
RedrivePolicy (infra/template.yaml) that moves a message to its dead-letter queue after
`maxReceiveCount` deliveries. SQS's own StartMessageMoveTask is not used for a redrive: moto
does not implement it, and receive + send + delete works the same on both (a message moved
twice by a crash in between is harmless: every handler is idempotent).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote_plus

from botocore.exceptions import ClientError

from functions.shared.settings import settings
from functions.store import ConflictError, check_name, check_token, client

QUEUES = ("ingest", "rate")
_BATCH = 10  # SQS's most messages per receive, send or delete call
_HIDE_SECONDS = 60  # how long a listing or a redrive holds dead letters out of sight


@cache
def _queue_url(name: str) -> str:
    return client("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def send_rate_request(
    tenant: str, switch: str, file_id: str, *, correlation_id: str | None = None
) -> None:
    """Ask the rate function to rate a normalised file (at least once; rating is idempotent).

    `correlation_id` (the drop's) lets the rate function's logs be joined to the ingest's.
    """
    body = {
        "tenant": check_name("tenant", tenant),
        "switch": check_name("switch", switch),
        "file_id": check_token("file id", file_id),
    }
    if correlation_id:
        body["correlation_id"] = correlation_id
    client("sqs").send_message(
        QueueUrl=_queue_url(settings().rate_queue), MessageBody=json.dumps(body)
    )


def check_drop(bucket: str, key: str, etag: str) -> int:
    """The size of the CDR object at `key` if it is still the one with `etag`; ConflictError
    if it was deleted or replaced (a new upload is a new file, with its own notification)."""
    try:
        head = client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
            raise
        raise ConflictError(f"s3://{bucket}/{key} no longer exists: nothing to ingest") from None
    if head["ETag"].strip('"') != etag:
        raise ConflictError(
            f"s3://{bucket}/{key} was replaced since it was dropped; the new object is its own file"
        )
    return int(head["ContentLength"])


def resend_drop(bucket: str, key: str, etag: str, arrived: dt.datetime) -> None:
    """Send the ingest queue the ObjectCreated notification S3 sent for a CDR object, so the
    ingest function reads it again (ConflictError as `check_drop`)."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": arrived.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "s3": {
            "bucket": {"name": bucket},
            "object": {
                # S3 URL-encodes keys in notifications (spaces as '+'), keeping '/'.
                "key": quote_plus(key, safe="/"),
                "eTag": etag,
                "size": check_drop(bucket, key, etag),
            },
        },
    }
    client("sqs").send_message(
        QueueUrl=_queue_url(settings().ingest_queue), MessageBody=json.dumps({"Records": [record]})
    )


# --- deliveries and dead letters -----------------------------------------------------------


def queue_name(queue: str) -> str:
    """The SQS name of the pipeline queue `ingest` or `rate`."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}: use {' or '.join(QUEUES)}")
    return settings().ingest_queue if queue == "ingest" else settings().rate_queue


def _redrive_policy(url: str) -> dict[str, Any] | None:
    attributes = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    policy = attributes.get("Attributes", {}).get("RedrivePolicy")
    return json.loads(policy) if policy else None


@cache
def _max_receive_count(queue_arn: str) -> int | None:
    # The queue URL from its ARN, without sqs:GetQueueUrl: {endpoint}/{account}/{name}.
    _, _, _, _, account, name = queue_arn.split(":")
    policy = _redrive_policy(f"{client('sqs').meta.endpoint_url}/{account}/{name}")
    return int(policy["maxReceiveCount"]) if policy else None


def is_last_delivery(record: Mapping[str, Any]) -> bool:
    """Whether an SQS record (the Lambda event's shape) is its message's last delivery: if it
    fails, its queue's RedrivePolicy moves it to the dead-letter queue at the next receive."""
    record = getattr(record, "raw_event", record)  # a Powertools SQSRecord wraps the dict
    count = (record.get("attributes") or {}).get("ApproximateReceiveCount")
    arn = record.get("eventSourceARN")
    if not count or not arn:
        return False
    limit = _max_receive_count(arn)
    return limit is not None and int(count) >= limit


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message in a pipeline queue's dead-letter queue."""

    queue: str  # ingest | rate: where it came from and goes back to
    message_id: str
    body: str
    sent_at: dt.datetime  # when it was first sent to the source queue
    receipt: str = ""  # of the receive that holds it (a listing or a redrive)


def dead_letter_queue(queue: str) -> str:
    """The SQS name of a pipeline queue's dead-letter queue, from its RedrivePolicy."""
    policy = _redrive_policy(_queue_url(queue_name(queue)))
    if not policy:
        raise ConflictError(f"queue {queue_name(queue)} has no dead-letter queue (RedrivePolicy)")
    return policy["deadLetterTargetArn"].rsplit(":", 1)[-1]


def _take(queue: str, url: str, wait: int = 0) -> list[DeadLetter]:
    """Receive up to a batch of dead letters, hiding them for `_HIDE_SECONDS`."""
    received = client("sqs").receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=_BATCH,
        VisibilityTimeout=_HIDE_SECONDS,
        WaitTimeSeconds=wait,
        AttributeNames=["All"],
    )
    letters = []
    for message in received.get("Messages", []):
        attributes = message.get("Attributes", {})
        sent_ms = int(attributes.get("SentTimestamp", "0"))
        letters.append(
            DeadLetter(
                queue=queue,
                message_id=message["MessageId"],
                body=message["Body"],
                sent_at=dt.datetime.fromtimestamp(sent_ms / 1000, dt.UTC),
                receipt=message["ReceiptHandle"],
            )
        )
    return letters


def _drain(queue: str, url: str) -> Iterator[list[DeadLetter]]:
    """Batches of received dead letters until the dead-letter queue shows none visible."""
    while True:
        letters = _take(queue, url)
        if not letters:
            # A short poll samples only some SQS servers: trust an empty answer only when the
            # queue counts no visible message, else ask once with a long poll (all servers).
            attributes = client("sqs").get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            if int(attributes["ApproximateNumberOfMessages"]) == 0:
                return
            letters = _take(queue, url, wait=1)
            if not letters:
                return
        yield letters


def _release(url: str, letters: list[DeadLetter]) -> None:
    """Make received dead letters visible again at once."""
    for start in range(0, len(letters), _BATCH):
        client("sqs").change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": letter.receipt, "VisibilityTimeout": 0}
                for i, letter in enumerate(letters[start : start + _BATCH])
            ],
        )


def list_dead_letters(queue: str) -> list[DeadLetter]:
    """Every message in the queue's dead-letter queue, left there.

    Each is received (hidden, so the next receive returns others) and made visible again at
    the end; a redrive running meanwhile skips the ones hidden for up to `_HIDE_SECONDS`.
    """
    url = _queue_url(dead_letter_queue(queue))
    seen: dict[str, DeadLetter] = {}
    try:
        for batch in _drain(queue, url):
            seen.update((letter.message_id, letter) for letter in batch)
    finally:
        _release(url, list(seen.values()))
    return sorted(seen.values(), key=lambda letter: (letter.sent_at, letter.message_id))


def redrive(queue: str, prepare: Callable[[DeadLetter], None]) -> list[DeadLetter]:
    """Move every message of the queue's dead-letter queue back to the queue; returns them.

    `prepare(letter)` runs before each is sent back (e.g. reopening the file it names); if it
    raises, that message stays in the dead-letter queue and the error propagates.
    """
    sqs = client("sqs")
    source = _queue_url(queue_name(queue))
    url = _queue_url(dead_letter_queue(queue))
    moved: list[DeadLetter] = []
    for letters in _drain(queue, url):
        for i, letter in enumerate(letters):
            try:
                prepare(letter)
            except Exception:
                _release(url, letters[i:])
                raise
            sqs.send_message(QueueUrl=source, MessageBody=letter.body)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=letter.receipt)
            moved.append(letter)
    return moved


def reset() -> None:
    _queue_url.cache_clear()
    _max_receive_count.cache_clear()
