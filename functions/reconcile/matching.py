"""Pair a partner's CDRs with ours one to one, and class every CDR of either side.

Pure (pyarrow and NumPy), vectorised: no Python loop runs per CDR. The steps, as the
reference's "bucketed equi-join, then mutual-best 1:1" (fraud-reconciliation.md §B5):

1. Each side in a canonical order (start, callee, billsec, line, call id, amount): a CDR's
   place in it is its tie-breaker, so the result does not depend on the input row order.
2. The clock offset (their start minus ours) is the median of the start differences of a
   wide first pass: pairs on the callee within +-WIDE_WINDOW_SECONDS (whose durations agree
   within the tolerance, when there are any). Their starts are corrected by it.
3. Candidate pairs: an equi-join on (callee, start bucket) with their side expanded to the
   buckets before and after, kept when the corrected starts are within the start tolerance.
   Durations are not a join condition: a pair within the start tolerance whose durations
   differ by more than the tolerance is a duration_mismatch, not two missing calls.
4. One to one, best pairs first: candidates ranked by |start difference|, then |duration
   difference|, then the two CDRs' places; every pair that is the best remaining candidate of
   both its CDRs is taken, the candidates of the CDRs it took are dropped, and again until no
   candidate is left. This takes exactly the pairs a greedy pass in rank order takes (the
   ranks are a total order), in a few vectorised rounds.
5. Classes: a pair whose durations differ by more than the tolerance is duration_mismatch;
   else one whose amounts (both present) differ by more than the amount tolerance is
   rate_mismatch; else matched. Their CDRs left alone are missing_ours, ours missing_theirs.

Money is handled as integer micro-units (decimal128(18, 6)'s unscaled integers) and summed
exactly; totals come back as Decimal.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.reconcile.result import (
    CLASSES,
    MONEY,
    PARTY_SCHEMA,
    ROW_SCHEMA,
    UTC_MICROS,
    ClassTotal,
    Reconciliation,
)

MICROS = 1_000_000
WIDE_WINDOW_SECONDS = 120  # the first pass that estimates the clock offset
# The first pass looks at about this many of our CDRs at most (those whose start second is a
# multiple of a step): a median needs no more, and the sample depends on the data only.
OFFSET_SAMPLE = 200_000
SCALE = Decimal(1).scaleb(-6)  # MONEY's scale

_ROLES = ("customer", "supplier")


def reconcile(
    ours: pa.Table,
    theirs: pa.Table,
    *,
    partner: str,
    role: str,
    currency: str,
    date_from: dt.date,
    date_to: dt.date,
    start_tolerance_seconds: int = 3,
    duration_tolerance_seconds: int = 2,
    amount_tolerance: Decimal = Decimal("0"),
    clip_to_period: bool = False,
) -> Reconciliation:
    """Match `theirs` against `ours` (both PARTY_SCHEMA) and class every CDR (see module doc).

    With `clip_to_period` the sides may hold calls a little outside date_from..date_to (UTC
    days, inclusive), so that a pair across its edge is still found; only the rows whose
    start (ours for a pair; theirs after the clock offset) is inside are then kept, and the
    amounts summed over those CDRs alone."""
    if role not in _ROLES:
        raise ValueError(f"role must be customer or supplier, not {role!r}")
    if start_tolerance_seconds < 0 or duration_tolerance_seconds < 0 or amount_tolerance < 0:
        raise ValueError("tolerances cannot be negative")
    ours = _canonical(_conform(ours, "ours"))
    theirs = _canonical(_conform(theirs, "theirs"))
    our = _Side.of(ours)
    their = _Side.of(theirs)
    callee_codes(our, their)

    offset = _clock_offset(our, their, duration_tolerance_seconds)
    corrected = their.start - offset
    tolerance = start_tolerance_seconds * MICROS
    oi, ti = _candidates(our, their.code, corrected, tolerance)
    adt = np.abs(corrected[ti] - our.start[oi])
    addur = np.abs(their.billsec[ti] - our.billsec[oi])
    taken_o, taken_t = best_pairs_first(oi, ti, adt, addur, len(our), len(their))

    duration_off = (
        np.abs(their.billsec[taken_t] - our.billsec[taken_o]) > duration_tolerance_seconds
    )
    both = our.has_amount[taken_o] & their.has_amount[taken_t]
    money_off = np.abs(their.amount[taken_t] - our.amount[taken_o]) > _units(amount_tolerance)
    rate_off = ~duration_off & both & money_off

    unmatched_o = np.ones(len(our), bool)
    unmatched_o[taken_o] = False
    unmatched_t = np.ones(len(their), bool)
    unmatched_t[taken_t] = False
    lone_o = np.flatnonzero(unmatched_o)
    lone_t = np.flatnonzero(unmatched_t)
    if clip_to_period:
        low, high = _period(date_from, date_to)
        inside = (our.start[taken_o] >= low) & (our.start[taken_o] < high)
        taken_o, taken_t = taken_o[inside], taken_t[inside]
        duration_off, rate_off = duration_off[inside], rate_off[inside]
        lone_o = lone_o[(our.start[lone_o] >= low) & (our.start[lone_o] < high)]
        lone_t = lone_t[(corrected[lone_t] >= low) & (corrected[lone_t] < high)]
    all_o = np.concatenate([taken_o, lone_o])
    all_t = np.concatenate([taken_t, lone_t])

    pieces: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "matched": (taken_o[~duration_off & ~rate_off], taken_t[~duration_off & ~rate_off]),
        "duration_mismatch": (taken_o[duration_off], taken_t[duration_off]),
        "rate_mismatch": (taken_o[rate_off], taken_t[rate_off]),
        "missing_ours": (np.empty(0, np.int64), lone_t),
        "missing_theirs": (lone_o, np.empty(0, np.int64)),
    }
    rows = []
    totals: dict[str, ClassTotal] = {}
    for name in CLASSES:
        o, t = pieces[name]
        rows.append(_rows(name, ours, theirs, o, t))
        totals[name] = _total(name, our, their, o, t)
    return Reconciliation(
        partner=partner,
        role=role,
        currency=currency,
        date_from=date_from,
        date_to=date_to,
        clock_offset_seconds=seconds_of(offset),
        start_tolerance_seconds=start_tolerance_seconds,
        duration_tolerance_seconds=duration_tolerance_seconds,
        rows=pa.concat_tables(rows),
        totals=totals,
        our_amount=_decimal(_exact_sum(our.amount[all_o])),
        their_amount=_decimal(_exact_sum(their.amount[all_t])),
    )


# --- the sides as NumPy arrays ----------------------------------------------------------


class _Side:
    """One side's columns as NumPy arrays, in the side's canonical order."""

    __slots__ = ("amount", "billsec", "callee", "code", "has_amount", "start")

    def __init__(self, callee, start, billsec, amount, has_amount) -> None:
        self.callee: pa.Array = callee
        self.code = np.empty(0, np.int64)  # the callee as an integer, shared by both sides
        self.start: np.ndarray = start  # int64 microseconds since the epoch
        self.billsec: np.ndarray = billsec
        self.amount: np.ndarray = amount  # int64 micro-units; 0 where null
        self.has_amount: np.ndarray = has_amount

    @classmethod
    def of(cls, table: pa.Table) -> _Side:
        amount = table.column("amount").combine_chunks()
        return cls(
            table.column("callee").combine_chunks(),
            _int64(table.column("start_time").cast(pa.int64())),
            _int64(table.column("billsec")),
            money_units(amount),
            _int64_bools(pc.is_valid(amount)),
        )

    def __len__(self) -> int:
        return len(self.start)


def callee_codes(our: _Side, their: _Side) -> None:
    """Number both sides' callees with one dictionary (equal callees, equal codes)."""
    both = pa.concat_arrays([our.callee, their.callee])
    codes = _int64(pc.dictionary_encode(both).indices.cast(pa.int64()))
    our.code, their.code = codes[: len(our)], codes[len(our) :]


def _conform(table: pa.Table, what: str) -> pa.Table:
    missing = [n for n in PARTY_SCHEMA.names if n not in table.column_names]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}")
    table = table.select(PARTY_SCHEMA.names).cast(PARTY_SCHEMA)
    for name in ("line", "callee", "start_time", "billsec"):
        if table.column(name).null_count:
            raise ValueError(f"{what} has null {name} values")
    return table


def _canonical(table: pa.Table) -> pa.Table:
    """The side in an order of its content alone: equal tables in any row order come out
    equal, so each CDR's place is a tie-breaker independent of the input order."""
    names = ("start_time", "callee", "billsec", "line", "call_id", "amount")
    keys = [(name, "ascending", "at_start") for name in names]
    return table.take(pc.sort_indices(table, sort_keys=keys))


def _int64(values) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int64)


def _int64_bools(mask) -> np.ndarray:
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def money_units(amount: pa.Array) -> np.ndarray:
    """decimal128(18, 6) values as their unscaled int64 micro-units (0 where null).

    An 18-digit unscaled value fits in the low 64 bits of Arrow's 128-bit two's complement
    (little-endian), so the low words are the exact integers."""
    amount = amount.cast(MONEY)
    if len(amount) == 0:
        return np.empty(0, np.int64)
    words = np.frombuffer(amount.buffers()[1], dtype=np.int64)
    units = words[2 * amount.offset : 2 * (amount.offset + len(amount)) : 2].copy()
    if amount.null_count:
        units[~_int64_bools(pc.is_valid(amount))] = 0
    return units


def units_money(units: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """int64 micro-units as a decimal128(18, 6) array (null where not `valid`)."""
    units = np.ascontiguousarray(units, dtype=np.int64)
    words = np.empty(2 * len(units), np.int64)
    words[0::2] = units
    words[1::2] = units >> 63  # the sign, extended to the high word
    array = pa.Array.from_buffers(MONEY, len(units), [None, pa.py_buffer(words)])
    if valid is None or bool(valid.all()):
        return array
    return pc.if_else(pa.array(valid), array, pa.scalar(None, MONEY))


def _period(date_from: dt.date, date_to: dt.date) -> tuple[int, int]:
    """The days date_from..date_to (UTC, inclusive) as [low, high) epoch microseconds."""
    epoch = dt.date(1970, 1, 1)
    day = 86_400 * MICROS
    return (date_from - epoch).days * day, ((date_to - epoch).days + 1) * day


def seconds_of(micros: int) -> Decimal:
    """Microseconds as seconds, with no trailing zeros after the point (7, 6.5, -0.25)."""
    whole, part = divmod(abs(int(micros)), MICROS)
    sign = "-" if micros < 0 else ""
    if not part:
        return Decimal(f"{sign}{whole}")
    return Decimal(f"{sign}{whole}.{part:06d}".rstrip("0"))


def _units(value: Decimal) -> int:
    return int(value.scaleb(6).to_integral_value())


def _decimal(units: int) -> Decimal:
    return Decimal(units) * SCALE


def _exact_sum(units: np.ndarray) -> int:
    """The sum of int64 values with no overflow: high and low 32-bit halves apart."""
    high = int(np.sum(units >> 32, dtype=np.int64))
    low = int(np.sum(units & 0xFFFFFFFF, dtype=np.int64))
    return (high << 32) + low


# --- the clock offset -------------------------------------------------------------------


def _clock_offset(our: _Side, their: _Side, duration_tolerance: int) -> int:
    """Their clock minus ours in microseconds: the median start difference of the pairs on
    the callee within +-WIDE_WINDOW_SECONDS (preferring those whose durations agree), over
    a sample of ours chosen by start second; 0 when no pair is found."""
    if not len(our) or not len(their):
        return 0
    step = -(-len(our) // OFFSET_SAMPLE)
    sample = np.flatnonzero((our.start // MICROS) % step == 0) if step > 1 else None
    if sample is not None and len(sample) == 0:
        sample = None
    if sample is None:
        probe = our
    else:
        probe = _Side(None, our.start[sample], our.billsec[sample], None, None)
        probe.code = our.code[sample]
    oi, ti = _candidates(probe, their.code, their.start, WIDE_WINDOW_SECONDS * MICROS)
    if not len(oi):
        return 0
    differences = their.start[ti] - probe.start[oi]
    agreeing = np.abs(their.billsec[ti] - probe.billsec[oi]) <= duration_tolerance
    if agreeing.any():
        differences = differences[agreeing]
    ordered = np.sort(differences)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return int(ordered[middle])
    return (int(ordered[middle - 1]) + int(ordered[middle])) // 2


# --- candidate pairs --------------------------------------------------------------------


def _candidates(
    our: _Side, their_code: np.ndarray, their_start: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every (our index, their index) with equal callees and starts within `window`
    microseconds: an equi-join on (callee, start // window) with their side expanded to the
    buckets before and after, then filtered on the exact difference."""
    if not len(our) or not len(their_start):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    width = max(window, 1)
    our_bucket = np.floor_divide(our.start, width)
    their_bucket = np.floor_divide(their_start, width)
    n = len(their_start)
    left = pa.table(
        {
            "code": pa.array(our.code),
            "bucket": pa.array(our_bucket),
            "o": pa.array(np.arange(len(our), dtype=np.int64)),
        }
    )
    right = pa.table(
        {
            "code": pa.array(np.tile(their_code, 3)),
            "bucket": pa.array(np.concatenate([their_bucket - 1, their_bucket, their_bucket + 1])),
            "t": pa.array(np.tile(np.arange(n, dtype=np.int64), 3)),
        }
    )
    joined = left.join(right, keys=["code", "bucket"], join_type="inner", use_threads=True)
    oi = _int64(joined.column("o"))
    ti = _int64(joined.column("t"))
    near = np.abs(their_start[ti] - our.start[oi]) <= window
    return oi[near], ti[near]


def best_pairs_first(
    oi: np.ndarray,
    ti: np.ndarray,
    adt: np.ndarray,
    addur: np.ndarray,
    n_ours: int,
    n_theirs: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The pairs a greedy pass over the candidates in rank order (|dt|, |ddur|, our place,
    their place) takes, no CDR twice: found as mutual-best rounds (see the module doc)."""
    order = np.lexsort((ti, oi, addur, adt))
    oi, ti = oi[order], ti[order]
    rank = np.arange(len(oi), dtype=np.int64)
    taken_o: list[np.ndarray] = []
    taken_t: list[np.ndarray] = []
    free_o = np.ones(n_ours, bool)
    free_t = np.ones(n_theirs, bool)
    none = np.iinfo(np.int64).max
    while len(oi):
        best_o = np.full(n_ours, none, np.int64)
        best_t = np.full(n_theirs, none, np.int64)
        np.minimum.at(best_o, oi, rank)
        np.minimum.at(best_t, ti, rank)
        mutual = (best_o[oi] == rank) & (best_t[ti] == rank)
        taken_o.append(oi[mutual])
        taken_t.append(ti[mutual])
        free_o[oi[mutual]] = False
        free_t[ti[mutual]] = False
        alive = free_o[oi] & free_t[ti]
        oi, ti, rank = oi[alive], ti[alive], rank[alive]
    if not taken_o:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    o, t = np.concatenate(taken_o), np.concatenate(taken_t)
    by_ours = np.argsort(o, kind="stable")  # pairs in our canonical order
    return o[by_ours], t[by_ours]


# --- rows and totals --------------------------------------------------------------------


def _rows(name: str, ours: pa.Table, theirs: pa.Table, o: np.ndarray, t: np.ndarray) -> pa.Table:
    """ROW_SCHEMA rows of one class: pairs (o and t of equal length), or one side alone."""
    count = max(len(o), len(t))
    mine = ours.take(pa.array(o, pa.int64())) if len(o) else None
    yours = theirs.take(pa.array(t, pa.int64())) if len(t) else None

    def column(table: pa.Table | None, source: str, kind: pa.DataType):
        if table is None:
            return pa.nulls(count, kind)
        return table.column(source).combine_chunks()

    our_amount = column(mine, "amount", MONEY)
    their_amount = column(yours, "amount", MONEY)
    if mine is not None and yours is not None:
        valid = _int64_bools(pc.and_(pc.is_valid(our_amount), pc.is_valid(their_amount)))
        difference = units_money(money_units(their_amount) - money_units(our_amount), valid)
    else:
        difference = pa.nulls(count, MONEY)
    callee = (
        column(mine, "callee", pa.string())
        if mine is not None
        else column(yours, "callee", pa.string())
    )
    return pa.table(
        {
            "class": pa.array([name] * count, pa.string()) if count else pa.array([], pa.string()),
            "callee": callee,
            "our_line": column(mine, "line", pa.int64()),
            "their_line": column(yours, "line", pa.int64()),
            "our_call_id": column(mine, "call_id", pa.string()),
            "their_call_id": column(yours, "call_id", pa.string()),
            "our_start": column(mine, "start_time", UTC_MICROS),
            "their_start": column(yours, "start_time", UTC_MICROS),
            "our_billsec": column(mine, "billsec", pa.int64()),
            "their_billsec": column(yours, "billsec", pa.int64()),
            "our_amount": our_amount,
            "their_amount": their_amount,
            "difference": difference,
        },
        schema=ROW_SCHEMA,
    )


def _total(name: str, our: _Side, their: _Side, o: np.ndarray, t: np.ndarray) -> ClassTotal:
    """The class's count, answered seconds (the larger side's for a pair) and their amount
    minus ours over its rows: a pair counts when both sides have an amount (as its row's
    `difference`), a CDR alone with its own amount (a side with no amount counting 0)."""
    if len(o) and len(t):
        seconds = np.maximum(our.billsec[o], their.billsec[t])
        both = our.has_amount[o] & their.has_amount[t]
        o, t = o[both], t[both]
    else:
        seconds = our.billsec[o] if len(o) else their.billsec[t]
    money = _exact_sum(their.amount[t]) - _exact_sum(our.amount[o])
    return ClassTotal(len(seconds), int(np.sum(seconds)), _decimal(money))
