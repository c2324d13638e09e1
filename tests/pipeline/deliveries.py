"""SQS deliveries as Lambda's event source makes them, for driving handlers in tests.

The in-process moto account (the `aws` fixture) has the pipeline's queues without
dead-letter queues; `with_dead_letter_queues` adds them as infra/template.yaml declares them,
with a smaller maxReceiveCount so a test reaches the last delivery quickly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from functions.ingest.handler import handle_cdr_drops
from functions.ingest.service import DroppedFile
from functions.rate.handler import handle_normalized_files
from functions.shared.settings import settings
from functions.store import client
from tests.pipeline.carrier import SWITCH, TENANT

MAX_RECEIVES = 3
ACCOUNT = "123456789012"  # moto's


class LambdaContext:
    function_name = "tollgate-test"
    memory_limit_in_mb = 2048
    invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:tollgate-test"
    aws_request_id = "req-1"


def with_dead_letter_queues() -> None:
    """Give both pipeline queues a dead-letter queue, as infra/template.yaml does."""
    sqs = client("sqs")
    for queue in (settings().ingest_queue, settings().rate_queue):
        dlq = sqs.create_queue(QueueName=f"{queue}-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
        policy = {"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": MAX_RECEIVES}
        sqs.set_queue_attributes(
            QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"],
            Attributes={"RedrivePolicy": json.dumps(policy)},
        )


def delivery(queue: str, body: str, receive_count: int) -> dict[str, Any]:
    """The Lambda event of one SQS delivery of `body` from `queue`."""
    return {
        "Records": [
            {
                "messageId": f"m-{receive_count}",
                "receiptHandle": "handle",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": str(receive_count),
                    "SentTimestamp": "1714557600000",
                    "SenderId": ACCOUNT,
                    "ApproximateFirstReceiveTimestamp": "1714557600000",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:{ACCOUNT}:{queue}",
                "awsRegion": "us-east-1",
            }
        ]
    }


def s3_notification(dropped: DroppedFile) -> str:
    record = {
        "eventName": "ObjectCreated:Put",
        "eventTime": f"{dropped.arrived.isoformat()}T00:05:00.000Z",
        "s3": {
            "bucket": {"name": dropped.bucket},
            "object": {"key": dropped.key, "eTag": dropped.etag, "size": 1},
        },
    }
    return json.dumps({"Records": [record]})


def ingest_delivery(dropped: DroppedFile, count: int) -> None:
    handle_cdr_drops(
        delivery(settings().ingest_queue, s3_notification(dropped), count), LambdaContext()
    )


def rate_delivery(file_id: str, count: int) -> None:
    body = json.dumps({"tenant": TENANT, "switch": SWITCH, "file_id": file_id})
    handle_normalized_files(delivery(settings().rate_queue, body, count), LambdaContext())


def deliver_queued(queue: str, handler: Callable[[dict, Any], Any]) -> int:
    """Hand every message waiting in `queue` to its handler once, as the event source would."""
    sqs = client("sqs")
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    delivered = 0
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            handler(delivery(queue, message["Body"], 1), LambdaContext())
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            delivered += 1
    return delivered
