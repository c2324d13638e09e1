"""The fraud Lambdas: each `FileRated` event checked (and counted into the routes' quality
stats), and the 5-minute pass over every tenant.

EventBridge invokes the check asynchronously with the event (app.py's rule on the tollgate
bus) and retries a failed one for up to 24 h; every step of the check is idempotent per file
(functions.fraud.service), so a retry finishes what a crash left and counts nothing twice.
The schedule's pass runs every tenant; a tenant that failed fails the invocation after the
others were done, so the alarm fires and the retry finishes it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools import Logger, Tracer

from functions.fraud.counters import COLUMNS
from functions.fraud.service import check_file, evaluate
from functions.rate.route_service import record_file_quality
from functions.shared.passes import over_tenants, scheduled_time
from functions.store import accounts, events, files, fraud, lake, notices, quality

logger = Logger(service="fraud")
# Only AWS calls become subsegments; tracing is off outside Lambda (POWERTOOLS_TRACE_DISABLED).
tracer = Tracer(service="fraud", patch_modules=("botocore",))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handle_file_rated(event: dict[str, Any], context: Any) -> dict[str, Any]:
    detail = event["detail"]
    tenant, file_id = detail["tenant"], detail["file_id"]
    # EventBridge's event id is the same on every retry of one delivery: the correlation id.
    logger.set_correlation_id(event.get("id"))
    logger.append_keys(tenant=tenant, switch=detail.get("switch"), file_id=file_id)
    tracer.put_annotation(key="tenant", value=tenant)
    tracer.put_annotation(key="file_id", value=file_id)
    days = files.get_file(tenant, file_id).meta.get("days", [])
    with lake.Spool() as spool:
        outcome = check_file(
            tenant,
            file_id,
            lambda: lake.table_parts("rated", tenant, days, file_id, spool, COLUMNS),
            store=fraud,
            accounts=accounts,
            events=events,
            notices=notices,
            now=_now(),
        )
    summary = outcome.as_json()
    summary["alerts"] = [a["alert_id"] for a in outcome.alerts]
    # The same event feeds the routes' quality stats (ASR, ACD, PDD per supplier x destination),
    # once per file however often it is delivered (functions.store.quality).
    summary["quality_buckets"] = record_file_quality(
        tenant, file_id, files=files, lake=lake, quality=quality
    )
    logger.info("fraud check", extra=summary)
    return summary


class FraudPassFailed(Exception):
    """Some tenant's scheduled pass failed; the others were done."""


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handle_fraud_schedule(event: dict[str, Any], context: Any) -> dict[str, Any]:
    now = scheduled_time(event, _now)

    def check(tenant: str):
        return evaluate(
            tenant, store=fraud, accounts=accounts, events=events, notices=notices, now=now
        )

    done = over_tenants(
        [t.tenant for t in accounts.list_tenants()],
        check,
        lambda tenant: logger.exception("fraud pass failed", extra={"tenant": tenant}),
    )
    summary: dict[str, Any] = {
        "tenants": len(done.done),
        "alerts": sum(len(outcome.alerts) for _, outcome in done.done),
        "suspended": [f"{t}/{a}" for t, outcome in done.done for a in outcome.suspended],
        "failed": done.failed,
    }
    logger.info("fraud pass", extra=summary)
    if summary["failed"]:
        raise FraudPassFailed(f"the fraud pass failed for {', '.join(summary['failed'])}")
    return summary
