"""infra/package.yaml's alarms and dashboard read the metrics the handlers really emit.

The emitted metrics are not taken from a list: a real file (and a rejected one) runs through
both handlers on moto and the EMF records they print are read back. New in issue 9 §4 (only
the dead-letter alarms existed; no metric, dashboard or trace): every test fails on the code
before it.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from functions.store import client, monitoring
from tests.conftest import FAKE_ENVIRONMENT, moto_account
from tests.pipeline.carrier import FIRST_FILE, SWITCH, TENANT, set_up_carrier
from tests.pipeline.test_handlers import LambdaContext, s3_event, sqs_event

PROJECT_DIR = Path(__file__).resolve().parents[2]
PACKAGE = yaml.safe_load((PROJECT_DIR / "infra" / "package.yaml").read_text())
TEMPLATE = yaml.safe_load((PROJECT_DIR / "infra" / "template.yaml").read_text())
RESOURCES = PACKAGE["Resources"]
# (metric name, {dimension: value}) as CloudWatch stores what an EMF record declares
Metric = tuple[str, frozenset[tuple[str, str]]]


def _emitted_metrics(out: str) -> set[Metric]:
    metrics = set()
    for line in out.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        record = json.loads(line)
        for directive in record["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "Tollgate"
            for dimension_set in directive["Dimensions"]:
                dimensions = frozenset((name, record[name]) for name in dimension_set)
                metrics.update((m["Name"], dimensions) for m in directive["Metrics"])
    return metrics


@pytest.fixture(scope="module")
def observed(tmp_path_factory) -> dict[str, Any]:
    """What a real file, a rejected file and a switch watch leave in CloudWatch."""
    from functions.ingest.handler import handle_cdr_drops
    from functions.rate.handler import handle_normalized_files
    from functions.store import files, lake

    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with moto_account():
            set_up_carrier(tmp_path_factory.mktemp("carrier"))
            lake.put_cdr(TENANT, SWITCH, "day1.csv", FIRST_FILE.encode())
            _, etag = lake.get_cdr(TENANT, SWITCH, "day1.csv")
            lake.put_cdr(TENANT, "nosuch", "x.csv", b"call_id\n")
            drops = sqs_event(
                s3_event(f"incoming/{TENANT}/{SWITCH}/day1.csv", etag),
                s3_event(f"incoming/{TENANT}/nosuch/x.csv"),
            )
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert handle_cdr_drops(drops, LambdaContext()) == {"batchItemFailures": []}
                [record] = [r for r in files.list_files(TENANT) if r.status == "ingested"]
                request = {"tenant": TENANT, "switch": SWITCH, "file_id": record.file_id}
                rated = handle_normalized_files(sqs_event(json.dumps(request)), LambdaContext())
                assert rated == {"batchItemFailures": []}
            monitoring.put_switch_silence_alarm(TENANT, SWITCH, 6)
            [watch] = client("cloudwatch").describe_alarms()["MetricAlarms"]
    return {"metrics": _emitted_metrics(out.getvalue()), "watch": watch}


def _alarms() -> dict[str, dict[str, Any]]:
    return {
        name: r["Properties"]
        for name, r in RESOURCES.items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }


def _resolve(value: Any) -> Any:
    """A `Ref` to a parameter -> its default; anything else as written."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return PACKAGE["Parameters"][value["Ref"]]["Default"]
    return value


def _sub(text: str) -> str:
    """Fn::Sub text with parameters at their defaults, attributes as `Resource.Attribute`."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in PACKAGE["Parameters"]:
            return str(PACKAGE["Parameters"][name]["Default"])
        if name.startswith("AWS::"):
            return {"AWS::Region": "us-east-1", "AWS::StackName": "tollgate"}[name]
        resource, _, attribute = name.partition(".")
        assert resource in RESOURCES or resource in TEMPLATE["Resources"], name
        return f"{resource}.{attribute}"

    return re.sub(r"\$\{([^}]+)\}", one, text)


def _dashboard() -> dict[str, Any]:
    properties = RESOURCES["Dashboard"]["Properties"]
    return json.loads(_sub(properties["DashboardBody"]["Fn::Sub"]))


def _widget_metrics(dashboard: dict[str, Any]) -> Iterator[list[Any]]:
    for widget in dashboard["widgets"]:
        if widget["type"] == "metric":
            yield from widget["properties"]["metrics"]


# --- alarms ----------------------------------------------------------------------------------


def test_the_stacks_alarms_watch_dead_letters_quarantine_share_and_rating_lag():
    summary = {}
    for name, props in _alarms().items():
        dimensions = {d["Name"]: d["Value"] for d in props["Dimensions"]}
        summary[name] = (
            props["Namespace"],
            props["MetricName"],
            dimensions,
            props["Statistic"],
            props["Period"],
            props["ComparisonOperator"],
            _resolve(props["Threshold"]),
        )
        assert props["AlarmActions"] == props["OKActions"] == [{"Ref": "AlarmTopic"}]
        # no data means nothing went wrong: no file, no failure, nothing waiting
        assert props["TreatMissingData"] == "notBreaching"
        assert props["EvaluationPeriods"] == 1
    age, depth, above = (
        "ApproximateAgeOfOldestMessage",
        "ApproximateNumberOfMessagesVisible",
        "GreaterThanThreshold",
    )

    def on(queue: str) -> dict[str, dict[str, list[str]]]:
        return {"QueueName": {"Fn::GetAtt": [queue, "QueueName"]}}

    assert summary == {
        "IngestDeadLetterAlarm": (
            "AWS/SQS",
            depth,
            on("IngestDeadLetterQueue"),
            "Maximum",
            60,
            above,
            0,
        ),
        "RateDeadLetterAlarm": (
            "AWS/SQS",
            depth,
            on("RateDeadLetterQueue"),
            "Maximum",
            60,
            above,
            0,
        ),
        # more than 5 % of one file's rows quarantined
        "QuarantineShareAlarm": (
            "Tollgate",
            "QuarantineShare",
            {"service": "ingest"},
            "Maximum",
            300,
            above,
            5,
        ),
        # a file took more than 15 minutes from drop to done, or one waits that long
        "RatingLagAlarm": (
            "Tollgate",
            "RatingLag",
            {"service": "rate"},
            "Maximum",
            300,
            above,
            900,
        ),
        "IngestBacklogAlarm": ("AWS/SQS", age, on("IngestQueue"), "Maximum", 300, above, 900),
        "RatingBacklogAlarm": ("AWS/SQS", age, on("RateQueue"), "Maximum", 300, above, 900),
        # the month-end job raised: some tenant's recurring fees are not posted yet
        "MonthEndFailedAlarm": (
            "AWS/Lambda",
            "Errors",
            {"FunctionName": {"Ref": "CloseBillingMonth"}},
            "Sum",
            300,
            above,
            0,
        ),
        # the daily dunning run raised: some tenant's reminders or suspensions wait
        "DunningFailedAlarm": (
            "AWS/Lambda",
            "Errors",
            {"FunctionName": {"Ref": "RunDunning"}},
            "Sum",
            300,
            above,
            0,
        ),
        # the daily invoice-cycle start raised: some tenant's closed period has no run yet
        "InvoiceScheduleFailedAlarm": (
            "AWS/Lambda",
            "Errors",
            {"FunctionName": {"Ref": "StartInvoiceCycles"}},
            "Sum",
            300,
            above,
            0,
        ),
        # a rated file's fraud check raised: its calls are not counted for the rules
        "FraudCheckFailedAlarm": (
            "AWS/Lambda",
            "Errors",
            {"FunctionName": {"Ref": "CheckFraud"}},
            "Sum",
            300,
            above,
            0,
        ),
        # the 5-minute evaluation raised: the time-based rules wait for a run that succeeds
        "FraudEvaluateFailedAlarm": (
            "AWS/Lambda",
            "Errors",
            {"FunctionName": {"Ref": "EvaluateFraud"}},
            "Sum",
            300,
            above,
            0,
        ),
        # the daily assurance check raised for some tenant: its alerts wait for the retry
        "AssuranceFailedAlarm": (
            "AWS/Lambda",
            "Errors",
            {"FunctionName": {"Ref": "CheckAssurance"}},
            "Sum",
            300,
            above,
            0,
        ),
    }


def test_alarms_on_tollgate_metrics_read_what_the_handlers_emit(observed):
    for name, props in _alarms().items():
        if props["Namespace"] != "Tollgate":
            continue
        dimensions = frozenset((d["Name"], d["Value"]) for d in props["Dimensions"])
        assert (props["MetricName"], dimensions) in observed["metrics"], name


def test_a_switch_watch_reads_the_files_received_ingest_emits_for_that_switch(observed):
    watch = observed["watch"]
    dimensions = frozenset((d["Name"], d["Value"]) for d in watch["Dimensions"])
    assert (watch["Namespace"], watch["MetricName"]) == ("Tollgate", "FilesReceived")
    assert ("FilesReceived", dimensions) in observed["metrics"]
    assert dict(dimensions)["switch"] == SWITCH


def test_alarm_thresholds_are_stack_parameters_with_their_limits():
    parameters = PACKAGE["Parameters"]
    share = parameters["QuarantineAlarmPercent"]
    assert (share["MinValue"], share["MaxValue"]) == (0, 100)
    assert parameters["RatingLagAlarmSeconds"]["MinValue"] == 60
    alarms = _alarms()
    assert alarms["QuarantineShareAlarm"]["Threshold"] == {"Ref": "QuarantineAlarmPercent"}
    for name in ("RatingLagAlarm", "IngestBacklogAlarm", "RatingBacklogAlarm"):
        assert alarms[name]["Threshold"] == {"Ref": "RatingLagAlarmSeconds"}


# --- dashboard -------------------------------------------------------------------------------


def test_dashboard_graphs_only_metrics_the_handlers_emit_and_every_one_of_them(observed):
    graphed: set[str] = set()
    for row in _widget_metrics(_dashboard()):
        if isinstance(row[0], dict):  # a SEARCH over every tenant and switch
            expression = row[0]["expression"]
            schema, name = re.fullmatch(
                r"SEARCH\('\{Tollgate,([a-z,]+)\} MetricName=\"(\w+)\"', 'Sum', \d+\)", expression
            ).groups()
            names = set(schema.split(","))
            assert any(
                metric == name and {d for d, _ in dims} == names
                for metric, dims in observed["metrics"]
            ), expression
            graphed.add(name)
            continue
        namespace, metric, *pairs = row
        if isinstance(pairs[-1], dict):
            pairs = pairs[:-1]
        dimensions = frozenset(zip(pairs[::2], pairs[1::2], strict=True))
        if namespace == "Tollgate":
            assert (metric, dimensions) in observed["metrics"], row
            graphed.add(metric)
        else:
            assert namespace == "AWS/SQS", row
            (queue,) = (value for key, value in dimensions if key == "QueueName")
            assert queue.removesuffix(".QueueName") in TEMPLATE["Resources"], row
    assert graphed == set(monitoring.UNITS)


def test_dashboard_shows_every_alarm_of_the_stack():
    [widget] = [w for w in _dashboard()["widgets"] if w["type"] == "alarm"]
    shown = {arn.removesuffix(".Arn") for arn in widget["properties"]["alarms"]}
    assert shown == set(_alarms())


def test_dashboard_marks_the_alarm_thresholds():
    lines = {}
    for widget in _dashboard()["widgets"]:
        properties = widget["properties"]
        for line in properties.get("annotations", {}).get("horizontal", []):
            lines[properties["metrics"][0][1]] = line["value"]
    assert lines == {"QuarantineShare": 5, "RatingLag": 900}


# --- traces ----------------------------------------------------------------------------------


def test_both_functions_are_traced_and_may_send_traces_only():
    for function in ("HandleCdrDrops", "HandleNormalizedFiles"):
        assert RESOURCES[function]["Properties"]["Tracing"] == "Active"
    policy = RESOURCES["TracingPolicy"]["Properties"]
    assert policy["Roles"] == [{"Ref": "HandleCdrDropsRole"}, {"Ref": "HandleNormalizedFilesRole"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    assert statement["Resource"] == "*"  # X-Ray has no resource-level permissions
