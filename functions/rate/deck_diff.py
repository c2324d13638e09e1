"""What a new A-Z deck changes against the old one, and which changes break the notice period.

Rules (JeraSoft-like, formats.md §6):
- Each NEW row is compared with the OLD rate live for its prefix at the NEW row's effective
  time (a NEW row without effective date counts as effective at the notice time). "Live" is
  the rating engine's rule: among OLD rows with effective_from <= t < effective_to, the one
  with the latest effective_from, and only if that row is not a closure.
- NEW open row: no live OLD rate → new (also a reopened code); else increased when any term
  raises what some call costs (a higher rate or minimum charge, fewer free seconds), else
  decreased when any lowers it, else unchanged. A mixed change (a lower rate with a higher
  minimum) is an increase: short calls cost more, so it needs the notice.
- NEW closed row: closed if the code was live, else unchanged (closing a code that is
  already closed or unknown changes nothing).
- A prefix of OLD absent from NEW is closed (A-Z full replace) if OLD would still bill it at or
  after the notice time; it closes at the notice time, i.e. with no notice at all.
- Increases and closures effective less than `notice_days` days after the notice time get a
  warning; decreases and new codes may be effective immediately (the trade convention).
Counts are per NEW row (a prefix with two dated versions is counted twice) plus absent codes.
A "code" is a (prefix, origin) pair: an entry for callers of an origin is compared with the
OLD entry for the same origin, and a higher surcharge is an increase as a higher rate is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.rate.deck import ALWAYS, RateDeck
from functions.rate.rating import with_entry_defaults

CATEGORIES = ("new", "increased", "decreased", "unchanged", "closed")
DEFAULT_NOTICE_DAYS = 7
SECONDS_PER_DAY = 86_400

CHANGES_SCHEMA = pa.schema(
    [
        ("prefix", pa.string()),
        ("origin", pa.string()),  # caller prefix of the entry; "" = any caller
        ("destination", pa.string()),
        ("category", pa.string()),
        ("old_rate_e8", pa.int64()),  # null when no OLD rate was live
        ("new_rate_e8", pa.int64()),  # null for closures
        ("effective_at", pa.int64()),  # epoch seconds UTC the change takes effect
        ("notice_seconds", pa.int64()),  # effective_at - notice time (negative: retroactive)
        ("warning", pa.bool_()),
        ("old_line", pa.int64()),
        ("new_line", pa.int64()),
        # The entry's other priced terms, null as the rates are.
        ("old_minimum_charge_e8", pa.int64()),
        ("new_minimum_charge_e8", pa.int64()),
        ("old_free_seconds", pa.int64()),
        ("new_free_seconds", pa.int64()),
    ]
)


class DeckCurrencyMismatchError(ValueError):
    """Rates in two currencies cannot be called higher or lower."""


@dataclass(frozen=True, slots=True)
class NoticeWarning:
    prefix: str
    destination: str
    category: str  # "increased" or "closed"
    old_rate_e8: int | None
    new_rate_e8: int | None
    effective_at: int
    notice_seconds: int
    line: int | None  # NEW deck line, or OLD deck line for a code absent from NEW
    # The other terms that make a call cost more (None where the row has no such side).
    old_minimum_e8: int | None = None
    new_minimum_e8: int | None = None
    old_free_seconds: int | None = None
    new_free_seconds: int | None = None
    origin: str = ""

    @property
    def notice_days(self) -> float:
        return self.notice_seconds / SECONDS_PER_DAY


@dataclass(frozen=True)
class DeckDiff:
    changes: pa.Table  # CHANGES_SCHEMA, sorted by (prefix, effective_at)
    counts: dict[str, int]
    warnings: tuple[NoticeWarning, ...]
    notice_at: int
    notice_days: int


def notice_epoch(when: date | datetime) -> int:
    """A date is its 00:00 UTC; a naive datetime is UTC."""
    if not isinstance(when, datetime):
        when = datetime(when.year, when.month, when.day)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def diff_decks(
    old: RateDeck,
    new: RateDeck,
    *,
    notice_date: date | datetime,
    notice_days: int = DEFAULT_NOTICE_DAYS,
) -> DeckDiff:
    if old.currency != new.currency:
        raise DeckCurrencyMismatchError(
            f"cannot compare a {old.currency} deck with a {new.currency} deck"
        )
    if notice_days < 0:
        raise ValueError("notice_days must not be negative")
    notice_at = notice_epoch(notice_date)
    o, n = with_entry_defaults(old.table), with_entry_defaults(new.table)

    # Prefix ids shared by both decks, so that lookups are integer searches.
    both = pc.dictionary_encode(pa.concat_arrays([_code(o), _code(n)])).indices.to_numpy()
    o_id, n_id = both[: o.num_rows].astype(np.int64), both[o.num_rows :].astype(np.int64)
    o_from = _np(o, "effective_from")
    o_to = _np(o, "effective_to")
    o_closed = _np(o, "closed")
    o_rate = _np(o, "rate_e8")
    o_minimum = _np(o, "minimum_charge_e8").astype(np.int64)
    o_free = _np(o, "free_seconds").astype(np.int64)
    o_surcharge = _np(o, "surcharge_e8").astype(np.int64)
    o_line = _np(o, "line")
    o_dest = _array(o, "destination")
    n_from = _np(n, "effective_from")
    at = np.where(n_from == ALWAYS, notice_at, n_from)

    live, match = _live_old_version(o_id, o_from, o_to, n_id, at)
    if not o.num_rows:  # an empty OLD deck: one dummy closed row keeps the gathers valid
        o_closed, o_rate, o_line = np.ones(1, bool), np.zeros(1, np.int64), np.zeros(1, np.int64)
        o_minimum, o_free = np.zeros(1, np.int64), np.zeros(1, np.int64)
        o_surcharge = np.zeros(1, np.int64)
        o_dest = pa.array([""], pa.string())
    live &= ~o_closed[match]
    old_rate = o_rate[match]
    new_rate = _np(n, "rate_e8")
    n_closed = _np(n, "closed")
    old_minimum, new_minimum = o_minimum[match], _np(n, "minimum_charge_e8").astype(np.int64)
    old_free, new_free = o_free[match], _np(n, "free_seconds").astype(np.int64)
    old_surcharge, new_surcharge = o_surcharge[match], _np(n, "surcharge_e8").astype(np.int64)
    raises = (new_rate > old_rate) | (new_minimum > old_minimum) | (new_free < old_free)
    raises |= new_surcharge > old_surcharge
    lowers = (new_rate < old_rate) | (new_minimum < old_minimum) | (new_free > old_free)
    lowers |= new_surcharge < old_surcharge

    category = np.where(
        n_closed,
        np.where(live, "closed", "unchanged"),
        np.where(
            ~live,
            "new",
            np.where(raises, "increased", np.where(lowers, "decreased", "unchanged")),
        ),
    )
    n_dest = _array(n, "destination")
    inherit = pa.array(live & _np_bool(pc.equal(n_dest, "")))
    n_dest = pc.if_else(inherit, o_dest.take(pa.array(match)), n_dest)
    from_new = pa.table(
        {
            "prefix": _array(n, "prefix"),
            "origin": _array(n, "origin"),
            "destination": n_dest,
            "category": pa.array(category.astype(object), pa.string()),
            "old_rate_e8": pa.array(old_rate, pa.int64(), mask=~live),
            "new_rate_e8": pa.array(new_rate, pa.int64(), mask=n_closed),
            "effective_at": pa.array(at, pa.int64()),
            "old_line": pa.array(o_line[match], pa.int64(), mask=~live),
            "new_line": _array(n, "line"),
            "old_minimum_charge_e8": pa.array(old_minimum, pa.int64(), mask=~live),
            "new_minimum_charge_e8": pa.array(new_minimum, pa.int64(), mask=n_closed),
            "old_free_seconds": pa.array(old_free, pa.int64(), mask=~live),
            "new_free_seconds": pa.array(new_free, pa.int64(), mask=n_closed),
        }
    )

    gone = _closed_by_absence(o_id, o_from, o_to, o_closed, np.unique(n_id), notice_at)
    from_old = pa.table(
        {
            "prefix": _array(o, "prefix").take(pa.array(gone)),
            "origin": _array(o, "origin").take(pa.array(gone)),
            "destination": o_dest.take(pa.array(gone)),
            "category": pa.array(["closed"] * len(gone), pa.string()),
            "old_rate_e8": pa.array(o_rate[gone], pa.int64()),
            "new_rate_e8": pa.nulls(len(gone), pa.int64()),
            "effective_at": pa.array(np.full(len(gone), notice_at), pa.int64()),
            "old_line": pa.array(o_line[gone], pa.int64()),
            "new_line": pa.nulls(len(gone), pa.int64()),
            "old_minimum_charge_e8": pa.array(o_minimum[gone], pa.int64()),
            "new_minimum_charge_e8": pa.nulls(len(gone), pa.int64()),
            "old_free_seconds": pa.array(o_free[gone], pa.int64()),
            "new_free_seconds": pa.nulls(len(gone), pa.int64()),
        }
    )

    changes = pa.concat_tables([from_new, from_old])
    notice_seconds = _np(changes, "effective_at") - notice_at
    cats = _array(changes, "category")
    risky = _np_bool(pc.is_in(cats, pa.array(["increased", "closed"])))
    warning = risky & (notice_seconds < notice_days * SECONDS_PER_DAY)
    changes = changes.append_column("notice_seconds", pa.array(notice_seconds, pa.int64()))
    changes = changes.append_column("warning", pa.array(warning, pa.bool_()))
    changes = changes.select(CHANGES_SCHEMA.names).cast(CHANGES_SCHEMA)
    changes = changes.take(
        pc.sort_indices(
            changes,
            [("prefix", "ascending"), ("origin", "ascending"), ("effective_at", "ascending")],
        )
    )

    values, counts = np.unique(
        _array(changes, "category").to_numpy(zero_copy_only=False), return_counts=True
    )
    tally = dict.fromkeys(CATEGORIES, 0) | dict(zip(values.tolist(), counts.tolist(), strict=True))
    flagged = changes.filter(changes.column("warning"))
    warnings = tuple(
        NoticeWarning(
            prefix=row["prefix"],
            destination=row["destination"],
            category=row["category"],
            old_rate_e8=row["old_rate_e8"],
            new_rate_e8=row["new_rate_e8"],
            effective_at=row["effective_at"],
            notice_seconds=row["notice_seconds"],
            line=row["new_line"] if row["new_line"] is not None else row["old_line"],
            old_minimum_e8=row["old_minimum_charge_e8"],
            new_minimum_e8=row["new_minimum_charge_e8"],
            old_free_seconds=row["old_free_seconds"],
            new_free_seconds=row["new_free_seconds"],
            origin=row["origin"],
        )
        for row in flagged.to_pylist()
    )
    return DeckDiff(
        changes=changes,
        counts=tally,
        warnings=tuple(sorted(warnings, key=lambda w: (w.effective_at, w.prefix))),
        notice_at=notice_at,
        notice_days=notice_days,
    )


def _live_old_version(
    o_id: np.ndarray, o_from: np.ndarray, o_to: np.ndarray, n_id: np.ndarray, at: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the OLD row of its prefix live at `at`, as the rating engine says.

    Live: the latest effective_from <= at among the rows with at < effective_to. Usually that
    is the latest start; a few steps back are needed only when the latest one has expired.
    """
    found = np.zeros(len(n_id), dtype=bool)
    match = np.zeros(len(n_id), dtype=np.int64)
    if not len(o_id):
        return found, match
    # Rank all instants jointly so that (prefix id, instant) packs into one sortable int64.
    _, rank = np.unique(np.concatenate([o_from, at]), return_inverse=True)
    width = int(rank.max()) + 1
    o_key = o_id * width + rank[: len(o_id)]
    n_key = n_id * width + rank[len(o_id) :]
    order = np.argsort(o_key, kind="stable")
    position = np.searchsorted(o_key[order], n_key, side="right") - 1
    pending = np.arange(len(n_id))
    while len(pending):
        pos = position[pending]
        row = order[np.maximum(pos, 0)]
        same = (pos >= 0) & (o_id[row] == n_id[pending])
        hit = same & (o_to[row] > at[pending])
        found[pending[hit]] = True
        match[pending[hit]] = row[hit]
        pending = pending[same & ~hit]
        position[pending] -= 1
    return found, match


def _closed_by_absence(o_id, o_from, o_to, o_closed, new_ids, notice_at) -> np.ndarray:
    """One OLD row per prefix missing from NEW that OLD bills at, or opens after, notice."""
    absent = np.unique(o_id[~np.isin(o_id, new_ids)])
    if not len(absent):
        return absent
    at = np.full(len(absent), notice_at, dtype=np.int64)
    found, now = _live_old_version(o_id, o_from, o_to, absent, at)
    live = found & ~o_closed[now]
    # Not live now but scheduled to open later: dropping it still closes it.
    upcoming = np.flatnonzero(np.isin(o_id, absent[~live]) & ~o_closed & (o_from > notice_at))
    upcoming = upcoming[np.lexsort((o_from[upcoming], o_id[upcoming]))]
    _, first = np.unique(o_id[upcoming], return_index=True)
    return np.sort(np.concatenate([now[live], upcoming[first]]))


def _code(table: pa.Table) -> pa.Array:
    """Per row, its (prefix, origin) as one string."""
    return pc.binary_join_element_wise(_array(table, "prefix"), _array(table, "origin"), "/")


def _array(table: pa.Table, name: str) -> pa.Array:
    return table.column(name).combine_chunks()


def _np(table: pa.Table, name: str) -> np.ndarray:
    return _array(table, name).to_numpy(zero_copy_only=False)


def _np_bool(mask) -> np.ndarray:
    return mask.fill_null(False).to_numpy(zero_copy_only=False)
