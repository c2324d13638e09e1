"""Deploy infra/template.yaml into a moto server, filling in what moto's CloudFormation skips.

moto 5.2.5 creates the buckets, queues (with RedrivePolicy), tables and the event bus from the
template, but silently drops some of it. Checked against this template:
- `AWS::SQS::QueuePolicy` is not supported at all (skipped, its stack row has no logical id);
- `AWS::S3::Bucket` ignores `NotificationConfiguration` and `PublicAccessBlockConfiguration`;
- `AWS::DynamoDB::Table` ignores `PointInTimeRecoverySpecification` and
  `TimeToLiveSpecification`;
- `AWS::Events::EventBus` is created, but with an empty physical id and a broken `Ref` output.
Those properties are applied here with the service APIs, read from the same template, so the
template stays the one description of the stack. A resource type that moto skips and that has
no creator below fails provisioning loudly instead of leaving a hole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import boto3
import yaml

from functions.local.errors import LocalStackError
from functions.shared.settings import Settings, settings

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
STACK_NAME = "tollgate"
REGION = "us-east-1"
# moto accepts any key pair; these are the values moto's own docs and tests use.
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class ProvisionError(LocalStackError):
    """The template could not be deployed faithfully into the local stack."""


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data (it uses long-form intrinsics, so it is plain YAML)."""
    return yaml.safe_load(path.read_text())


def parameter_name(field_name: str) -> str:
    """The template parameter that carries a Settings field: `cdr_bucket` -> `CdrBucketName`."""
    return "".join(part.capitalize() for part in field_name.split("_")) + "Name"


def stack_parameters(names: Settings) -> dict[str, str]:
    """Template parameters for the resource names the handlers will look up."""
    return {parameter_name(f.name): getattr(names, f.name) for f in fields(names)}


def provision(
    endpoint_url: str,
    *,
    template_path: Path = TEMPLATE_PATH,
    parameters: Mapping[str, str] | None = None,
    stack_name: str = STACK_NAME,
) -> dict[str, Any]:
    """Create the template's stack at `endpoint_url`; return its resources and outputs.

    Parameters default to `settings()`, so TOLLGATE_* overrides reach the local stack too.
    Result: {"stack_id", "parameters", "resources": {logical id: physical id}, "outputs"}.
    """
    template = load_template(template_path)
    values = {**stack_parameters(settings()), **(parameters or {})}
    clients = _Clients(endpoint_url)
    cfn = clients("cloudformation")
    stack_id = cfn.create_stack(
        StackName=stack_name,
        TemplateBody=template_path.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
    )["StackId"]
    status = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
    if status != "CREATE_COMPLETE":
        raise ProvisionError(f"stack {stack_name} ended in {status}")

    listed = {
        row["LogicalResourceId"]: row.get("PhysicalResourceId") or ""
        for row in _stack_resources(cfn, stack_id)
        if row["LogicalResourceId"]
    }
    resolver = _Resolver(template, values, clients)
    resources = template["Resources"]
    skipped = [name for name in resources if name not in listed]
    for name in skipped:
        if resources[name]["Type"] not in _CREATE:
            raise ProvisionError(
                f"moto's CloudFormation skipped {name} ({resources[name]['Type']}); "
                "add a creator for it in functions/local/provision.py"
            )
    # Ids first (a property may refer to any resource), then what moto left undone.
    for name, physical_id in listed.items():
        props = resources[name].get("Properties", {})
        kind = resources[name]["Type"]
        resolver.physical[name] = _physical_id(kind, physical_id, props, resolver, clients)
    for name in listed:
        fill_in = _FILL_IN.get(resources[name]["Type"])
        props = resources[name].get("Properties", {})
        if fill_in:
            fill_in(resolver.physical[name], props, resolver, clients)
    for name in skipped:
        props = resources[name].get("Properties", {})
        resolver.physical[name] = _CREATE[resources[name]["Type"]](props, resolver, clients)
    outputs = {
        key: str(resolver.resolve(output["Value"]))
        for key, output in template.get("Outputs", {}).items()
    }
    physical = {name: resolver.physical[name] for name in resources}
    return {"stack_id": stack_id, "parameters": values, "resources": physical, "outputs": outputs}


class _Clients:
    """One boto3 client per service, all pointed at the local endpoint."""

    def __init__(self, endpoint_url: str) -> None:
        self._session = boto3.session.Session(region_name=REGION, **FAKE_CREDENTIALS)
        self._endpoint_url = endpoint_url
        self._made: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._made:
            self._made[service] = self._session.client(service, endpoint_url=self._endpoint_url)
        return self._made[service]


def _stack_resources(cfn: Any, stack_id: str) -> list[dict[str, Any]]:
    pages = cfn.get_paginator("list_stack_resources").paginate(StackName=stack_id)
    return [row for page in pages for row in page["StackResourceSummaries"]]


@dataclass
class _Resolver:
    """Evaluates the intrinsics the template uses (Ref, Fn::GetAtt, Fn::Sub, Fn::Join)."""

    template: dict[str, Any]
    parameters: Mapping[str, str]
    clients: _Clients

    def __post_init__(self) -> None:
        self.physical: dict[str, str] = {}
        account = self.clients("sts").get_caller_identity()["Account"]
        self.pseudo = {
            "AWS::AccountId": account,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), *_ = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._get_att(name, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(str(item) for item in self.resolve(items))
        return {key: self.resolve(item) for key, item in value.items()}

    def _ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.template.get("Parameters", {}):
            return self.template["Parameters"][name]["Default"]
        if name in self.physical:
            return self.physical[name]
        raise ProvisionError(f"cannot resolve Ref {name} (not created yet?)")

    def _get_att(self, name: str, attribute: str) -> str:
        kind = self.template["Resources"][name]["Type"]
        ident = self._ref(name)
        if (kind, attribute) == ("AWS::SQS::Queue", "Arn"):
            attrs = self.clients("sqs").get_queue_attributes(
                QueueUrl=ident, AttributeNames=["QueueArn"]
            )
            return attrs["Attributes"]["QueueArn"]
        if (kind, attribute) == ("AWS::SQS::Queue", "QueueName"):
            return ident.rsplit("/", 1)[-1]
        if (kind, attribute) == ("AWS::S3::Bucket", "Arn"):
            return f"arn:{self.pseudo['AWS::Partition']}:s3:::{ident}"
        if (kind, attribute) == ("AWS::DynamoDB::Table", "Arn"):
            return self.clients("dynamodb").describe_table(TableName=ident)["Table"]["TableArn"]
        if (kind, attribute) == ("AWS::Events::EventBus", "Arn"):
            return self.clients("events").describe_event_bus(Name=ident)["Arn"]
        raise ProvisionError(f"cannot resolve Fn::GetAtt {name}.{attribute} ({kind})")

    def _sub(self, arg: str | list[Any]) -> str:
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in extra:
                return str(extra[name])
            if "." in name and not name.startswith("AWS::"):
                return self._get_att(*name.split(".", 1))
            return self._ref(name)

        return re.sub(r"\$\{([^}!]+)\}", one, text)


def _physical_id(
    kind: str, listed: str, props: Mapping[str, Any], resolver: _Resolver, clients: _Clients
) -> str:
    """The id `Ref` returns, usable against the local endpoint."""
    if kind == "AWS::SQS::Queue":
        # moto reports the queue's AWS-style URL; ask the local endpoint for its own.
        name = listed.rsplit("/", 1)[-1] or resolver.resolve(props["QueueName"])
        return clients("sqs").get_queue_url(QueueName=name)["QueueUrl"]
    if kind == "AWS::Events::EventBus" and not listed:
        return resolver.resolve(props["Name"])
    if not listed:
        raise ProvisionError(f"moto created a {kind} without a physical id")
    return listed


def _fill_in_bucket(
    name: str, props: Mapping[str, Any], resolver: _Resolver, clients: _Clients
) -> None:
    s3 = clients("s3")
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration=resolver.resolve(
                props["PublicAccessBlockConfiguration"]
            ),
        )
    notifications = resolver.resolve(props.get("NotificationConfiguration") or {})
    unsupported = set(notifications) - {"QueueConfigurations"}
    if unsupported:
        raise ProvisionError(f"bucket {name}: no local support for {sorted(unsupported)}")
    if notifications:
        # Sends the s3:TestEvent message to each queue, as S3 does.
        s3.put_bucket_notification_configuration(
            Bucket=name,
            NotificationConfiguration={
                "QueueConfigurations": [
                    _queue_notification(config) for config in notifications["QueueConfigurations"]
                ]
            },
        )


def _queue_notification(config: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's QueueConfiguration shape -> the PutBucketNotificationConfiguration one."""
    api: dict[str, Any] = {"QueueArn": config["Queue"], "Events": [config["Event"]]}
    rules = config.get("Filter", {}).get("S3Key", {}).get("Rules", [])
    if rules:
        api["Filter"] = {
            "Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}
        }
    return api


def _fill_in_table(
    name: str, props: Mapping[str, Any], resolver: _Resolver, clients: _Clients
) -> None:
    spec = resolver.resolve(props.get("PointInTimeRecoverySpecification") or {})
    if spec.get("PointInTimeRecoveryEnabled"):
        clients("dynamodb").update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    ttl = resolver.resolve(props.get("TimeToLiveSpecification") or {})
    if ttl.get("Enabled"):
        clients("dynamodb").update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )


def _create_queue_policy(props: Mapping[str, Any], resolver: _Resolver, clients: _Clients) -> str:
    policy = json.dumps(resolver.resolve(props["PolicyDocument"]))
    urls = resolver.resolve(props["Queues"])
    for url in urls:
        clients("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    return ",".join(urls)


def _create_email_identity(props: Mapping[str, Any], resolver: _Resolver, clients: _Clients) -> str:
    identity = resolver.resolve(props["EmailIdentity"])
    clients("sesv2").create_email_identity(EmailIdentity=identity)
    # On AWS its owner verifies it (a DNS record, a link); moto marks it verified on request.
    clients("ses").verify_email_identity(EmailAddress=identity)
    return identity


_Hook = Callable[[str, Mapping[str, Any], _Resolver, _Clients], None]
# Properties moto's CloudFormation accepts but does not apply.
_FILL_IN: dict[str, _Hook] = {
    "AWS::S3::Bucket": _fill_in_bucket,
    "AWS::DynamoDB::Table": _fill_in_table,
}
# Resource types moto's CloudFormation skips entirely.
_CREATE: dict[str, Callable[[Mapping[str, Any], _Resolver, _Clients], str]] = {
    "AWS::SQS::QueuePolicy": _create_queue_policy,
    "AWS::SES::EmailIdentity": _create_email_identity,
}
