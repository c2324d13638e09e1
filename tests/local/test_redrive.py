"""Poison messages on the local stack: dead-letter queues, as on AWS.

moto applies a queue's RedrivePolicy when it receives: a message delivered `maxReceiveCount`
times goes to the dead-letter queue at the next receive instead of to the handler. These tests
prove the local stack relies on that with the template's own policy, and that event-rule
handlers (whose shim queues the runner creates) give up too, as Lambda does.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from chalice import Chalice

from functions.local.provision import load_template
from functions.local.runner import EVENT_ATTEMPTS
from functions.shared.settings import settings


def _url(name: str) -> str:
    return boto3.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def _depth(name: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=_url(name),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def _bodies(name: str) -> list[str]:
    received = boto3.client("sqs").receive_message(QueueUrl=_url(name), MaxNumberOfMessages=10)
    return [message["Body"] for message in received.get("Messages", [])]


def test_a_message_that_always_fails_goes_to_the_dead_letter_queue_after_max_receive_count(
    start_stack,
):
    """A poison message is delivered maxReceiveCount times (the template's), then parked.

    The retry_delay option is new: on the old runner a failed message waited out its
    visibility timeout, so reaching the DLQ took maxReceiveCount seconds at best.
    """
    template = load_template()["Resources"]
    max_receives = template["RateQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    app = Chalice(app_name="testapp")
    deliveries: list[str] = []

    @app.on_sqs_message(queue=settings().rate_queue, batch_size=1)
    def rate(event):
        for record in event.to_dict()["Records"]:
            deliveries.append(record["attributes"]["ApproximateReceiveCount"])
        raise RuntimeError("poison")

    stack = start_stack(app, retry_delay=0)
    boto3.client("sqs").send_message(QueueUrl=_url(settings().rate_queue), MessageBody="p1")
    stack.wait_idle(timeout=20)

    assert deliveries == [str(n) for n in range(1, max_receives + 1)]
    assert _depth(settings().rate_queue) == 0
    assert _bodies(f"{settings().rate_queue}-dlq") == ["p1"]
    assert len(stack.runner.errors) == max_receives


def test_a_failed_message_comes_back_after_the_retry_delay_and_a_success_ends_it(start_stack):
    """With retry_delay=0 the second delivery follows at once; success deletes the message."""
    app = Chalice(app_name="testapp")
    deliveries: list[str] = []

    @app.on_sqs_message(queue=settings().ingest_queue, batch_size=1)
    def ingest(event):
        deliveries.extend(
            r["attributes"]["ApproximateReceiveCount"] for r in event.to_dict()["Records"]
        )
        if len(deliveries) < 3:
            raise RuntimeError("transient")

    stack = start_stack(app, retry_delay=0, visibility_timeout=600)
    boto3.client("sqs").send_message(QueueUrl=_url(settings().ingest_queue), MessageBody="f1")
    stack.wait_idle(timeout=20)  # a 600 s visibility timeout would time this out

    assert deliveries == ["1", "2", "3"]
    assert _depth(settings().ingest_queue) == 0
    assert _depth(f"{settings().ingest_queue}-dlq") == 0


def test_an_event_handler_that_always_fails_is_tried_as_lambda_tries_and_then_parked(
    start_stack,
):
    """An EventBridge-fed handler that always raises was redelivered forever by the old
    runner (its shim queue had no redrive policy), so the stack never went idle."""
    app = Chalice(app_name="testapp")
    tries: list[dict[str, Any]] = []

    @app.on_cw_event({"source": ["tollgate.rate"]})
    def on_file_rated(event):
        tries.append(event.to_dict()["detail"])
        raise RuntimeError("poison event")

    stack = start_stack(app, retry_delay=0)
    boto3.client("events").put_events(
        Entries=[
            {
                "EventBusName": settings().event_bus,
                "Source": "tollgate.rate",
                "DetailType": "FileRated",
                "Detail": json.dumps({"file_id": "f1"}),
            }
        ]
    )
    stack.wait_idle(timeout=20)

    assert tries == [{"file_id": "f1"}] * EVENT_ATTEMPTS
    [parked] = _bodies("testapp-local-on_file_rated-dlq")
    assert json.loads(parked)["detail"] == {"file_id": "f1"}
