"""infra/template.yaml, app.py and .chalice/config.json agree with each other and with settings."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from chalice.app import SQSEventConfig
from chalice.config import Config as ChaliceConfig

from functions.local.provision import TEMPLATE_PATH, load_template, parameter_name
from functions.local.stack import default_app
from functions.shared.settings import Settings, settings

PROJECT_DIR = Path(__file__).resolve().parents[2]
CHALICE_CONFIG = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
TEMPLATE = load_template()


def _env_name(field_name: str) -> str:
    return f"TOLLGATE_{field_name.upper()}"


@pytest.fixture
def default_settings(monkeypatch) -> Iterator[Settings]:
    for field in fields(Settings):
        monkeypatch.delenv(_env_name(field.name), raising=False)
    settings.cache_clear()
    yield settings()
    settings.cache_clear()


def _function_config(name: str) -> ChaliceConfig:
    return ChaliceConfig(chalice_stage="dev", function_name=name, config_from_disk=CHALICE_CONFIG)


def _queue_resource(queue_name: str) -> dict[str, Any]:
    """The template's queue whose QueueName parameter defaults to `queue_name`."""
    for resource in TEMPLATE["Resources"].values():
        if resource["Type"] != "AWS::SQS::Queue":
            continue
        name = resource["Properties"]["QueueName"]
        if "Ref" in name and TEMPLATE["Parameters"][name["Ref"]]["Default"] == queue_name:
            return resource
    raise AssertionError(f"infra/template.yaml declares no queue {queue_name}")


def test_cfn_lint_passes():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(cfn_lint), str(TEMPLATE_PATH)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_parameter_defaults_are_the_settings_defaults(default_settings):
    expected = {parameter_name(f.name): getattr(default_settings, f.name) for f in fields(Settings)}
    # Resource names (…Name) are settings; tunables such as QuarantineRetentionDays are not.
    defaults = {
        name: p["Default"] for name, p in TEMPLATE["Parameters"].items() if name.endswith("Name")
    }
    assert defaults == expected


def test_each_setting_is_read_from_its_tollgate_variable(default_settings, monkeypatch):
    for field in fields(Settings):
        monkeypatch.setenv(_env_name(field.name), f"x-{field.name}")
    settings.cache_clear()
    assert all(getattr(settings(), f.name) == f"x-{f.name}" for f in fields(Settings))


def test_chalice_environment_names_every_resource_by_its_default(default_settings):
    environment = CHALICE_CONFIG["environment_variables"]
    assert {_env_name(f.name): environment.get(_env_name(f.name)) for f in fields(Settings)} == {
        _env_name(f.name): getattr(default_settings, f.name) for f in fields(Settings)
    }


def test_every_queue_consumed_by_a_function_outlasts_it_and_has_a_dead_letter_queue():
    sources = [s for s in default_app().event_sources if isinstance(s, SQSEventConfig)]
    assert {s.name for s in sources} == {"handle_cdr_drops", "handle_normalized_files"}
    for source in sources:
        queue = _queue_resource(source.queue)["Properties"]
        config = _function_config(source.name)
        assert (config.lambda_memory_size, config.lambda_timeout) == (2048, 300)
        # AWS guidance: at least 6x the function timeout, or a batch is handed out twice.
        assert queue["VisibilityTimeout"] >= 6 * config.lambda_timeout
        assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
        dead_letter = queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert TEMPLATE["Resources"][dead_letter]["Type"] == "AWS::SQS::Queue"


def test_per_function_config_names_only_declared_functions():
    # api_handler: Chalice's name for the one function behind all of app.py's routes
    declared = set(default_app().handler_map) | {"api_handler"}
    for stage in CHALICE_CONFIG["stages"].values():
        assert set(stage.get("lambda_functions", {})) <= declared


def test_cdr_drops_notify_the_ingest_queue_under_incoming_only():
    bucket = TEMPLATE["Resources"]["CdrBucket"]["Properties"]
    (notification,) = bucket["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "incoming/"}]


def test_tables_are_keyed_on_pk_and_sk_on_demand_with_recovery_where_money_lives():
    tables = {
        name: r["Properties"]
        for name, r in TEMPLATE["Resources"].items()
        if r["Type"] == "AWS::DynamoDB::Table"
    }
    assert set(tables) == {
        "AccountsTable",
        "LedgerTable",
        "FilesTable",
        "BillingTable",
        "FraudTable",
    }
    for props in tables.values():
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["KeySchema"] == [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ]
    recovering = {
        name
        for name, props in tables.items()
        if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled")
    }
    assert recovering == set(tables)


def test_only_the_fraud_tables_items_and_sign_in_sessions_expire():
    expiring = {
        name: r["Properties"]["TimeToLiveSpecification"]
        for name, r in TEMPLATE["Resources"].items()
        if "TimeToLiveSpecification" in r.get("Properties", {})
    }
    assert expiring == {
        "FraudTable": {"AttributeName": "expires_at", "Enabled": True},
        # portal sessions (functions/store/users.py), an attribute no other item has
        "AccountsTable": {"AttributeName": "session_expires_at", "Enabled": True},
        # live calls' money holds (functions/store/holds.py), an attribute no other item has
        "LedgerTable": {"AttributeName": "hold_ttl", "Enabled": True},
    }
    assert TEMPLATE["Resources"]["FraudTable"]["Properties"]["TableName"] == {
        "Ref": "FraudTableName"
    }


def _ttl(table: str) -> dict[str, str]:
    from functions.store import client

    return client("dynamodb").describe_time_to_live(TableName=table)["TimeToLiveDescription"]


def test_store_provision_makes_the_fraud_table_and_topic_as_the_template_does(aws):
    """The in-process stores (tests' moto account) have what the template declares."""
    from functions.store import client

    assert _ttl(settings().fraud_table) == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expires_at",
    }
    assert _ttl(settings().accounts_table) == {"TimeToLiveStatus": "DISABLED"}
    assert _ttl(settings().ledger_table) == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "hold_ttl",
    }
    topics = [t["TopicArn"] for t in client("sns").list_topics()["Topics"]]
    assert topics == ["arn:aws:sns:us-east-1:123456789012:tollgate-fraud-alerts"]


@pytest.mark.parametrize(
    ("function_name", "module_name"),
    [
        ("handle_cdr_drops", "functions.ingest.handler"),
        ("handle_normalized_files", "functions.rate.handler"),
    ],
)
def test_app_functions_pass_the_raw_event_and_context_to_their_handler(
    function_name, module_name, monkeypatch
):
    calls: list[tuple[dict[str, Any], Any]] = []
    handler = types.ModuleType(module_name)

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append((event, context))
        return {"batchItemFailures": [{"itemIdentifier": "m1"}]}

    setattr(handler, function_name, handle)
    monkeypatch.setitem(sys.modules, module_name, handler)
    event = {"Records": [{"messageId": "m1", "receiptHandle": "r1", "body": "{}"}]}
    context = types.SimpleNamespace(function_name=f"tollgate-dev-{function_name}")

    result = default_app().handler_map[function_name](event, context)

    assert result == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert calls == [(event, context)]
