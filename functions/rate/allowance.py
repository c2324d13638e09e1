"""How long may this call last: the longest answered time the rating engine would charge
no more than the money available for, to the second (issue 14 §1, the max-duration oracle).

The price of a call answered for d seconds is a step function of d that never falls: 0 up
to the entry's free seconds (and for d = 0), then constant on each billing increment (the
first increment A, then each next increment B: (free, A], (A, A+B], (A+B, A+2B], ...). So
the longest affordable call always ends on a step's last second (or on the cap). `quote`
lists those step ends up to the cap and prices them with the engine itself (`price_numbers`
over one array of lengths, then the account's contracts exactly as `apply_contracts` applies
them to a call, then the entry's per-minute surcharge as `surcharges` charges it), and takes
the last step before the first one the money does not cover. Nothing here re-states the
tariff: the amounts are the engine's, rounded by the account's `Rounding`, in micro-units, so
the hold is exactly what the rated CDR of a call of that length will post.

Up to 2,048 steps are priced in one vectorised engine call; more (1/1 increments up to a
long cap: 10,800 for 3 h) take two: every ~sqrt(n)-th step end, then each step end of the one
stretch where the money runs out (~2·sqrt(n) lengths priced in all, ~0.5 ms warm). Never a
Python loop per second or per step.

Like CGRateS's dry-run over increments (debit the call increment by increment until the
balance runs out), but vectorised: the increments priced at once, then a search.

Pure: numpy and pyarrow only. The store and the route (balance, credit limit, other holds,
counters) are the caller's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa

from functions.rate.contracts import BUNDLE, TIER, Contracts, Counter, CounterKey, RunCounters
from functions.rate.parties import Parties
from functions.rate.plans import DEFAULT_PLAN, choose_plans
from functions.rate.rating import (
    CallerNumbers,
    DeckIndex,
    DialledNumbers,
    Pricing,
    exact_amount,
    exact_divisor,
    price_numbers,
    surcharges,
)
from functions.rate.tiers import group_of, month_codes, tier_prices
from functions.shared.money import AMOUNT_SCALE, RATE_SCALE, Rounding

DEFAULT_CAP_SECONDS = 10_800  # 3 h: the default maximum call length
# The longest cap a tenant may configure: a week. Every step up to the cap is priced at once,
# so with 1/1 increments the cap is the number of calls priced (7 days: ~30 ms, 10 MB).
MAX_CAP_SECONDS = 7 * 86_400
# Up to this many step ends are priced in one engine call; more (1/1 increments up to a long
# cap) take a coarse pass then a fine one.
_ONE_PASS = 2_048
# The ingest rule for a dialable callee (functions.ingest.numbers.MAX_DIGITS: the rate
# context may not import ingest; tests/rate/test_allowance.py checks the two agree).
MAX_DIGITS = 32
OK = "ok"
NO_RATE = "no_rate"
CLOSED = "closed"
BAD_NUMBER = "bad_number"
INSUFFICIENT_FUNDS = "insufficient_funds"
REASONS = (OK, NO_RATE, CLOSED, BAD_NUMBER, INSUFFICIENT_FUNDS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Quote:
    """The answer for one call: may it start, for how long, and what to hold for it.

    `hold_micro` is the engine's price of a call of `max_duration_seconds` (micro-units of
    the account's currency, rounded as the account's charges are): usage, or tier/bundle
    under the account's contracts, plus any surcharge. `first_increment_micro` is the price
    of the shortest charged call (one second past the free seconds: connect fee, first
    increment, minimum); the call is refused when even that is not covered. `rate` is the
    per-minute rate applied to the call of `max_duration_seconds` (the tier's under a tier,
    the override's with one); `destination` and `prefix` are the deck entry's. `bundle` is
    the counter of the account's bundle that holds the callee (None: none does), and
    `bundle_seconds` how many of its seconds the call of `max_duration_seconds` would use:
    what a live call must keep from the account's other calls (functions.store.holds).
    """

    allow: bool
    reason: str
    max_duration_seconds: int
    hold_micro: int
    first_increment_micro: int
    rate: Decimal | None = None
    destination: str | None = None
    prefix: str | None = None
    bundle: CounterKey | None = None
    bundle_seconds: int = 0


def dialable(callee: object) -> bool:
    """The ingest rule on a normalised callee: 1 to MAX_DIGITS ASCII digits."""
    return (
        isinstance(callee, str)
        and 0 < len(callee) <= MAX_DIGITS
        and callee.isascii()
        and callee.isdigit()
    )


def epoch_second(at: datetime | int) -> int:
    """A call's start as the engine reads it: whole epoch seconds, floored (naive = UTC)."""
    if isinstance(at, datetime):
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return (at - _EPOCH) // timedelta(seconds=1)
    if isinstance(at, bool) or not isinstance(at, int | np.integer):
        raise TypeError("at must be a datetime or whole epoch seconds")
    return int(at)


def quote(
    index: DeckIndex | None,
    callee: str | None,
    at: datetime | int,
    available_micro: int,
    *,
    rounding: Rounding | None = None,
    cap_seconds: int = DEFAULT_CAP_SECONDS,
    caller: str | None = None,
    account: str = "",
    contracts: Contracts | None = None,
    counters: RunCounters | None = None,
    rate_override_e8: int | None = None,
) -> Quote:
    """The longest call to `callee` starting at `at` whose price fits `available_micro`.

    Arguments, as the rating engine prices one party's charge:
    * `index`: the account's compiled deck for the call's plan (`Parties.deck_of`, or
      `DeckCache.get` as `PartyBook` loads it); None (no deck) answers `no_rate`.
    * `callee`: the NORMALISED digits (`functions.ingest.numbers.normalise_number(dialled,
      the switch's NumberingPlan)`, as ingest makes a CDR's callee); None or anything not 1-32
      digits answers `bad_number`.
    * `at`: the call's start (aware datetime, naive = UTC, or epoch seconds); the rate in
      force then prices the whole call, as for its CDR.
    * `available_micro`: balance + credit limit - the other live calls' holds, micro-units.
    * `rounding`: the account's contract rounding (`service.rounding_of(account)`,
      `Account.rounding`); default half-up to 6 decimals.
    * `cap_seconds`: the longest call ever allowed (default 3 h, at most MAX_CAP_SECONDS;
      ValueError beyond).
    * `caller`: the A-number, read only by a deck with origin entries (then required, as
      for rating).
    * `account`, `contracts`, `counters`: the account's tiers and bundles
      (`Parties.contracts[account]`) and the period counters to price from (a `RunCounters`
      over the store's `read_counter`; None counts from 0, as a what-if run). The call is
      priced as if it were the next call the account's contracts see.
    * `rate_override_e8`: a per-minute rate (10^-8) replacing the deck entry's, exactly as
      `Pricing.with_rate` does (increments, fee, minimum and grace unchanged); for a caller
      that knows the rate itself. Not with `contracts`.

    Refusals (allow False, max 0, hold 0), in this order: `bad_number`, `no_rate`, `closed`,
    `insufficient_funds` (the money is below `first_increment_micro`; a negative
    `available_micro` is refused even where the first increment costs nothing). A free call
    (nothing ever charged) gets the cap; so does a cap within the free seconds.

    For an INTERIM event pass the call's original start (its rate and counters are the
    start's, as for its CDR) and the money available to this call (its own hold excluded):
    `max_duration_seconds` is then the new total length from answer, `hold_micro` the new
    hold. Money is exact integers throughout.
    """
    rounding = rounding or Rounding()
    if (
        isinstance(cap_seconds, bool)
        or not isinstance(cap_seconds, int)
        or not 0 <= cap_seconds <= MAX_CAP_SECONDS
    ):
        raise ValueError(f"cap_seconds must be whole seconds from 0 to {MAX_CAP_SECONDS}")
    if contracts is not None and rate_override_e8 is not None:
        raise ValueError("give the account's contracts or a rate override, not both")
    if contracts is not None and not account:
        raise ValueError("contracts count per account: name the account")
    if not dialable(callee):
        return _deny(BAD_NUMBER)
    if index is None:
        return _deny(NO_RATE)
    start = epoch_second(at)
    numbers = DialledNumbers.of(pa.array([callee], pa.string()))
    callers = None
    if index.has_origin:
        callers = CallerNumbers.of(pa.array([caller], pa.string()))
    row = int(index.lookup_numbers(numbers, np.array([start], np.int64), callers)[0])
    if row < 0:
        return _deny(NO_RATE)
    prefix = index.deck.column("prefix")[row].as_py()
    destination = index.deck.column("destination")[row].as_py()
    if bool(index.closed[row]):
        return _deny(CLOSED, prefix=prefix, destination=destination)

    durations = _step_ends(
        int(index.free_seconds[row]),
        int(index.increment_first[row]),
        int(index.increment_next[row]),
        cap_seconds,
    )

    bundle: list[CounterKey] = []  # the callee's bundle counter, once the contracts name it

    def prices(answered: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The engine's price (micro-units), applied rate and bundle seconds of the call at
        each length."""
        n = len(answered)
        repeated = DialledNumbers(
            head=np.repeat(numbers.head, n),
            digits=np.repeat(numbers.digits, n),
            order=np.arange(n, dtype=np.int64),
        )
        many = None
        if callers is not None:
            many = CallerNumbers(
                head=np.repeat(callers.head, n), digits=np.repeat(callers.digits, n)
            )
        pricing = price_numbers(
            index, repeated, np.full(n, start, np.int64), answered, rounding, many
        )
        if rate_override_e8 is not None:
            pricing = pricing.with_rate(np.full(n, int(rate_override_e8), np.int64), rounding)
        amount, rate = pricing.amount.astype(np.int64), pricing.rate_e8.astype(np.int64)
        included = np.zeros(n, np.int64)
        if contracts is not None:
            amount, rate, included, key = contract_amounts(
                account, contracts, pricing, callee, start, rounding, counters
            )
            bundle[:] = [key] if key is not None else []
        _, extra = surcharges(index, pricing, rounding)
        return (amount + extra) * 10 ** (AMOUNT_SCALE - rounding.decimals), rate, included

    # durations[0] is the shortest charged call; the rest are the step ends, up to the cap.
    shortest, ends = durations[:1], durations[1:]
    coarse = np.arange(len(ends))
    if len(ends) > _ONE_PASS:
        # Every `stride`-th step end first, then every step end of the one stride where the
        # money runs out: two engine calls of ~2·sqrt(steps) lengths, whatever the cap.
        stride = math.isqrt(len(ends))
        coarse = np.unique(np.append(np.arange(0, len(ends), stride), len(ends) - 1))
    micro, rate, included = prices(np.concatenate([shortest, ends[coarse]]))
    first, first_rate = int(micro[0]), int(rate[0])
    if first > available_micro and len(ends):
        return _deny(INSUFFICIENT_FUNDS, first, prefix=prefix, destination=destination)
    picked, micro, rate, included = coarse, micro[1:], rate[1:], included[1:]
    over = np.flatnonzero(micro > available_micro)
    if len(coarse) < len(ends) and len(over) and over[0] > 0:
        # ends[coarse[0]] = ends[0] is in the first charged call's step: covered, so the
        # answer lies from the last covered coarse end up to the first one not covered.
        picked = np.arange(coarse[over[0] - 1], coarse[over[0]] + 1)
        micro, rate, included = prices(ends[picked])
    # The first step the money does not cover; every shorter call is then covered too (the
    # engine's price never falls as a call grows: tests/rate/test_allowance.py checks it).
    over = micro > available_micro
    last = (int(np.argmax(over)) if over.any() else len(micro)) - 1
    used = 0  # bundle seconds
    if not len(ends):  # no charged call fits under the cap, only the free seconds: all free
        longest, hold, applied = cap_seconds, 0, first_rate
    elif last < 0:  # not even the first step (never, as prices never fall: refused anyway)
        return _deny(INSUFFICIENT_FUNDS, first, prefix=prefix, destination=destination)
    else:
        longest, hold, applied = int(ends[picked[last]]), int(micro[last]), int(rate[last])
        used = int(included[last])
    return Quote(
        allow=True,
        reason=OK,
        max_duration_seconds=longest,
        hold_micro=hold,
        first_increment_micro=first,
        rate=Decimal(applied).scaleb(-RATE_SCALE),
        destination=destination,
        prefix=prefix,
        bundle=bundle[0] if bundle else None,
        bundle_seconds=used,
    )


def _deny(
    reason: str, first: int = 0, *, prefix: str | None = None, destination: str | None = None
) -> Quote:
    return Quote(False, reason, 0, 0, first, None, destination, prefix)


def _step_ends(free: int, first: int, step: int, cap: int) -> np.ndarray:
    """[shortest charged call, then the last second of every billing step that reaches past
    the free seconds, each at most the cap].

    With free seconds f, the first charged call lasts f+1; the price is constant on each
    step (f, A] ∩ ..., (A+kB, A+(k+1)B], so its last second (or the cap, inside the last step)
    is the longest call at that price. A cap within the free seconds leaves only the cap.
    """
    shortest = free + 1
    if cap < shortest:
        return np.array([shortest], dtype=np.int64)  # no charged call fits under the cap
    first_end = first if shortest <= first else first + -(-(shortest - first) // step) * step
    last_end = first if cap <= first else first + -(-(cap - first) // step) * step
    ends = np.minimum(np.arange(first_end, last_end + 1, step, dtype=np.int64), cap)
    return np.concatenate([np.array([shortest], dtype=np.int64), ends])


def contract_amounts(
    account: str,
    contracts: Contracts,
    pricing: Pricing,
    callee: str,
    start: int,
    rounding: Rounding,
    counters: RunCounters | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, CounterKey | None]:
    """Per alternative length of ONE call (`pricing`'s calls: the same callee and start, each
    answered a different time), its amount (10^-decimals), rate and bundle seconds under the
    account's contracts, each priced as the next call the period's counters see; and the
    counter of the bundle that holds the callee (None: none does, or it does not apply).

    `apply_contracts` (functions.rate.contracts) prices a file's calls one after another, each
    moving the counters for the next; here the lengths are alternatives, so each starts from
    the same counter: a bundle leaves min(left, billed) seconds included; a tier prices the
    rest as round(F(before + s)) - round(F(before)) (computed by the engine's `tier_prices`
    over the sorted lengths' differences, whose running sums are exactly before + s), plus
    the entry's connect fee rounded on its own; the entry's minimum does not apply.
    """
    counters = counters if counters is not None else RunCounters(lambda key: Counter())
    amount = np.asarray(pricing.amount).astype(np.int64)
    rate = np.asarray(pricing.rate_e8).astype(np.int64)
    billed = np.asarray(pricing.billed).astype(np.int64)
    charged = pricing.rated & (billed > 0)
    included = np.zeros(len(billed), np.int64)
    bundle_key = None
    if not charged.any() or not (contracts.tiers or contracts.bundles):
        return amount, rate, included, bundle_key
    labels, codes = month_codes(np.array([start], np.int64), contracts.timezone)
    period = str(labels[codes[0]])
    fee = np.asarray(pricing.connect_fee_e8, dtype=np.int64)
    divisor = exact_divisor(rounding)
    number = pa.array([callee], pa.string())
    remaining = billed.copy()

    if contracts.bundles:
        k = int(group_of(number, [b.prefixes for b in contracts.bundles])[0])
        key = CounterKey(account, BUNDLE, contracts.bundles[k].name, period) if k >= 0 else None
        if key is not None and counters.applies(key):
            # bundle_split of one call: what the period has left, at most the call's seconds.
            bundle_key = key
            left = max(contracts.bundles[k].included_seconds - counters.seconds(key), 0)
            included = np.where(charged, np.minimum(billed, left), 0)
            beyond = billed - included
            used = included > 0
            remaining = np.where(charged, beyond, remaining)
            amount = np.where(used & (beyond == 0), 0, amount)
            crossing = np.flatnonzero(used & (beyond > 0))
            if len(crossing):
                exact = exact_amount(fee[crossing], rate[crossing], beyond[crossing])
                amount[crossing] = rounding.divide(exact, divisor).astype(np.int64)

    if contracts.tiers:
        k = int(group_of(number, [t.prefixes for t in contracts.tiers])[0])
        rows = np.flatnonzero(charged & (remaining > 0))
        key = CounterKey(account, TIER, contracts.tiers[k].name, period) if k >= 0 else None
        if key is not None and len(rows) and counters.applies(key):
            seconds = remaining[rows]
            order = np.argsort(seconds, kind="stable")
            steps = np.diff(seconds[order], prepend=0)
            priced, rates = tier_prices(contracts.tiers[k], counters.seconds(key), steps, rounding)
            tiered = np.empty(len(rows), np.int64)
            tiered[order] = np.cumsum(priced)
            rate[rows[order]] = rates
            fees = rounding.divide(fee[rows] * 60, divisor).astype(np.int64)
            amount[rows] = tiered + fees
    return amount, rate, included, bundle_key


def counter_keys(
    account: str, contracts: Contracts | None, callee: str | None, at: datetime | int
) -> list[CounterKey]:
    """The counters `quote` reads for this call under the account's contracts: its bundle's
    and its tier schedule's (each if its group holds the callee), in the period of `at` (the
    calendar month in the contracts' time zone, as rating counts it). Empty without contracts
    or for a callee `quote` refuses as a bad number. A caller that reads them from the store
    in one round trip gives them to `quote` as `counters`."""
    if contracts is None or not dialable(callee):
        return []
    labels, codes = month_codes(np.array([epoch_second(at)], np.int64), contracts.timezone)
    period = str(labels[codes[0]])
    number = pa.array([callee], pa.string())
    keys = []
    for kind, items in ((BUNDLE, contracts.bundles), (TIER, contracts.tiers)):
        if items:
            k = int(group_of(number, [item.prefixes for item in items])[0])
            if k >= 0:
                keys.append(CounterKey(account, kind, items[k].name, period))
    return keys


def quote_for(
    parties: Parties,
    account: str,
    callee: str | None,
    at: datetime | int,
    available_micro: int,
    *,
    caller: str | None = None,
    plan: str | None = None,
    counters: RunCounters | None = None,
    cap_seconds: int = DEFAULT_CAP_SECONDS,
) -> Quote:
    """`quote` for a customer account of `parties` (`PartyBook.parties([account], [])`, whose
    decks come from the warm `DeckCache`): its deck of the call's plan (`plan`, the trunk's,
    else the account's caller rules, else `default`, as rating chooses), its rounding and its
    contracts. An account without a deck for that plan answers `no_rate`. Raises KeyError for
    an account `parties` does not hold."""
    payer = parties.accounts[account]
    if plan is None:
        callers = pa.array([caller], pa.string()) if caller is not None else None
        labels, codes = choose_plans(
            pa.array([account], pa.string()), callers, None, parties.plan_rules
        )
        plan = labels[int(codes[0])]
    return quote(
        parties.deck_of(account, plan or DEFAULT_PLAN),
        callee,
        at,
        available_micro,
        rounding=payer.rounding,
        cap_seconds=cap_seconds,
        caller=caller,
        account=account,
        contracts=parties.contracts.get(account),
        counters=counters,
    )
