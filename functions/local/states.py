"""Step Functions on the local stack: the invoice cycle's state machine, its tasks in-process.

moto's Step Functions runs the real ASL interpreter when its config says
`{"stepfunctions": {"execute_state_machine": true}}`; a `Task` whose Resource is a Lambda ARN
calls moto's own Lambda `Invoke`, which (with `{"lambda": {"use_docker": false}}`) is the
`invoke` of the backend class behind `moto.awslambda_simple.models.lambda_simple_backends`.
`install` puts `InProcessLambda` there: it runs the app's handler for that function in this
process, with a Lambda context (functions.local.runner), and answers as Lambda does:
- a result: its JSON;
- an exception: `X-Amz-Function-Error: Unhandled` and `{"errorType": <the exception's class
  name>, "errorMessage", "stackTrace"}`. Step Functions names the Task's error after
  `errorType` (moto 5.2.5 and AWS alike), so `"ErrorEquals": ["ConflictError"]` matches a
  handler that raised ConflictError;
- a result that is not JSON: errorType `Runtime.MarshalError`, as Lambda's Python runtime.
A function the app does not declare falls back to moto's echo.

This hooks moto internals (the backend class, and the retrier's `time` below): moto is pinned
(pyproject.toml) and tests/local/test_invoice_cycle_machine.py covers both hooks.

Retry waits: moto's retrier really sleeps `IntervalSeconds` x `BackoffRate`^n between
attempts, and IntervalSeconds cannot be rewritten to 0 (moto's parser, like AWS, accepts
1..99999999). So the definition stays the deployed one, and `retry_wait_scale` scales the
retrier's sleeps instead (0 in tests: a retry costs no wall time; 1: as on AWS).
"""

from __future__ import annotations

import json
import re
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
from moto.awslambda_simple.models import LambdaSimpleBackend, lambda_simple_backends
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

from functions.local.errors import LocalStackError
from functions.local.provision import FAKE_CREDENTIALS, REGION

ASL_PATH = Path(__file__).resolve().parents[2] / "infra" / "invoice_cycle.asl.json"
# Lambda's own limit on a synchronous invocation's response.
_RESPONSE_LIMIT = 6 * 1024 * 1024
_SUBSTITUTION = re.compile(r"\$\{([A-Za-z0-9]+)\}")

Target = Callable[[dict[str, Any]], Any]
_targets: dict[str, Target] = {}
_lock = threading.Lock()


class InProcessLambda(LambdaSimpleBackend):
    """moto's Lambda without Docker, running the local stack's registered handlers."""

    def invoke(
        self,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> str | bytes | None:
        with _lock:
            target = _targets.get(_short_name(function_name))
        if target is None:
            return super().invoke(function_name, qualifier, body, headers, response_headers)
        event = json.loads(body) if body else {}
        failed = True
        try:
            result = target(event)
        except Exception as error:  # Lambda reports any handler exception this way
            payload = _error_payload(type(error).__name__, str(error), error)
        else:
            try:
                payload = json.dumps(result).encode()
                failed = False
            except (TypeError, ValueError) as error:  # not JSON: Lambda cannot return it either
                payload = _error_payload("Runtime.MarshalError", str(error))
        if len(payload) > _RESPONSE_LIMIT:
            payload = _error_payload("Function.ResponseSizeTooLarge", "response too large")
            failed = True
        if failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["Content-Length"] = str(len(payload))
        return payload


def _short_name(function_name: str) -> str:
    """A function's name from a name, a partial or a full ARN (with or without qualifier)."""
    if not function_name.startswith("arn:"):
        return function_name.split(":", 1)[0]
    parts = function_name.split(":")
    return parts[6] if len(parts) > 6 else function_name


def _error_payload(kind: str, message: str, error: BaseException | None = None) -> bytes:
    """Lambda's answer for a failed invocation (its Python runtime's shape)."""
    trace = traceback.format_tb(error.__traceback__) if error is not None else []
    return json.dumps({"errorType": kind, "errorMessage": message, "stackTrace": trace}).encode()


class _ScaledClock:
    """`time` for moto's retrier, with its sleeps scaled."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def sleep(self, seconds: float) -> None:
        if seconds * self.scale > 0:
            time.sleep(seconds * self.scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def install(targets: Mapping[str, Target], *, retry_wait_scale: float = 1.0) -> None:
    """Make moto's Lambda run `targets` (function name -> callable(event) -> result).

    Call before moto creates its Lambda backends (before the server starts, or followed by a
    moto reset): a backend already created keeps its class.
    """
    lambda_simple_backends.backend = InProcessLambda
    with _lock:
        _targets.clear()
        _targets.update(targets)
    retrier_decl.time = _ScaledClock(retry_wait_scale) if retry_wait_scale != 1 else time


def uninstall() -> None:
    """Give moto its own backend and clock back (another test may use mock_aws)."""
    lambda_simple_backends.backend = LambdaSimpleBackend
    with _lock:
        _targets.clear()
    retrier_decl.time = time


def register(targets: Mapping[str, Target]) -> None:
    """Add handlers once the functions' names are known (after install)."""
    with _lock:
        _targets.update(targets)


def substitution_names(definition: str) -> list[str]:
    """The `${Name}` placeholders of a definition, in order of first use."""
    return list(dict.fromkeys(_SUBSTITUTION.findall(definition)))


def function_for(substitution: str) -> str:
    """The app function a substitution names: `InvoiceAggregateArn` -> `invoice_aggregate`."""
    if not substitution.endswith("Arn"):
        raise LocalStackError(f"${{{substitution}}}: only function ARNs are substituted locally")
    words = re.findall(r"[A-Z][a-z0-9]*", substitution[: -len("Arn")])
    return "_".join(word.lower() for word in words)


def render(definition: str, values: Mapping[str, str]) -> str:
    """The definition with its `${Name}` placeholders replaced, as DefinitionSubstitutions."""

    def one(match: re.Match[str]) -> str:
        try:
            return values[match.group(1)]
        except KeyError:
            raise LocalStackError(f"no value for ${{{match.group(1)}}}") from None

    return _SUBSTITUTION.sub(one, definition)


def provision_state_machine(
    endpoint_url: str,
    *,
    name: str,
    function_arn: Callable[[str], str],
    declared: set[str],
    account: str,
    asl_path: Path = ASL_PATH,
) -> str | None:
    """Create the state machine `name` from the ASL file; its ARN, or None if the app has
    none of its tasks (a test app of another part of the pipeline).

    `function_arn(app function name)` gives the local ARN of each task; an app that declares
    some of the tasks but not all cannot run the cycle, and fails the start loudly.
    """
    definition = asl_path.read_text()
    substitutions = {s: function_for(s) for s in substitution_names(definition)}
    present = {s for s, f in substitutions.items() if f in declared}
    if not present:
        return None
    missing = sorted(f for s, f in substitutions.items() if s not in present)
    if missing:
        raise LocalStackError(f"{asl_path.name} needs functions the app lacks: {missing}")
    rendered = render(definition, {s: function_arn(f) for s, f in substitutions.items()})
    session = boto3.session.Session(region_name=REGION, **FAKE_CREDENTIALS)
    sfn = session.client("stepfunctions", endpoint_url=endpoint_url)
    response = sfn.create_state_machine(
        name=name,
        definition=rendered,
        # moto checks the ARN's form only; on AWS the role is InvoiceCycleRole.
        roleArn=f"arn:aws:iam::{account}:role/{name}-local",
        type="STANDARD",
    )
    return response["stateMachineArn"]
