"""Fraud alerts leave the platform twice: an SNS notice for people (functions/store/notices.py)
and a FraudAlert event on the bus for machines (functions/store/events.py). Both are read
back where a subscriber would read them: an SQS queue subscribed to the topic, and an SQS
queue a rule on the tollgate bus targets."""

from __future__ import annotations

import json

import pytest

from functions.shared.settings import settings
from functions.store import StoreError, client, events, notices

TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:tollgate-fraud-alerts"


def _queue(name: str) -> tuple[str, str]:
    sqs = client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, arn["Attributes"]["QueueArn"]


def _received(url: str) -> list[dict]:
    messages = client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    )
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def test_an_alert_reaches_a_subscriber_of_the_fraud_topic_with_its_subject_and_attributes(aws):
    url, arn = _queue("fraud-desk")
    client("sns").subscribe(TopicArn=TOPIC_ARN, Protocol="sqs", Endpoint=arn)

    message_id = notices.publish_alert(
        "acme/cust-7: 412 calls to +882 in 1 h\n(HIGH)",
        "Account cust-7 of acme made 412 calls to +88216 in the hour from 14:00 UTC.",
        {"tenant": "acme", "account": "cust-7", "severity": "high"},
    )

    [notice] = _received(url)
    assert notice["MessageId"] == message_id
    assert notice["TopicArn"] == TOPIC_ARN
    # the line break is a space: SNS refuses one in a subject
    assert notice["Subject"] == "acme/cust-7: 412 calls to +882 in 1 h (HIGH)"
    assert notice["Message"] == (
        "Account cust-7 of acme made 412 calls to +88216 in the hour from 14:00 UTC."
    )
    assert notice["MessageAttributes"] == {
        "account": {"Type": "String", "Value": "cust-7"},
        "severity": {"Type": "String", "Value": "high"},
        "tenant": {"Type": "String", "Value": "acme"},
    }


def test_a_long_subject_is_cut_to_what_sns_takes(aws):
    url, arn = _queue("fraud-desk-long")
    client("sns").subscribe(TopicArn=TOPIC_ARN, Protocol="sqs", Endpoint=arn)

    notices.publish_alert("x" * 150, "body", {})

    [notice] = _received(url)
    assert notice["Subject"] == "x" * 99
    assert "MessageAttributes" not in notice


def test_the_topic_is_named_by_its_arn_on_aws_and_by_its_name_locally(aws, monkeypatch):
    assert settings().fraud_topic == "tollgate-fraud-alerts"
    assert notices.topic_arn() == TOPIC_ARN
    other = "arn:aws:sns:eu-west-1:210987654321:acme-fraud"
    monkeypatch.setenv("TOLLGATE_FRAUD_TOPIC", other)
    settings.cache_clear()
    try:
        assert notices.topic_arn() == other
    finally:
        settings.cache_clear()


def test_an_alert_sns_refuses_is_a_store_error_naming_the_topic(aws, monkeypatch):
    monkeypatch.setenv("TOLLGATE_FRAUD_TOPIC", "no-such-topic")
    settings.cache_clear()
    try:
        with pytest.raises(StoreError, match=r"SNS refused the fraud alert 'spike' to .*:no-such"):
            notices.publish_alert("spike", "body", {"tenant": "acme"})
    finally:
        settings.cache_clear()


def test_a_fraud_alert_event_reaches_a_rule_on_the_tollgate_bus(aws):
    url, arn = _queue("fraud-alerts-consumer")
    bus = settings().event_bus
    rule = {"source": [events.FRAUD_SOURCE], "detail-type": [events.FRAUD_ALERT]}
    client("events").put_rule(Name="fraud-alerts", EventBusName=bus, EventPattern=json.dumps(rule))
    client("events").put_targets(
        Rule="fraud-alerts", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}]
    )
    detail = {
        "alert_id": "acme#cust-7#calls_per_hour#882",
        "severity": "high",
        "tenant": "acme",
        "account": "cust-7",
        "cost_micro": 187_250_000,
    }

    events.publish_fraud_alert(detail)
    # FileRated is on the same bus and must not reach this rule
    events.publish_file_rated({"file_id": "f1", "tenant": "acme"})

    [event] = _received(url)
    assert (event["source"], event["detail-type"]) == ("tollgate.fraud", "FraudAlert")
    assert event["detail"] == detail
