"""Closing a period's volume tiers: one true-up posting per account x tier x period.

During the period, a volume schedule's calls are charged provisionally (functions.rate.tiers:
the tier reached so far prices each second), and each file's commit adds its seconds and what
its tier charged to the period's counter. At close the contract's price of the period's total
is known: the true-up is round(V(total)), by the account's rounding rule, minus what was charged
(and minus any true-up already posted), with reference `tier:{period}:{account}:{name}`.

Exactly once, whatever crashes: the true-up is first recorded on the counter as an intent
(conditional on the counter being as read), then posted to the ledger under its reference
(the ledger records a reference once), then counted on the counter and the intent cleared. A
run that finds an intent finishes it before anything else. Running close again finds nothing
owed and posts nothing. Traffic that arrives after a close (a late file) moves the counter; the
next close posts the difference under `tier:{period}:{account}:{name}:{n}`, n = 2, 3, ...

The stores come in as ports (functions.store.files, .accounts and .ledger).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.rate.contracts import TIER, CounterKey
from functions.rate.rating import exact_divisor
from functions.rate.service import rounding_of
from functions.rate.tiers import TierSchedule, period_exact
from functions.shared.money import AMOUNT_SCALE, Rounding


@dataclass(frozen=True, slots=True)
class TrueUp:
    account: str
    tier: str
    period: str
    seconds: int  # the period's billed seconds at close
    charged: int  # micro-units its calls were charged (provisional prices)
    final: int  # micro-units: the contract's price of the period's total, rounded once
    amount: int  # micro-units posted by this close (the account owes it; < 0: a refund)
    reference: str | None  # None: nothing was owed
    recorded: bool  # False: posted before (or nothing to post)


def final_price(schedule: TierSchedule, seconds: int, rounding: Rounding) -> int:
    """The contract's price of a period's total seconds (by the schedule's mode) in
    micro-units, rounded once."""
    return rounded_micro(period_exact(schedule, seconds), rounding)


def rounded_micro(exact: int, rounding: Rounding) -> int:
    """An exact amount (10^-8/60 units) rounded once by `rounding`, in micro-units."""
    rounded = rounding.divide(np.array([int(exact)], dtype=object), exact_divisor(rounding))
    return int(rounded[0]) * 10 ** (AMOUNT_SCALE - rounding.decimals)


def true_up_reference(period: str, account: str, tier: str, closes: int) -> str:
    base = f"tier:{period}:{account}:{tier}"
    return base if closes == 0 else f"{base}:{closes + 1}"


def close_period(
    tenant: str, period: str, *, files: Any, accounts: Any, ledger: Any
) -> list[TrueUp]:
    """True up every volume tier of the tenant's `period` (see the module doc)."""
    owners = {a.account: a for a in accounts.list_accounts(tenant)}
    schedules = {
        (c.account, c.terms.name): c.terms
        for c in accounts.list_contracts(tenant)
        if c.kind == TIER and c.terms.mode == "volume"
    }
    done = []
    for stored in files.list_counters(tenant, period):
        key = stored.key
        schedule = schedules.get((key.account, key.name))
        if key.kind != TIER or schedule is None or key.account not in owners:
            continue
        rounding = rounding_of(owners[key.account])
        recorded = False
        if stored.closing is not None:  # a close that stopped after deciding: finish it
            recorded = _post(tenant, key, stored.closing, files=files, ledger=ledger)
            stored = files.get_counter(tenant, key)
        final = final_price(schedule, stored.counter.seconds, rounding)
        owed = final - stored.counter.charged - stored.trued_up
        reference = None
        if owed:
            reference = true_up_reference(period, key.account, key.name, stored.closes)
            closing = {"reference": reference, "amount": owed, "seconds": stored.counter.seconds}
            if not files.begin_close(tenant, stored, closing):
                raise RuntimeError(
                    f"tier {key.name} of {key.account} in {period} changed while it was closed; "
                    "run the close again"
                )
            recorded = _post(tenant, key, closing, files=files, ledger=ledger)
        done.append(
            TrueUp(
                key.account, key.name, period, stored.counter.seconds, stored.counter.charged,
                final, owed, reference, recorded,
            )
        )  # fmt: skip
    return done


def _post(tenant: str, key: CounterKey, closing: dict, *, files: Any, ledger: Any) -> bool:
    """Post a decided true-up (once per reference), then count it on the counter."""
    reference = closing["reference"]
    posted = ledger.record_true_up(
        tenant,
        key.account,
        int(closing["amount"]),
        reference=reference,
        description=f"volume tier {key.name} {key.period} true-up",
    )
    files.finish_close(tenant, key, closing)
    return posted.recorded


def close_every_tenant(
    periods: list[str], *, files: Any, accounts: Any, ledger: Any
) -> tuple[list[TrueUp], list[str]]:
    """close_period for every tenant and period; a tenant that fails does not stop the others.
    The true-ups done and, per failure, 'tenant period: error'."""
    done, failures = [], []
    for tenant in accounts.list_tenants():
        for period in periods:
            try:
                done += close_period(
                    tenant.tenant, period, files=files, accounts=accounts, ledger=ledger
                )
            except Exception as error:  # one tenant's failure must not cost the others
                failures.append(f"{tenant.tenant} {period}: {error}")
    return done, failures
