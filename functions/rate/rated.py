"""Rated CDRs: the canonical CDR table priced on the sell side and, optionally, the buy side.

Column-wise end to end: the engine returns numpy columns, this module turns them into one
Arrow table whose money columns are decimal128 built straight from integer units.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.rate.contracts import WHAT_IF, Contracts, PeriodCounters, apply_contracts
from functions.rate.fx import FxError, FxTable
from functions.rate.plans import plans_by_caller
from functions.rate.rating import (
    REASON_CLOSED,
    REASON_NO_RATE,
    STATUS_RATED,
    STATUS_UNRATED,
    CallerNumbers,
    DeckIndex,
    DialledNumbers,
    Pricing,
    convert,
    price_numbers,
    surcharges,
)
from functions.rate.tiers import TierSchedule, group_of
from functions.shared.money import RATE_SCALE, Rounding, decimal_array, units_to_decimal

# Labels by code. Plain tuples: building Arrow arrays at import would make pyarrow probe for
# pandas (0.17 s) on every cold start where pandas happens to be installed.
_REASONS = (None, REASON_NO_RATE, REASON_CLOSED)
_STATUSES = (STATUS_RATED, STATUS_UNRATED)


def start_seconds(cdrs: pa.Table) -> np.ndarray:
    """Call start as whole epoch seconds (floor): deck times are whole seconds, so
    effective_from <= t and t < effective_to compare the same on the floor."""
    micros = pc.cast(cdrs.column("start_time"), pa.int64()).to_numpy()
    return np.floor_divide(micros, 1_000_000)


def _dict(codes: np.ndarray, labels: tuple[str | None, ...]) -> pa.DictionaryArray:
    """Per call, one of a few labels (None: null), dictionary-encoded: no string per row,
    and the Parquet writer stores the codes as they are instead of hashing every value."""
    codes = np.asarray(codes, dtype=np.int8)
    absent = [code for code, label in enumerate(labels) if label is None]
    missing = np.isin(codes, absent) if absent else None
    dictionary = pa.array(["" if label is None else label for label in labels], pa.string())
    indices = pa.array(
        codes, pa.int8(), mask=missing if missing is not None and missing.any() else None
    )
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def _constant(label: str, count: int) -> pa.DictionaryArray:
    return _dict(np.zeros(count, np.int8), (label,))


def _deck_text(index: DeckIndex, row: np.ndarray) -> dict[str, pa.DictionaryArray]:
    """The prefix and destination of each call's deck row, dictionary-encoded; null where no
    deck row applies.

    Each dictionary holds the distinct values the calls use, so no string is copied per call
    and a Parquet writer stores the codes as they are (its dictionary page is the part's
    own) instead of hashing every value again: half the cost of writing these columns.
    """
    return {
        "prefix": _coded(index.row_prefix, row, index.prefix_text),
        "destination": _coded(index.row_destination, row, index.destination_text),
    }


def _coded(code_of_row: np.ndarray, row: np.ndarray, values: pa.Array) -> pa.DictionaryArray:
    """`values[code_of_row[row]]` per call as a dictionary array of the values used; null
    where `row` is -1 (no deck row) or the row's code is -1 (a null value)."""
    missing = row < 0
    if not missing.all():  # (a deck with no rows has no codes to take)
        code = code_of_row[np.where(missing, 0, row)]
        missing = missing | (code < 0)
    if missing.all():
        return pa.DictionaryArray.from_arrays(pa.nulls(len(row), pa.int32()), values[:0])
    used = np.zeros(len(values), bool)
    used[code[~missing]] = True
    renumbered = (np.cumsum(used, dtype=np.int32) - 1)[np.maximum(code, 0)]
    codes = pa.array(renumbered, pa.int32(), mask=missing if missing.any() else None)
    return pa.DictionaryArray.from_arrays(codes, values.take(pa.array(np.flatnonzero(used))))


def _money(units: np.ndarray, scale: int, missing: np.ndarray) -> pa.Array:
    """`decimal_array` without its copies for the usual case: int64 units, precision 18.

    The 16-byte values are written into one numpy buffer that Arrow then owns by reference.
    """
    if units.dtype != np.int64:  # exact Python ints (overflow path): the general builder
        return decimal_array(units, scale, missing)
    words = np.empty((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    np.right_shift(units, 63, out=words[:, 1])  # sign extension into the high word
    null_count = int(np.count_nonzero(missing))
    validity = pa.py_buffer(np.packbits(~missing, bitorder="little")) if null_count else None
    return pa.Array.from_buffers(
        pa.decimal128(18, scale), len(units), [validity, pa.py_buffer(words)], null_count
    )


def _reason_code(pricing: Pricing) -> np.ndarray:
    return np.where(pricing.rated, 0, np.where(pricing.closed, 2, 1))


def rate_cdrs(
    cdrs: pa.Table,
    customer: DeckIndex,
    supplier: DeckIndex | None = None,
    *,
    fx: FxTable | None = None,
    rounding: Rounding | None = None,
    tiers: Sequence[TierSchedule] = (),
    counters: PeriodCounters | None = None,
    plans: Mapping[str, DeckIndex] | None = None,
    plan_rules: Mapping[str, str] | None = None,
) -> pa.Table:
    """One row per CDR: status, reason, matched prefix, billed seconds, amounts and margin.

    Amounts are in the customer deck's currency (`currency`), except `supplier_amount`,
    which is what the supplier bills in its own currency (`supplier_currency`);
    `supplier_cost` is that same call converted exactly and rounded once. With `tiers`
    (what-if: the file is one period), a call to a tier group's prefixes is priced by the
    tier instead of the deck's rate (see `_tiered`), and `tier` names its schedule. With
    `plans` (what-if rate plans: name -> deck, `customer` being the `default` plan's), each
    call's plan is chosen by `plan_rules` (caller prefix -> plan, longest wins) and priced
    by that plan's deck; `plan` names it. With a customer deck (of any plan) that has
    surcharges, `surcharge` is the customer's per-minute surcharge on the call (null where
    none), its own amount rounded once; margin counts it as revenue, and `supplier_cost`
    includes the supplier deck's surcharge.
    """
    rounding = rounding or Rounding()
    scale = rounding.decimals
    callee = cdrs.column("callee").combine_chunks()
    start = start_seconds(cdrs)
    answered = cdrs.column("billsec").to_numpy()
    numbers = DialledNumbers.of(callee)  # padded and sorted once for both decks
    # Callers only for a deck with origin entries: a plain deck never reads them.
    callers = None
    if customer.has_origin or (supplier is not None and supplier.has_origin):
        callers = CallerNumbers.of(cdrs.column("caller"))

    if plans:
        sell, deck_text, plan_column, sell_surcharge = _by_plan(
            cdrs, customer, plans, plan_rules or {}, callee, start, answered, rounding, callers
        )
    else:
        sell = price_numbers(customer, numbers, start, answered, rounding, callers)
        # A deck without surcharges takes no step per call for them (and has no column).
        sell_surcharge = surcharges(customer, sell, rounding)[1] if customer.has_surcharge else None
    if tiers:
        counters = counters if counters is not None else PeriodCounters()
        sell, tier_of = _tiered(sell, tiers, counters, callee, start, rounding)
    unrated = ~sell.rated
    if not plans:
        deck_text = _deck_text(customer, sell.row)
    columns: dict[str, pa.Array] = {
        "line": cdrs.column("line").combine_chunks(),
        "call_id": cdrs.column("call_id").combine_chunks(),
        "start_time": cdrs.column("start_time").combine_chunks(),
        "callee": callee,
        "billsec": cdrs.column("billsec").combine_chunks(),
        "status": _dict(unrated, _STATUSES),
        "reason": _dict(_reason_code(sell), _REASONS),
        "matched_prefix": deck_text["prefix"],
        "destination": deck_text["destination"],
        "billed_seconds": pa.array(sell.billed, pa.int64()),
        "customer_rate": _money(sell.rate_e8, RATE_SCALE, unrated),
        "customer_amount": _money(sell.amount, scale, unrated),
        "currency": _constant(customer.currency, len(cdrs)),
    }
    revenue = sell.amount
    if sell_surcharge is not None:
        columns["surcharge"] = _money(sell_surcharge, scale, sell_surcharge == 0)
        revenue = sell.amount + sell_surcharge
    if plans:
        columns["plan"] = plan_column
    if tiers:
        names = pa.array([t.name for t in tiers], pa.string())
        columns["tier"] = pa.DictionaryArray.from_arrays(
            pa.array(np.maximum(tier_of, 0), pa.int32(), mask=tier_of < 0), names
        )
    if supplier is not None:
        buy = price_numbers(supplier, numbers, start, answered, rounding, callers)
        if supplier.currency == customer.currency:
            cost = buy.amount
            if supplier.has_surcharge:
                cost = cost + surcharges(supplier, buy, rounding)[1]
        elif fx is None:
            raise FxError(
                f"the customer deck is in {customer.currency} and the supplier deck in "
                f"{supplier.currency}: an FX table is required (--fx FILE)"
            )
        else:
            numerator, denominator = fx.ratio(supplier.currency, customer.currency, start)
            cost = convert(buy.exact, numerator, denominator, rounding)
            if supplier.has_surcharge:  # its own charge, so converted and rounded on its own
                cost = cost + _converted_surcharge(supplier, buy, numerator, denominator, rounding)
        no_cost = ~buy.rated
        no_margin = unrated | no_cost
        bought = _deck_text(supplier, buy.row)
        columns |= {
            "supplier_status": _dict(no_cost, _STATUSES),
            "supplier_reason": _dict(_reason_code(buy), _REASONS),
            "supplier_prefix": bought["prefix"],
            "supplier_destination": bought["destination"],
            "supplier_rate": _money(buy.rate_e8, RATE_SCALE, no_cost),
            "supplier_amount": _money(buy.amount, scale, no_cost),
            "supplier_currency": _constant(supplier.currency, len(cdrs)),
            "supplier_cost": _money(cost, scale, no_cost),
            "margin": _money(revenue - cost, scale, no_margin),
        }
    return pa.table(columns)


def _converted_surcharge(
    supplier: DeckIndex,
    buy: Pricing,
    numerator: np.ndarray,
    denominator: np.ndarray,
    rounding: Rounding,
) -> np.ndarray:
    """The supplier's surcharge per call in the customer's currency, exact then rounded once."""
    charged = buy.rated & (buy.billed > 0)
    rate = np.where(charged, supplier.surcharge_e8[np.maximum(buy.row, 0)], 0)
    return convert(rate * buy.billed, numerator, denominator, rounding)


def _by_plan(
    cdrs: pa.Table,
    default: DeckIndex,
    plans: Mapping[str, DeckIndex],
    rules: Mapping[str, str],
    callee: pa.Array,
    start: np.ndarray,
    answered: np.ndarray,
    rounding: Rounding,
    callers: CallerNumbers | None = None,
) -> tuple[Pricing, dict[str, pa.Array], pa.DictionaryArray, np.ndarray | None]:
    """The sell side with each call priced by the deck of its plan (a loop over plans), the
    deck's prefix and destination per call, the plan column, and each call's surcharge
    (None when no plan's deck has surcharges)."""
    decks = {"default": default, **plans}
    if callers is None and any(d.has_origin for d in decks.values()):
        callers = CallerNumbers.of(cdrs.column("caller"))
    surcharged = any(d.has_surcharge for d in decks.values())
    surcharge = np.zeros(len(cdrs), np.int64) if surcharged else None
    for plan in rules.values():
        if plan not in decks:
            raise ValueError(f"plan {plan!r} has a caller rule but no deck")
    labels, codes = plans_by_caller(cdrs.column("caller"), rules, list(plans))
    n = len(codes)
    merged: dict[str, np.ndarray | None] = {}
    text: dict[str, list[tuple[np.ndarray, pa.Array]]] = {"prefix": [], "destination": []}
    for k, plan in enumerate(labels):
        rows = np.flatnonzero(codes == k)
        if len(rows) == 0:
            continue
        take = pa.array(rows)
        part = price_numbers(
            decks[plan],
            DialledNumbers.of(callee.take(take)),
            start[rows],
            answered[rows],
            rounding,
            None if callers is None else callers.take(rows),
        )
        if surcharge is not None and decks[plan].has_surcharge:
            surcharge[rows] = surcharges(decks[plan], part, rounding)[1]
        for f in fields(Pricing):
            value = getattr(part, f.name)
            if value is None or (f.name in merged and merged[f.name] is None):
                merged[f.name] = None
                continue
            if f.name not in merged:
                merged[f.name] = np.zeros(n, dtype=value.dtype)
            merged[f.name][rows] = value
        taken = _deck_text(decks[plan], part.row)
        for name in text:  # plain text: each plan's deck has its own dictionary
            text[name].append((rows, taken[name].cast(pa.string())))
    if not merged:  # no calls
        return (
            price_numbers(default, DialledNumbers.of(callee), start, answered, rounding, callers),
            {name: pa.array([], pa.string()) for name in text},
            pa.DictionaryArray.from_arrays(pa.array([], pa.int32()), pa.array(labels)),
            surcharge,
        )
    order = np.concatenate([rows for rows, _ in text["prefix"]])
    back = pa.array(np.argsort(order, kind="stable"))  # from plan-grouped back to call order
    deck_text = {
        name: pa.concat_arrays([piece for _, piece in pieces]).take(back)
        for name, pieces in text.items()
    }
    plan_column = pa.DictionaryArray.from_arrays(
        pa.array(codes, pa.int32()), pa.array(labels, pa.string())
    )
    # Pricing.row indexes each plan's own deck: kept only for its sign (rated or not).
    return Pricing(**merged), deck_text, plan_column, surcharge


def _tiered(
    sell: Pricing,
    tiers: Sequence[TierSchedule],
    counters: PeriodCounters,
    callee: pa.Array,
    start: np.ndarray,
    rounding: Rounding,
) -> tuple[Pricing, np.ndarray]:
    """The sell side with tier prices for the calls of each tier group, and each call's tier
    (-1: none): the pipeline's own pricing (functions.rate.contracts), the file as one
    period. The deck still gives the destination, the increment and the connect fee."""
    applied = apply_contracts(
        WHAT_IF, Contracts(tiers=tiers), sell, callee, start, rounding, counters, period=WHAT_IF
    )
    tier_of = np.where(sell.rated, group_of(callee, [t.prefixes for t in tiers]), -1)
    return replace(sell, amount=applied.amount, rate_e8=applied.rate_e8), tier_of


@dataclass(frozen=True)
class RatingSummary:
    """Counts that reconcile (rows in = rated + unrated + quarantined) and money totals."""

    rows_in: int
    rated: int
    unrated: int
    quarantined: int
    unrated_reasons: dict[str, int] = field(default_factory=dict)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    supplier_unrated: int = 0
    billed_seconds: int = 0
    currency: str = "USD"
    customer_total: Decimal = Decimal(0)
    surcharge_total: Decimal = Decimal(0)  # the customer's surcharges, in `currency`
    supplier_total: Decimal | None = None  # supplier cost, in `currency`
    margin_total: Decimal | None = None

    @property
    def reconciles(self) -> bool:
        return self.rows_in == self.rated + self.unrated + self.quarantined

    @classmethod
    def merge(cls, parts: list[RatingSummary]) -> RatingSummary:
        """One summary for a file rated in parts: counts and exact totals add up."""

        def total(name: str) -> Decimal | None:
            values = [getattr(p, name) for p in parts]
            return None if any(v is None for v in values) else sum(values, Decimal(0))

        def reasons(name: str) -> dict[str, int]:
            merged: Counter[str] = Counter()
            for part in parts:
                merged.update(getattr(part, name))
            return dict(merged)

        return cls(
            rows_in=sum(p.rows_in for p in parts),
            rated=sum(p.rated for p in parts),
            unrated=sum(p.unrated for p in parts),
            quarantined=sum(p.quarantined for p in parts),
            unrated_reasons=reasons("unrated_reasons"),
            quarantine_reasons=reasons("quarantine_reasons"),
            supplier_unrated=sum(p.supplier_unrated for p in parts),
            billed_seconds=sum(p.billed_seconds for p in parts),
            currency=next((p.currency for p in parts if p.currency), ""),
            customer_total=total("customer_total") or Decimal(0),
            surcharge_total=total("surcharge_total") or Decimal(0),
            supplier_total=total("supplier_total"),
            margin_total=total("margin_total"),
        )


def _sum_units(column: pa.ChunkedArray, scale: int) -> Decimal:
    """Exact total of a decimal column: Arrow sums decimal128 values as 128-bit integers into
    a decimal128(38, scale), never through floats (a column at another scale is first cast
    to `scale`, exactly or with an error)."""
    target = pa.decimal128(18, scale)
    if column.type != target:
        column = pc.cast(column, target)  # safe cast: fails rather than drop digits
    total = pc.sum(column).as_py()
    return units_to_decimal(0, scale) if total is None else total


def _count(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.sum(mask).as_py() or 0)


def summarise(rated: pa.Table, quarantine: pa.Table, rows_in: int, decimals: int) -> RatingSummary:
    is_rated = pc.equal(rated.column("status"), STATUS_RATED)
    n_rated = _count(is_rated)
    reasons = Counter(
        {
            row["values"]: row["counts"]
            for row in pc.value_counts(rated.column("reason").drop_null()).to_pylist()
        }
    )
    quarantine_reasons = Counter(
        {
            row["values"]: row["counts"]
            for row in pc.value_counts(quarantine.column("reason")).to_pylist()
        }
    )
    has_supplier = "supplier_cost" in rated.column_names
    return RatingSummary(
        rows_in=rows_in,
        rated=n_rated,
        unrated=rated.num_rows - n_rated,
        quarantined=quarantine.num_rows,
        unrated_reasons=dict(reasons),
        quarantine_reasons=dict(quarantine_reasons),
        supplier_unrated=_count(
            pc.and_(is_rated, pc.equal(rated.column("supplier_status"), STATUS_UNRATED))
        )
        if has_supplier
        else 0,
        billed_seconds=int(pc.sum(rated.column("billed_seconds")).as_py() or 0),
        currency=rated.column("currency")[0].as_py() if rated.num_rows else "",
        customer_total=_sum_units(rated.column("customer_amount"), decimals),
        surcharge_total=_sum_units(rated.column("surcharge"), decimals)
        if "surcharge" in rated.column_names
        else Decimal(0),
        supplier_total=_sum_units(rated.column("supplier_cost"), decimals)
        if has_supplier
        else None,
        margin_total=_sum_units(rated.column("margin"), decimals) if has_supplier else None,
    )
