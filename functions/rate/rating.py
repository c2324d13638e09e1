"""The rating contract, column-wise: longest live prefix, billing increments, exact amounts.

No Python loop runs per CDR. A deck is compiled once into a `DeckIndex`:

* Prefix lookup. Every prefix of length L is the interval [p·10^(K-L), (p+1)·10^(K-L)) of
  K-digit numbers (K = the deck's longest prefix). The intervals nest like a trie, so cutting
  them at every boundary gives disjoint "cells", each labelled with its innermost (longest)
  prefix; a number is padded to K digits and found with one `searchsorted`. Fixed-width
  padding keeps "012" and "12" apart, so leading zeros need no special case.
* Effective dates. Each prefix's versions become a timeline of non-overlapping segments
  [start, end) → deck row, encoded as sorted int64 keys (prefix id, start): one more
  `searchsorted` says which version is live at the call's start, if any.
* Fallback. When the innermost prefix has no live version (or is longer than a short
  number), the call moves to the parent prefix; the loop runs over prefix depth (≤ 18), each
  pass only over the calls still unresolved.
* Origin (caller prefix). An entry's key is (prefix, origin), origin "" matching any caller.
  Keys are numbered by prefix id, then longest origin first, so a prefix's keys are a
  contiguous run and the timeline is built per key. In a deck without origins every prefix
  has exactly one key and key id = prefix id: the lookup is the plain one above, with no
  work per call for callers. Only a deck with origin entries takes the origin lookup: at each
  prefix of the fallback, a pass per origin of that prefix (longest first; a handful) over
  the calls still unresolved, keeping the first key whose origin starts the caller and which
  has a live version. So the longest destination prefix wins, then the longest origin, and
  the effective-date contract applies to each (prefix, origin) as it does to a prefix.

Money is integer arithmetic (see functions.shared.money): rate and connect fee in 10^-8, so
connect_fee + rate·billed/60 is held exactly as the integer (connect_fee·60 + rate·billed) in
units of 10^-8/60, and rounded once by the named `Rounding`. A deck entry may add a minimum
charge per answered call (compared exactly, as minimum·60, before that one rounding) and free
seconds (answered calls of up to N seconds bill nothing: no seconds, fee or minimum).
An entry's per-minute surcharge is its own charge (`surcharge`): rate·billed/60, rounded once
on its own, so the usage amount of a deck with surcharges is what it was without them.

Building an index costs ~0.1 s for a 50,000-prefix deck, so `DeckIndex.to_table` and
`DeckIndex.from_table` carry a built index through one Arrow table (functions.rate.deck caches
it as an Arrow IPC file); reading it back is zero-copy.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.shared.money import INT64_MAX, RATE_SCALE, Rounding

# Effective times are packed next to a prefix id in one int64 key: 40 bits of seconds
# centred on 1970 (±17,000 years) under 22 bits of prefix id (4 million prefixes).
_TIME_BITS = 40
_TIME_MAX = (1 << _TIME_BITS) - 1
_TIME_ZERO = 1 << (_TIME_BITS - 1)
_MAX_PREFIXES = 1 << 22
MAX_PREFIX_DIGITS = 18  # a K-digit number must fit in int64
# What an entry charges (its price terms): two entries with equal terms (and the same closed
# flag) price every call alike. The engine, the timeline and the index cache read this list.
PRICE_TERMS = (
    "rate_e8",
    "connect_fee_e8",
    "increment_first",
    "increment_next",
    "minimum_charge_e8",
    "free_seconds",
    "surcharge_e8",
)

_NUMERIC_COLUMNS = (*PRICE_TERMS, "effective_from", "effective_to", "closed")
# Entry terms decks gained after timelines were first stored, with the value that prices a
# stored entry exactly as before (no minimum, no free seconds, no surcharge, any caller).
_LATER_COLUMNS = (
    (pa.field("minimum_charge_e8", pa.int64()), 0),
    (pa.field("free_seconds", pa.int32()), 0),
    (pa.field("surcharge_e8", pa.int64()), 0),
    (pa.field("origin", pa.string()), ""),
)

STATUS_RATED = "rated"
STATUS_UNRATED = "unrated"
REASON_NO_RATE = "no_rate"
REASON_CLOSED = "closed"


class DeckIndexError(ValueError):
    """The deck cannot be indexed (too many prefixes, prefix too long)."""


class DeckIndexFormatError(ValueError):
    """A table is not a `DeckIndex.to_table` of this `INDEX_FORMAT`: rebuild the index."""


# Bump whenever `DeckIndex.build` or the table layout changes: a stored index of another
# format is then rejected by `DeckIndex.from_table` and rebuilt, never misread.
INDEX_FORMAT = "deck-index-4"
_META_FORMAT = b"tollgate.index.format"
_META_CURRENCY = b"tollgate.index.currency"
_META_WIDTH = b"tollgate.index.width"
_DECK_COLUMN = "deck."  # prefix of the columns holding the deck's own rows
# The numpy fields of a DeckIndex, with their dtypes. Booleans are stored as uint8 so that
# reading them back is a view of the file, not an unpacking of Arrow's bitmaps.
_ARRAY_FIELDS: dict[str, type] = {
    "cell_lo": np.int64,
    "cell_prefix": np.int64,
    "prefix_len": np.int64,
    "prefix_parent": np.int64,
    "seg_key": np.int64,
    "seg_end": np.int64,
    "seg_row": np.int64,
    "key_first": np.int64,
    "key_count": np.int64,
    "origin_len": np.int64,
    "origin_value": np.int64,
    "seg_first": np.int64,
    "seg_count": np.int64,
    "rate_e8": np.int64,
    "connect_fee_e8": np.int64,
    "increment_first": np.int64,
    "increment_next": np.int64,
    "minimum_charge_e8": np.int64,
    "free_seconds": np.int64,
    "surcharge_e8": np.int64,
    "closed": np.bool_,
    "row_prefix": np.int64,
    "row_destination": np.int64,
}
# Text arrays of an index (Arrow strings), stored as they are.
_TEXT_FIELDS = ("prefix_text", "destination_text")
_STORED_TYPE = {np.int64: pa.int64(), np.bool_: pa.uint8()}
_STORED_DTYPE = {np.int64: np.int64, np.bool_: np.uint8}
# Arrays that must agree in length: a table failing this is foreign, whatever it claims.
_SAME_LENGTH = (
    ("cell_lo", "cell_prefix"),
    ("prefix_len", "prefix_parent", "prefix_text", "key_first", "key_count"),
    ("origin_len", "origin_value", "seg_first", "seg_count"),
    ("seg_key", "seg_end", "seg_row"),
    (*PRICE_TERMS, "closed", "deck", "row_prefix", "row_destination"),
)


def with_entry_defaults(deck: pa.Table) -> pa.Table:
    """A deck or timeline stored before later entry terms (minimum charge, free seconds,
    surcharge, origin), with the values that price it as before."""
    for field, value in _LATER_COLUMNS:
        if field.name not in deck.column_names:
            deck = deck.append_column(field, pa.repeat(pa.scalar(value, field.type), deck.num_rows))
    return deck


def _clip_time(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds → the 40-bit key range; ALWAYS and NEVER land on its two ends."""
    seconds = np.asarray(seconds, dtype=np.int64)
    return np.clip(seconds, -_TIME_ZERO, _TIME_MAX - _TIME_ZERO) + _TIME_ZERO


def _timeline(
    prefix_id: np.ndarray, eff_from: np.ndarray, eff_to: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-overlapping live segments per prefix: (start, end, deck row), sorted by key.

    The contract: at time t the live row is the one with the latest effective_from such that
    effective_from <= t < effective_to. Rows arrive sorted by (prefix, effective_from), so a
    row is live from its start until its own end or the next row's start, whichever comes
    first. That is the whole answer unless an earlier row outlasts a later one (a short
    promotion inside a long-running rate); only those prefixes take the slow, exact sweep.
    """
    n = len(prefix_id)
    rows = np.arange(n, dtype=np.int64)
    same_next = np.zeros(n, dtype=bool)
    same_next[:-1] = prefix_id[1:] == prefix_id[:-1]
    next_from = np.empty(n, dtype=np.int64)
    next_from[:-1] = eff_from[1:]
    next_from[-1:] = _TIME_MAX
    start = eff_from
    end = np.where(same_next, np.minimum(eff_to, next_from), eff_to)

    # Does an earlier row of the same prefix outlast this one? Running max of effective_to
    # within each prefix: keys (group << 40 | effective_to) only grow across groups, so one
    # maximum.accumulate over all rows never mixes two prefixes.
    group_start = np.ones(n, dtype=bool)
    group_start[1:] = ~same_next[:-1]
    group = np.cumsum(group_start, dtype=np.int64) - 1
    running = np.maximum.accumulate((group << _TIME_BITS) | eff_to) & _TIME_MAX
    earlier_max = np.full(n, -1, dtype=np.int64)
    earlier_max[1:] = np.where(group_start[1:], -1, running[:-1])
    nested = earlier_max > eff_to
    simple = np.ones(n, dtype=bool)
    if nested.any():
        complex_ids = np.unique(prefix_id[nested])
        simple = ~np.isin(prefix_id, complex_ids)
    keep = simple & (end > start)
    seg_pid, seg_start, seg_end, seg_row = prefix_id[keep], start[keep], end[keep], rows[keep]
    if not simple.all():
        extra = _sweep(prefix_id[~simple], eff_from[~simple], eff_to[~simple], rows[~simple])
        seg_pid = np.concatenate([seg_pid, extra[0]])
        seg_start = np.concatenate([seg_start, extra[1]])
        seg_end = np.concatenate([seg_end, extra[2]])
        seg_row = np.concatenate([seg_row, extra[3]])
    keys = (seg_pid.astype(np.int64) << _TIME_BITS) | seg_start
    order = np.argsort(keys, kind="stable")
    return keys[order], seg_end[order], seg_row[order]


def _sweep(
    pid: np.ndarray, eff_from: np.ndarray, eff_to: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The exact timeline for prefixes whose versions nest; a loop per prefix, not per CDR."""
    out: list[tuple[int, int, int, int]] = []
    for p in np.unique(pid):
        sel = pid == p
        starts, ends, ids = eff_from[sel], eff_to[sel], rows[sel]
        bounds = np.unique(np.concatenate([starts, ends]))
        for lo, hi in itertools.pairwise(bounds):
            live = (starts <= lo) & (lo < ends)
            if not live.any():
                continue
            winner = int(ids[live][np.argmax(starts[live])])
            if out and out[-1][0] == p and out[-1][3] == winner and out[-1][2] == lo:
                out[-1] = (int(p), out[-1][1], int(hi), winner)
            else:
                out.append((int(p), int(lo), int(hi), winner))
    if not out:
        empty = np.array([], dtype=np.int64)
        return empty, empty, empty, empty
    cols = np.array(out, dtype=np.int64).T
    return cols[0], cols[1], cols[2], cols[3]


@dataclass(frozen=True, slots=True)
class DeckIndex:
    """A deck compiled for column-wise lookups. Build with `DeckIndex.build`."""

    deck: pa.Table  # the deck's rows (functions.rate.deck.DECK_SCHEMA), indexed by row number
    currency: str
    width: int  # K: numbers are compared as K-digit integers
    cell_lo: np.ndarray  # sorted lower bounds of the cells
    cell_prefix: np.ndarray  # innermost prefix id per cell (-1: no prefix covers it)
    prefix_len: np.ndarray  # digits per prefix id
    prefix_parent: np.ndarray  # longest shorter prefix id, or -1
    prefix_text: pa.Array  # prefix digits per prefix id
    key_first: np.ndarray  # per prefix id: its first (prefix, origin) key id
    key_count: np.ndarray  # per prefix id: how many keys (origins) it has
    origin_len: np.ndarray  # per key id: digits of its origin (0: any caller)
    origin_value: np.ndarray  # per key id: its origin as an integer (0 for "")
    seg_key: np.ndarray  # (key id << 40 | start) per timeline segment, sorted
    seg_end: np.ndarray
    seg_row: np.ndarray
    seg_first: np.ndarray  # per key id: its first segment (segments are contiguous)
    seg_count: np.ndarray  # per key id: how many segments it has
    rate_e8: np.ndarray
    connect_fee_e8: np.ndarray
    increment_first: np.ndarray
    increment_next: np.ndarray
    minimum_charge_e8: np.ndarray  # per answered call, 10^-8; 0: none
    free_seconds: np.ndarray  # answered calls of up to this many seconds cost 0
    surcharge_e8: np.ndarray  # per minute on top of the rate, 10^-8; 0: none
    closed: np.ndarray
    # Per deck row, its prefix id and its destination's id in `destination_text` (each
    # destination once): rated tables name them by code, without a string per call.
    row_prefix: np.ndarray
    row_destination: np.ndarray
    destination_text: pa.Array

    @property
    def has_origin(self) -> bool:
        """Some entry is for callers of an origin: lookups need the callers."""
        return bool(self.origin_len.any())

    @property
    def has_surcharge(self) -> bool:
        return bool(self.surcharge_e8.any())

    @classmethod
    def build(cls, deck: pa.Table, currency: str = "USD") -> DeckIndex:
        deck = with_entry_defaults(deck)
        deck = deck.sort_by(
            [("prefix", "ascending"), ("origin", "ascending"), ("effective_from", "ascending")]
        )
        prefixes = deck.column("prefix").combine_chunks()
        unique = pc.unique(prefixes)
        if len(unique) >= _MAX_PREFIXES:
            raise DeckIndexError(f"a deck may hold at most {_MAX_PREFIXES - 1} prefixes")
        lengths = pc.utf8_length(unique).to_numpy(zero_copy_only=False).astype(np.int64)
        width = int(lengths.max()) if len(lengths) else 1
        if width > MAX_PREFIX_DIGITS:
            raise DeckIndexError(f"prefixes longer than {MAX_PREFIX_DIGITS} digits")
        value = _pad_to_int(unique, width)
        span = np.power(10, width - lengths, dtype=np.int64)
        lo, hi = value, value + span

        # Prefix ids in (lo, length) order: a parent precedes its children.
        order = np.lexsort((lengths, lo))
        lo, hi, lengths, value = lo[order], hi[order], lengths[order], value[order]
        unique = unique.take(pa.array(order))
        parent = _parents(unique, lengths)
        cell_lo, cell_prefix = _cells(lo, hi, parent)

        pid_of_row = pc.index_in(prefixes, value_set=unique).to_numpy().astype(np.int64)
        destinations = pc.dictionary_encode(deck.column("destination").combine_chunks())
        keys = _keys(pid_of_row, deck.column("origin").combine_chunks(), len(unique))
        key_of_row, key_first, key_count, origin_len, origin_value = keys
        col = {name: deck.column(name).to_numpy() for name in _NUMERIC_COLUMNS}
        seg_key, seg_end, seg_row = _timeline(
            key_of_row, _clip_time(col["effective_from"]), _clip_time(col["effective_to"])
        )
        seg_kid = seg_key >> _TIME_BITS
        seg_first = np.searchsorted(seg_kid, np.arange(len(origin_len)), side="left")
        seg_count = np.searchsorted(seg_kid, np.arange(len(origin_len)), side="right") - seg_first
        return cls(
            deck=deck,
            currency=currency,
            width=width,
            cell_lo=cell_lo,
            cell_prefix=cell_prefix,
            prefix_len=lengths,
            prefix_parent=parent,
            prefix_text=unique,
            key_first=key_first,
            key_count=key_count,
            origin_len=origin_len,
            origin_value=origin_value,
            seg_key=seg_key,
            seg_end=seg_end,
            seg_row=seg_row,
            seg_first=seg_first,
            seg_count=seg_count,
            rate_e8=col["rate_e8"].astype(np.int64),
            connect_fee_e8=col["connect_fee_e8"].astype(np.int64),
            increment_first=col["increment_first"].astype(np.int64),
            increment_next=col["increment_next"].astype(np.int64),
            minimum_charge_e8=col["minimum_charge_e8"].astype(np.int64),
            free_seconds=col["free_seconds"].astype(np.int64),
            surcharge_e8=col["surcharge_e8"].astype(np.int64),
            closed=col["closed"].astype(bool),
            row_prefix=pid_of_row,
            row_destination=pc.fill_null(destinations.indices, -1).to_numpy().astype(np.int64),
            destination_text=destinations.dictionary,
        )

    def to_table(self) -> pa.Table:
        """The whole index as one single-row table, for `from_table` (e.g. via Arrow IPC).

        Each column is a list holding one whole array: the numpy fields, the text fields, and
        the deck's rows as `deck.<column>`. Currency, width and `INDEX_FORMAT` are schema
        metadata.
        """
        names, columns = [], []
        for name, dtype in _ARRAY_FIELDS.items():
            values = np.ascontiguousarray(getattr(self, name), dtype=dtype)
            names.append(name)
            columns.append(_one_row(pa.array(values.view(_STORED_DTYPE[dtype]))))
        for name in _TEXT_FIELDS:
            names.append(name)
            columns.append(_one_row(getattr(self, name)))
        for field in self.deck.schema:
            names.append(_DECK_COLUMN + field.name)
            columns.append(_one_row(self.deck.column(field.name).combine_chunks()))
        metadata = {
            _META_FORMAT: INDEX_FORMAT.encode(),
            _META_CURRENCY: self.currency.encode(),
            _META_WIDTH: str(self.width).encode(),
        }
        return pa.Table.from_arrays(columns, names=names, metadata=metadata)

    @classmethod
    def from_table(cls, table: pa.Table) -> DeckIndex:
        """The index `to_table` stored; arrays are views of the table's buffers, not copies.

        The views are read-only (as they must be over a memory-mapped file): nothing writes
        to an index, and a write would reach the table. Raises DeckIndexFormatError for a
        table of another format or shape.
        """
        meta = table.schema.metadata or {}
        if meta.get(_META_FORMAT) != INDEX_FORMAT.encode():
            raise DeckIndexFormatError(f"not a {INDEX_FORMAT} table")
        try:
            # Full validation also bounds-checks the list offsets read from the file below;
            # for one row of a few arrays it is a UTF-8 scan of the strings (~1.5 ms for a
            # 50,000-prefix deck).
            table.validate(full=True)
            currency = meta[_META_CURRENCY].decode()
            width = int(meta[_META_WIDTH])
        except (pa.ArrowException, KeyError, ValueError) as error:
            raise DeckIndexFormatError(f"unreadable {INDEX_FORMAT} table: {error}") from None
        if table.num_rows != 1:
            raise DeckIndexFormatError(f"a {INDEX_FORMAT} table has one row")
        column = {name: _whole_array(table.column(name)) for name in table.column_names}
        arrays: dict[str, np.ndarray | pa.Array] = {}
        for name, dtype in _ARRAY_FIELDS.items():
            stored = column.get(name)
            if stored is None or stored.type != _STORED_TYPE[dtype] or stored.null_count:
                raise DeckIndexFormatError(f"{INDEX_FORMAT} table: bad column {name}")
            arrays[name] = _numpy_view(stored, dtype)
        for name in _TEXT_FIELDS:
            text = column.get(name)
            if text is None or text.type != pa.string():
                raise DeckIndexFormatError(f"{INDEX_FORMAT} table: bad column {name}")
            arrays[name] = text
        deck_names = [n for n in table.column_names if n.startswith(_DECK_COLUMN)]
        deck = pa.Table.from_arrays(
            [column[n] for n in deck_names], names=[n[len(_DECK_COLUMN) :] for n in deck_names]
        )
        lengths = {name: len(values) for name, values in arrays.items()} | {"deck": deck.num_rows}
        for group in _SAME_LENGTH:
            if len({lengths[name] for name in group}) != 1:
                raise DeckIndexFormatError(f"{INDEX_FORMAT} table: unequal {', '.join(group)}")
        return cls(deck=deck, currency=currency, width=width, **arrays)

    def lookup(
        self,
        callee: pa.Array | pa.ChunkedArray,
        start_s: np.ndarray,
        caller: pa.Array | pa.ChunkedArray | None = None,
    ) -> np.ndarray:
        """Deck row live for each call (its longest prefix with a live version), -1 if none."""
        callers = CallerNumbers.of(caller) if caller is not None else None
        return self.lookup_numbers(DialledNumbers.of(callee), start_s, callers)

    def lookup_numbers(
        self,
        numbers: DialledNumbers,
        start_s: np.ndarray,
        callers: CallerNumbers | None = None,
    ) -> np.ndarray:
        """`lookup` for callees already prepared (shared by every deck a file is rated on).

        `callers` is needed only by a deck with origin entries (`has_origin`); a deck without
        them never reads it.
        """
        n = len(numbers.head)
        row = np.full(n, -1, dtype=np.int64)
        if n == 0 or len(self.cell_lo) == 0:
            return row
        if self.has_origin:
            if callers is None:
                raise ValueError("the deck has entries for an origin: the callers are needed")
            row[numbers.order] = self._lookup_by_origin(numbers, start_s, callers)
            return row
        # Work in the numbers' (roughly) sorted order: searchsorted then walks the cells
        # almost sequentially instead of missing the cache on every call.
        order = numbers.order
        digits = numbers.digits[order]
        number = numbers.head[order] // 10 ** (MAX_PREFIX_DIGITS - self.width)
        cell = np.searchsorted(self.cell_lo, number, side="right") - 1
        candidate = np.where(cell >= 0, self.cell_prefix[np.maximum(cell, 0)], -1)
        when = _clip_time(np.asarray(start_s)[order])

        found = np.full(n, -1, dtype=np.int64)
        pending = np.flatnonzero(candidate >= 0)
        cand = candidate[pending]
        while len(pending):
            at = when[pending]
            seg = self._segment_at(cand, at)
            live = (self.prefix_len[cand] <= digits[pending]) & (seg >= 0)
            live[live] = at[live] < self.seg_end[seg[live]]
            found[pending[live]] = self.seg_row[seg[live]]
            cand = self.prefix_parent[cand[~live]]
            pending = pending[~live]
            more = cand >= 0
            pending, cand = pending[more], cand[more]
        row[order] = found
        return row

    def _lookup_by_origin(
        self, numbers: DialledNumbers, start_s: np.ndarray, callers: CallerNumbers
    ) -> np.ndarray:
        """`lookup_numbers` for a deck with origin entries, in the numbers' sorted order."""
        order = numbers.order
        digits = numbers.digits[order]
        number = numbers.head[order] // 10 ** (MAX_PREFIX_DIGITS - self.width)
        caller_head, caller_digits = callers.head[order], callers.digits[order]
        cell = np.searchsorted(self.cell_lo, number, side="right") - 1
        candidate = np.where(cell >= 0, self.cell_prefix[np.maximum(cell, 0)], -1)
        when = _clip_time(np.asarray(start_s)[order])

        found = np.full(len(order), -1, dtype=np.int64)
        pending = np.flatnonzero(candidate >= 0)
        cand = candidate[pending]
        while len(pending):
            at = when[pending]
            hit = np.full(len(pending), -1, dtype=np.int64)
            first, count = self.key_first[cand], self.key_count[cand]
            # The prefix's keys, longest origin first: a pass per origin, not per call.
            active = np.flatnonzero((self.prefix_len[cand] <= digits[pending]) & (count > 0))
            step = 0
            while len(active):
                key = first[active] + step
                length = self.origin_len[key]
                calls = pending[active]
                fits = (length <= caller_digits[calls]) & (
                    caller_head[calls] // _PAD[length] == self.origin_value[key]
                )
                seg = np.where(fits, self._segment_at(key, at[active]), -1)
                live = seg >= 0
                live[live] = at[active[live]] < self.seg_end[seg[live]]
                hit[active[live]] = self.seg_row[seg[live]]
                step += 1
                active = active[~live & (count[active] > step)]
            live = hit >= 0
            found[pending[live]] = hit[live]
            cand = self.prefix_parent[cand[~live]]
            pending = pending[~live]
            more = cand >= 0
            pending, cand = pending[more], cand[more]
        return found

    def _segment_at(self, prefix: np.ndarray, when: np.ndarray) -> np.ndarray:
        """Per call, the last segment of its key starting at or before `when`, or -1.

        A prefix's segments are contiguous and sorted by start, and most prefixes have one or
        two: step through them (a loop over versions, each pass only over the calls whose
        prefix has that many) instead of a binary search over all segments.
        """
        seg = np.full(len(prefix), -1, dtype=np.int64)
        first, count = self.seg_first[prefix], self.seg_count[prefix]
        active = np.flatnonzero(count > 0)
        step = 0
        while len(active):
            at = first[active] + step
            started = (self.seg_key[at] & _TIME_MAX) <= when[active]
            active, at = active[started], at[started]
            seg[active] = at
            step += 1
            active = active[count[active] > step]
        return seg


@dataclass(frozen=True, slots=True)
class DialledNumbers:
    """Callees prepared once for prefix lookups in any number of decks."""

    head: np.ndarray  # first MAX_PREFIX_DIGITS digits, right-padded with zeros, as int64
    digits: np.ndarray  # number of digits
    order: np.ndarray  # a permutation sorting `head` roughly (by its top 16 bits)

    @classmethod
    def of(cls, callee: pa.Array | pa.ChunkedArray) -> DialledNumbers:
        if isinstance(callee, pa.ChunkedArray):
            callee = callee.combine_chunks()
        digits = pc.utf8_length(callee).to_numpy(zero_copy_only=False).astype(np.int64)
        head = _head_digits(callee, digits)
        # 10^18 < 2^60: the top 16 bits bucket the numbers, and a stable sort of 16-bit keys
        # is a radix sort, several times cheaper than sorting the full values.
        order = np.argsort((head >> 44).astype(np.uint16), kind="stable")
        return cls(head=head, digits=digits, order=order)


@dataclass(frozen=True, slots=True)
class CallerNumbers:
    """Callers (A-numbers) prepared once for origin lookups, aligned with the callees.

    The switch's caller as sent: spaces and dashes dropped, then one leading `+` or `00`.
    A caller that is then not all digits (withheld, "anonymous", empty) has no digits and
    matches only entries for any caller.
    """

    head: np.ndarray  # first MAX_PREFIX_DIGITS digits, right-padded with zeros, as int64
    digits: np.ndarray  # number of digits (0: unknown caller)

    @classmethod
    def of(cls, caller: pa.Array | pa.ChunkedArray) -> CallerNumbers:
        if isinstance(caller, pa.ChunkedArray):
            caller = caller.combine_chunks()
        if pa.types.is_dictionary(caller.type):
            caller = caller.cast(caller.type.value_type)
        text = pc.replace_substring_regex(pc.fill_null(caller, ""), r"[ -]+", "")
        text = pc.replace_substring_regex(text, r"^(?:\+|00)", "")
        known = pc.match_substring_regex(text, r"^[0-9]+$").to_numpy(zero_copy_only=False)
        text = pc.if_else(pa.array(known), text, "")
        digits = pc.utf8_length(text).to_numpy(zero_copy_only=False).astype(np.int64)
        head = _pad_to_int(pc.utf8_slice_codeunits(text, 0, MAX_PREFIX_DIGITS), MAX_PREFIX_DIGITS)
        return cls(head=head, digits=digits)

    def take(self, rows: np.ndarray) -> CallerNumbers:
        return CallerNumbers(head=self.head[rows], digits=self.digits[rows])


_PAD = 10 ** np.arange(MAX_PREFIX_DIGITS, -1, -1, dtype=np.int64)  # _PAD[n] = 10^(18-n)


def _head_digits(callee: pa.Array, digits: np.ndarray) -> np.ndarray:
    """The first MAX_PREFIX_DIGITS digits of each number, right-padded with zeros, as int64.

    Numbers of up to 18 digits (E.164 has at most 15) are cast whole and scaled, which is
    the padded number without building padded strings: "0044" -> 44 * 10^14.
    """
    if len(digits) and digits.max() <= MAX_PREFIX_DIGITS and digits.min() > 0:
        try:
            value = pc.cast(callee, pa.int64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:  # not all digits: the general path decides
            pass
        else:
            return value * _PAD[digits]
    head = pc.utf8_slice_codeunits(callee, 0, MAX_PREFIX_DIGITS)
    return _pad_to_int(head, MAX_PREFIX_DIGITS)


def _one_row(values: pa.Array) -> pa.ListArray:
    """A list array of one element: the whole of `values`."""
    offsets = pa.array(np.array([0, len(values)], dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, values)


def _whole_array(column: pa.ChunkedArray) -> pa.Array:
    """The one list of a one-row list column, as a zero-copy slice of its values."""
    if column.num_chunks != 1 or not isinstance(column.type, pa.ListType):
        raise DeckIndexFormatError(f"{INDEX_FORMAT} table: not one list per column")
    return column.chunk(0).flatten()


def _numpy_view(values: pa.Array, dtype: type) -> np.ndarray:
    """A null-free fixed-width Arrow array as numpy, sharing its buffer.

    np.frombuffer rather than Array.to_numpy: the latter makes pyarrow probe for pandas
    (0.17 s when installed) on its first call, which would dwarf the rest of a cached load.
    """
    if len(values) == 0:
        view = np.empty(0, dtype=dtype)  # an empty array may have no data buffer at all
    else:
        itemsize = np.dtype(dtype).itemsize
        view = np.frombuffer(
            values.buffers()[1], dtype=dtype, count=len(values), offset=values.offset * itemsize
        )
    view.flags.writeable = False
    return view


def _pad_to_int(digits: pa.Array, width: int) -> np.ndarray:
    """'4477' with width 6 → 447700: the number as the K-digit integer it starts."""
    padded = pc.utf8_rpad(digits, width=width, padding="0")
    return pc.cast(padded, pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64)


def _parents(text: pa.Array, lengths: np.ndarray) -> np.ndarray:
    """Longest proper prefix of each prefix that is itself in the deck, or -1.

    One pass per prefix length (at most 18), each over all prefixes with Arrow's hash
    lookup: shorter matches are overwritten by longer ones.
    """
    parent = np.full(len(text), -1, dtype=np.int64)
    for length in range(1, int(lengths.max(initial=0))):
        longer = np.flatnonzero(lengths > length)
        if not len(longer):
            continue
        head = pc.utf8_slice_codeunits(text.take(pa.array(longer)), 0, length)
        found = pc.fill_null(pc.index_in(head, value_set=text), -1).to_numpy().astype(np.int64)
        hit = found >= 0
        parent[longer[hit]] = found[hit]
    return parent


def _keys(
    prefix_id: np.ndarray, origin: pa.Array, prefixes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(prefix, origin) keys: key id per row, each prefix's run of keys, each key's origin.

    Keys are numbered by prefix id, then longest origin first. Without origins there is one
    key per prefix and key id = prefix id.
    """
    length = pc.utf8_length(origin).to_numpy(zero_copy_only=False).astype(np.int64)
    if length.max(initial=0) > MAX_PREFIX_DIGITS:
        raise DeckIndexError(f"origins longer than {MAX_PREFIX_DIGITS} digits")
    value = np.zeros(len(length), dtype=np.int64)
    given = np.flatnonzero(length > 0)
    if len(given):
        picked = origin.take(pa.array(given))
        value[given] = pc.cast(picked, pa.int64()).to_numpy(zero_copy_only=False)
    order = np.lexsort((value, -length, prefix_id))
    p, n, v = prefix_id[order], length[order], value[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (p[1:] != p[:-1]) | (n[1:] != n[:-1]) | (v[1:] != v[:-1])
    key_of_sorted = np.cumsum(new, dtype=np.int64) - 1
    key_of_row = np.empty(len(order), dtype=np.int64)
    key_of_row[order] = key_of_sorted
    if len(key_of_sorted) and key_of_sorted[-1] + 1 >= _MAX_PREFIXES:
        raise DeckIndexError(f"a deck may hold at most {_MAX_PREFIXES - 1} prefix/origin keys")
    key_prefix = p[new]
    key_first = np.searchsorted(key_prefix, np.arange(prefixes), side="left")
    key_count = np.searchsorted(key_prefix, np.arange(prefixes), side="right") - key_first
    return key_of_row, key_first, key_count, n[new], v[new]


def _cells(lo: np.ndarray, hi: np.ndarray, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut the nested intervals at every boundary; label each cell with its innermost prefix."""
    bounds = np.unique(np.concatenate([lo, hi]))
    # The candidate for a cell starting at b is the last prefix with lo <= b (the longest
    # such, as ids are sorted by lo then length); climb parents until one still covers b.
    cand = np.searchsorted(lo, bounds, side="right") - 1
    pending = np.flatnonzero(cand >= 0)
    label = np.full(len(bounds), -1, dtype=np.int64)
    while len(pending):
        c = cand[pending]
        covers = hi[c] > bounds[pending]
        label[pending[covers]] = c[covers]
        pending = pending[~covers]
        cand[pending] = parent[cand[pending]]
        pending = pending[cand[pending] >= 0]
    return bounds, label


def billed_seconds(answered: np.ndarray, first: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Billing increment A/B: 0 if s = 0; A if 0 < s <= A; else A + ceil((s-A)/B)·B."""
    answered = answered.astype(np.int64)
    over = np.maximum(answered - first, 0)
    steps = -(-over // step)
    billed = first + steps * step
    return np.where(answered <= 0, 0, billed)


@dataclass(frozen=True, slots=True)
class Pricing:
    """One side's price for each call (customer, reseller or supplier)."""

    row: np.ndarray  # deck row used (-1: none live)
    closed: np.ndarray  # the live row closes the code
    billed: np.ndarray  # billed seconds (0 where unrated)
    rate_e8: np.ndarray  # the applied per-minute rate in 10^-8 (0 where unrated)
    exact: np.ndarray  # max(connect_fee·60 + rate·billed, minimum·60), in 10^-8/60
    amount: np.ndarray  # exact rounded once: integer units of 10^-decimals
    rated: np.ndarray  # a live, open rate applied
    # The entry's other terms as applied per call (None only from code predating them).
    connect_fee_e8: np.ndarray | None = None  # 0 where unanswered, graced or unrated
    minimum_e8: np.ndarray | None = None  # minimum charge in force; 0 where none applies
    graced: np.ndarray | None = None  # answered within the entry's free seconds: costs 0

    @property
    def reason(self) -> np.ndarray:
        return np.where(self.rated, "", np.where(self.closed, REASON_CLOSED, REASON_NO_RATE))

    @property
    def at_minimum(self) -> np.ndarray:
        """Calls charged the entry's minimum: their fee and minutes came to less."""
        if self.minimum_e8 is None or self.connect_fee_e8 is None:
            return np.zeros(len(self.row), dtype=bool)
        plain = exact_amount(self.connect_fee_e8, self.rate_e8, self.billed)
        return (self.minimum_e8 > 0) & (plain < self.minimum_e8 * 60)

    def with_rate(self, rate_e8: np.ndarray, rounding: Rounding) -> Pricing:
        """The same calls at another per-minute rate (e.g. a tier's): billed seconds, connect
        fee, minimum and grace as the deck entry says, the amount rounded once."""
        if self.minimum_e8 is None or self.connect_fee_e8 is None:
            raise ValueError("this Pricing does not carry its entry's terms")
        rate = np.where(self.rated, np.asarray(rate_e8, dtype=np.int64), 0)
        exact = exact_amount(self.connect_fee_e8, rate, self.billed, self.minimum_e8)
        amount = rounding.divide(exact, exact_divisor(rounding))
        return replace(self, rate_e8=rate, exact=exact, amount=amount)


def exact_divisor(rounding: Rounding) -> int:
    """Divide an exact amount (10^-8/60 units) by this to get 10^-decimals units."""
    return 60 * 10 ** (RATE_SCALE - rounding.decimals)


def price(
    index: DeckIndex,
    callee: pa.Array | pa.ChunkedArray,
    start_s: np.ndarray,
    answered: np.ndarray,
    rounding: Rounding,
    caller: pa.Array | pa.ChunkedArray | None = None,
) -> Pricing:
    """Price every call against one deck by the rating contract."""
    callers = CallerNumbers.of(caller) if caller is not None else None
    return price_numbers(index, DialledNumbers.of(callee), start_s, answered, rounding, callers)


def price_numbers(
    index: DeckIndex,
    numbers: DialledNumbers,
    start_s: np.ndarray,
    answered: np.ndarray,
    rounding: Rounding,
    callers: CallerNumbers | None = None,
) -> Pricing:
    """`price` for callees already prepared with `DialledNumbers.of` (and callers, which
    only a deck with origin entries reads)."""
    row = index.lookup_numbers(numbers, start_s, callers)
    found = row >= 0
    safe = np.maximum(row, 0)

    def per_call(values: np.ndarray, empty: int = 0) -> np.ndarray:
        # An empty deck has no row 0 to take; every call is unrated there anyway, and `empty`
        # only keeps the arithmetic below defined (an increment of 1, not 0).
        return values[safe] if len(values) else np.full(len(row), empty, values.dtype)

    closed = found & per_call(index.closed)
    rated = found & ~closed
    answered = np.asarray(answered, dtype=np.int64)
    # Free seconds are a grace for failed answer supervision: such a call is not billed at
    # all (no seconds, no connect fee, no minimum). Unanswered calls cost exactly 0 too.
    graced = rated & (answered > 0) & (answered <= per_call(index.free_seconds))
    charged = rated & (answered > 0) & ~graced
    billed = np.where(
        charged,
        billed_seconds(
            answered, per_call(index.increment_first, 1), per_call(index.increment_next, 1)
        ),
        0,
    )
    fee = np.where(charged, per_call(index.connect_fee_e8), 0)
    minimum = np.where(charged, per_call(index.minimum_charge_e8), 0)
    rate = np.where(rated, per_call(index.rate_e8), 0)
    exact = exact_amount(fee, rate, billed, minimum)
    amount = rounding.divide(exact, exact_divisor(rounding))
    return Pricing(
        row=row,
        closed=closed,
        billed=billed,
        rate_e8=rate,
        exact=exact,
        amount=amount,
        rated=rated,
        connect_fee_e8=fee,
        minimum_e8=minimum,
        graced=graced,
    )


def surcharges(
    index: DeckIndex, pricing: Pricing, rounding: Rounding
) -> tuple[np.ndarray, np.ndarray]:
    """Per call, the entry's surcharge per minute (10^-8) and its amount (10^-decimals).

    Only a charged call pays it (rated, answered beyond the free seconds: billed > 0); the
    amount is surcharge·billed/60, exact, rounded once on its own: a charge of its own.
    """
    n = len(pricing.row)
    if n == 0 or not index.has_surcharge:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    charged = pricing.rated & (pricing.billed > 0)
    rate = np.where(charged, index.surcharge_e8[np.maximum(pricing.row, 0)], 0)
    exact = exact_amount(np.zeros(n, dtype=np.int64), rate, pricing.billed)
    return rate, rounding.divide(exact, exact_divisor(rounding)).astype(np.int64)


def exact_amount(
    fee_e8: np.ndarray,
    rate_e8: np.ndarray,
    billed: np.ndarray,
    minimum_e8: np.ndarray | None = None,
) -> np.ndarray:
    """max(connect_fee·60 + rate·billed, minimum·60) in 10^-8/60 units, exactly.

    The minimum is compared before rounding, so the amount is round(max(exact, minimum)):
    one rounding whichever wins. Pass fee and minimum as 0 where they do not apply.
    """
    if len(rate_e8) == 0:
        return np.zeros(0, dtype=np.int64)
    floor = 0 if minimum_e8 is None else int(np.abs(minimum_e8).max())
    bound = int(np.abs(rate_e8).max()) * int(billed.max()) + 60 * int(np.abs(fee_e8).max())
    if max(bound, 60 * floor) <= INT64_MAX:
        exact = fee_e8 * 60 + rate_e8 * billed
        return exact if minimum_e8 is None else np.maximum(exact, minimum_e8 * 60)
    # Beyond int64 (a very long call on a very expensive code): exact Python integers.
    exact = fee_e8.astype(object) * 60 + rate_e8.astype(object) * billed.astype(object)
    if minimum_e8 is None:
        return exact
    return np.maximum(exact, minimum_e8.astype(object) * 60)


def convert(
    exact: np.ndarray, numerator: np.ndarray, denominator: np.ndarray, rounding: Rounding
) -> np.ndarray:
    """An exact amount times an exact FX ratio, rounded once to the target's units."""
    scaled_num = exact.astype(object) * numerator.astype(object)
    scaled_den = denominator.astype(object) * exact_divisor(rounding)
    return rounding.divide(scaled_num, scaled_den).astype(np.int64)
