"""An account's rate history: one effective-dated timeline that every deck upload adds to.

The timeline is a table of entries in `TIMELINE_SCHEMA` (the compiled deck's columns plus the
`version` of the upload that brought each entry), at most one per (prefix, origin,
effective_from). A "code" below is a (prefix, origin) pair: an entry for callers of an origin
has its own history, as a prefix does.
The rating contract prices it as it prices any deck (functions.rate.rating), so a call is
always priced by the rates in force at its start, whichever upload brought them.

An upload never erases the past. Its effective date E is `--effective`, else the earliest
effective_from in the file, else the upload time (`effective_date`); rows without an
effective_from start at E, or at the beginning of time in an account's first deck (`prepare`).
Composing it onto the timeline (`compose`):

* `changes` (a vendor's notice): every row is added; nothing else moves.
* `full` (an A-Z deck): the deck is the whole truth from E. A code it leaves out ends at E
  (a number then falls back to a shorter prefix the deck still has, or is no_rate: an A-Z
  deck drops a code by omitting it). A code it has is the deck's from its first row (E at
  the earliest): the timeline's later entries of it are superseded and its earlier ones end
  there, so an increase dated a week after E leaves the old rate in force for that week and
  nothing older resurfaces after the deck's own rows end. A row dated before E must say what
  the timeline says (A-Z decks repeat each code's original date); any other would change the
  past and is refused.
* Both: a row with the prefix and effective_from of an existing entry replaces it (a
  correction; re-rating then re-prices the calls it covers), unless it says exactly the same,
  when the entry stays with the version that brought it.
* Both: the timeline records price changes (rate, connect fee, increment, minimum charge,
  free seconds), not repetitions. A new open-ended row that
  repeats the open-ended entry it would follow adds nothing, so a weekly A-Z deck does not
  add its whole size to the timeline every week; the entry keeps the version that brought
  it. A later correction of that entry therefore covers the decks that only repeated it.

Everything is column-wise (sorts, joins and masks on NumPy arrays); Python only loops over
rows that are refused, to word their errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.rate.deck import ALWAYS, DECK_SCHEMA, NEVER, DeckRowError, InvalidDeckError
from functions.rate.rating import PRICE_TERMS, with_entry_defaults

FULL = "full"
CHANGES = "changes"
MODES = (FULL, CHANGES)

TIMELINE_SCHEMA = pa.schema([*DECK_SCHEMA, pa.field("version", pa.int32())])
PENDING = 0  # the version of an upload's own entries until a number is reserved for it

# What makes two entries charge the same, under the same name (effective dates aside).
_PRICE_COLUMNS = (*PRICE_TERMS, "closed")


@dataclass(frozen=True, slots=True)
class Composition:
    """A timeline after one upload, and what the upload did to it."""

    pending: pa.Table  # TIMELINE_SCHEMA by (prefix, effective_from); the upload's at PENDING
    added: int  # the upload's rows that entered the timeline
    unchanged: int  # the upload's rows that said what the timeline already said
    superseded: int  # entries replaced: corrections, and what a full deck says anew
    end_dated: int  # entries whose effective_to moved back to a full deck's cut
    closed: int  # codes a full deck left out, end-dated at E

    def numbered(self, version: int) -> pa.Table:
        """The timeline, with the upload's own entries marked as the version it became."""
        if isinstance(version, bool) or not isinstance(version, int) or version <= PENDING:
            raise ValueError(f"invalid deck version {version!r}")
        column = self.pending.column("version")
        numbered = pc.if_else(pc.equal(column, PENDING), pa.scalar(version, pa.int32()), column)
        index = TIMELINE_SCHEMA.get_field_index("version")
        return self.pending.set_column(index, TIMELINE_SCHEMA.field("version"), numbered)


def effective_date(rows: pa.Table, given: int | None, uploaded_at: int) -> int:
    """E: the date given, else the earliest effective_from in the file, else the upload time."""
    if given is not None:
        return int(given)
    start = _ints(rows, "effective_from")
    dated = start[start != ALWAYS]
    return int(dated.min()) if len(dated) else int(uploaded_at)


def prepare(rows: pa.Table, *, effective: int, first: bool, source: str = "<deck>") -> pa.Table:
    """The upload's rows (DECK_SCHEMA) as they will enter the timeline: undated rows dated.

    Undated rows start at E, or from always in the account's first deck. Raises
    InvalidDeckError naming each undated row of a later deck that cannot: one that would end
    by E, or meet a row of its code dated E.
    """
    start = _ints(rows, "effective_from")
    undated = start == ALWAYS
    dated_start = np.where(undated, ALWAYS if first else effective, start)
    if not first and undated.any():
        _check_undated(rows, undated, dated_start, effective, source)
    index = rows.schema.get_field_index("effective_from")
    return rows.set_column(index, DECK_SCHEMA.field("effective_from"), pa.array(dated_start))


def _check_undated(
    rows: pa.Table, undated: np.ndarray, dated_start: np.ndarray, effective: int, source: str
) -> None:
    lines = _ints(rows, "line")
    end = _ints(rows, "effective_to")
    when = instant_text(effective)
    errors = [
        DeckRowError(
            int(lines[i]),
            "effective_to",
            instant_text(end[i]),
            f"not after {when}, the deck's effective date that rows without effective_from take",
        )
        for i in np.flatnonzero(undated & (end <= effective))
    ]
    prefix = rows.column("prefix").combine_chunks()
    code = _code_rank(rows)
    order = np.lexsort((undated, dated_start, code))
    a, b = order[:-1], order[1:]
    # The importer refuses repeated (prefix, effective_from), so a clash here is a dated row
    # and an undated one that took its date (sorted after it).
    for dated, taken in zip(
        a[(code[a] == code[b]) & (dated_start[a] == dated_start[b])],
        b[(code[a] == code[b]) & (dated_start[a] == dated_start[b])],
        strict=True,
    ):
        errors.append(
            DeckRowError(
                int(lines[taken]),
                "effective_from",
                "",
                f"prefix {prefix[int(taken)].as_py()} would start at the deck's effective date "
                f"{when}, as line {int(lines[dated])} says it does",
            )
        )
    if errors:
        raise InvalidDeckError(source, sorted(errors, key=lambda e: e.line))


def compose(
    base: pa.Table | None,
    upload: pa.Table,
    *,
    mode: str,
    effective: int,
    source: str = "<deck>",
) -> Composition:
    """The timeline after `upload` (rows from `prepare`), composed onto `base`.

    `base` is the timeline after the account's head version (TIMELINE_SCHEMA; None before
    the first deck). Raises InvalidDeckError naming a full deck's rows dated before E that do
    not restate the timeline: they would change the past.
    """
    _check_mode(mode)
    first = base is None
    old = empty_timeline() if first else with_entry_defaults(base).select(TIMELINE_SCHEMA.names)
    new = (
        with_entry_defaults(upload)
        .select(DECK_SCHEMA.names)
        .append_column(
            TIMELINE_SCHEMA.field("version"),
            pa.array(np.full(upload.num_rows, PENDING), pa.int32()),
        )
    )
    union = pa.concat_tables([old.cast(TIMELINE_SCHEMA), new.cast(TIMELINE_SCHEMA)])
    union = union.combine_chunks()
    n = union.num_rows
    is_new = np.arange(n) >= old.num_rows
    code = _code_rank(union)
    codes = int(code.max(initial=-1)) + 1
    start = _ints(union, "effective_from")
    end = _ints(union, "effective_to")
    same_price = _price_comparer(union)
    # Entries by code (in prefix order), then start; an entry before a new row of its key.
    order = np.lexsort((is_new, start, code))
    keep = np.ones(n, dtype=bool)

    # Same prefix and effective_from: within a timeline and within an upload keys are
    # unique, so an equal pair is always (existing entry, new row).
    earlier, later = order[:-1], order[1:]
    pair = (code[earlier] == code[later]) & (start[earlier] == start[later])
    existing, row = earlier[pair], later[pair]
    again = same_price(existing, row) & (end[existing] == end[row])
    keep[row[again]] = False  # the entry stays, with the version that brought it
    keep[existing[~again]] = False  # a correction
    superseded = int((~again).sum())
    restated = np.zeros(n, dtype=bool)  # entries the upload says again, and its rows saying them
    restated[existing[again]] = True
    restated[row[again]] = True

    first_rows = _first_rows(code, is_new, order)
    if mode == FULL:
        # Before E a deck may only say what the timeline says; a first deck's undated rows
        # are in force from always.
        past = is_new & (start < effective) & ~restated & ~(first & (start == ALWAYS))
        _refuse(past, union, effective, source)
        cut = np.full(codes, effective, dtype=np.int64)
        cut[code[first_rows]] = np.maximum(start[first_rows], effective)
        # From its cut on, the deck is the whole truth about a code.
        replaced = ~is_new & keep & ~restated & (start >= cut[code])
        keep[replaced] = False
        superseded += int(replaced.sum())

    # A new open-ended row that repeats the open-ended entry before it adds nothing.
    # (Dropping one of a run of such rows leaves the next facing an identical entry, so the
    # whole run goes, as it should.)
    kept = order[keep[order]]
    before, current = kept[:-1], kept[1:]
    repeat = (
        is_new[current]
        & (code[before] == code[current])
        & (end[before] == NEVER)
        & (end[current] == NEVER)
        & same_price(before, current)
    )
    repeated = current[repeat]
    keep[repeated] = False

    new_end = end
    end_dated = closed = 0
    if mode == FULL:
        # Earlier entries end at the cut, so none resurfaces after the deck's own rows end;
        # unless the code's first row repeated the open-ended entry before it, which then
        # simply carries on.
        dropped = np.zeros(n, dtype=bool)
        dropped[repeated] = True
        carried = np.zeros(codes, dtype=bool)
        carried[code[first_rows[dropped[first_rows]]]] = True
        ending = ~is_new & keep & ~restated & ~carried[code] & (end > cut[code])
        new_end = np.where(ending, cut[code], end)
        end_dated = int(ending.sum())
        present = np.zeros(codes, dtype=bool)
        present[code[first_rows]] = True
        closed = len(np.unique(code[ending & ~present[code]]))

    chosen = order[keep[order]]
    pending = union.take(pa.array(chosen))
    index = TIMELINE_SCHEMA.get_field_index("effective_to")
    pending = pending.set_column(
        index, TIMELINE_SCHEMA.field("effective_to"), pa.array(new_end[chosen], pa.int64())
    )
    return Composition(
        pending=pending,
        added=int((keep & is_new).sum()),
        unchanged=int(again.sum()) + len(repeated),
        superseded=superseded,
        end_dated=end_dated,
        closed=closed,
    )


def _first_rows(code: np.ndarray, is_new: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The upload's first row (by start) of each code it has."""
    arriving = order[is_new[order]]
    if not len(arriving):
        return arriving
    return arriving[np.r_[True, code[arriving][1:] != code[arriving][:-1]]]


def _refuse(past: np.ndarray, union: pa.Table, effective: int, source: str) -> None:
    """InvalidDeckError naming a full deck's rows that would change the past, if any."""
    if not past.any():
        return
    when = instant_text(effective)
    lines, starts = _ints(union, "line"), _ints(union, "effective_from")
    errors = [
        DeckRowError(
            int(lines[i]),
            "effective_from",
            instant_text(starts[i]),
            f"before the deck's effective date {when}, and not what the rate history says "
            "then: a full deck cannot change the past (send corrections as changes)",
        )
        for i in np.flatnonzero(past)
    ]
    raise InvalidDeckError(source, sorted(errors, key=lambda e: e.line))


def in_force(timeline: pa.Table, at: int, prefix: str | None = None) -> pa.Table:
    """Per code, the entry in force at `at` (the rating contract's live entry), by prefix.

    With `prefix`, only the codes that could price a number starting with it: the codes
    starting with it and the codes it starts with. A code with no live entry is not listed.
    """
    if prefix is not None:
        codes = timeline.column("prefix")
        heads = pa.array([prefix[:length] for length in range(1, len(prefix) + 1)], pa.string())
        wanted = pc.or_(pc.starts_with(codes, prefix), pc.is_in(codes, value_set=heads))
        timeline = timeline.filter(wanted)
    start = _ints(timeline, "effective_from")
    end = _ints(timeline, "effective_to")
    live = timeline.filter(pa.array((start <= at) & (at < end)))
    live = with_entry_defaults(live).sort_by(
        [("prefix", "ascending"), ("origin", "ascending"), ("effective_from", "ascending")]
    )
    if live.num_rows == 0:
        return live
    codes = _code_text(live)
    # The latest effective_from wins: the last live entry of each code.
    last = np.ones(len(codes), dtype=bool)
    last[:-1] = _bools(pc.not_equal(codes.slice(1), codes.slice(0, len(codes) - 1)))
    return live.filter(pa.array(last))


def as_timeline(table: pa.Table, version: int) -> pa.Table:
    """A stored version's table in TIMELINE_SCHEMA, without its file metadata.

    Decks stored before rate history were the deck as uploaded, with no `version` column:
    every entry then came with that version. Entries stored before minimum charges and free
    seconds have neither (0).
    """
    table = with_entry_defaults(table)
    if "version" not in table.column_names:
        table = table.append_column(
            "version", pa.array(np.full(table.num_rows, version), pa.int32())
        )
    return table.select(TIMELINE_SCHEMA.names).cast(TIMELINE_SCHEMA).replace_schema_metadata(None)


def empty_timeline() -> pa.Table:
    return TIMELINE_SCHEMA.empty_table()


def instant_text(seconds: int) -> str:
    """Epoch seconds as a deck would write them: a date at midnight UTC, else a UTC datetime."""
    seconds = int(seconds)
    if seconds <= ALWAYS:
        return "always"
    if seconds >= NEVER:
        return "never"
    moment = datetime.fromtimestamp(seconds, UTC)
    if moment.hour == moment.minute == moment.second == 0:
        return moment.date().isoformat()
    return moment.isoformat().replace("+00:00", "Z")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"invalid deck mode {mode!r}: use one of {', '.join(MODES)}")


def _ints(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy().astype(np.int64, copy=False)


def _bools(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    return mask.fill_null(False).to_numpy(zero_copy_only=False)


def _code_text(table: pa.Table) -> pa.Array:
    """Per row, its code (prefix, origin) as one string that sorts by prefix, then origin."""
    prefix = table.column("prefix").combine_chunks()
    if "origin" not in table.column_names:
        return prefix
    # "/" sorts before every digit, so "44/33" stays before "440/" as 44 does before 440.
    origin = table.column("origin").combine_chunks()
    return pc.binary_join_element_wise(prefix, origin, "/")


def _code_rank(table: pa.Table) -> np.ndarray:
    """Per row, its code's rank among the distinct codes (prefix, then origin) in order."""
    encoded = pc.dictionary_encode(_code_text(table))
    rank = np.empty(len(encoded.dictionary), dtype=np.int64)
    rank[pc.sort_indices(encoded.dictionary).to_numpy()] = np.arange(len(rank))
    return rank[encoded.indices.to_numpy(zero_copy_only=False)]


def _price_comparer(table: pa.Table):
    """`same(a, b)`: do rows a and b (index arrays) charge alike under the same name?"""
    destination = pc.dictionary_encode(table.column("destination").combine_chunks())
    columns = [destination.indices.to_numpy(zero_copy_only=False)]
    columns += [table.column(name).to_numpy() for name in _PRICE_COLUMNS]

    def same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        equal = np.ones(len(a), dtype=bool)
        for values in columns:
            equal &= values[a] == values[b]
        return equal

    return same
