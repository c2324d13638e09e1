"""Pair a partner's CDRs with ours one to one, and class every CDR of either side.

Pure (pyarrow and NumPy), vectorised: no Python loop runs per CDR. The steps, after the
reference's "bucketed equi-join, then mutual-best 1:1" (fraud-reconciliation.md §B5):

1. Callees get codes by their rank among both sides' distinct callees, and each side is put
   in a canonical order: by one int64 key, callee code x span + start, rows with equal keys
   by start, billsec, line, amount and call id. A CDR's place in it is its tie-breaker, so
   the result does not depend on the input row order.
2. The clock offset (their start minus ours) is the median of the start differences of a
   wide first pass: pairs on the callee within +-WIDE_WINDOW_SECONDS (whose durations agree
   within the tolerance, when there are any). Their starts are corrected by it.
3. Candidate pairs: the same callee and corrected starts within the start tolerance, found
   by binary searches of our keys +- the tolerance in their sorted keys (the equi-join on
   (callee, bucket) with one side expanded to the neighbouring buckets, done as sorted runs,
   which NumPy does faster than a hash join). Durations are not a condition: a pair within
   the start tolerance whose durations differ by more than the tolerance is a
   duration_mismatch, not two missing calls.
4. One to one, best pairs first: candidates ranked by |start difference|, then |duration
   difference|, then the two CDRs' places; every pair that is the best remaining candidate of
   both its CDRs is taken, the candidates of the CDRs it took are dropped, and again until no
   candidate is left. This takes exactly the pairs a greedy pass in rank order takes (the
   ranks are a total order), in a few vectorised rounds.
5. Classes: a pair whose durations differ by more than the tolerance is duration_mismatch;
   else one whose amounts (both present) differ by more than the amount tolerance is
   rate_mismatch; else matched. Their CDRs left alone are missing_ours, ours missing_theirs.
   Rows come class by class (CLASSES order), each in our (else their) canonical order.

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
    ClassTotal,
    Reconciliation,
)
from functions.shared.money import decimal_array, units_from_decimal_array, units_to_decimal

MICROS = 1_000_000
WIDE_WINDOW_SECONDS = 120  # the first pass that estimates the clock offset
# The first pass looks at about this many of our CDRs at most (those whose start second is a
# multiple of a step): a median needs no more, and the sample depends on the data only.
OFFSET_SAMPLE = 200_000
KEY_BITS = 62  # the sort key's room: callee codes x start buckets

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
    ours, theirs = _conform(ours, "ours"), _conform(theirs, "theirs")
    our, their = _Side.of(ours), _Side.of(theirs)
    callee_codes(our, their)
    layout = _Layout(our, their, start_tolerance_seconds)
    _canonical(our, ours, layout)
    _canonical(their, theirs, layout)

    offset = _clock_offset(our, their, layout, duration_tolerance_seconds)
    corrected = their.start - offset
    tolerance = start_tolerance_seconds * MICROS
    their_key = layout.key(their.code, corrected)  # still sorted: the same shift for all
    oi, ti = _candidates(our.code, our.start, their_key, corrected, layout, tolerance)
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
    totals = {name: _total(our, their, *pieces[name]) for name in CLASSES}
    return Reconciliation(
        partner=partner,
        role=role,
        currency=currency,
        date_from=date_from,
        date_to=date_to,
        clock_offset_seconds=seconds_of(offset),
        start_tolerance_seconds=start_tolerance_seconds,
        duration_tolerance_seconds=duration_tolerance_seconds,
        rows=_rows(pieces, ours, theirs, our, their),
        totals=totals,
        our_amount=units_to_decimal(_exact_sum(our.amount[all_o]), MONEY.scale),
        their_amount=units_to_decimal(_exact_sum(their.amount[all_t]), MONEY.scale),
    )


# --- the sides as NumPy arrays ----------------------------------------------------------


class _Side:
    """One side's columns as NumPy arrays, in the side's canonical order; `index` maps each
    place back to the row of the input table."""

    __slots__ = ("amount", "billsec", "callee", "code", "has_amount", "index", "line", "start")

    def __init__(self, callee, start, billsec, amount, has_amount, line=None) -> None:
        self.callee: pa.Array | None = callee
        self.code = np.empty(0, np.int64)  # the callee's rank among both sides' callees
        self.start: np.ndarray = start  # int64 microseconds since the epoch
        self.billsec: np.ndarray = billsec
        self.amount: np.ndarray = amount  # int64 micro-units; 0 where null
        self.has_amount: np.ndarray = has_amount
        self.line: np.ndarray | None = line
        self.index = np.arange(len(start), dtype=np.int64)

    @classmethod
    def of(cls, table: pa.Table) -> _Side:
        amount = table.column("amount").combine_chunks()
        return cls(
            table.column("callee").combine_chunks(),
            _int64(table.column("start_time").cast(pa.int64())),
            _int64(table.column("billsec")),
            units_from_decimal_array(amount, MONEY.scale),
            _int64_bools(pc.is_valid(amount)),
            _int64(table.column("line")),
        )

    def __len__(self) -> int:
        return len(self.start)

    def reorder(self, order: np.ndarray) -> None:
        for name in ("code", "start", "billsec", "amount", "has_amount", "line", "index"):
            setattr(self, name, getattr(self, name)[order])


def callee_codes(our: _Side, their: _Side) -> None:
    """Number both sides' callees by their rank among the distinct callees of both: equal
    callees, equal codes, and the codes depend on the callees alone (not the row order).

    Callees of at most 17 ASCII digits (E.164's are) are read as integers, with their length
    so that leading zeros count; other text is ranked by a sort of its distinct values."""
    both = pa.concat_arrays([our.callee, their.callee])
    if len(both) == 0:
        codes = np.empty(0, np.int64)
    elif _short_digits(both):
        value = _int64(pc.cast(both, pa.int64()))
        length = _int64(pc.utf8_length(both).cast(pa.int64()))
        codes = np.unique(value * 20 + length, return_inverse=True)[1].astype(np.int64)
    else:
        encoded = (
            pc.dictionary_encode(both).combine_chunks()
            if isinstance(both, pa.ChunkedArray)
            else pc.dictionary_encode(both)
        )
        rank = np.empty(len(encoded.dictionary), np.int64)
        rank[_int64(pc.sort_indices(encoded.dictionary))] = np.arange(len(rank))
        codes = rank[_int64(encoded.indices.cast(pa.int64()))]
    our.code, their.code = codes[: len(our)], codes[len(our) :]


def _short_digits(text: pa.Array) -> bool:
    length = pc.utf8_length(text)
    return bool(
        pc.all(pc.utf8_is_digit(text)).as_py()
        and pc.min(length).as_py() >= 1
        and pc.max(length).as_py() <= 17
        and text.null_count == 0
    )


def _conform(table: pa.Table, what: str) -> pa.Table:
    missing = [n for n in PARTY_SCHEMA.names if n not in table.column_names]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}")
    table = table.select(PARTY_SCHEMA.names).cast(PARTY_SCHEMA)
    for name in ("line", "callee", "start_time", "billsec"):
        if table.column(name).null_count:
            raise ValueError(f"{what} has null {name} values")
    return table


class _Layout:
    """The one int64 key both sides are sorted on: callee code x span + start bucket.

    Buckets are `quantum` microseconds (1 unless the callees x the time range would not fit
    in 62 bits); the range covers both sides' starts with room for every window and clock
    offset the passes use, so a start moved by either stays in it."""

    def __init__(self, our: _Side, their: _Side, start_tolerance_seconds: int) -> None:
        starts = [s.start for s in (our, their) if len(s)]
        codes = [s.code for s in (our, their) if len(s)]
        margin = (3 * WIDE_WINDOW_SECONDS + start_tolerance_seconds) * MICROS + 1
        self.low = min(int(s.min()) for s in starts) - margin if starts else 0
        high = max(int(s.max()) for s in starts) + margin if starts else 1
        count = max(int(c.max()) for c in codes) + 1 if codes else 1
        self.quantum = max(1, -(-count * (high - self.low + 1) // (1 << KEY_BITS)))
        self.span = (high - self.low) // self.quantum + 2

    def key(self, code: np.ndarray, start: np.ndarray) -> np.ndarray:
        return code * self.span + (start - self.low) // self.quantum


def _canonical(side: _Side, table: pa.Table, layout: _Layout) -> None:
    """Put the side in an order of its content alone: by callee and start (the layout's
    key), rows with equal keys by start, billsec, line, amount and call id. Equal tables in
    any row order come out equal, so each CDR's place is a tie-breaker independent of the
    input order, and the sides are sorted as the candidate search wants them."""
    if not len(side):
        return
    key = layout.key(side.code, side.start)
    order = np.argsort(key)
    ordered = key[order]
    equal = ordered[1:] == ordered[:-1]
    if equal.any():
        tied = np.zeros(len(side), bool)
        tied[1:] |= equal
        tied[:-1] |= equal
        places = np.flatnonzero(tied)
        rows = order[places]
        run = np.cumsum(np.concatenate([[True], ~equal]))[places]
        ties = pa.table(
            {
                "run": run,
                "start": side.start[rows],
                "billsec": side.billsec[rows],
                "line": side.line[rows],
                "has_amount": side.has_amount[rows],
                "amount": side.amount[rows],
                "call_id": table.column("call_id").take(pa.array(rows)),
            }
        )
        names = ("run", "start", "billsec", "line", "has_amount", "amount", "call_id")
        within = pc.sort_indices(ties, [(n, "ascending", "at_start") for n in names])
        order[places] = rows[_int64(within)]
    side.reorder(order)


def _int64(values) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int64)


def _int64_bools(mask) -> np.ndarray:
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


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


def _exact_sum(units: np.ndarray) -> int:
    """The sum of int64 values with no overflow: high and low 32-bit halves apart."""
    high = int(np.sum(units >> 32, dtype=np.int64))
    low = int(np.sum(units & 0xFFFFFFFF, dtype=np.int64))
    return (high << 32) + low


# --- the clock offset -------------------------------------------------------------------


def _clock_offset(our: _Side, their: _Side, layout: _Layout, duration_tolerance: int) -> int:
    """Their clock minus ours in microseconds: the median start difference of the pairs on
    the callee within +-WIDE_WINDOW_SECONDS (preferring those whose durations agree), over
    a sample of ours chosen by start second; 0 when no pair is found."""
    if not len(our) or not len(their):
        return 0
    step = -(-len(our) // OFFSET_SAMPLE)
    sample = np.flatnonzero((our.start // MICROS) % step == 0) if step > 1 else None
    if sample is None or not len(sample):
        sample = np.arange(len(our))
    code, start, billsec = our.code[sample], our.start[sample], our.billsec[sample]
    their_key = layout.key(their.code, their.start)
    oi, ti = _candidates(code, start, their_key, their.start, layout, WIDE_WINDOW_SECONDS * MICROS)
    if not len(oi):
        return 0
    differences = their.start[ti] - start[oi]
    agreeing = np.abs(their.billsec[ti] - billsec[oi]) <= duration_tolerance
    if agreeing.any():
        differences = differences[agreeing]
    ordered = np.sort(differences)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return int(ordered[middle])
    return (int(ordered[middle - 1]) + int(ordered[middle])) // 2


# --- candidate pairs --------------------------------------------------------------------


def _candidates(
    our_code: np.ndarray,
    our_start: np.ndarray,
    their_key: np.ndarray,
    their_start: np.ndarray,
    layout: _Layout,
    window: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Every (our place, their place) with equal callees and starts within `window`
    microseconds. `their_key` (the layout's key of their starts) is sorted: each of ours
    finds its run [start - window, start + window] of its callee by two binary searches (in
    order, as ours are sorted too), the runs are expanded and filtered on the exact
    difference. (The reference's bucketed equi-join on (callee, bucket) finds the same
    pairs; sorted runs cost less in NumPy than a hash join.)"""
    empty = np.empty(0, np.int64)
    if not len(our_code) or not len(their_key):
        return empty, empty
    first = np.searchsorted(their_key, layout.key(our_code, our_start - window), "left")
    last = np.searchsorted(their_key, layout.key(our_code, our_start + window), "right")
    counts = last - first
    total = int(counts.sum())
    if not total:
        return empty, empty
    oi = np.repeat(np.arange(len(our_code), dtype=np.int64), counts)
    run_start = np.cumsum(counts) - counts
    ti = np.repeat(first - run_start, counts) + np.arange(total, dtype=np.int64)
    near = np.abs(their_start[ti] - our_start[oi]) <= window
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


def _rows(
    pieces: dict[str, tuple[np.ndarray, np.ndarray]],
    ours: pa.Table,
    theirs: pa.Table,
    our: _Side,
    their: _Side,
) -> pa.Table:
    """ROW_SCHEMA rows, class by class in CLASSES order: a pair's both CDRs, or one side's
    alone; each side's columns taken in one go (a null place takes a null row)."""
    our_places, their_places, names = [], [], []
    for number, name in enumerate(CLASSES):
        o, t = pieces[name]
        count = max(len(o), len(t))
        our_places.append(o if len(o) else np.full(count, -1, np.int64))
        their_places.append(t if len(t) else np.full(count, -1, np.int64))
        names.append(np.full(count, number, np.int64))
    o, t = np.concatenate(our_places), np.concatenate(their_places)
    mine = _take(ours, our.index, o)
    yours = _take(theirs, their.index, t)
    valid = (o >= 0) & (t >= 0)
    valid[valid] = our.has_amount[o[valid]] & their.has_amount[t[valid]]
    difference = np.zeros(len(o), np.int64)
    difference[valid] = their.amount[t[valid]] - our.amount[o[valid]]
    return pa.table(
        {
            "class": pa.array(CLASSES, pa.string()).take(pa.array(np.concatenate(names))),
            "callee": pc.coalesce(mine.column("callee"), yours.column("callee")),
            "our_line": mine.column("line"),
            "their_line": yours.column("line"),
            "our_call_id": mine.column("call_id"),
            "their_call_id": yours.column("call_id"),
            "our_start": mine.column("start_time"),
            "their_start": yours.column("start_time"),
            "our_billsec": mine.column("billsec"),
            "their_billsec": yours.column("billsec"),
            "our_amount": mine.column("amount"),
            "their_amount": yours.column("amount"),
            "difference": decimal_array(difference, MONEY.scale, mask=~valid),
        },
        schema=ROW_SCHEMA,
    )


def _take(table: pa.Table, index: np.ndarray, places: np.ndarray) -> pa.Table:
    """The table's rows at the sides' `places` (-1: a null row), chunks combined."""
    missing = places < 0
    rows = pa.array(
        index[np.where(missing, 0, places)] if len(index) else np.zeros(len(places), np.int64),
        mask=missing,
    )
    return table.take(rows).combine_chunks()


def _total(our: _Side, their: _Side, o: np.ndarray, t: np.ndarray) -> ClassTotal:
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
    return ClassTotal(len(seconds), int(np.sum(seconds)), units_to_decimal(money, MONEY.scale))
