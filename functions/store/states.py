"""The invoice cycle's executions: start one per (tenant, period[, account]), find, wait, list.

The state machine is settings().invoice_state_machine (infra/invoice_cycle.asl.json; the local
stack runs the same definition). Its ARN is built from the caller's account and region, so
finding it needs no ListStateMachines.

One run per (tenant, period, account): the execution's name is derived from them, so
starting a cycle again returns the execution that exists and runs nothing again. A run that
FAILED, TIMED_OUT or was ABORTED gets a successor named `<name>-2`, then `-3`, ...: every
task is idempotent per (tenant, period, account) (conditional puts keyed by draft and invoice
number, SES sends marked before and after), so the successor redoes only what the failed run
left undone. (Step Functions' own RedriveExecution would resume a failed run in place, but
only for 14 days and not after a timeout or an abort; a successor always works.)

A start with another issue date than the run that exists is refused (CycleConflict): the
invoices of a period carry one issue date.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from functions.invoice.cycles import parse_period
from functions.shared.settings import settings
from functions.store import ConflictError, NotFoundError, check_day, check_name, client

# An execution name: 1-80 of these (Step Functions accepts more, but CloudWatch Logs, where
# the cycle logs its history, only these).
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_NAME_LIMIT = 80
_DIGEST = 8  # hex digits of the (tenant, period, account) hash that keep names unique
_SUCCESSOR_ROOM = 4  # "-999"
_ENDED_BADLY = ("FAILED", "TIMED_OUT", "ABORTED")
_MAX_RUNS = 999
_LISTED = ("name", "arn", "status", "started", "stopped")


class CycleConflict(ConflictError):
    """A run of this (tenant, period, account) exists with another issue date."""


def execution_name(tenant: str, period: str, account: str | None = None) -> str:
    """The first run's name: readable, and unique per (tenant, period, account).

    Ids may hold '.', which execution names (for CloudWatch Logs) should not: it becomes '_',
    and the hash of the exact ids keeps 'a.b' and 'a_b' apart. Long ids are cut to fit 80
    characters with room for a successor's '-NNN'.
    """
    key = json.dumps([tenant, period, account])
    digest = hashlib.sha256(key.encode()).hexdigest()[:_DIGEST]
    readable = "-".join(_NAME_CHARS.sub("_", part) for part in (tenant, period, account) if part)
    room = _NAME_LIMIT - _SUCCESSOR_ROOM - _DIGEST - 1
    return f"{readable[:room]}-{digest}"


def start_invoice_cycle(
    tenant: str, period: str, *, account: str | None = None, issue_date: Any
) -> str:
    """Start the cycle (or find the run that exists); its execution ARN."""
    tenant = check_name("tenant", tenant)
    period = parse_period(period).name
    if account is not None:
        account = check_name("account", account)
    wanted = {"tenant": tenant, "period": period, "account": account}
    payload = {**wanted, "issue_date": check_day(issue_date)}
    sfn = client("stepfunctions")
    machine = state_machine_arn()
    first = execution_name(tenant, period, account)
    for attempt in range(1, _MAX_RUNS + 1):
        name = first if attempt == 1 else f"{first}-{attempt}"
        arn = _execution_arn(machine, name)
        existing = _describe(arn)
        if existing is None:
            try:
                return sfn.start_execution(
                    stateMachineArn=machine, name=name, input=json.dumps(payload)
                )["executionArn"]
            except sfn.exceptions.ExecutionAlreadyExists:
                # Another caller started it meanwhile (Step Functions returns the running
                # one for the same input, and refuses a different input or an ended run).
                existing = _describe(arn)
                if existing is None:
                    raise
        found = json.loads(existing["input"])
        if {k: found.get(k) for k in wanted} != wanted:
            raise CycleConflict(f"execution {name} is another cycle's: {found}")
        if found.get("issue_date") != payload["issue_date"]:
            raise CycleConflict(
                f"{tenant} {period}: run {name} issues on {found.get('issue_date')}, "
                f"not {payload['issue_date']}"
            )
        if existing["status"] not in _ENDED_BADLY:
            return arn
    raise ConflictError(f"{tenant} {period}: {_MAX_RUNS} runs failed; look at the last one")


def describe_cycle(arn: str) -> dict[str, Any]:
    """Status, input and output (parsed), error and cause of one run."""
    found = _describe(arn)
    if found is None:
        raise NotFoundError(f"no invoice cycle run {arn}")
    return {
        "arn": arn,
        "name": found["name"],
        "status": found["status"],
        "input": json.loads(found["input"]) if found.get("input") else None,
        "output": json.loads(found["output"]) if found.get("output") else None,
        "error": found.get("error"),
        "cause": found.get("cause"),
        "started": found["startDate"],
        "stopped": found.get("stopDate"),
    }


def wait_cycle(arn: str, timeout: float, *, interval: float = 0.2) -> dict[str, Any]:
    """describe_cycle once the run has ended; TimeoutError if it still runs after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        described = describe_cycle(arn)
        if described["status"] not in ("RUNNING", "PENDING_REDRIVE"):
            return described
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{described['name']} still {described['status']} after {timeout}s")
        time.sleep(interval)


def list_cycles(tenant: str) -> list[dict[str, Any]]:
    """The tenant's runs, oldest first: name, arn, status, input, start and stop.

    Names are matched by their tenant prefix, then checked against each run's input (two
    tenants' names may share a prefix, as 'a.b' and 'a_b' do).
    """
    tenant = check_name("tenant", tenant)
    prefix = _NAME_CHARS.sub("_", tenant) + "-"
    pages = client("stepfunctions").get_paginator("list_executions")
    runs = []
    for page in pages.paginate(stateMachineArn=state_machine_arn()):
        for execution in page["executions"]:
            if not execution["name"].startswith(prefix):
                continue
            described = describe_cycle(execution["executionArn"])
            if (described["input"] or {}).get("tenant") == tenant:
                runs.append(
                    {
                        k: described[k]
                        for k in ("name", "arn", "status", "input", "started", "stopped")
                    }
                )
    return sorted(runs, key=lambda run: (run["started"], run["name"]))


def cycles_of(tenant: str, period: str, account: str | None = None) -> list[dict[str, Any]]:
    """The runs of one (tenant, period, account), oldest first (a failed run's successors
    after it): each with its input, so its issue date."""
    return [
        run
        for run in list_cycles(tenant)
        if ((run["input"] or {}).get("period"), (run["input"] or {}).get("account"))
        == (period, account)
    ]


def state_machine_arn() -> str:
    """The cycle's state machine in the caller's account and region (one STS call)."""
    identity = client("sts").get_caller_identity()
    partition, account = identity["Arn"].split(":")[1], identity["Account"]
    region = client("stepfunctions").meta.region_name
    name = settings().invoice_state_machine
    return f"arn:{partition}:states:{region}:{account}:stateMachine:{name}"


def _execution_arn(machine: str, name: str) -> str:
    return f"{machine.replace(':stateMachine:', ':execution:', 1)}:{name}"


def _describe(arn: str) -> dict[str, Any] | None:
    sfn = client("stepfunctions")
    try:
        return sfn.describe_execution(executionArn=arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return None
