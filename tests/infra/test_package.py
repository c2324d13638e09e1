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

import pytest
import yaml
from packaging.requirements import Requirement

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
}
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
        if name not in infra_names:
            assert resource["Type"] in DEPLOY_ONLY_TYPES, f"{name} is not provisioned locally"


def test_the_local_stack_provisions_every_template_resource(aws_environment):
    from moto.server import ThreadedMotoServer

    from functions.local.provision import load_template, provision

    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        result = provision(f"http://{host}:{port}")
    finally:
        server.stop()
    assert set(result["resources"]) == set(load_template()["Resources"])
    assert all(result["resources"].values())


# --- functions -----------------------------------------------------------------------------


def test_functions_run_python312_with_the_arrow_layer(packaged):
    template = packaged["template"]
    functions = _resources(template, "AWS::Serverless::Function")
    assert set(functions) == set(FUNCTIONS)
    for props in (f["Properties"] for f in functions.values()):
        assert props["Runtime"] == "python3.12"
        assert props["Layers"] == [{"Ref": "ArrowLayer"}]
        assert props["Architectures"] == ["x86_64"]
    (layer,) = _resources(template, "AWS::Serverless::LayerVersion").values()
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Properties"]["ContentUri"] == "./arrow-layer.zip"


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


def test_functions_find_the_stacks_resources_not_the_packaging_machines(packaged):
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    for function in _resources(packaged["template"], "AWS::Serverless::Function").values():
        variables = function["Properties"]["Environment"]["Variables"]
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
# A first honest set for the invoice cycle's tasks, to be narrowed with their bodies.
INVOICE_GRANTS = {
    "aggregate": {
        ("logs:CreateLogStream", "log"),
        ("logs:PutLogEvents", "log"),
        ("s3:GetObject", f"{LAKE}/rated/*"),
        ("s3:GetObject", f"{LAKE}/charges/*"),
        ("s3:ListBucket", "LakeBucket.Arn"),
        *(
            (f"dynamodb:{action}", f"{table}.Arn")
            for action in ("GetItem", "Query")
            for table in ("AccountsTable", "LedgerTable", "BillingTable")
        ),
        ("s3:PutObject", f"{DOCUMENTS}/runs/*"),
    }
}
for _step in INVOICE_STEPS[1:]:
    INVOICE_GRANTS[_step] = {
        ("logs:CreateLogStream", "log"),
        ("logs:PutLogEvents", "log"),
        *(
            (f"dynamodb:{action}", "BillingTable.Arn")
            for action in ("GetItem", "Query", "PutItem", "UpdateItem")
        ),
        *(
            (f"s3:{action}", f"{DOCUMENTS}/{area}/*")
            for action in ("GetObject", "PutObject")
            for area in ("runs", "invoices")
        ),
        ("s3:ListBucket", "DocumentsBucket.Arn"),
    }
_IDENTITY = (
    "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${MailFromIdentity}"
)
INVOICE_GRANTS["send"] |= {("ses:SendEmail", _IDENTITY), ("ses:SendRawEmail", _IDENTITY)}
INVOICE_GRANTS["post"] |= {
    (f"dynamodb:{action}", "LedgerTable.Arn") for action in ("GetItem", "PutItem", "UpdateItem")
}


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
    ],
)
def test_each_function_role_touches_only_its_own_resources(packaged, function, suffix, expected):
    template = packaged["template"]
    role = f"{function}Role"
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
    assert set(roles) == {f"{name}Role" for name in FUNCTIONS} | {"InvoiceCycleRole"}


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


def estimated_sizes(code_zip: Path) -> tuple[int, int]:
    """(function, layer) unzipped bytes, estimated offline from this venv's installs of the
    same packages: the function is our code plus requirements.txt's closure; the layer is
    pyarrow + numpy less what layers/build.sh removes (its bytecode not counted)."""
    function = _unzipped(code_zip) + sum(_installed_size(d) for d in _requirement_closure())
    layer = sum(
        _installed_size(name, skip=_LAYER_TRIM.match) for name in ("pyarrow", "numpy")
    ) + sum(
        p.stat().st_size
        for p in (Path(metadata.distribution("numpy").locate_file("numpy.libs"))).glob("*")
    )
    return function, layer


def test_each_function_and_its_layer_fit_in_lambdas_250_mb(packaged):
    built = PROJECT_DIR / "build" / "package"
    estimated = sum(estimated_sizes(packaged["dir"] / "deployment.zip"))
    assert estimated < LAMBDA_LIMIT * 0.9, f"estimate {estimated / 1e6:.0f} MB: little headroom"
    if (built / "deployment.zip").exists() and (built / "arrow-layer.zip").exists():
        exact = _unzipped(built / "deployment.zip") + _unzipped(built / "arrow-layer.zip")
        assert exact < LAMBDA_LIMIT
        # The estimate stays honest: within 15% of what `make package` really built.
        assert abs(estimated - exact) < 0.15 * exact, (estimated / 1e6, exact / 1e6)


def test_layer_versions_are_within_pyproject_ranges():
    import tomllib

    script = (PROJECT_DIR / "layers" / "build.sh").read_text()
    pins = dict(re.findall(r"^(PYARROW|NUMPY)_VERSION=(\S+)$", script, re.M))
    dependencies = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    ranges = {Requirement(d).name: Requirement(d).specifier for d in dependencies}
    assert ranges["pyarrow"].contains(pins["PYARROW"])
    assert ranges["numpy"].contains(pins["NUMPY"])


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
