"""Fraud alerts for people, through SNS: the stack's fraud topic (settings().fraud_topic),
which mails whoever subscribed (FraudAlertEmail, docs/deploy.md).

Machines get the same alert as a FraudAlert event on the bus (functions/store/events.py);
this is the human channel. SNS has no idempotency key for a standard topic: the caller
claims an alert before publishing it (at most one notice per claim, bar a crash between).
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from functions.shared.settings import settings
from functions.store import StoreError, client

# SNS refuses a subject of 100 characters or more, or one with a line break or control
# character ("less than 100 characters long"): e-mail subscribers see it as the mail's subject.
SUBJECT_CHARS = 99


def topic_arn() -> str:
    """The fraud topic's ARN. On AWS the stack gives the ARN; locally the setting is the
    topic's name, made into the ARN SNS would give it in the caller's account and region."""
    topic = settings().fraud_topic
    if topic.startswith("arn:"):
        return topic
    sns = client("sns")
    account = client("sts").get_caller_identity()["Account"]
    return f"arn:{sns.meta.partition}:sns:{sns.meta.region_name}:{account}:{topic}"


def subject_line(subject: str) -> str:
    """`subject` as SNS takes it: control characters (line breaks too) as spaces, runs of
    spaces as one, cut to SUBJECT_CHARS."""
    text = "".join(" " if not ch.isprintable() else ch for ch in subject)
    return " ".join(text.split())[:SUBJECT_CHARS].rstrip()


def publish_alert(subject: str, message: str, attributes: dict[str, str]) -> str:
    """Publish one alert to the fraud topic; SNS's message id.

    `attributes` become String message attributes (subscription filter policies can route on
    them, e.g. severity or tenant). StoreError when SNS refuses: then nothing was published.
    """
    arn = topic_arn()
    line = subject_line(subject)
    request = {
        "TopicArn": arn,
        "Message": message,
        "MessageAttributes": {
            name: {"DataType": "String", "StringValue": value}
            for name, value in sorted(attributes.items())
        },
    }
    if line:  # an empty Subject is refused; without one, e-mail shows SNS's default
        request["Subject"] = line
    try:
        return client("sns").publish(**request)["MessageId"]
    except ClientError as error:
        reason = error.response.get("Error", {})
        raise StoreError(
            f"SNS refused the fraud alert {line!r} to {arn}: "
            f"{reason.get('Code')} {reason.get('Message')}"
        ) from error
