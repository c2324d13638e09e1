"""The invoice cycle's real ASL (infra/invoice_cycle.asl.json) on the local stack.

moto's Step Functions interprets the definition; each Task calls moto's Lambda, which the
local stack answers with this module's test app, in this process (functions/local/states.py).
The test app's six functions do small real work on the local stack: aggregate writes two
chunk objects to the documents bucket, the others put a record in the billing table (drafts
and posts conditionally, as the real tasks are idempotent), number fails once with the
store's transient ConflictError. One stack serves the module; each test has its own tenant.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalice import Chalice

from functions import store
from functions.local import states
from functions.local.stack import LocalStack, LocalStackError
from functions.shared.settings import settings
from functions.store import ConflictError
from functions.store import states as cycles
from tests.conftest import local_stack

ISSUE_DATE = "2026-04-02"
CHUNKS = 2
_order = itertools.count(1)
_order_lock = threading.Lock()
# Per tenant: how many more times a step fails before it works (the test sets them).
_failures: dict[tuple[str, str], int] = {}


class InvoiceDataError(Exception):
    """Permanent: the ASL retries no such error, so the run fails at once."""


def _record(step: str, event: dict[str, Any], *, once: bool = False, **extra: Any) -> None:
    with _order_lock:
        seq = next(_order)
    chunk = event.get("chunk") or "-"
    key = f"{step}#{chunk}" if once else f"{step}#{chunk}#{seq:06d}"
    item = {
        "pk": {"S": f"TEST#{event['tenant']}#{event['period']}"},
        "sk": {"S": key},
        "seq": {"N": str(seq)},
        **{name: {"S": str(value)} for name, value in extra.items()},
    }
    condition = {"ConditionExpression": "attribute_not_exists(pk)"} if once else {}
    try:
        store.client("dynamodb").put_item(
            TableName=settings().billing_table, Item=item, **condition
        )
    except store.client("dynamodb").exceptions.ConditionalCheckFailedException:
        pass  # done by an earlier run: idempotent, as the real tasks are


def _maybe_fail(step: str, event: dict[str, Any], error: type[Exception]) -> None:
    key = (event["tenant"], step)
    if _failures.get(key, 0) > 0:
        _failures[key] -= 1
        _record(step, event, outcome="failed")
        raise error(f"{step} failed on purpose")


def cycle_app() -> Chalice:
    app = Chalice(app_name="cycletest")

    @app.lambda_function(name="invoice_aggregate")
    def aggregate(event, context):
        _record("aggregate", event, function=context.function_name)
        keys = []
        for index in range(CHUNKS):
            key = f"runs/{event['tenant']}/{event['period']}/chunk-{index:04d}.json"
            body = json.dumps({"accounts": [f"acct-{index}a", f"acct-{index}b"]})
            store.client("s3").put_object(
                Bucket=settings().documents_bucket, Key=key, Body=body.encode()
            )
            keys.append(key)
        return {"chunks": keys, "accounts": 2 * CHUNKS}

    def chunk_step(step: str):
        def run(event, context):
            _maybe_fail(step, event, InvoiceDataError)
            body = (
                store.client("s3")
                .get_object(Bucket=settings().documents_bucket, Key=event["chunk"])["Body"]
                .read()
            )
            accounts = json.loads(body)["accounts"]
            _record(step, event, once=step == "draft", accounts=",".join(accounts))
            return {"chunk": event["chunk"], step: len(accounts)}

        return run

    for step in ("draft", "render", "send"):
        app.lambda_function(name=f"invoice_{step}")(chunk_step(step))

    @app.lambda_function(name="invoice_number")
    def number(event, context):
        _maybe_fail("number", event, ConflictError)
        _record("number", event, outcome="numbered")
        return {"numbered": 2 * CHUNKS, "first": "INV-2026-000001"}

    @app.lambda_function(name="invoice_post")
    def post(event, context):
        _maybe_fail("post", event, InvoiceDataError)
        _record("post", event, once=True)
        return {"posted": 2 * CHUNKS}

    return app


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with local_stack(app=cycle_app(), chalice_config=None, retry_wait_scale=0) as running:
        yield running


def _records(tenant: str, period: str = "2026-03") -> list[dict[str, str]]:
    items = store.client("dynamodb").query(
        TableName=settings().billing_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"TEST#{tenant}#{period}"}},
    )["Items"]
    rows = [{name: next(iter(value.values())) for name, value in i.items()} for i in items]
    return sorted(rows, key=lambda row: int(row["seq"]))


def _steps(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(step, chunk) in the order they ran; failed attempts included."""
    return [(row["sk"].split("#")[0], row["sk"].split("#")[1]) for row in rows]


def _history(arn: str) -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions")
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
    return [event for page in pages for event in page["events"]]


def _chunk_keys(tenant: str) -> list[str]:
    return [f"runs/{tenant}/2026-03/chunk-{i:04d}.json" for i in range(CHUNKS)]


# --- the run ------------------------------------------------------------------------------------


def test_the_cycle_runs_every_step_in_order_and_retries_the_transient_conflict(stack):
    _failures[("acme", "number")] = 1
    arn = cycles.start_invoice_cycle("acme", "2026-03", issue_date=dt.date(2026, 4, 2))
    run = cycles.wait_cycle(arn, timeout=20, interval=0.05)

    assert run["status"] == "SUCCEEDED", run
    assert arn.endswith(":" + cycles.execution_name("acme", "2026-03"))
    keys = _chunk_keys("acme")
    assert run["output"] == {
        "tenant": "acme",
        "period": "2026-03",
        "account": None,
        "issue_date": ISSUE_DATE,
        "aggregate": {"chunks": keys, "accounts": 4},
        "drafts": [{"chunk": keys[0], "draft": 2}, {"chunk": keys[1], "draft": 2}],
        "numbers": {"numbered": 4, "first": "INV-2026-000001"},
        "delivered": [{"chunk": keys[0], "send": 2}, {"chunk": keys[1], "send": 2}],
        "posted": {"posted": 4},
    }

    rows = _records("acme")
    steps = _steps(rows)
    # Each chunk drafted, rendered and sent exactly once; number tried twice; one post.
    assert sorted(steps) == sorted(
        [("aggregate", "-"), ("number", "-"), ("number", "-"), ("post", "-")]
        + [(step, key) for step in ("draft", "render", "send") for key in keys]
    )
    assert [r.get("outcome") for r in rows if r["sk"].startswith("number#")] == [
        "failed",
        "numbered",
    ]
    assert {r["accounts"] for r in rows if r["sk"].startswith("send#")} == {
        "acct-0a,acct-0b",
        "acct-1a,acct-1b",
    }
    # The definition's order: aggregate, all drafts, number (its retry too), then each
    # chunk's render before its send, post last.
    position = {step: index for index, step in enumerate(steps)}
    names = [step for step, _ in steps]
    assert names[0] == "aggregate" and names[-1] == "post"
    assert max(i for i, n in enumerate(names) if n == "draft") < names.index("number")
    last_number = max(i for i, n in enumerate(names) if n == "number")
    assert last_number < min(i for i, n in enumerate(names) if n in ("render", "send"))
    for key in keys:
        assert position[("render", key)] < position[("send", key)]
    # The task's function ran with its local name in its Lambda context.
    assert rows[0]["function"] == "cycletest-dev-invoice_aggregate"

    # The failed attempt is named after the exception's class, as on AWS, and the Retry on
    # ConflictError took it: with retry_wait_scale=0 moto's retrier sleeps through a clock
    # scaled to nothing.
    history = _history(arn)
    failures = [e for e in history if e["type"] == "LambdaFunctionFailed"]
    assert [f["lambdaFunctionFailedEventDetails"]["error"] for f in failures] == ["ConflictError"]
    after = next(
        e for e in history if e["type"] == "LambdaFunctionScheduled" and e["id"] > failures[0]["id"]
    )
    assert after["id"] > failures[0]["id"]
    assert states.retrier_decl.time.scale == 0


def test_starting_the_same_cycle_again_returns_the_run_and_runs_nothing(stack):
    arn = cycles.start_invoice_cycle("beta", "2026-03", issue_date=ISSUE_DATE)
    assert cycles.wait_cycle(arn, timeout=20, interval=0.05)["status"] == "SUCCEEDED"
    before = _records("beta")

    again = cycles.start_invoice_cycle("beta", "2026-03", issue_date=ISSUE_DATE)

    assert again == arn
    assert cycles.describe_cycle(again)["status"] == "SUCCEEDED"
    assert _records("beta") == before
    assert [run["arn"] for run in cycles.list_cycles("beta")] == [arn]
    with pytest.raises(cycles.CycleConflict, match="issues on 2026-04-02"):
        cycles.start_invoice_cycle("beta", "2026-03", issue_date="2026-04-03")
    # Another account's cycle of the same tenant and period is another run.
    other = cycles.start_invoice_cycle("beta", "2026-03", account="acct-9", issue_date=ISSUE_DATE)
    assert other != arn
    assert cycles.wait_cycle(other, timeout=20, interval=0.05)["input"]["account"] == "acct-9"


def test_a_failed_run_gets_a_successor_that_finishes_it(stack):
    _failures[("gamma", "post")] = 1
    first = cycles.start_invoice_cycle("gamma", "2026-03", issue_date=ISSUE_DATE)
    failed = cycles.wait_cycle(first, timeout=20, interval=0.05)
    assert (failed["status"], failed["error"]) == ("FAILED", "InvoiceDataError")
    assert json.loads(failed["cause"])["errorMessage"] == "post failed on purpose"

    second = cycles.start_invoice_cycle("gamma", "2026-03", issue_date=ISSUE_DATE)
    done = cycles.wait_cycle(second, timeout=20, interval=0.05)

    assert second == f"{first}-2"
    assert done["status"] == "SUCCEEDED"
    assert done["output"]["posted"] == {"posted": 4}
    steps = _steps(_records("gamma"))
    keys = _chunk_keys("gamma")
    # The drafts' conditional puts kept one record per chunk over both runs; each run
    # rendered and sent (the test app's render and send are not idempotent; the real ones
    # mark sends); the post that failed is there once as a failure, once as done.
    assert sorted(s for s in steps if s[0] == "draft") == [("draft", k) for k in keys]
    assert steps.count(("post", "-")) == 2
    assert [r.get("outcome") for r in _records("gamma") if r["sk"].startswith("post#")] == [
        "failed",
        None,
    ]
    assert cycles.start_invoice_cycle("gamma", "2026-03", issue_date=ISSUE_DATE) == second
    assert [run["status"] for run in cycles.list_cycles("gamma")] == ["FAILED", "SUCCEEDED"]


# --- the in-process Lambda hook ------------------------------------------------------------


def test_moto_lambda_invoke_runs_the_handler_in_process(stack):
    """The hook on moto's internals (pinned moto 5.2.5): plain Lambda Invoke reaches the app."""
    client = boto3.client("lambda")
    name = "cycletest-dev-invoice_number"
    _failures[("hook", "number")] = 1
    payload = json.dumps({"tenant": "hook", "period": "2026-03", "account": None})

    failed = client.invoke(FunctionName=name, Payload=payload)
    worked = client.invoke(
        FunctionName=f"arn:aws:lambda:us-east-1:123456789012:function:{name}", Payload=payload
    )

    assert failed["FunctionError"] == "Unhandled"
    error = json.loads(failed["Payload"].read())
    assert (error["errorType"], error["errorMessage"]) == (
        "ConflictError",
        "number failed on purpose",
    )
    assert "FunctionError" not in worked
    assert json.loads(worked["Payload"].read()) == {"numbered": 4, "first": "INV-2026-000001"}
    assert [r.get("outcome") for r in _records("hook")] == ["failed", "numbered"]


# --- execution names --------------------------------------------------------------------------


def test_execution_names_are_valid_unique_and_fit_with_a_successor_suffix():
    names = {
        cycles.execution_name("acme", "2026-03"),
        cycles.execution_name("acme", "2026-03", "acct.1"),
        cycles.execution_name("acme", "2026-03", "acct_1"),
        cycles.execution_name("a.b", "2026-03"),
        cycles.execution_name("a_b", "2026-03"),
        cycles.execution_name("acme", "2026-W10"),
    }
    assert len(names) == 6
    long = cycles.execution_name("t" * 64, "2026-03-2", "a" * 64)
    for name in [*names, long]:
        assert len(f"{name}-999") <= 80
        assert all(c.isascii() and (c.isalnum() or c in "-_") for c in name), name
    assert cycles.execution_name("acme", "2026-03").startswith("acme-2026-03-")


def test_the_local_machine_is_the_asl_file_with_the_apps_function_arns(stack):
    sfn = boto3.client("stepfunctions")
    described = sfn.describe_state_machine(stateMachineArn=stack.state_machine_arn)
    assert described["name"] == settings().invoice_state_machine
    assert stack.state_machine_arn == cycles.state_machine_arn()
    asl = states.ASL_PATH.read_text()
    arns = {
        name: stack.runner.function_arn(states.function_for(name))
        for name in states.substitution_names(asl)
    }
    assert json.loads(described["definition"]) == json.loads(states.render(asl, arns))
    assert arns["InvoiceNumberArn"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:cycletest-dev-invoice_number"
    )


def test_an_app_with_only_some_of_the_tasks_cannot_start_the_stack():
    with pytest.raises(LocalStackError, match=r"lacks: \['invoice_number', 'invoice_post'"):
        states.provision_state_machine(
            "http://127.0.0.1:9",  # never reached: the check comes first
            name="cycle",
            function_arn=lambda name: name,
            declared={"invoice_aggregate", "invoice_draft", "invoice_render", "invoice_send"},
            account="123456789012",
        )
    # An app with none of them (another part of the pipeline's tests) simply has no machine.
    none = states.provision_state_machine(
        "http://127.0.0.1:9", name="cycle", function_arn=str, declared={"x"}, account="1"
    )
    assert none is None
