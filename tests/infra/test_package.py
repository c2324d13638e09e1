"""The deployable template: `chalice package` of app.py merged with infra/ (as `make package`).

The app is packaged for real, in a scratch copy of the project whose requirements.txt is
empty: Chalice then runs no pip at all (about a second, offline), and the template it
writes is the one `make package` writes, the requirements only change deployment.zip. The
merge template is built by the Makefile's own MERGE_TEMPLATES code.

Sizes: exact when `make package` has run (build/package/); otherwise estimated from this
venv's installed distributions of the same packages (and cross-checked against the exact
figure when both exist).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from packaging.requirements import Requirement

from functions.shared import policies

PROJECT_DIR = Path(__file__).resolve().parents[2]
MAKEFILE = (PROJECT_DIR / "Makefile").read_text()
BIN = Path(sys.executable).parent
LAMBDA_LIMIT = 262_144_000  # function + layers, unzipped
INVOICE_STEPS = ("aggregate", "draft", "number", "render", "send", "post")
FUNCTIONS = {
    "HandleCdrDrops": "handle_cdr_drops",
    "HandleNormalizedFiles": "handle_normalized_files",
    "CloseBillingMonth": "close_billing_month",
    **{f"Invoice{step.capitalize()}": f"invoice_{step}" for step in INVOICE_STEPS},
    "StartInvoiceCycles": "start_invoice_cycles",
    "RecordMailEvents": "record_mail_events",
    "RunDunning": "run_dunning",
    "CheckFraud": "check_fraud",
    "EvaluateFraud": "evaluate_fraud",
    "CheckAssurance": "check_assurance",
    "APIHandler": "api_handler",  # app.py's routes (Chalice's one function for them all)
    "UsageKey": "usage_key",  # the routes' authorizer: the usage key a token names
}
# Chalice names each role after its function, but the API handler's ApiHandlerRole.
ROLES = {name: f"{name}Role" for name in FUNCTIONS} | {"APIHandler": "ApiHandlerRole"}
# Every function has the Arrow layer; only those that render a PDF the documents layer.
RENDERING = {"InvoiceRender"}
LAYERS = {
    name: ["ArrowLayer", "DocumentsLayer"] if name in RENDERING else ["ArrowLayer"]
    for name in FUNCTIONS
} | {"UsageKey": []}  # it reads the token alone
LAYER_ZIPS = {"ArrowLayer": "arrow-layer.zip", "DocumentsLayer": "documents-layer.zip"}
DEPLOY_ONLY_TYPES = {
    "AWS::Serverless::Function",
    "AWS::Serverless::LayerVersion",
    "AWS::IAM::Role",
    "AWS::Logs::LogGroup",
    "AWS::CloudWatch::Alarm",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::S3::BucketPolicy",  # moto neither creates nor enforces it (tests/access judge it)
    "AWS::IAM::Policy",  # the functions' X-Ray grant (tests/infra/test_alarms.py)
    "AWS::CloudWatch::Dashboard",
    # Made by the local stack from infra/invoice_cycle.asl.json (functions/local/states.py).
    "AWS::StepFunctions::StateMachine",
    # The REST API and API Gateway's right to invoke its function: the local stack serves
    # them through Chalice's local gateway (functions/local/web.py), not API Gateway.
    "AWS::Serverless::Api",
    "AWS::Lambda::Permission",
    # infra/portal.yaml: locally functions/local/web.py serves portal/ and the API on one
    # origin, as this distribution does from the portal's bucket (PortalBucket, by name).
    "AWS::CloudFront::Distribution",
    "AWS::CloudFront::OriginAccessControl",
    "AWS::CloudFront::ResponseHeadersPolicy",
    "AWS::ApiGateway::UsagePlan",  # each key's own limit (the local stack: throttle.py)
}


def _make_define(name: str) -> str:
    match = re.search(rf"^define {name}\n(.*?)^endef$", MAKEFILE, re.S | re.M)
    assert match, f"Makefile has no define {name}"
    return match.group(1)


def _merge_sources() -> list[str]:
    match = re.search(r"^MERGE_SOURCES := (.+)$", MAKEFILE, re.M)
    assert match, "Makefile has no MERGE_SOURCES"
    return match.group(1).split()


def _infra(name: str) -> dict[str, Any]:
    return yaml.safe_load((PROJECT_DIR / "infra" / name).read_text())


def _chalice_package(project: Path, out: Path, merge: Path | None) -> float:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "PIP_NO_INDEX": "1"}
    command = [str(BIN / "chalice"), "package", "--stage", "dev", "--pkg-format", "cloudformation"]
    if merge is not None:
        command += ["--merge-template", str(merge)]
    started = time.monotonic()
    result = subprocess.run(
        [*command, str(out)], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return time.monotonic() - started


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> dict[str, Any]:
    scratch = tmp_path_factory.mktemp("package")
    project = scratch / "project"
    (project / ".chalice").mkdir(parents=True)
    (project / "vendor").mkdir()
    shutil.copy(PROJECT_DIR / "app.py", project)
    for name in ("config.json", "policy-placeholder.json"):
        shutil.copy(PROJECT_DIR / ".chalice" / name, project / ".chalice")
    (project / "requirements.txt").write_text("")
    (project / "vendor" / "functions").symlink_to(PROJECT_DIR / "functions")
    merge = scratch / "merge.json"
    subprocess.run(
        [sys.executable, "-c", _make_define("MERGE_TEMPLATES"), str(merge), *_merge_sources()],
        cwd=PROJECT_DIR,
        check=True,
        capture_output=True,
    )
    seconds = _chalice_package(project, scratch / "out", merge)
    _chalice_package(project, scratch / "bare", None)
    return {
        "dir": scratch / "out",
        "template": json.loads((scratch / "out" / "sam.json").read_text()),
        "bare": json.loads((scratch / "bare" / "sam.json").read_text()),
        "seconds": seconds,
    }


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    (policy,) = template["Resources"][role]["Properties"]["Policies"]
    return policy["PolicyDocument"]["Statement"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _grants(template: dict[str, Any], role: str) -> set[tuple[str, str]]:
    """(action, resource) pairs a role allows; resources as their intrinsic's text."""
    grants = set()
    for statement in _statements(template, role):
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            for resource in _as_list(statement["Resource"]):
                if "Fn::GetAtt" in resource:
                    text = ".".join(resource["Fn::GetAtt"])
                else:
                    text = resource["Fn::Sub"]
                grants.add((action, text))
    return grants


# --- the packaging itself ------------------------------------------------------------------


def test_packaging_runs_offline_in_seconds(packaged):
    # PIP_NO_INDEX: Chalice could not have fetched anything; the whole run is timed.
    assert packaged["seconds"] < 60, f"chalice package took {packaged['seconds']:.1f} s"


def test_cfn_lint_passes_on_the_packaged_template(packaged):
    result = subprocess.run(
        [str(BIN / "cfn-lint"), str(packaged["dir"] / "sam.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_zip_holds_app_py_and_functions(packaged):
    with zipfile.ZipFile(packaged["dir"] / "deployment.zip") as archive:
        names = set(archive.namelist())
    for needed in (
        "app.py",
        "functions/__init__.py",
        "functions/ingest/handler.py",
        "functions/rate/handler.py",
        "functions/shared/settings.py",
        "functions/store/lake.py",
    ):
        assert needed in names
    assert not {n.split("/")[0] for n in names} & {"pandas", "awswrangler"}


def test_the_merge_refines_only_what_chalice_generates(packaged):
    """infra/package.yaml names Chalice's resources; renaming a function in app.py must not
    leave half-defined resources behind."""
    bare = packaged["bare"]["Resources"]
    for name, resource in _infra("package.yaml")["Resources"].items():
        # A role with its own trust policy is wholly ours (the state machine's), not a refinement.
        own_role = "AssumeRolePolicyDocument" in resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" or (
            resource["Type"] == "AWS::IAM::Role" and not own_role
        ):
            assert name in bare, f"Chalice no longer generates {name}"
        if resource["Type"] == "AWS::Serverless::Function":
            # The invoice cycle's tasks have none: the state machine invokes them.
            events = resource["Properties"].get("Events", {})
            assert set(events) == set(bare[name]["Properties"].get("Events", {}))


def test_no_intrinsic_was_merged_into_another(packaged):
    """A deep merge of {"Fn::GetAtt": ...} over {"Fn::Sub": ...} gives a dict with both."""

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            intrinsic = [k for k in value if k == "Ref" or k.startswith("Fn::")]
            assert not intrinsic or len(value) == 1, f"{where}: {sorted(value)}"
            for key, item in value.items():
                walk(item, f"{where}/{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{where}[{index}]")

    walk(packaged["template"], "")


def test_infra_resources_arrive_unchanged(packaged):
    """The deployable stack declares exactly what the local stack provisions from
    infra/template.yaml (and the Glue/Athena pieces of infra/glue.yaml)."""
    template = packaged["template"]
    for source in ("template.yaml", "glue.yaml"):
        infra = _infra(source)
        for name, resource in infra["Resources"].items():
            assert template["Resources"][name] == resource, f"{source}: {name}"
        for name, parameter in infra["Parameters"].items():
            assert template["Parameters"][name]["Default"] == parameter["Default"]
    infra_names = set(_infra("template.yaml")["Resources"]) | set(_infra("glue.yaml")["Resources"])
    for name, resource in template["Resources"].items():
        if name not in infra_names and name != "PortalBucket":
            assert resource["Type"] in DEPLOY_ONLY_TYPES, f"{name} is not provisioned locally"


def test_the_local_stack_provisions_every_template_resource(aws_environment):
    from moto.server import ThreadedMotoServer

    from functions.local.provision import load_template, provision

    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        result = provision(f"http://{host}:{port}")
        # moto's CloudFormation drops a table's TimeToLiveSpecification: provision applies it
        dynamodb = boto3.client("dynamodb", endpoint_url=f"http://{host}:{port}")
        ttl = dynamodb.describe_time_to_live(TableName=result["resources"]["FraudTable"])
    finally:
        server.stop()
    assert set(result["resources"]) == set(load_template()["Resources"])
    assert all(result["resources"].values())
    assert ttl["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expires_at",
    }
    assert result["outputs"]["FraudAlertsTopicArn"] == (
        "arn:aws:sns:us-east-1:123456789012:tollgate-fraud-alerts"
    )


# --- functions -----------------------------------------------------------------------------


def test_functions_run_python312_with_their_layers(packaged):
    template = packaged["template"]
    functions = _resources(template, "AWS::Serverless::Function")
    assert set(functions) == set(FUNCTIONS)
    for name, props in ((n, f["Properties"]) for n, f in functions.items()):
        assert props["Runtime"] == "python3.12"
        assert props["Layers"] == [{"Ref": layer} for layer in LAYERS[name]], name
        assert props["Architectures"] == ["x86_64"]
    layers = _resources(template, "AWS::Serverless::LayerVersion")
    assert {n: layer["Properties"]["ContentUri"] for n, layer in layers.items()} == {
        n: f"./{z}" for n, z in LAYER_ZIPS.items()
    }
    for layer in layers.values():
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
        assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64"]


def test_only_the_functions_that_render_a_pdf_carry_reportlab():
    """The handler of a function without the documents layer must never import reportlab:
    app.py's tasks import functions.invoice.pdf only to render (cycle.documents_of)."""
    script = (
        "import sys, app, functions.invoice.handler, functions.invoice.receipts, "
        "functions.invoice.dunning_job; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('reportlab', 'PIL')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[]"
    cycle = (PROJECT_DIR / "functions" / "invoice" / "cycle.py").read_text()
    # the one import of the PDF module, inside documents_of (render; a credit note's CLI)
    assert re.findall(r"^( *)from functions\.invoice\.pdf import", cycle, re.M) == ["    "]


def test_every_function_gets_its_configured_memory_and_timeout(packaged):
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    per_function = config["stages"]["dev"]["lambda_functions"]
    for name, function in _resources(packaged["template"], "AWS::Serverless::Function").items():
        props = function["Properties"]
        wanted = {
            key: per_function.get(FUNCTIONS[name], {}).get(key, config[key])
            for key in ("lambda_memory_size", "lambda_timeout")
        }
        assert (props["MemorySize"], props["Timeout"]) == (
            wanted["lambda_memory_size"],
            wanted["lambda_timeout"],
        ), name
    # API Gateway gives up on an integration after 29 s: a longer Lambda would go on
    # (recording a payment) after Stripe was told 504 and retries.
    assert per_function["api_handler"]["lambda_timeout"] <= 29
    # a chunk of CHUNK_ACCOUNTS invoices to render or send, and the whole period to aggregate
    for task in ("invoice_render", "invoice_send"):
        assert per_function[task]["lambda_memory_size"] >= 1024
        assert per_function[task]["lambda_timeout"] >= 300
    assert per_function["invoice_aggregate"]["lambda_timeout"] == 900


def test_sqs_mappings_report_partial_batch_failures_within_reserved_concurrency(packaged):
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    per_function = config["stages"]["dev"]["lambda_functions"]
    queues = {"HandleCdrDrops": "IngestQueue", "HandleNormalizedFiles": "RateQueue"}
    for name, function in _resources(packaged["template"], "AWS::Serverless::Function").items():
        if name not in queues:
            continue  # the monthly schedule: no queue, no batches (test_the_schedule_...)
        props = function["Properties"]
        reserved = per_function[FUNCTIONS[name]]["reserved_concurrency"]
        assert props["ReservedConcurrentExecutions"] == reserved
        (event,) = props["Events"].values()
        assert event["Type"] == "SQS"
        source = event["Properties"]
        assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert source["Queue"] == {"Fn::Sub": f"${{{queues[name]}.Arn}}"}
        assert source["ScalingConfig"]["MaximumConcurrency"] == reserved


def test_the_schedule_posts_recurring_fees_at_0200_utc_on_the_1st(packaged):
    function = packaged["template"]["Resources"]["CloseBillingMonth"]["Properties"]
    (event,) = function["Events"].values()
    assert (event["Type"], event["Properties"]["Schedule"]) == ("Schedule", "cron(0 2 1 * ? *)")
    assert function["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-month-end"}


def test_dunning_runs_daily_at_0600_utc(packaged):
    function = packaged["template"]["Resources"]["RunDunning"]["Properties"]
    (event,) = function["Events"].values()
    assert (event["Type"], event["Properties"]["Schedule"]) == ("Schedule", "cron(0 6 * * ? *)")


def test_each_rated_file_is_checked_for_fraud_from_the_tollgate_bus(packaged):
    """Rating publishes FileRated on the tollgate bus (functions/store/events.py): a rule on
    the default bus, Chalice's own, would never see one."""
    from functions.store import events

    function = packaged["template"]["Resources"]["CheckFraud"]["Properties"]
    (event,) = function["Events"].values()
    assert event["Type"] == "CloudWatchEvent"
    assert event["Properties"]["EventBusName"] == {"Ref": "EventBus"}
    assert event["Properties"]["Pattern"] == {
        "source": [events.SOURCE],
        "detail-type": [events.FILE_RATED],
    }
    assert (function["MemorySize"], function["Timeout"]) == (1024, 300)
    assert function["Handler"] == "app.check_fraud"


def test_the_assurance_check_runs_daily_after_the_late_file_margin(packaged):
    """06:30 UTC: midnight plus the default 6-hour margin (functions/ingest/assurance.py)."""
    from functions.ingest.assurance import Thresholds

    function = packaged["template"]["Resources"]["CheckAssurance"]["Properties"]
    (event,) = function["Events"].values()
    assert (event["Type"], event["Properties"]["Schedule"]) == ("Schedule", "cron(30 6 * * ? *)")
    assert Thresholds().late_hours < 6.5
    assert (function["MemorySize"], function["Timeout"]) == (1024, 900)
    assert function["Handler"] == "app.check_assurance"


def test_the_time_based_fraud_rules_run_every_5_minutes(packaged):
    function = packaged["template"]["Resources"]["EvaluateFraud"]["Properties"]
    (event,) = function["Events"].values()
    assert (event["Type"], event["Properties"]["Schedule"]) == ("Schedule", "rate(5 minutes)")
    assert (function["MemorySize"], function["Timeout"]) == (512, 120)
    assert function["Handler"] == "app.evaluate_fraud"


def test_fraud_alerts_reach_the_topic_and_the_optional_address(packaged):
    template = packaged["template"]
    for name in ("CheckFraud", "EvaluateFraud"):
        variables = template["Resources"][name]["Properties"]["Environment"]["Variables"]
        # the topic's ARN (its Ref) and the table's name: what notices and the store read
        assert variables["TOLLGATE_FRAUD_TOPIC"] == {"Ref": "FraudAlertsTopic"}
        assert variables["TOLLGATE_FRAUD_TABLE"] == {"Ref": "FraudTable"}
    assert template["Resources"]["FraudAlertsTopic"]["Type"] == "AWS::SNS::Topic"
    subscription = template["Resources"]["FraudAlertEmailSubscription"]
    assert subscription["Condition"] == "HasFraudAlertEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "FraudAlertsTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "FraudAlertEmail"},
    }
    # no address given (the default): no subscription
    assert template["Parameters"]["FraudAlertEmail"]["Default"] == ""
    assert template["Conditions"]["HasFraudAlertEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "FraudAlertEmail"}, ""]}]
    }


def test_the_api_handler_serves_every_route_and_only_those(packaged):
    from app import app

    template = packaged["template"]
    (api,) = _resources(template, "AWS::Serverless::Api").values()
    paths = api["Properties"]["DefinitionBody"]["paths"]
    assert {p: sorted(methods) for p, methods in paths.items()} == {
        p: sorted(m.lower() for m in methods) for p, methods in app.routes.items()
    }
    assert paths["/v1/webhooks/stripe/{tenant}"].keys() == {"post"}
    for path, methods in paths.items():
        for method in methods.values():
            integration = method["x-amazon-apigateway-integration"]
            assert "${APIHandler.Arn}" in integration["uri"]["Fn::Sub"], path
    # the log group is the function's (Chalice writes a name no resource has: ApiHandler)
    log_group = template["Resources"]["ApiHandlerLogGroup"]["Properties"]["LogGroupName"]
    assert log_group == {"Fn::Sub": "/aws/lambda/${APIHandler}"}


def test_functions_find_the_stacks_resources_not_the_packaging_machines(packaged):
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    for function in _resources(packaged["template"], "AWS::Serverless::Function").values():
        variables = dict(function["Properties"]["Environment"]["Variables"])
        # the API function puts portal sessions' keys in the usage plan, found by its name
        plan = variables.pop("TOLLGATE_USAGE_PLAN", None)
        if function["Properties"]["Handler"] == "app.app":  # Chalice's API function
            assert plan == {"Fn::Sub": "${AWS::StackName}-keys"}
        else:
            assert plan is None
        assert set(variables) == set(config["environment_variables"])
        for value in variables.values():
            assert isinstance(value, dict), "a literal name ignores the stack's parameters"
            target = value.get("Ref") or value["Fn::GetAtt"][0]
            if target == "InvoiceStateMachineName":
                # The state machine's tasks are these functions: naming it by its resource
                # would make a dependency cycle, so both take the name from the parameter.
                continue
            assert target in _infra("template.yaml")["Resources"]


# --- least privilege -----------------------------------------------------------------------

LAKE = "${LakeBucket.Arn}"
INGEST_GRANTS = {
    ("logs:CreateLogStream", "log"),
    ("logs:PutLogEvents", "log"),
    ("s3:GetObject", "${CdrBucket.Arn}/incoming/*"),
    ("s3:ListBucket", "CdrBucket.Arn"),
    ("s3:PutObject", f"{LAKE}/normalized/*"),
    ("s3:PutObject", f"{LAKE}/quarantine/*"),
    ("dynamodb:GetItem", "AccountsTable.Arn"),
    ("dynamodb:GetItem", "FilesTable.Arn"),
    ("dynamodb:PutItem", "FilesTable.Arn"),
    ("dynamodb:UpdateItem", "FilesTable.Arn"),  # files.record_failure
    ("sqs:SendMessage", "RateQueue.Arn"),
    ("sqs:GetQueueUrl", "RateQueue.Arn"),
    ("sqs:ReceiveMessage", "IngestQueue.Arn"),
    ("sqs:DeleteMessage", "IngestQueue.Arn"),
    ("sqs:ChangeMessageVisibility", "IngestQueue.Arn"),
    ("sqs:GetQueueAttributes", "IngestQueue.Arn"),
}
RATE_GRANTS = {
    ("logs:CreateLogStream", "log"),
    ("logs:PutLogEvents", "log"),
    ("s3:GetObject", f"{LAKE}/normalized/*"),
    ("s3:GetObject", f"{LAKE}/decks/*"),
    *(
        (f"s3:{action}", f"{LAKE}/{area}/*")
        for action in ("GetObject", "PutObject")
        for area in ("rated", "charges", "staging")
    ),
    ("s3:GetObject", f"{LAKE}/dedup/*"),
    ("s3:PutObject", f"{LAKE}/dedup/*"),
    ("s3:DeleteObject", f"{LAKE}/dedup/*"),
    ("s3:ListBucket", "LakeBucket.Arn"),
    *((f"dynamodb:{action}", "FilesTable.Arn") for action in ("GetItem", "PutItem", "UpdateItem")),
    ("dynamodb:GetItem", "AccountsTable.Arn"),
    ("dynamodb:Query", "AccountsTable.Arn"),
    *((f"dynamodb:{action}", "LedgerTable.Arn") for action in ("GetItem", "PutItem", "UpdateItem")),
    # a rated call's money hold released (functions/store/holds.py)
    ("dynamodb:Query", "LedgerTable.Arn"),
    ("dynamodb:DeleteItem", "LedgerTable.Arn"),
    ("events:PutEvents", "EventBus.Arn"),
    ("sqs:ReceiveMessage", "RateQueue.Arn"),
    ("sqs:DeleteMessage", "RateQueue.Arn"),
    ("sqs:ChangeMessageVisibility", "RateQueue.Arn"),
    ("sqs:GetQueueAttributes", "RateQueue.Arn"),
}


MONTH_END_GRANTS = {
    ("logs:CreateLogStream", "log"),
    ("logs:PutLogEvents", "log"),
    ("dynamodb:Scan", "AccountsTable.Arn"),
    ("dynamodb:Query", "AccountsTable.Arn"),
    *((f"dynamodb:{action}", "LedgerTable.Arn") for action in ("GetItem", "PutItem", "UpdateItem")),
    *((f"dynamodb:{action}", "FilesTable.Arn") for action in ("Query", "GetItem", "UpdateItem")),
}


DOCUMENTS = "${DocumentsBucket.Arn}"
LOGS = {("logs:CreateLogStream", "log"), ("logs:PutLogEvents", "log")}
# Athena runs as the tenant's query role (functions/store/athena.py): the lake's objects are
# the role's to read, never the function's.
QUERY_ROLES = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/tollgate/query/tollgate-query-*"
SEND_MAIL = (
    "ses:SendEmail",  # SES v2 SendEmail (functions/store/mail.py)
    "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${MailFromIdentity}",
)


APIGATEWAY = "arn:${AWS::Partition}:apigateway:${AWS::Region}::"


def _dynamodb(table: str, *actions: str) -> set[tuple[str, str]]:
    return {(f"dynamodb:{action}", f"{table}.Arn") for action in actions}


# What each step of functions/invoice/cycle.py calls. documents.put asks HeadObject first
# (s3:GetObject) and takes its 404 as "not there yet", which needs ListBucket; so does the
# aggregate step's first look for its manifest. A TransactWriteItems is authorised as its
# items' PutItem / UpdateItem.
INVOICE_GRANTS = {
    "aggregate": LOGS
    | _dynamodb("AccountsTable", "GetItem", "Query")  # the tenant, its accounts
    | _dynamodb("LedgerTable", "Query")  # list_entries
    | _dynamodb("BillingTable", "GetItem", "Query")  # profiles, the previous invoice
    | {
        ("s3:GetObject", f"{DOCUMENTS}/runs/*"),  # the manifest of a run before
        ("s3:PutObject", f"{DOCUMENTS}/runs/*"),
        ("s3:ListBucket", "DocumentsBucket.Arn"),
        ("sts:AssumeRole", QUERY_ROLES),
    },
    # profiles, FX rates, the previous invoice; save_draft (a conditional put)
    "draft": LOGS
    | _dynamodb("BillingTable", "GetItem", "Query", "PutItem")
    | {("s3:GetObject", f"{DOCUMENTS}/runs/*")},
    # list_drafts; number_draft's transaction (counter and draft Update, invoice Puts)
    "number": LOGS | _dynamodb("BillingTable", "GetItem", "Query", "PutItem", "UpdateItem"),
    "render": LOGS
    | _dynamodb("BillingTable", "GetItem", "UpdateItem")  # the invoice; set_documents
    | {
        ("s3:GetObject", f"{DOCUMENTS}/runs/*"),
        ("s3:GetObject", f"{DOCUMENTS}/invoices/*"),
        ("s3:PutObject", f"{DOCUMENTS}/invoices/*"),
        ("s3:ListBucket", "DocumentsBucket.Arn"),
        ("sts:AssumeRole", QUERY_ROLES),  # the CDR annex
    },
    # the invoice; claim_delivery, set_delivery, set_status; the stored PDF and XML it attaches
    "send": LOGS
    | _dynamodb("BillingTable", "GetItem", "UpdateItem")
    | {
        ("s3:GetObject", f"{DOCUMENTS}/runs/*"),
        ("s3:GetObject", f"{DOCUMENTS}/invoices/*"),
        SEND_MAIL,
    },
    # the run's drafts, each invoice, mark_posted / set_status; record_invoice_posting
    "post": LOGS
    | _dynamodb("BillingTable", "GetItem", "Query", "UpdateItem")
    | _dynamodb("LedgerTable", "GetItem", "PutItem", "UpdateItem"),
}
MACHINE = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:"
SCHEDULE_GRANTS = (
    LOGS
    | _dynamodb("AccountsTable", "Scan")  # list_tenants
    | _dynamodb("BillingTable", "Query")  # list_profiles
    | {
        ("states:StartExecution", MACHINE + "${InvoiceStateMachineName}"),
        ("states:ListExecutions", MACHINE + "${InvoiceStateMachineName}"),
        (
            "states:DescribeExecution",
            "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:"
            "${InvoiceStateMachineName}:*",
        ),
    }
)
MAIL_EVENT_GRANTS = LOGS | _dynamodb("BillingTable", "UpdateItem")  # set_delivery
DUNNING_GRANTS = (
    LOGS
    # list_tenants (a scan), list_accounts, get_account; set_account_status is one
    # transaction: the account's Update and its audit entry's Put
    | _dynamodb("AccountsTable", "Scan", "Query", "GetItem", "UpdateItem", "PutItem")
    | _dynamodb("LedgerTable", "GetItem")  # get_balance
    # dues, allocations, steps, policies, profiles; claim_dunning_step; set_credit_level
    | _dynamodb("BillingTable", "GetItem", "Query", "PutItem", "UpdateItem")
    | {SEND_MAIL, ("events:PutEvents", "EventBus.Arn")}
)
API_GRANTS = (
    LOGS
    | {
        (
            "secretsmanager:GetSecretValue",
            "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
            "tollgate/*/stripe-webhook-secret*",
        )
    }
    # the account, the tenant's time zone; the API key (GetItem), a key's accounts (Query)
    | _dynamodb("AccountsTable", "GetItem", "Query")
    # record_payment; list_entries (the API's statements and payments)
    | _dynamodb("LedgerTable", "GetItem", "PutItem", "UpdateItem", "Query")
    # POST /v1/authz: a STOP's and a sweep's Deletes of money holds (functions/store/holds.py)
    | _dynamodb("LedgerTable", "DeleteItem")
    # POST /v1/authz: the call's tier and bundle counters with the money (one BatchGetItem),
    # a bundle hold's ConditionCheck on its counter
    | _dynamodb("FilesTable", "BatchGetItem", "ConditionCheckItem")
    # stripe_event_seen, dues, allocations; allocate_payment's transaction; mark_stripe_event;
    # a page of the API's invoices and the suppliers' profiles (BatchGetItem)
    | _dynamodb("BillingTable", "GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem")
    | {("s3:GetObject", f"{DOCUMENTS}/invoices/*")}  # the invoices' pre-signed links
    # GET /v1/usage and /v1/cdrs: the lake as the tenant's query role; CSV exports, links
    | {("sts:AssumeRole", QUERY_ROLES)}
    | {("s3:GetObject", f"{LAKE}/exports/*"), ("s3:PutObject", f"{LAKE}/exports/*")}
    # portal sign-in: a failure counted; the code's step, the session and its marker written
    | _dynamodb("AccountsTable", "UpdateItem", "PutItem")
    # an account, the caller's own and the balance in one read across the two tables
    | _dynamodb("AccountsTable", "BatchGetItem")
    | _dynamodb("LedgerTable", "BatchGetItem")
    # the portal's brands: read in one batch, set with their audit entry (functions/store/branding)
    | _dynamodb("AccountsTable", "BatchGetItem", "PutItem", "ConditionCheckItem")
    | _dynamodb("LedgerTable", "GetItem", "PutItem", "UpdateItem")  # record_payment
    # stripe_event_seen, dues, allocations; allocate_payment's transaction; mark_stripe_event
    | _dynamodb("BillingTable", "GetItem", "Query", "PutItem", "UpdateItem")
    # the API's writes: accounts and their audit entries, deck versions (functions/api/writes.py)
    | _dynamodb("AccountsTable", "PutItem", "UpdateItem", "ConditionCheckItem")
    | _dynamodb("LedgerTable", "ConditionCheckItem")  # no balance history: kind, currency
    | {("s3:GetObject", f"{LAKE}/decks/*"), ("s3:PutObject", f"{LAKE}/decks/*")}
    # a portal session's API Gateway key in the usage plan, the ended ones deleted
    | {
        ("apigateway:GET", f"{APIGATEWAY}/usageplans"),
        ("apigateway:GET", f"{APIGATEWAY}/apikeys"),
        ("apigateway:POST", f"{APIGATEWAY}/apikeys"),
        ("apigateway:POST", f"{APIGATEWAY}/usageplans/*/keys"),
        ("apigateway:DELETE", f"{APIGATEWAY}/apikeys/*"),
    }
)


# The fraud table's counters, baselines and alert claims; the account's suspension (one
# transaction: the account's Update, its audit entry's Put); the FraudAlert event and the
# people's notice on the fraud topic (a topic's Ref is its ARN).
FRAUD_GRANTS = (
    LOGS
    | _dynamodb("FraudTable", "GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem")
    | _dynamodb("AccountsTable", "GetItem", "Query", "UpdateItem", "PutItem")
    | {("events:PutEvents", "EventBus.Arn"), ("sns:Publish", "${FraudAlertsTopic}")}
)
# The check also reads the rated file: its record (its days) and those days' rated Parquet.
CHECK_FRAUD_GRANTS = (
    FRAUD_GRANTS
    | _dynamodb("FilesTable", "GetItem", "Query")
    | {("s3:GetObject", f"{LAKE}/rated/*"), ("s3:GetObject", f"{LAKE}/normalized/*")}
)
# Revenue assurance: tenants (a scan), switches, settings, the tenant; the window's files
# (the day index queried, the lake listed, their records in batches) and the alert claims;
# three lake areas' day tables; the alert on the tollgate bus.
ASSURANCE_GRANTS = (
    LOGS
    | _dynamodb("AccountsTable", "Scan", "Query", "GetItem")
    | _dynamodb("FilesTable", "Query", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem")
    | {("s3:ListBucket", "LakeBucket.Arn")}
    | {("s3:GetObject", f"{LAKE}/{area}/*") for area in ("normalized", "rated", "quarantine")}
    | {("events:PutEvents", "EventBus.Arn")}
)
# The schedule goes over every tenant (list_tenants: a scan), and reads no lake object.
EVALUATE_FRAUD_GRANTS = FRAUD_GRANTS | _dynamodb("AccountsTable", "Scan")


def test_the_query_role_grant_names_the_roles_iam_makes():
    from functions.shared.policies import Account

    where = Account("aws", "us-east-1", "123456789012")
    made = where.role_arn(policies.QUERY_ROLE_PATH, policies.query_role_name("acme"))
    granted = (
        QUERY_ROLES.replace("${AWS::Partition}", "aws")
        .replace("${AWS::AccountId}", "123456789012")
        .removesuffix("*")
    )
    assert made.startswith(granted)
    other = where.role_arn(policies.DROP_ROLE_PATH, policies.drop_role_name("acme", "sw1"))
    assert not other.startswith(granted)


def test_the_secret_grant_names_the_secrets_the_webhook_reads():
    from functions.store.secrets import stripe_webhook_secret_name

    (resource,) = {r for a, r in API_GRANTS if a == "secretsmanager:GetSecretValue"}
    pattern = resource.split(":secret:", 1)[1]
    regex = re.escape(pattern).replace(r"\*", "[^:]*")
    assert re.fullmatch(regex, stripe_webhook_secret_name("acme"))
    assert re.fullmatch(regex, stripe_webhook_secret_name("acme") + "-AbC123")  # its ARN
    assert not re.fullmatch(regex, "tollgate/acme/other-secret-AbC123")


@pytest.mark.parametrize(
    ("function", "suffix", "expected"),
    [
        ("HandleCdrDrops", "ingest", INGEST_GRANTS),
        ("HandleNormalizedFiles", "rate", RATE_GRANTS),
        ("CloseBillingMonth", "month-end", MONTH_END_GRANTS),
        *(
            (f"Invoice{step.capitalize()}", f"invoice-{step}", INVOICE_GRANTS[step])
            for step in INVOICE_STEPS
        ),
        ("StartInvoiceCycles", "invoice-schedule", SCHEDULE_GRANTS),
        ("RecordMailEvents", "mail-events", MAIL_EVENT_GRANTS),
        ("RunDunning", "dunning", DUNNING_GRANTS),
        ("CheckFraud", "fraud-check", CHECK_FRAUD_GRANTS),
        ("EvaluateFraud", "fraud-evaluate", EVALUATE_FRAUD_GRANTS),
        ("CheckAssurance", "assurance", ASSURANCE_GRANTS),
        ("APIHandler", "api", API_GRANTS),
        ("UsageKey", "usage-key", LOGS),  # the authorizer reads nothing
    ],
)
def test_each_function_role_touches_only_its_own_resources(packaged, function, suffix, expected):
    template = packaged["template"]
    role = ROLES[function]
    assert template["Resources"][function]["Properties"]["Role"] == {"Fn::GetAtt": [role, "Arn"]}
    assert template["Resources"][function]["Properties"]["FunctionName"] == {
        "Fn::Sub": f"${{AWS::StackName}}-{suffix}"
    }
    log_group = (
        "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
        f"/aws/lambda/${{AWS::StackName}}-{suffix}:*"
    )
    grants = {
        (action, "log" if resource == log_group else resource)
        for action, resource in _grants(template, role)
    }
    assert grants == expected
    assert not [g for g in grants if "*" in g[0] or g[1] == "*"]
    trust = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}]


def test_roles_are_one_per_function_and_the_state_machines(packaged):
    roles = _resources(packaged["template"], "AWS::IAM::Role")
    assert set(roles) == set(ROLES.values()) | {"InvoiceCycleRole"}


# --- the invoice cycle ---------------------------------------------------------------------


def test_the_state_machine_is_the_asl_file_with_the_tasks_functions(packaged):
    template = packaged["template"]
    (name,) = _resources(template, "AWS::StepFunctions::StateMachine")
    machine = template["Resources"][name]["Properties"]
    asl_text = (PROJECT_DIR / "infra" / "invoice_cycle.asl.json").read_text()
    assert machine["Definition"] == json.loads(asl_text)
    assert machine["StateMachineName"] == {"Ref": "InvoiceStateMachineName"}
    tasks = {f"Invoice{step.capitalize()}" for step in INVOICE_STEPS}
    # Every ${...} in the file is one task's ARN, and every task is used.
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9]+)\}", asl_text))
    assert placeholders == {f"{task}Arn" for task in tasks}
    assert machine["DefinitionSubstitutions"] == {
        f"{task}Arn": {"Fn::GetAtt": [task, "Arn"]} for task in tasks
    }
    (destination,) = machine["LoggingConfiguration"]["Destinations"]
    log_group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]
    assert log_group == {"Fn::GetAtt": ["InvoiceCycleLogGroup", "Arn"]}
    assert machine["RoleArn"] == {"Fn::GetAtt": ["InvoiceCycleRole", "Arn"]}

    role = template["Resources"]["InvoiceCycleRole"]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "states.amazonaws.com"}]
    statements = {s["Sid"]: s for s in _statements(template, "InvoiceCycleRole")}
    assert set(statements) == {"InvokeTheTasks", "DeliverExecutionLogs"}
    invoke = statements["InvokeTheTasks"]
    assert invoke["Action"] == "lambda:InvokeFunction"
    assert sorted(r["Fn::GetAtt"][0] for r in invoke["Resource"]) == sorted(tasks)
    # The vended-logs actions take no resource; nothing else may be granted on "*".
    assert all(a.startswith("logs:") for a in statements["DeliverExecutionLogs"]["Action"])


def test_the_task_functions_have_no_event_source(packaged):
    for step in INVOICE_STEPS:
        props = packaged["template"]["Resources"][f"Invoice{step.capitalize()}"]["Properties"]
        assert not props.get("Events"), step
        assert props["Handler"] == f"app.invoice_{step}"


# --- alarms ----------------------------------------------------------------------------------


def test_every_dead_letter_queue_alarms_on_its_first_message(packaged):
    template = packaged["template"]
    dead_letters = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in _resources(template, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in q["Properties"]
    }
    assert dead_letters == {"IngestDeadLetterQueue", "RateDeadLetterQueue"}
    alarmed = set()
    for alarm in _resources(template, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props["MetricName"] != "ApproximateNumberOfMessagesVisible":
            continue  # the pipeline's other alarms: tests/infra/test_alarms.py
        assert props["Namespace"] == "AWS/SQS"
        assert (props["ComparisonOperator"], props["Threshold"]) == ("GreaterThanThreshold", 0)
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        (dimension,) = props["Dimensions"]
        assert dimension["Name"] == "QueueName"
        queue, attribute = dimension["Value"]["Fn::GetAtt"]
        assert attribute == "QueueName"
        alarmed.add(queue)
    assert alarmed == dead_letters


# --- sizes -----------------------------------------------------------------------------------


def _unzipped(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist())


def _installed_size(distribution: str, skip=lambda path: False) -> int:
    dist = metadata.distribution(distribution)
    total = 0
    for file in dist.files or []:
        text = str(file)
        if "__pycache__" in text or text.endswith(".pyc") or text.startswith(".."):
            continue
        if skip(text):
            continue
        located = Path(file.locate())
        if located.is_file():
            total += located.stat().st_size
    return total


def _requirement_closure() -> set[str]:
    """requirements.txt's distributions and what they need, as installed in this venv."""
    pending = [
        Requirement(line.split("#")[0].strip())
        for line in (PROJECT_DIR / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    seen: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = requirement.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        markers = [{"extra": ""}, *({"extra": e} for e in requirement.extras)]
        for text in metadata.distribution(name).requires or []:
            needed = Requirement(text)
            if needed.marker is None or any(needed.marker.evaluate(m) for m in markers):
                pending.append(needed)
    return seen


_LAYER_TRIM = re.compile(
    r"^(bin/|pyarrow/(tests|include|includes|src)/|numpy/_core/include/|numpy/_pyinstaller/"
    r"|numpy/.*/tests/|pyarrow/.*\.(pyx|pxd|pxi|h|cc|cpp|cmake)$"
    r"|pyarrow/libarrow_flight\.so|pyarrow/libarrow_python_flight\.so|pyarrow/_flight\."
    r"|pyarrow/_pyarrow_cpp_tests\.|pyarrow/libarrow_python[a-z_]*\.so(\.\d+\.\d+\.\d+)?$)"
)


# What layers/build.sh puts in the documents layer: reportlab and what it requires.
DOCUMENTS_DISTRIBUTIONS = ("reportlab", "pillow", "charset-normalizer")
LAYER_DISTRIBUTIONS = {"pyarrow", "numpy", *DOCUMENTS_DISTRIBUTIONS}


def estimated_function_size(code_zip: Path) -> int:
    """A function's unzipped bytes, estimated offline from this venv's installs of the same
    packages: our code plus requirements.txt's closure (every function has the same zip)."""
    return _unzipped(code_zip) + sum(_installed_size(d) for d in _requirement_closure())


def estimated_layer_sizes() -> dict[str, int]:
    """Each layer's unzipped bytes, estimated from this venv: pyarrow + numpy less what
    layers/build.sh removes; reportlab, Pillow and charset-normalizer whole (bytecode not
    counted). A wheel's RECORD lists its vendored libraries (numpy.libs/, pillow.libs/):
    counted once, with the rest of it."""
    arrow = sum(_installed_size(name, skip=_LAYER_TRIM.match) for name in ("pyarrow", "numpy"))
    documents = sum(_installed_size(name) for name in DOCUMENTS_DISTRIBUTIONS)
    return {"ArrowLayer": arrow, "DocumentsLayer": documents}


def test_layer_packages_are_not_in_the_function_zip(packaged):
    """What a layer carries is not packaged again from requirements.txt (Chalice pip-installs
    its closure into deployment.zip, the one zip of every function)."""
    assert not _requirement_closure() & LAYER_DISTRIBUTIONS
    with zipfile.ZipFile(packaged["dir"] / "deployment.zip") as archive:
        tops = {n.split("/")[0] for n in archive.namelist()}
    assert not tops & {"pyarrow", "numpy", "reportlab", "PIL", "charset_normalizer"}


def test_each_function_and_its_layers_fit_in_lambdas_250_mb(packaged):
    code = estimated_function_size(packaged["dir"] / "deployment.zip")
    layers = estimated_layer_sizes()
    estimated = {name: code + sum(layers[layer] for layer in LAYERS[name]) for name in FUNCTIONS}
    for name, size in estimated.items():
        assert size < LAMBDA_LIMIT * 0.9, f"{name}: estimate {size / 1e6:.0f} MB, little headroom"
    # the documents layer counts only where it is attached
    assert estimated["HandleCdrDrops"] == code + layers["ArrowLayer"]
    built = PROJECT_DIR / "build" / "package"
    zips = {"code": built / "deployment.zip"} | {n: built / z for n, z in LAYER_ZIPS.items()}
    if all(path.exists() for path in zips.values()):
        exact = {part: _unzipped(path) for part, path in zips.items()}
        for name in FUNCTIONS:
            size = exact["code"] + sum(exact[layer] for layer in LAYERS[name])
            assert size < LAMBDA_LIMIT, name
            # The estimate stays honest: within 15% of what `make package` really built.
            assert abs(estimated[name] - size) < 0.15 * size, (name, estimated[name], size)


def _pins() -> dict[str, str]:
    script = (PROJECT_DIR / "layers" / "build.sh").read_text()
    return dict(re.findall(r"^([A-Z_]+)_VERSION=(\S+)$", script, re.M))


def test_layer_versions_are_within_pyproject_ranges():
    import tomllib

    pins = _pins()
    dependencies = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    ranges = {Requirement(d).name: Requirement(d).specifier for d in dependencies}
    assert ranges["pyarrow"].contains(pins["PYARROW"])
    assert ranges["numpy"].contains(pins["NUMPY"])
    assert ranges["reportlab"].contains(pins["REPORTLAB"])


def test_the_documents_layer_holds_the_reportlab_the_tests_render_with():
    """The PDF tests ran with this venv's reportlab (a PDF is byte-identical only within one
    version); the layer pins what reportlab requires to versions that satisfy it."""
    pins = _pins()
    assert pins["REPORTLAB"] == metadata.version("reportlab")
    needed = {
        Requirement(text).name.lower(): Requirement(text).specifier
        for text in metadata.requires("reportlab") or []
        if Requirement(text).marker is None
    }
    assert set(needed) == {"pillow", "charset-normalizer"}
    assert needed["pillow"].contains(pins["PILLOW"])
    assert needed["charset-normalizer"].contains(pins["CHARSET_NORMALIZER"])


# --- cold start --------------------------------------------------------------------------


def test_handlers_import_without_pandas():
    """As on Lambda, where neither pandas nor awswrangler is in the zip or the layer; the
    bench fails the import if one of our modules imported them itself. (How fast they
    import is bench/cold_start.py's figure to print, not a test's to assert.)"""
    sys.path.insert(0, str(PROJECT_DIR / "bench"))
    try:
        import cold_start
    finally:
        sys.path.remove(str(PROJECT_DIR / "bench"))
    rows = cold_start.measure(
        sys.executable,
        runs=3,
        path=[],
        root=f"{PROJECT_DIR}/",
        hide=True,
        isolated=False,
        modules=cold_start.HANDLERS,
    )
    for row in rows:
        assert row["forbidden_loaded"] == [], row


def test_the_api_stage_throttles_all_keys_together(packaged):
    template = packaged["template"]
    (api,) = _resources(template, "AWS::Serverless::Api").values()
    assert api["Properties"]["MethodSettings"] == [
        {
            "ResourcePath": "/*",
            "HttpMethod": "*",
            "ThrottlingRateLimit": {"Ref": "ApiRateLimit"},
            "ThrottlingBurstLimit": {"Ref": "ApiBurstLimit"},
        }
    ]
    from functions.api.throttle import DEFAULT_BURST, DEFAULT_RATE

    parameters = template["Parameters"]
    # the ceiling lets several keys use their whole limit at once
    assert parameters["ApiRateLimit"]["Default"] >= 10 * DEFAULT_RATE
    assert parameters["ApiBurstLimit"]["Default"] >= 10 * DEFAULT_BURST


def test_the_portal_and_the_api_share_one_cloudfront_origin(packaged):
    """infra/portal.yaml: the portal's bucket is private and read by its distribution alone,
    /v1/* goes to the API uncached, and the pages get the local server's security policy."""
    template = packaged["template"]
    resources = template["Resources"]
    bucket = resources["PortalBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (grant,) = resources["PortalBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert grant["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert grant["Action"] == "s3:GetObject"
    assert "${PortalDistribution}" in grant["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    config = resources["PortalDistribution"]["Properties"]["DistributionConfig"]
    origins = {o["Id"]: o for o in config["Origins"]}
    assert origins["portal"]["OriginAccessControlId"] == {
        "Fn::GetAtt": ["PortalOriginAccess", "Id"]
    }
    assert origins["api"]["DomainName"]["Fn::Sub"].startswith("${RestAPI}.execute-api.")
    assert origins["api"]["OriginPath"] == "/api"  # Chalice's stage
    (api,) = config["CacheBehaviors"]
    assert (api["PathPattern"], api["TargetOriginId"]) == ("/v1/*", "api")
    assert api["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # CachingDisabled
    assert {"GET", "POST", "PUT", "PATCH"} <= set(api["AllowedMethods"])
    assert config["DefaultCacheBehavior"]["TargetOriginId"] == "portal"
    from functions.local.web import CONTENT_SECURITY_POLICY

    headers = resources["PortalHeaders"]["Properties"]["ResponseHeadersPolicyConfig"]
    policy = headers["SecurityHeadersConfig"]["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    local = CONTENT_SECURITY_POLICY.format(
        connect=" https://${DocumentsBucket.RegionalDomainName}"
        " https://${LakeBucket.RegionalDomainName}"
    )
    assert policy["Fn::Sub"] == local
    for name in ("DocumentsBucket", "LakeBucket"):  # the portal reads pre-signed links
        (rule,) = resources[name]["Properties"]["CorsConfiguration"]["CorsRules"]
        assert rule["AllowedMethods"] == ["GET"]
    assert "PortalUrl" in template["Outputs"]


# --- per-key limits: the usage plan, the authorizer naming its keys, API Gateway's answers --


def test_each_key_is_limited_by_the_usage_plan_at_throttle_pys_numbers(packaged):
    from functions.api.throttle import DEFAULT_BURST, DEFAULT_RATE

    template = packaged["template"]
    (api,) = _resources(template, "AWS::Serverless::Api").values()
    # API Gateway takes the usage key from the authorizer's answer, not an x-api-key header
    assert api["Properties"]["ApiKeySourceType"] == "AUTHORIZER"
    (name,) = _resources(template, "AWS::ApiGateway::UsagePlan")
    plan = template["Resources"][name]["Properties"]
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "RestAPI"}, "Stage": {"Ref": "RestAPI.Stage"}}]
    assert plan["Throttle"] == {
        "RateLimit": {"Ref": "ApiKeyRateLimit"},
        "BurstLimit": {"Ref": "ApiKeyBurstLimit"},
    }
    parameters = template["Parameters"]
    # the limit API Gateway holds is the one the local stack's process holds
    assert parameters["ApiKeyRateLimit"]["Default"] == DEFAULT_RATE
    assert parameters["ApiKeyBurstLimit"]["Default"] == DEFAULT_BURST
    # the API function and the CLI find the plan by its name (TOLLGATE_USAGE_PLAN)
    assert plan["UsagePlanName"] == {"Fn::Sub": "${AWS::StackName}-keys"}
    assert template["Outputs"]["UsagePlanName"]["Value"] == plan["UsagePlanName"]
    # the stage-wide ceiling lets many keys use their whole limit at once
    assert parameters["ApiRateLimit"]["Default"] >= 10 * parameters["ApiKeyRateLimit"]["Default"]


def test_the_authorizer_guards_exactly_the_keyed_routes(packaged):
    from app import app

    template = packaged["template"]
    (api,) = _resources(template, "AWS::Serverless::Api").values()
    body = api["Properties"]["DefinitionBody"]
    authorizer = body["securityDefinitions"]["usage_key"]
    assert authorizer["name"] == "Authorization" and authorizer["in"] == "header"
    assert authorizer["x-amazon-apigateway-authorizer"]["type"] == "token"
    assert (
        "${UsageKey.Arn}"
        in authorizer["x-amazon-apigateway-authorizer"]["authorizerUri"]["Fn::Sub"]
    )
    unkeyed = {("/v1/sessions", "post"), ("/v1/webhooks/stripe/{tenant}", "post")}
    guarded = set()
    for path, methods in body["paths"].items():
        for method, operation in methods.items():
            security = operation.get("security", [])
            if (path, method) in unkeyed:
                assert security == [], (path, method)
            else:
                assert sorted(security, key=str) == [{"api_key": []}, {"usage_key": []}]
                guarded.add((path, method))
    every = {(p, m.lower()) for p, methods in app.routes.items() for m in methods}
    assert guarded == every - unkeyed
    function = template["Resources"]["UsageKey"]["Properties"]
    assert function["Handler"] == "app.usage_key"
    assert function["Layers"] == []


def test_api_gateways_own_refusals_answer_in_the_apis_error_shape(packaged):
    from functions.api.usagekeys import GATEWAY_RESPONSES

    template = packaged["template"]
    (api,) = _resources(template, "AWS::Serverless::Api").values()
    responses = api["Properties"]["GatewayResponses"]
    assert set(responses) == set(GATEWAY_RESPONSES)
    for kind, wanted in GATEWAY_RESPONSES.items():
        response = responses[kind]
        assert response["StatusCode"] == wanted.status, kind
        assert json.loads(response["ResponseTemplates"]["application/json"]) == wanted.body()
        headers = {k: v.strip("'") for k, v in response["ResponseParameters"]["Headers"].items()}
        assert headers == {k: v for k, v in wanted.headers().items() if k != "Content-Type"}
