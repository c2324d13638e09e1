"""The invoicing Lambdas: the month-end close (fees, tier true-ups) and the invoice cycle's tasks.

An EventBridge schedule invokes it (app.py); the period is the month before the event's time
(UTC). Every tenant's recurring fees of that month are posted (functions.rate.recurring_job),
then its volume tiers are closed (functions.rate.tier_close), and the month before it closed
again, so files that arrived late for it are trued up too. Any retry or second run posts
nothing twice: every fee and true-up has its reference. A tenant that failed makes the
invocation fail after the others were done, so the failure alarms and a retry finishes it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from typing import Any

from aws_lambda_powertools import Logger

from functions.invoice import cycle
from functions.rate.recurring_job import RecurringJobError, post_every_tenant, previous_period
from functions.rate.tier_close import close_every_tenant
from functions.shared.money import AMOUNT_SCALE, units_to_str
from functions.store import accounts, billing, documents, files, lake, ledger, mail

logger = Logger(service="invoicing")


def handle_month_end(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Post the previous month's fees and true-ups for every tenant; a summary of what it did."""
    moment = dt.datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    period = previous_period(moment)
    failed: RecurringJobError | None = None
    try:
        runs = post_every_tenant(period, accounts=accounts, ledger=ledger)
    except RecurringJobError as error:
        failed, runs = error, error.runs
    month_before = previous_period(dt.datetime.fromisoformat(f"{period}-01T00:00:00+00:00"))
    true_ups, close_failures = close_every_tenant(
        [month_before, period], files=files, accounts=accounts, ledger=ledger
    )
    posted = [p for run in runs for p in run.posted]
    summary = {
        "period": period,
        "tenants": len(runs),
        "posted": sum(p.recorded for p in posted),
        "already_posted": sum(not p.recorded for p in posted),
        "amount": units_to_str(
            sum(p.charge.amount_units for p in posted if p.recorded), AMOUNT_SCALE
        ),
        "true_ups": sum(t.recorded for t in true_ups),
        "true_up_amount": units_to_str(sum(t.amount for t in true_ups if t.recorded), AMOUNT_SCALE),
    }
    logger.info("month closed", extra=summary)
    if failed is not None:
        failed.failures += close_failures
        raise failed
    if close_failures:
        raise RecurringJobError(period, runs, close_failures)
    return summary


# --- the invoice cycle's tasks (infra/invoice_cycle.asl.json) --------------------------------


def _lake_rows(tenant: str, sql: str, days: Sequence[str]) -> list[dict[str, Any]]:
    """Run the cycle's SQL on the tenant's lake: Athena on AWS, DuckDB on the local stack."""
    if os.environ.get("TOLLGATE_LAKE_ENGINE", "athena") == "duckdb":
        import tempfile
        from pathlib import Path

        from functions.invoice.lake_sql import LocalLakeSql

        with tempfile.TemporaryDirectory(prefix="tollgate-lake-") as folder:
            for area in ("charges", "rated"):
                lake.copy_area(area, tenant, Path(folder), set(days))
            with LocalLakeSql(tenant, folder) as engine:
                return engine.query(sql)
    from functions.store.athena import AthenaSql

    return AthenaSql(tenant).query(sql)


def ports() -> cycle.Ports:
    return cycle.Ports(
        accounts=accounts,
        ledger=ledger,
        billing=billing,
        documents=documents,
        mail=mail,
        lake=_lake_rows,
        clock=lambda: _now(),
    )


def _now() -> dt.datetime:
    """The invoice cycle's clock (UTC); tests replace it to run a period's cycle "then"."""
    return dt.datetime.now(dt.UTC)


def _task(step: Callable[[dict[str, Any], cycle.Ports], dict[str, Any]]):
    def run(event: dict[str, Any], context: Any) -> dict[str, Any]:
        logger.append_keys(tenant=event.get("tenant"), period=event.get("period"))
        result = step(event, ports())
        logger.info(f"invoice {step.__name__} done", extra={"result": result})
        return result

    run.__name__ = step.__name__
    return run


aggregate = _task(cycle.aggregate)
draft = _task(cycle.draft)
number = _task(cycle.number)
render = _task(cycle.render)
send = _task(cycle.send)
post = _task(cycle.post)
