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
from functions.shared.passes import over_tenants, scheduled_time
from functions.store import accounts, billing, documents, files, lake, ledger, mail

logger = Logger(service="invoicing")


def handle_month_end(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Post the previous month's fees and true-ups for every tenant; a summary of what it did."""
    moment = scheduled_time(event, lambda: dt.datetime.now(dt.UTC))
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


# --- getting paid: the Stripe webhook and the daily dunning run ------------------------------


def handle_stripe_webhook(tenant: str, raw_body: bytes, signature: str | None) -> tuple[int, dict]:
    """A Stripe delivery for `tenant` (app.py's route): (HTTP status, JSON body). The signing
    secret is read per request from Secrets Manager and never logged."""
    import time

    from functions.invoice.receipts import handle_stripe_event
    from functions.store import billing, secrets

    try:
        response = handle_stripe_event(
            tenant,
            raw_body,
            signature,
            int(time.time()),
            secrets=secrets,
            accounts=accounts,
            ledger=ledger,
            billing=billing,
        )
    except ValueError as error:  # a tenant name that cannot be one: no such endpoint
        return 404, {"code": "unknown_tenant", "message": str(error)}
    logger.info(
        "stripe webhook",
        extra={
            "tenant": tenant,
            "status": response.status,
            **{k: v for k, v in response.body.items() if k in ("event", "outcome", "code")},
        },
    )
    return response.status, response.body


def handle_daily_dunning(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Every tenant's dunning on the event's day (UTC): reminders, suspensions, credit limits.
    A tenant that failed fails the invocation after the others were done (alarm, retry: every
    step is claimed once, so the retry repeats nothing)."""
    from functions.invoice.dunning_job import run_dunning
    from functions.store import billing, events, mail

    day = scheduled_time(event, lambda: dt.datetime.now(dt.UTC)).date()
    actor = accounts.caller(by="system:dunning")

    def dun(tenant: str):
        return run_dunning(
            tenant, day, accounts=accounts, ledger=ledger, billing=billing, mail=mail,
            events=events, actor=actor,
        )  # fmt: skip

    done = over_tenants(
        [t.tenant for t in accounts.list_tenants()],
        dun,
        lambda tenant: logger.exception("dunning failed", extra={"tenant": tenant}),
    )
    runs = [run for _, run in done.done]
    summary: dict[str, Any] = {
        "day": day.isoformat(),
        "tenants": len(runs),
        "sent": sum(len(run.sent) for run in runs),
        "suspended": sum(len(run.suspended) for run in runs),
        "resumed": sum(len(run.resumed) for run in runs),
        "failed": done.failed,
    }
    logger.info("dunning done", extra=summary)
    if summary["failed"]:
        raise RuntimeError(f"dunning failed for {', '.join(summary['failed'])}")
    return summary


def handle_invoice_schedule(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Daily: start each tenant's invoice cycles whose period has just closed.

    Only tenants whose own billing profile names them (the seller's legal name) invoice
    automatically; the others run `tollgate invoice run` themselves. A run that exists is left
    as it is (its name is the tenant and period), so the days after change nothing.
    """
    from zoneinfo import ZoneInfo

    from functions.invoice.profiles import BillingProfile
    from functions.store import states

    started, failures = [], []
    for tenant in accounts.list_tenants():
        profiles = billing.list_profiles(tenant.tenant)
        if not (profiles.get(None) or BillingProfile(tenant.tenant, None)).legal_name:
            continue
        today = _now().astimezone(ZoneInfo(tenant.timezone)).date()
        cycles = {p.cycle for a, p in profiles.items() if a is not None} | {"monthly"}
        for period in cycle.periods_due(cycles, today):
            if any(c["status"] != "FAILED" for c in states.cycles_of(tenant.tenant, period.name)):
                continue
            try:
                states.start_invoice_cycle(tenant.tenant, period.name, issue_date=today)
                started.append(f"{tenant.tenant}:{period}")
            except Exception as error:  # one tenant's failure must not stop the others
                logger.exception("invoice cycle not started", extra={"tenant": tenant.tenant})
                failures.append(f"{tenant.tenant}:{period}: {error}")
    if failures:
        raise RuntimeError("; ".join(failures))
    return {"started": started}


def handle_mail_event(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SES's bounce and complaint events (EventBridge): recorded on the invoice, for finance
    to follow up (portal, Peppol, a corrected address); a hard-bounced address is never
    mailed again by SES's suppression list."""
    outcome = cycle.mail_outcome(event)
    if outcome is None:
        return {"recorded": False}
    billing.set_delivery(outcome.tenant, outcome.number, outcome.delivery, outcome.detail)
    logger.warning(
        "invoice mail " + outcome.delivery,
        extra={"tenant": outcome.tenant, "invoice": outcome.number, "detail": outcome.detail},
    )
    return {"recorded": True, "invoice": outcome.number, "delivery": outcome.delivery}
