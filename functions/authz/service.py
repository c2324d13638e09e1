"""Real-time authorization's orchestration: START, INTERIM and STOP of one call.

Reads (accounts, the balance item with the tenant's cap and the call's own hold in one
BatchGetItem, the account's compiled deck from a warm cache), asks the pricing oracle
(`quote`, the ONE call of functions.rate.allowance), decides with the pure rules of
functions.rate.authorization and writes the hold through functions.store.holds. DynamoDB
calls per START on the common path: the account item, the BatchGetItem, the hold's
transaction (3). A START whose answer money limits, on an account holding money, first
sweeps the account's expired holds (a Query, and a transaction if any expired).

`authorize_in_time` is the switches' entry (POST /v1/authz): the same answer within a time
budget (functions/store/budget.py: short timeouts, 2 attempts, a 1.5 s deadline), and when
the store cannot answer in time, the tenant's fallback (functions.api.dialects.degraded):
open allows for the tenant's short cap and holds nothing, closed denies `unavailable`. The
tenant's setting is cached in the warm container (refreshed every FALLBACK_TTL_SECONDS, like
the route service's decks), so it is known when the store is not; a cold container that
could not read it uses TOLLGATE_AUTHZ_FALLBACK (closed unless it says open).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from functions.api import dialects
from functions.rate import authorization as rules
from functions.rate.allowance import counter_keys
from functions.rate.contracts import Contracts, Counter, RunCounters
from functions.rate.deck_cache import DeckCache
from functions.rate.plans import DEFAULT_PLAN, choose_plans
from functions.rate.rating import DeckIndex
from functions.rate.service import contracts_by_account, rounding_of
from functions.store import NotFoundError, accounts, budget, holds, lake, monitoring, on_reset

logger = logging.getLogger(__name__)

HOLD_GRACE_SECONDS = 300  # a hold outlives its allowed time by this, for the INTERIM or STOP
# A stopped call's answered price stays held until its rated CDR releases it, at most this
# long (the rating lag alarm fires at 15 minutes; a day covers a switch's late file).
SETTLE_SECONDS = 86_400
MONEY_ATTEMPTS = 64  # re-reads when concurrent calls took the money between read and write
DECKS = DeckCache()  # the warm container's compiled decks (versions are immutable)
# A money-limited answer sweeps the account's expired holds at most this often per container:
# a denied burst does not Query the account's holds once per denied call.
SWEEP_EVERY_SECONDS = 30
_swept: dict[tuple[str, str], float] = {}


def quote(
    index: Any, callee: str, at: dt.datetime, available_micro: int, *, cap_seconds: int, **terms
):
    """The pricing oracle: the ONE place its `quote` is called (functions/rate/allowance.py).
    `terms`: the account's rounding, caller, contracts and counters (`_terms`)."""
    from functions.rate.allowance import quote as oracle

    return oracle(index, callee, at, available_micro, cap_seconds=cap_seconds, **terms)


# --- the account's contracts: warm, refreshed every minute ------------------------------

CONTRACTS_TTL_SECONDS = 60.0  # a tier or bundle set reaches warm containers within this
contracts_clock = time.monotonic  # tests move it
CONTRACTS: dict[str, tuple[float, dict[str, Contracts]]] = {}  # tenant -> (read at, contracts)


def contracts_of(tenant: str, account: str) -> Contracts | None:
    """The account's tiers and bundles as rating applies them (`contracts_by_account`, periods
    in the tenant's time zone), from the tenant's contracts this container read less than
    CONTRACTS_TTL_SECONDS ago: one Query (and the tenant's item, if it has any) a minute per
    tenant, none on the common path. A contract set or changed within the minute prices the
    next authorizations from the next read; the period's counters are always read afresh."""
    cached = CONTRACTS.get(tenant)
    clock = contracts_clock()
    if cached is None or not 0 <= clock - cached[0] < CONTRACTS_TTL_SECONDS:
        stored = accounts.list_contracts(tenant)
        timezone = accounts.get_tenant(tenant).timezone if stored else "UTC"
        cached = (clock, contracts_by_account(stored, timezone))
        CONTRACTS[tenant] = cached
    return cached[1].get(account)


def _terms(
    account: Any,
    caller: str,
    contracts: Contracts | None,
    money: holds.Money,
) -> dict[str, Any]:
    """What the oracle prices this account's call by, besides the deck: its rounding, the
    caller (an origin deck's), its contracts and the period's counters as read with the money,
    each bundle's counted seconds plus the seconds the account's OTHER live calls hold of it
    (`holds.Money.bundle_others`), so a bundle is never promised twice."""
    counters = None
    if contracts is not None:
        read, others = money.counters, money.bundle_others()
        counters = RunCounters(
            lambda key: Counter(seconds=read.get(key, Counter()).seconds + others.get(key, 0))
        )
    return {
        "rounding": rounding_of(account),
        "caller": caller or None,
        "account": account.account,
        "contracts": contracts,
        "counters": counters,
    }


@dataclass(frozen=True, slots=True)
class Request:
    tenant: str
    event: str  # start | interim | stop
    call_id: str
    account: str | None = None
    trunk: str | None = None
    switch: str | None = None  # narrows the trunk's lookup to one switch
    caller: str = ""
    callee: str = ""
    at: dt.datetime | None = None  # the call's time (the rate in force); None: now
    answered_seconds: int = 0


class TrunkError(ValueError):
    """A trunk mapped to different accounts on different switches: name the switch."""


TRUNKS_TTL_SECONDS = 60.0  # a trunk mapped or remapped reaches warm containers within this
trunks_clock = time.monotonic  # tests move it
# tenant -> (read at, switch -> {ingress trunk or IP: (account, its rate plan or None)})
TRUNKS: dict[str, tuple[float, dict[str, dict[str, tuple[str, str | None]]]]] = {}


def ingress_maps(tenant: str) -> dict[str, dict[str, tuple[str, str | None]]]:
    """Every switch's ingress mappings of the tenant, as this container read them less than
    TRUNKS_TTL_SECONDS ago: the switches and each one's mappings (1 + switches reads) once a
    minute per tenant, none on a warm START (3 DynamoDB calls, by trunk as by account)."""
    cached = TRUNKS.get(tenant)
    clock = trunks_clock()
    if cached is None or not 0 <= clock - cached[0] < TRUNKS_TTL_SECONDS:
        maps = {
            found.switch: {
                m.key: (m.account, m.plan)
                for m in accounts.list_trunks(tenant, found.switch)
                if m.direction == "ingress"
            }
            for found in accounts.list_switches(tenant)
        }
        cached = (clock, maps)
        TRUNKS[tenant] = cached
    return cached[1]


def account_of_trunk(
    tenant: str, trunk: str, switch: str | None = None
) -> tuple[str | None, str | None]:
    """The customer a trunk (or IP) is mapped to on ingress, as CDR ingest maps it, and the
    rate plan the mapping names (None: the account's own rules decide)."""
    found = {
        mapping[trunk]
        for name, mapping in ingress_maps(tenant).items()
        if (switch is None or name == switch) and trunk in mapping
    }
    if len(found) > 1:
        raise TrunkError(f"trunk {trunk!r} maps to {len(found)} accounts or plans: name the switch")
    return found.pop() if found else (None, None)


def plan_of(account: Any, caller: str, trunk_plan: str | None) -> str:
    """The rate plan the rating engine would price this call on (functions.rate.plans)."""
    rules = getattr(account, "plan_rules", None) or {}
    if not rules and trunk_plan is None:
        return DEFAULT_PLAN
    labels, codes = choose_plans(
        pa.array([account.account]),
        pa.array([caller]) if caller else None,
        pa.array([trunk_plan], pa.string()) if trunk_plan else None,
        {account.account: dict(rules)} if rules else {},
    )
    return labels[int(codes[0])]


def deck_index(
    tenant: str, account: Any, caller: str = "", trunk_plan: str | None = None
) -> DeckIndex | None:
    """The customer's deck as the rating engine prices this call: the plan's version, warm."""
    plan = plan_of(account, caller, trunk_plan)
    if plan == DEFAULT_PLAN:
        version = account.deck_version
    else:
        version = (getattr(account, "plan_versions", None) or {}).get(plan)
    if version is None:
        return None
    return DECKS.get(
        (tenant, account.account, version),
        lambda: DeckIndex.build(lake.get_deck(tenant, account.account, version), account.currency),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def authorize(request: Request, *, dry_run: bool = False, now: dt.datetime | None = None):
    """The answer to one event (functions.rate.authorization.Decision.answer's shape).

    `dry_run` (the CLI): the same question, no hold written or read for the call."""
    now = now or _now()
    at = request.at or now
    name, trunk_plan = request.account, None
    if name is None and request.trunk is not None:
        name, trunk_plan = account_of_trunk(request.tenant, request.trunk, request.switch)
    if name is None:
        return rules.deny("unknown_account").answer()
    if request.event == "stop":
        kept = 0 if dry_run else _settle(request, name, trunk_plan, at, now)
        return rules.Decision(False, "stopped", 0, kept).answer()
    try:
        account = accounts.get_account(request.tenant, name)
    except NotFoundError:
        return rules.deny("unknown_account").answer()
    refused = rules.refusal(account.kind, account.status)
    if refused is not None:
        return rules.deny(refused).answer()
    index = deck_index(request.tenant, account, request.caller, trunk_plan)
    if index is None:
        return rules.deny("no_rate").answer()
    decision = _decide(request, account, index, at, now, dry_run)
    if not decision.allow:
        return decision.answer()
    try:
        routes = routes_for(request.tenant, name, request.callee, at, decision)
    except Exception as error:
        # The money is decided and held: a route list the store could not give in time
        # leaves the switch its static routing, as an allowed call without routes always does.
        why = budget.unavailable(error)
        if why is None:
            raise
        logger.warning(
            "authz routes unavailable: %s", why,
            extra={"tenant": request.tenant, "call_id": request.call_id, "error": repr(error)},
        )  # fmt: skip
        routes = []
    return decision.answer(routes)


def _settle(
    request: Request, name: str, trunk_plan: str | None, at: dt.datetime, now: dt.datetime
) -> int:
    """A STOP: the hold shrinks to the price of the answered time (never more than it held),
    kept until the call's rated CDR releases it or SETTLE_SECONDS pass, so a prepaid account
    cannot spend that money again while the CDR is on its way; a call never answered (or
    nothing left to price) gives its whole hold back. What stays held, in micro-units."""
    tenant, call_id = request.tenant, request.call_id
    contracts = contracts_of(tenant, name)
    keys = counter_keys(name, contracts, request.callee, at)
    for _ in range(MONEY_ATTEMPTS):
        money = holds.read_money(tenant, name, call_id, keys)
        own = money.hold
        if own is None:
            return 0
        amount, bundle = 0, None
        if request.answered_seconds > 0 and request.callee:
            account = accounts.get_account(tenant, name)
            index = deck_index(tenant, account, request.caller, trunk_plan)
            if index is not None:
                priced = quote(
                    index, request.callee, at, own.amount_micro,
                    cap_seconds=request.answered_seconds,
                    **_terms(account, request.caller, contracts, money),
                )  # fmt: skip
                if priced.allow:
                    amount, bundle = priced.hold_micro, _bundle_hold(priced, contracts, money)
        seconds = bundle.seconds if bundle is not None else 0
        if amount <= 0 and seconds <= 0:
            holds.release(tenant, name, call_id)
            return 0
        expires = int(now.timestamp()) + SETTLE_SECONDS
        if (amount, expires, seconds) == (own.amount_micro, own.expires_at, own.bundle_seconds):
            return amount
        try:
            holds.extend(
                tenant, own, amount, request.answered_seconds, expires,
                money=money, credit_micro=0, bundle=bundle,
            )  # fmt: skip
            return amount
        except holds.MoneyMoved:
            continue
    raise holds.ConflictError(f"the hold of call {call_id!r} kept changing; try again")


def routes_for(
    tenant: str, account: str, callee: str, at: dt.datetime, decision: rules.Decision
) -> list[dict[str, Any]]:
    """The suppliers to try, in order (functions/rate/route_service.py: least cost, quality,
    the margin guard against the customer's rate the quote found), as a switch dials them."""
    from functions.store.routes import route_service

    found = route_service().routes_for(
        tenant, account, callee, at, decision.rate, routes_version=decision.routes_version
    )
    return rules.route_answers(found)


def _sweep_due(tenant: str, account: str, now: dt.datetime) -> bool:
    last = _swept.get((tenant, account))
    if last is not None and 0 <= now.timestamp() - last < SWEEP_EVERY_SECONDS:
        return False
    _swept[(tenant, account)] = now.timestamp()
    return True


def _bundle_hold(
    priced: Any, contracts: Contracts | None, money: holds.Money
) -> holds.BundleHold | None:
    """The bundle seconds a quote gave the call, to hold with its money (None: none)."""
    key = getattr(priced, "bundle", None)
    if key is None or contracts is None or not priced.bundle_seconds:
        return None
    (bundle,) = (b for b in contracts.bundles if b.name == key.name)
    counted = money.counters.get(key, Counter())
    return holds.BundleHold(key, priced.bundle_seconds, bundle.included_seconds, counted)


def _decide(request, account, index, at, now, dry_run) -> rules.Decision:
    """The decision, with the tenant's routing version read with the money (no extra read:
    a route list whose supplier, policy or deck changed is rebuilt at the next START)."""
    tenant, call_id = request.tenant, request.call_id
    swept = False
    contracts = contracts_of(tenant, account.account)
    keys = counter_keys(account.account, contracts, request.callee, at)
    for _ in range(MONEY_ATTEMPTS):
        money = holds.read_money(tenant, account.account, None if dry_run else call_id, keys)
        own = money.hold
        if request.event == "start" and own is not None:  # a retried START: the same answer
            return _versioned(
                rules.Decision(True, "ok", own.max_duration_seconds, own.amount_micro), money
            )
        answered = request.answered_seconds if request.event == "interim" else 0
        cap = rules.cap(money.max_duration_seconds, answered)
        room = rules.available(
            money.balance_micro,
            money.reserved_micro,
            prepaid=account.prepaid,
            credit_limit_micro=account.credit_limit_micro,
            own_hold_micro=own.amount_micro if own else 0,
        )
        priced = quote(
            index, request.callee, at, max(room, 0), cap_seconds=cap,
            **_terms(account, request.caller, contracts, money),
        )  # fmt: skip
        if request.event == "start":
            decision = rules.decide_start(priced, cap)
        else:
            decision = rules.decide_interim(priced, answered, money.max_duration_seconds)
        limited = rules.money_limited(decision, cap if request.event == "start" else cap - answered)
        others = money.reserved_micro > (own.amount_micro if own else 0) or any(
            money.bundle_others().values()
        )  # other calls hold money or bundle seconds: one of them may have expired
        if limited and not swept and others:
            swept = True
            if _sweep_due(tenant, account.account, now) and holds.sweep(
                tenant, account.account, int(now.timestamp())
            ):
                continue  # expired holds gave money back: ask again
        if not decision.allow and own is not None:
            # A denied INTERIM writes nothing: what the call holds is its hold as it was (the
            # price the quote found for less time was never held).
            return rules.Decision(False, decision.reason, 0, own.amount_micro)
        decision = _versioned(decision, money)
        if dry_run or not decision.allow:
            return decision
        total = decision.max_duration_seconds + answered
        expires = rules.hold_expiry(now, decision.max_duration_seconds, HOLD_GRACE_SECONDS)
        credit = 0 if account.prepaid else account.credit_limit_micro
        bundle = _bundle_hold(priced, contracts, money)
        seconds = bundle.seconds if bundle is not None else 0
        try:
            if own is None:
                placed = holds.place(
                    tenant, account.account, call_id, decision.hold_micro, total, expires,
                    money=money, credit_micro=credit, bundle=bundle,
                )  # fmt: skip
                if not placed.created:  # a concurrent START of the same call won
                    return _versioned(
                        rules.Decision(
                            True, "ok", placed.max_duration_seconds, placed.amount_micro
                        ),
                        money,
                    )
            elif (decision.hold_micro, expires, seconds) != (
                own.amount_micro, own.expires_at, own.bundle_seconds,
            ):  # fmt: skip
                holds.extend(
                    tenant, own, decision.hold_micro, total, expires,
                    money=money, credit_micro=credit, bundle=bundle,
                )  # fmt: skip
            return decision
        except holds.MoneyMoved:
            continue
    raise holds.ConflictError(f"the money of {account.account!r} kept moving; try again")


def _versioned(decision: rules.Decision, money: holds.Money) -> rules.Decision:
    return dataclasses.replace(decision, routes_version=money.routes_version)


# --- the switches' entry: a time budget and the tenant's fallback ------------------------

FALLBACK_TTL_SECONDS = 60.0  # a changed tenant setting reaches warm containers within this
fallback_clock = time.monotonic  # tests move it


@dataclass(frozen=True, slots=True)
class Fallback:
    mode: str  # open | closed
    seconds: int  # the fail-open cap
    source: str  # tenant (read from the store) | default (TOLLGATE_AUTHZ_FALLBACK)


_fallbacks: dict[str, tuple[float, Fallback]] = {}  # tenant -> (read at, its setting)


@on_reset
def forget() -> None:
    """Forget what this container read of the store (another endpoint or account is another
    world): the contracts, trunk maps, tenant settings and sweeps. Compiled decks are kept,
    keyed by (tenant, account, version) as the deck cache of the rating function is."""
    for cache in (CONTRACTS, TRUNKS, _fallbacks, _swept):
        cache.clear()


class StoreUnavailable(Exception):
    """A STOP (or an INTERIM's record) the store could not take in time: `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the store could not answer in time ({reason})")
        self.reason = reason


def default_fallback(env: dict[str, str] | None = None) -> Fallback:
    """The fallback of a tenant whose setting could not be read: TOLLGATE_AUTHZ_FALLBACK
    (open|closed; closed if unset) and TOLLGATE_AUTHZ_FALLBACK_SECONDS (the open cap)."""
    env = dict(os.environ) if env is None else env
    mode = dialects.check_fallback(env.get("TOLLGATE_AUTHZ_FALLBACK") or dialects.DEFAULT_FALLBACK)
    raw = env.get("TOLLGATE_AUTHZ_FALLBACK_SECONDS")
    seconds = dialects.DEFAULT_FALLBACK_SECONDS if not raw else int(raw)
    return Fallback(mode, dialects.check_fallback_seconds(seconds), "default")


def known_fallback(tenant: str) -> Fallback:
    """The tenant's setting as this container last read it (however old), else the default."""
    cached = _fallbacks.get(tenant)
    return cached[1] if cached is not None else default_fallback()


def refresh_fallback(tenant: str) -> Fallback:
    """The tenant's setting, read again when older than FALLBACK_TTL_SECONDS (a store error
    propagates: the cached one stays)."""
    cached = _fallbacks.get(tenant)
    clock = fallback_clock()
    if cached is not None and 0 <= clock - cached[0] < FALLBACK_TTL_SECONDS:
        return cached[1]
    try:
        found = accounts.get_tenant(tenant)
        fallback = Fallback(found.authz_fallback, found.authz_fallback_seconds, "tenant")
    except NotFoundError:
        fallback = default_fallback()
    _fallbacks[tenant] = (clock, fallback)
    return fallback


def authorize_in_time(
    request: Request, *, limits: budget.Limits | None = None, now: dt.datetime | None = None
) -> dict[str, Any]:
    """`authorize` within the authorization's time budget; when the store cannot answer in
    time, the tenant's fallback decision (with `degraded`: why), logged and counted. A STOP
    then raises StoreUnavailable: nothing is decided by it, only recorded."""
    limits = limits or budget.authz_limits()
    began = time.monotonic()
    # The edge may have opened the budget already (its key's check counts against it too).
    window = nullcontext() if budget.active() is not None else budget.within(limits)
    try:
        with window:
            refresh_fallback(request.tenant)
            return authorize(request, now=now)
    except Exception as error:
        reason = budget.unavailable(error)
        if reason is None:
            raise
        failure = error
    fallback = known_fallback(request.tenant)
    took = round(time.monotonic() - began, 3)
    fields = {
        "tenant": request.tenant,
        "call_id": request.call_id,
        "event": request.event,
        "account": request.account or request.trunk,
        "fallback": fallback.mode,
        "fallback_source": fallback.source,
        "degraded": reason,
        "seconds": took,
        "error": repr(failure),
    }
    if request.event == "stop":
        logger.error("authz stop not recorded: %s", reason, extra=fields)
        monitoring.put_authz_fallback(request.tenant, "stop_failed", reason, fields)
        raise StoreUnavailable(reason) from failure
    answer = dialects.degraded(fallback.mode, reason, max_duration_seconds=fallback.seconds)
    # A fail-open answer holds nothing (no balance could be read): operations must see each.
    logger.warning("authz degraded: fail-%s (%s)", fallback.mode, reason, extra=fields)
    monitoring.put_authz_fallback(request.tenant, fallback.mode, reason, fields)
    return answer
