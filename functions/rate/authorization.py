"""Real-time authorization's rules (plain Python): what a switch's START, INTERIM and STOP
are answered, given the account, its money and the pricing oracle's quote.

The oracle (functions.rate.allowance.quote) prices; these rules decide who may spend: a
suspended account (fraud, dunning) is refused before any price is asked, the money a call may
spend is the account's balance (prepaid) or balance + credit limit (postpaid) less what its
other live calls hold, and a START's answer is the quote's, capped per tenant. Amounts are
integer micro-units throughout; the answer shows them as decimal strings.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from functions.shared.money import AMOUNT_SCALE, units_to_str

EVENTS = ("start", "interim", "stop")
REASONS = (
    "ok",
    "no_rate",
    "closed",
    "bad_number",
    "insufficient_funds",
    "suspended",
    "unknown_account",
    "not_a_customer",
    "stopped",
    # the store could not answer in time: the tenant's fallback (functions.api.dialects.degraded)
    "fallback_open",
    "unavailable",
)


class QuoteLike(Protocol):
    allow: bool
    reason: str
    max_duration_seconds: int
    hold_micro: int
    rate: Decimal | None


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    reason: str
    max_duration_seconds: int
    hold_micro: int  # what the call holds (0 when denied or stopped)
    rate: Decimal | None = None  # the customer's per-minute price (the routes' margin guard)
    # The tenant's routing version read with the money (the route book is rebuilt when it
    # was built at another); None: not read.
    routes_version: int | None = None

    def answer(self, routes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The API's and the CLI's answer."""
        return {
            "allow": self.allow,
            "reason": self.reason,
            "max_duration_seconds": self.max_duration_seconds,
            "hold_amount": units_to_str(self.hold_micro, AMOUNT_SCALE),
            "routes": list(routes or []),
        }


def deny(reason: str) -> Decision:
    return Decision(False, reason, 0, 0)


def refusal(kind: str | None, status: str | None) -> str | None:
    """Why an account may not call at all, before any price: unknown, not a customer (a
    supplier or reseller does not originate calls on a trunk), or suspended."""
    if kind is None:
        return "unknown_account"
    if kind != "customer":
        return "not_a_customer"
    if status != "active":
        return "suspended"
    return None


def available(
    balance_micro: int,
    reserved_micro: int,
    *,
    prepaid: bool,
    credit_limit_micro: int,
    own_hold_micro: int = 0,
) -> int:
    """Money a call may spend: balance (+ credit limit unless prepaid) - the holds of the
    account's OTHER live calls (`reserved` includes this call's own hold, if it has one)."""
    credit = 0 if prepaid else credit_limit_micro
    return balance_micro + credit - (reserved_micro - own_hold_micro)


def cap(tenant_max_seconds: int, answered_seconds: int = 0) -> int:
    """The longest total call a quote may allow: the tenant's cap, at least what was already
    answered (an interim past the cap is answered 0 more seconds)."""
    return max(tenant_max_seconds, answered_seconds)


def decide_start(quote: QuoteLike, cap_seconds: int) -> Decision:
    if not quote.allow:
        return deny(quote.reason)
    seconds = min(quote.max_duration_seconds, cap_seconds)
    if seconds <= 0:
        return deny("insufficient_funds")
    return Decision(True, "ok", seconds, quote.hold_micro, quote.rate)


def decide_interim(quote: QuoteLike, answered_seconds: int, tenant_max_seconds: int) -> Decision:
    """An interim: the quote priced the whole call (answered + more), its hold covers it all;
    the answer is the time left."""
    if not quote.allow:
        return Decision(False, quote.reason, 0, 0)
    total = min(quote.max_duration_seconds, max(tenant_max_seconds, answered_seconds))
    left = total - answered_seconds
    if left <= 0:
        return Decision(False, "insufficient_funds", 0, quote.hold_micro)
    return Decision(True, "ok", left, quote.hold_micro, quote.rate)


def money_limited(decision: Decision, cap_seconds: int) -> bool:
    """Whether more money could have changed the answer (then stale holds are worth a sweep)."""
    if not decision.allow:
        return decision.reason == "insufficient_funds"
    return decision.max_duration_seconds < cap_seconds


def hold_expiry(now: dt.datetime, seconds: int, grace_seconds: int) -> int:
    """When a hold stops counting (epoch seconds): the allowed time plus a grace for the
    switch's next INTERIM or STOP."""
    return int(now.timestamp()) + seconds + grace_seconds


# What a switch is told of each route: where to send the call (the supplier's target,
# flattened as functions/api/dialects.py renders it) and what it costs the carrier.
ROUTE_MEMBERS = ("supplier", "destination", "currency", "cost_per_minute", "cost")


def route_answers(routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ordered routes (functions/rate/routing.py) a switch can dial: those with a target,
    each as `{supplier, host, port, transport, prefix, gateway, cost...}`; flagged routes (no
    route passed the margin guard) keep their flag."""
    answers = []
    for route in routes:
        target = route.get("target")
        if not target:
            continue
        answer = {name: route.get(name) for name in ROUTE_MEMBERS}
        answer.update(
            host=target["host"],
            port=target["port"],
            transport=target["transport"],
            prefix=target.get("prefix", ""),  # the tech prefix the supplier wants dialled
            gateway=target.get("gateway"),
            matched_prefix=route.get("prefix"),  # the supplier's deck code that priced it
            flagged=bool(route.get("flagged")),
        )
        answers.append(answer)
    return answers
