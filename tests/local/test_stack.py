"""The local stack: template provisioned into moto, app handlers run on their event sources."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest
from chalice import Chalice, Rate

from functions.cli import CliError
from functions.local.provision import load_template
from functions.local.runner import schedule_interval
from functions.local.stack import LocalStack, LocalStackError
from functions.shared.settings import settings

PROJECT_DIR = Path(__file__).resolve().parents[2]
StartStack = Callable[..., LocalStack]


def _queue_url(name: str) -> str:
    return boto3.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def _queue_depth(name: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=_queue_url(name),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def _dropped_keys(record: dict[str, Any]) -> list[str]:
    notification = json.loads(record["body"])
    return [unquote_plus(r["s3"]["object"]["key"]) for r in notification.get("Records", [])]


# --- S3 drop → SQS → handler ----------------------------------------------------------------


def test_cdr_drop_reaches_the_ingest_handler_and_its_output_the_next_one(start_stack):
    app = Chalice(app_name="testapp")
    drops: list[dict[str, Any]] = []
    contexts: list[Any] = []
    rated: list[str] = []

    @app.on_sqs_message(queue=settings().ingest_queue, batch_size=1)
    def ingest(event):
        contexts.append(event.context)
        for record in event.to_dict()["Records"]:
            drops.append(record)
            for key in _dropped_keys(record):
                boto3.client("sqs").send_message(
                    QueueUrl=_queue_url(settings().rate_queue), MessageBody=json.dumps({"key": key})
                )
        return {"batchItemFailures": []}

    @app.on_sqs_message(queue=settings().rate_queue, batch_size=1)
    def rate(event):
        rated.extend(json.loads(record.body)["key"] for record in event)

    stack = start_stack(app)
    s3 = boto3.client("s3")
    key = "incoming/acme/switch-1/calls 2024+01.csv"  # space and plus: quote_plus differs
    s3.put_object(Bucket=settings().cdr_bucket, Key=key, Body=b"call_id\n1\n")
    s3.put_object(Bucket=settings().cdr_bucket, Key="archive/old.csv", Body=b"x")

    stack.wait_idle(timeout=10)

    assert rated == [key]
    assert [_dropped_keys(record) for record in drops] == [[key]]  # no s3:TestEvent either
    record = drops[0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(f":{settings().ingest_queue}")
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"messageId", "receiptHandle", "md5OfBody", "messageAttributes"} <= record.keys()
    assert contexts[0].function_name == "testapp-dev-ingest"
    assert contexts[0].get_remaining_time_in_millis() <= 60_000
    assert _queue_depth(settings().ingest_queue) == 0
    assert _queue_depth(settings().rate_queue) == 0


# --- at-least-once delivery -----------------------------------------------------------------


def test_a_handler_that_raises_sees_the_message_again_and_success_removes_it(start_stack):
    app = Chalice(app_name="testapp")
    attempts: list[tuple[str, str]] = []

    @app.on_sqs_message(queue=settings().rate_queue, batch_size=1)
    def rate(event):
        for record in event.to_dict()["Records"]:
            attempts.append((record["body"], record["attributes"]["ApproximateReceiveCount"]))
        if len(attempts) == 1:
            raise RuntimeError("transient failure")

    stack = start_stack(app)
    boto3.client("sqs").send_message(QueueUrl=_queue_url(settings().rate_queue), MessageBody="f1")

    stack.wait_idle(timeout=10)

    assert attempts == [("f1", "1"), ("f1", "2")]
    assert [error.function_name for error in stack.runner.errors] == ["rate"]
    assert _queue_depth(settings().rate_queue) == 0


def test_partial_batch_failure_deletes_only_the_records_that_succeeded(start_stack):
    app = Chalice(app_name="testapp")
    batches: list[list[str]] = []

    @app.on_sqs_message(queue=settings().rate_queue, batch_size=10)
    def rate(event):
        records = event.to_dict()["Records"]
        batches.append(sorted(record["body"] for record in records))
        first_time = len(batches) == 1
        return {
            "batchItemFailures": [
                {"itemIdentifier": record["messageId"]}
                for record in records
                if record["body"] == "bad" and first_time
            ]
        }

    stack = start_stack(app, start_pollers=False)
    boto3.client("sqs").send_message_batch(
        QueueUrl=_queue_url(settings().rate_queue),
        Entries=[{"Id": body, "MessageBody": body} for body in ("good-1", "bad", "good-2")],
    )

    assert stack.runner.poll_once("rate", wait_seconds=1) == 3
    assert batches == [["bad", "good-1", "good-2"]]
    assert _queue_depth(settings().rate_queue) == 1  # only "bad", in flight

    deadline = time.monotonic() + 10
    while stack.runner.poll_once("rate", wait_seconds=1) == 0:
        assert time.monotonic() < deadline, "the failed record never came back"

    assert batches == [["bad", "good-1", "good-2"], ["bad"]]
    assert _queue_depth(settings().rate_queue) == 0


def test_an_unknown_batch_item_failure_fails_the_whole_batch(start_stack):
    app = Chalice(app_name="testapp")

    @app.on_sqs_message(queue=settings().rate_queue, batch_size=10)
    def rate(event):
        return {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}

    stack = start_stack(app, start_pollers=False)
    boto3.client("sqs").send_message_batch(
        QueueUrl=_queue_url(settings().rate_queue),
        Entries=[{"Id": body, "MessageBody": body} for body in ("a", "b")],
    )

    assert stack.runner.poll_once("rate", wait_seconds=1) == 2
    assert _queue_depth(settings().rate_queue) == 2


def test_wait_idle_waits_for_a_running_handler(start_stack):
    app = Chalice(app_name="testapp")
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    @app.on_sqs_message(queue=settings().rate_queue, batch_size=1)
    def rate(event):
        started.set()
        release.wait(10)
        finished.extend(record.body for record in event)

    stack = start_stack(app)
    boto3.client("sqs").send_message(QueueUrl=_queue_url(settings().rate_queue), MessageBody="f1")
    assert started.wait(10)

    with pytest.raises(TimeoutError):
        stack.wait_idle(timeout=0.3)
    release.set()
    stack.wait_idle(timeout=10)

    assert finished == ["f1"]
    assert _queue_depth(settings().rate_queue) == 0


# --- EventBridge patterns and schedules ---------------------------------------------------------


def test_event_pattern_handlers_get_matching_bus_events_and_schedules_only_their_ticks(
    start_stack,
):
    app = Chalice(app_name="testapp")
    rated_events: list[dict[str, Any]] = []
    ticks: list[dict[str, Any]] = []

    @app.on_cw_event({"source": ["tollgate.rate"], "detail-type": ["FileRated"]})
    def on_file_rated(event):
        rated_events.append(event.to_dict())

    @app.schedule(Rate(1, unit=Rate.HOURS))
    def hourly(event):
        ticks.append(event.to_dict())

    stack = start_stack(app)
    entry = {"EventBusName": settings().event_bus, "DetailType": "FileRated"}
    boto3.client("events").put_events(
        Entries=[
            {**entry, "Source": "tollgate.rate", "Detail": json.dumps({"file_id": "f1"})},
            {**entry, "Source": "somebody.else", "Detail": json.dumps({"file_id": "f2"})},
        ]
    )
    stack.wait_idle(timeout=10)

    assert [event["detail"] for event in rated_events] == [{"file_id": "f1"}]
    assert ticks == []  # moto's schedule-rule quirk must not leak bus events into schedules

    stack.runner.trigger_schedule("hourly")
    assert [tick["detail-type"] for tick in ticks] == ["Scheduled Event"]


def test_rate_schedules_fire_on_their_own(start_stack, monkeypatch):
    monkeypatch.setattr("functions.local.runner.schedule_interval", lambda expression: 0.05)
    app = Chalice(app_name="testapp")
    ticked = threading.Event()

    @app.schedule(Rate(5, unit=Rate.MINUTES))
    def every_five_minutes(event):
        assert event.to_dict()["detail-type"] == "Scheduled Event"
        ticked.set()

    start_stack(app)

    assert ticked.wait(10)


def test_schedule_interval_reads_rate_expressions():
    assert schedule_interval(Rate(5, unit=Rate.MINUTES)) == 300
    assert schedule_interval("rate(1 day)") == 86400
    assert schedule_interval("cron(0 2 * * ? *)") is None


# --- provisioning ---------------------------------------------------------------------------


def test_every_template_resource_exists_as_declared(start_stack):
    stack = start_stack(Chalice(app_name="empty"))
    template = load_template()
    physical = stack.resources["resources"]
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    dynamodb, events = boto3.client("dynamodb"), boto3.client("events")
    logs = boto3.client("logs")

    def queue_arn(logical_id: str) -> str:
        attributes = sqs.get_queue_attributes(
            QueueUrl=physical[logical_id], AttributeNames=["QueueArn"]
        )
        return attributes["Attributes"]["QueueArn"]

    def logical(reference: dict[str, Any]) -> str:
        return reference.get("Ref") or reference["Fn::GetAtt"][0]

    def resolve_sub(reference: dict[str, Any]) -> str:
        parameters = stack.resources["parameters"]
        return re.sub(r"\$\{(\w+)\}", lambda m: parameters[m[1]], reference["Fn::Sub"])

    checked = set()
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        name = physical[logical_id]
        if kind == "AWS::S3::Bucket":
            s3.head_bucket(Bucket=name)
            block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
            assert block == props["PublicAccessBlockConfiguration"]
            wanted = props.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
            actual = s3.get_bucket_notification_configuration(Bucket=name)
            assert [
                (c["QueueArn"], c["Events"], c["Filter"]["Key"]["FilterRules"])
                for c in actual.get("QueueConfigurations", [])
            ] == [
                (queue_arn(logical(c["Queue"])), [c["Event"]], c["Filter"]["S3Key"]["Rules"])
                for c in wanted
            ]
        elif kind == "AWS::SQS::Queue":
            attributes = sqs.get_queue_attributes(QueueUrl=name, AttributeNames=["All"])[
                "Attributes"
            ]
            assert attributes["VisibilityTimeout"] == str(props.get("VisibilityTimeout", 30))
            if "RedrivePolicy" in props:
                redrive = json.loads(attributes["RedrivePolicy"])
                target = logical(props["RedrivePolicy"]["deadLetterTargetArn"])
                assert redrive["deadLetterTargetArn"] == queue_arn(target)
                assert redrive["maxReceiveCount"] == props["RedrivePolicy"]["maxReceiveCount"]
        elif kind == "AWS::SQS::QueuePolicy":
            for reference in props["Queues"]:
                policy = sqs.get_queue_attributes(
                    QueueUrl=physical[logical(reference)], AttributeNames=["Policy"]
                )["Attributes"]["Policy"]
                statements = json.loads(policy)["Statement"]
                assert [s["Principal"] for s in statements] == [
                    s["Principal"] for s in props["PolicyDocument"]["Statement"]
                ]
        elif kind == "AWS::DynamoDB::Table":
            table = dynamodb.describe_table(TableName=name)["Table"]
            assert table["KeySchema"] == props["KeySchema"]
            assert table["BillingModeSummary"]["BillingMode"] == props["BillingMode"]
            recovery = dynamodb.describe_continuous_backups(TableName=name)[
                "ContinuousBackupsDescription"
            ]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
            wanted_pitr = props.get("PointInTimeRecoverySpecification", {})
            expected = "ENABLED" if wanted_pitr.get("PointInTimeRecoveryEnabled") else "DISABLED"
            assert recovery == expected
            ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            wanted_ttl = props.get("TimeToLiveSpecification")
            assert ttl == (
                {"TimeToLiveStatus": "ENABLED", "AttributeName": wanted_ttl["AttributeName"]}
                if wanted_ttl
                else {"TimeToLiveStatus": "DISABLED"}
            )
        elif kind == "AWS::SNS::Topic":
            # a topic's Ref is its ARN; the handlers name it by settings().fraud_topic
            attributes = boto3.client("sns").get_topic_attributes(TopicArn=name)["Attributes"]
            assert name.rsplit(":", 1)[1] == settings().fraud_topic
            assert attributes["DisplayName"] == props["DisplayName"]
        elif kind == "AWS::Events::EventBus":
            assert props["Name"] == {"Ref": "EventBusName"}
            assert events.describe_event_bus(Name=name)["Name"] == name == settings().event_bus
        elif kind == "AWS::Logs::LogGroup":
            group = resolve_sub(props["LogGroupName"])
            found = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
            assert [(g["logGroupName"], g.get("retentionInDays")) for g in found] == [
                (group, props["RetentionInDays"])
            ]
        elif kind == "AWS::Events::Rule":
            rules = events.list_rules(EventBusName=settings().event_bus)["Rules"]
            [rule] = [r for r in rules if r.get("Description") == props["Description"]]
            assert json.loads(rule["EventPattern"]) == props["EventPattern"]
            targets = events.list_targets_by_rule(
                Rule=rule["Name"], EventBusName=settings().event_bus
            )["Targets"]
            assert [t["Arn"].split(":log-group:")[1].removesuffix(":*") for t in targets] == [
                f"/aws/events/{settings().event_bus}/file-rated"
            ]
        elif kind == "AWS::Logs::ResourcePolicy":
            names = [p["policyName"] for p in logs.describe_resource_policies()["resourcePolicies"]]
            assert f"{settings().event_bus}-file-rated-to-logs" in names
        elif kind == "AWS::SES::EmailIdentity":
            identity = boto3.client("sesv2").get_email_identity(EmailIdentity=name)
            assert name == settings().mail_from
            assert identity["VerificationStatus"] == "SUCCESS"
        else:
            pytest.fail(f"no local check for {kind} ({logical_id}); add one")
        checked.add(logical_id)

    assert checked == set(template["Resources"])
    assert set(stack.resources["outputs"]) == set(template["Outputs"])
    assert all(value and "<moto" not in value for value in stack.resources["outputs"].values())


def test_the_stack_sets_the_environment_while_up_and_restores_it(start_stack, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://elsewhere:1")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "real-token")
    stack = start_stack(Chalice(app_name="empty"))

    assert os.environ["AWS_ENDPOINT_URL"] == stack.endpoint_url
    assert os.environ["MOTO_PORT"] == str(stack.port)
    assert "AWS_SESSION_TOKEN" not in os.environ
    stack.stop()

    assert os.environ["AWS_ENDPOINT_URL"] == "http://elsewhere:1"
    assert os.environ["AWS_SESSION_TOKEN"] == "real-token"


def test_the_project_app_runs_its_ingest_function_on_a_cdr_drop(monkeypatch):
    drops: list[tuple[list[str], str]] = []
    handler = types.ModuleType("functions.ingest.handler")

    def handle_cdr_drops(event: dict[str, Any], context: Any) -> dict[str, Any]:
        drops.extend((_dropped_keys(record), context.function_name) for record in event["Records"])
        return {"batchItemFailures": []}

    handler.handle_cdr_drops = handle_cdr_drops
    monkeypatch.setitem(sys.modules, "functions.ingest.handler", handler)

    with LocalStack(0, visibility_timeout=1) as stack:
        assert sorted(stack.runner.function_names) == [
            "check_assurance",  # a cron: fired by hand, like the others
            "check_fraud",  # FileRated: a rule on the tollgate bus, polled
            "close_billing_month",  # a cron: fired by hand (trigger_schedule), never by time
            "evaluate_fraud",  # rate(5 minutes): a timer
            "handle_cdr_drops",
            "handle_normalized_files",
            "record_mail_events",  # an EventBridge pattern: a rule on the bus, polled
            "run_dunning",  # a cron too
            "start_invoice_cycles",  # and another
        ]
        assert stack.runner.configs["handle_cdr_drops"].timeout_s == 300
        assert stack.runner.configs["handle_cdr_drops"].memory_mb == 2048
        [evaluate] = [s for s in stack.runner.app.event_sources if s.name == "evaluate_fraud"]
        assert schedule_interval(evaluate.schedule_expression) == 300  # its timer's seconds
        [rule] = [
            r
            for r in boto3.client("events").list_rules(EventBusName=settings().event_bus)["Rules"]
            if r["Name"] == "tollgate-local-check_fraud"
        ]
        assert json.loads(rule["EventPattern"]) == {
            "source": ["tollgate.rate"],
            "detail-type": ["FileRated"],
        }
        key = "incoming/acme/sw1/cdr.csv"
        boto3.client("s3").put_object(Bucket=settings().cdr_bucket, Key=key, Body=b"x")
        stack.wait_idle(timeout=10)

    assert drops == [([key], "tollgate-dev-handle_cdr_drops")]


def test_a_queue_the_template_lacks_stops_the_start_with_a_clear_error(start_stack):
    app = Chalice(app_name="testapp")

    @app.on_sqs_message(queue="not-in-the-template")
    def orphan(event):
        pass

    environment_before = dict(os.environ)
    with pytest.raises(LocalStackError, match="not-in-the-template"):
        start_stack(app)
    assert dict(os.environ) == environment_before


# --- CLI ------------------------------------------------------------------------------------

_RUN_CLI = (
    "import argparse, sys; from functions.cli import local; "
    "p = argparse.ArgumentParser(); local.register(p.add_subparsers()); "
    "a = p.parse_args(sys.argv[1:]); sys.exit(a.run(a))"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_local_up_prints_the_endpoint_and_stops_cleanly(stop_signal):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen(
        [sys.executable, "-c", _RUN_CLI, "local", "up", "--port", str(port)],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while not lines:
            remaining = deadline - time.monotonic()
            assert remaining > 0 and process.poll() is None, (lines, process.stderr.read())
            if select.select([process.stdout], [], [], remaining)[0]:
                lines.append(process.stdout.readline().rstrip("\n"))
        # The variables come in one flushed block: the rest of it is in the pipe already (and
        # maybe in the reader's buffer, where select no longer sees it).
        while not lines[-1].startswith("TOLLGATE_PORTAL_URL="):
            lines.append(process.stdout.readline().rstrip("\n"))
            assert lines[-1], lines
        assert f"AWS_ENDPOINT_URL=http://127.0.0.1:{port}" in lines
        # The API and the portal on one origin, by default on the next port (or a free one).
        urls = dict(line.split("=", 1) for line in lines if line.startswith("TOLLGATE_"))
        portal = urls["TOLLGATE_PORTAL_URL"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", portal)
        assert urls["TOLLGATE_API_URL"] == portal + "v1"
        with urllib.request.urlopen(portal, timeout=10) as index:
            assert b'src="js/app.js"' in index.read()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urls["TOLLGATE_API_URL"] + "/me", timeout=10)
        assert refused.value.code == 401  # the API, asking for a key

        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        names = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
        assert {settings().cdr_bucket, settings().lake_bucket} <= names

        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_local_up_reports_a_busy_port_as_a_cli_error():
    from functions.cli.local import register

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        import argparse

        parser = argparse.ArgumentParser()
        register(parser.add_subparsers())
        args = parser.parse_args(["local", "up", "--port", str(busy.getsockname()[1])])
        with pytest.raises(CliError, match="cannot listen"):
            args.run(args)


def test_idle_needs_two_quiet_scans_not_one_inconsistent_read(start_stack):
    """moto's threaded server can answer a queue's counts mid-receive with all zeros while a
    message is in flight: one quiet scan must not end the wait (the failed first delivery
    would then be lost to the test that waits)."""
    app = Chalice(app_name="testapp")
    attempts: list[str] = []

    @app.on_sqs_message(queue=settings().rate_queue, batch_size=1)
    def rate(event):
        attempts.append(event.to_dict()["Records"][0]["attributes"]["ApproximateReceiveCount"])
        if len(attempts) == 1:
            raise RuntimeError("transient failure")

    stack = start_stack(app)
    sqs = stack.runner._sqs

    class OnceBlind:
        """The runner's SQS client; its first count taken after the failure reads zero."""

        blinded = False

        def __getattr__(self, name):
            return getattr(sqs, name)

        def get_queue_attributes(self, **kw):
            answer = sqs.get_queue_attributes(**kw)
            if stack.runner.errors and not OnceBlind.blinded:
                OnceBlind.blinded = True
                answer["Attributes"] = dict.fromkeys(answer["Attributes"], "0")
            return answer

    stack.runner._sqs = OnceBlind()
    boto3.client("sqs").send_message(QueueUrl=_queue_url(settings().rate_queue), MessageBody="f1")
    stack.wait_idle(timeout=10)
    assert OnceBlind.blinded
    assert attempts == ["1", "2"]
