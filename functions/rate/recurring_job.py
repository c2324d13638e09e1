"""The recurring job: post a period's DID and bundle fees to balances, once per reference.

The stores come in as ports (functions.store.accounts and .ledger in the Lambda and the CLI):
the fees are computed by functions.rate.recurring from every DID record of the tenant, each
account's own rounding, and posted one by one; the ledger's reference check makes any run
after the first post nothing. The scheduled run posts the month before the one it runs in,
for every tenant.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from functions.rate.recurring import RecurringCharge, recurring_for
from functions.rate.service import rounding_of


@dataclass(frozen=True, slots=True)
class Posted:
    """A charge of the period and whether this run posted it (False: posted before)."""

    charge: RecurringCharge
    recorded: bool


@dataclass(frozen=True, slots=True)
class RecurringRun:
    tenant: str
    period: str
    posted: tuple[Posted, ...]
    # Charges whose reference already names another amount (a DID's service changed after
    # its period was posted): left as they were, to be settled by an adjustment.
    conflicts: tuple[str, ...] = ()


def post_recurring(tenant: str, period: str, *, accounts: Any, ledger: Any) -> RecurringRun:
    """Post the tenant's recurring fees of `period` ('YYYY-MM'); running it again posts nothing.

    A conflicting charge does not stop the others: it is reported in `conflicts`.
    """
    owners = {a.account: a for a in accounts.list_accounts(tenant)}
    bundles = [c.fee for c in accounts.list_contracts(tenant) if c.fee is not None]
    charges = recurring_for(
        period, accounts.list_dids(tenant), bundles, lambda a: _rounding(owners, a)
    )
    posted, conflicts = [], []
    for charge in charges:
        try:
            recorded = ledger.record_recurring(tenant, charge, owners[charge.account].kind)
        except ledger.ReferenceConflictError as error:
            conflicts.append(str(error))
            continue
        posted.append(Posted(charge, recorded.recorded))
    return RecurringRun(tenant, period, tuple(posted), tuple(conflicts))


def _rounding(owners: dict[str, Any], account: str) -> Any:
    if account not in owners:
        raise ValueError(f"a DID names account {account!r}, which the tenant does not have")
    return rounding_of(owners[account])


def previous_period(moment: dt.datetime) -> str:
    """The month before the one `moment` falls in (UTC), as 'YYYY-MM'."""
    first = moment.astimezone(dt.UTC).date().replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


def post_every_tenant(period: str, *, accounts: Any, ledger: Any) -> list[RecurringRun]:
    """post_recurring for every tenant; a tenant that fails does not stop the others.

    Raises RecurringJobError after the last tenant if any failed or had conflicts, so the
    scheduled invocation counts as failed (its alarm, its retry: both harmless).
    """
    runs, failures = [], []
    for tenant in accounts.list_tenants():
        try:
            run = post_recurring(tenant.tenant, period, accounts=accounts, ledger=ledger)
        except Exception as error:  # one tenant's bad record must not cost the others
            failures.append(f"{tenant.tenant}: {error}")
            continue
        runs.append(run)
        failures += [f"{tenant.tenant}: {conflict}" for conflict in run.conflicts]
    if failures:
        raise RecurringJobError(period, runs, failures)
    return runs


class RecurringJobError(Exception):
    """Some tenants' fees of a period were not posted; the others were."""

    def __init__(self, period: str, runs: list[RecurringRun], failures: list[str]) -> None:
        super().__init__(
            f"recurring fees of {period}: {len(failures)} failed: " + "; ".join(failures)
        )
        self.runs, self.failures = runs, failures
