"""The billing-period Lambda: on the 1st of each month, the month just ended's recurring fees.

An EventBridge schedule invokes it (app.py); the period is the month before the event's time
(UTC), posted for every tenant by functions.rate.recurring_job. Any retry or second run posts
nothing twice: every fee has its reference. A tenant that failed makes the invocation fail
after the others were posted, so the failure alarms and a retry finishes it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aws_lambda_powertools import Logger

from functions.rate.recurring_job import post_every_tenant, previous_period
from functions.shared.money import AMOUNT_SCALE, units_to_str
from functions.store import accounts, ledger

logger = Logger(service="recurring")


def handle_recurring_schedule(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Post the previous month's recurring fees for every tenant; a summary of what it did."""
    moment = dt.datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    period = previous_period(moment)
    runs = post_every_tenant(period, accounts=accounts, ledger=ledger)
    posted = [p for run in runs for p in run.posted]
    summary = {
        "period": period,
        "tenants": len(runs),
        "posted": sum(p.recorded for p in posted),
        "already_posted": sum(not p.recorded for p in posted),
        "amount": units_to_str(
            sum(p.charge.amount_units for p in posted if p.recorded), AMOUNT_SCALE
        ),
    }
    logger.info("recurring fees posted", extra=summary)
    return summary
