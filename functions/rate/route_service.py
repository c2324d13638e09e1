"""Routes for a call, from the stores: decks, targets, blocks, policy and quality stats.

The stores come in as ports (functions.store.routes, .lake, .quality, .accounts), as in
functions.rate.service, and the ordering itself is functions.rate.routing's.

    service = RouteService(routes=routes_store, lake=lake, quality=quality, accounts=accounts)
    service.routes_for(tenant, account, callee, at, customer_quote_rate) -> list[dict]

A warm container keeps, per tenant, a book: the suppliers (status, targets, blocks), the
routing policy and their compiled decks, tagged with the tenant's routing version it was
built at, and each route's window of stats for `ttl_seconds` (default 60 s); decks are
compiled once per version (DeckCache, keyed as the rater keys them).

The routing version (functions/store/holds.py) is bumped in the same transaction as every
write the book depends on: a supplier's deck upload or rollback, its target, blocks, status
(and kind, currency, rounding), the tenant's policy. The real-time authorization reads it
with the money it reads anyway and passes it as `routes_version`: a book built at another
version is rebuilt at once, so such a change reaches the very next call, at no extra read
while nothing changed. A book is also rebuilt once it is `ttl_seconds` old, whatever the
version (the backstop for a write that does not bump it, and for callers that pass none,
such as `tollgate routes`' own service). So a warm call makes no store call at all, a cold
one (or the first after a change): one Query (suppliers), one GetItem (policy), one
BatchGetItem (stats, unless warm; two when over 100 hour buckets), plus S3 for decks not yet
compiled.

`record_file_quality(tenant, file_id, files=, lake=, quality=)` feeds the stats from a rated
file: the file's rated rows (supplier, the destination name of the supplier deck's matched
row, else its prefix; start hour, answered seconds) joined by line with the normalised rows'
PDD, summed with pyarrow into one bucket per (supplier, destination, hour) (the destination
as `routing.destination_key` makes it, the key routing looks up), and added once per file
(functions.store.quality). A file rated before `supplier_destination` was written counts
per prefix, as a deck without names does.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.rate.deck_cache import DeckCache
from functions.rate.rating import CallerNumbers, DeckIndex, DialledNumbers, price_numbers
from functions.rate.routing import (
    Candidate,
    Policy,
    Stats,
    destination_key,
    match_routes,
    rank_routes,
)
from functions.shared.money import RATE_SCALE, Rounding, RoundingMethod, units_to_decimal

DEFAULT_TTL_SECONDS = 60.0
RATED_COLUMNS = (
    "line",
    "start_time",
    "billsec",
    "supplier",
    "supplier_prefix",
    "supplier_destination",
)
NORMALIZED_COLUMNS = ("line", "pdd_ms")


class RoutesStore(Protocol):
    def list_suppliers(self, tenant: str) -> list[Any]: ...
    def get_policy(self, tenant: str) -> dict[str, Any]: ...


class QualityStore(Protocol):
    def get_stats(
        self, tenant: str, routes: Iterable[tuple[str, str]], first_hour: int, last_hour: int
    ) -> dict[tuple[str, str], Stats]: ...
    def add_stats(self, tenant: str, file_id: str, buckets: dict) -> int: ...


class Lake(Protocol):
    def get_deck(self, tenant: str, account: str, version: int) -> pa.Table: ...


def epoch_seconds(at: dt.datetime | int | float) -> int:
    """A call's start as whole epoch seconds (an aware datetime, or seconds already)."""
    if isinstance(at, dt.datetime):
        if at.tzinfo is None:
            raise ValueError(f"invalid time {at.isoformat()}: give a time zone (e.g. Z)")
        return int(at.timestamp() // 1)
    return int(at)


@dataclass(frozen=True)
class _Book:
    policy: Policy
    candidates: tuple[Candidate, ...]
    loaded_at: float
    version: int | None = None  # the tenant's routing version it was built at (None: unknown)


class RouteService:
    """Routes for calls of any tenant, with a warm container's caches (see module doc)."""

    def __init__(
        self,
        *,
        routes: RoutesStore,
        lake: Lake,
        quality: QualityStore,
        accounts: Any = None,
        decks: DeckCache | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.routes, self.lake, self.quality, self.accounts = routes, lake, quality, accounts
        self.decks = decks if decks is not None else DeckCache()
        self.ttl, self.clock = ttl_seconds, clock
        self._books: dict[str, _Book] = {}
        self._stats: dict[tuple, tuple[float, dict]] = {}
        self._lock = threading.Lock()

    def _deck(self, tenant: str, account: str, version: int, currency: str) -> DeckIndex:
        return self.decks.get(
            (tenant, account, version),
            lambda: DeckIndex.build(self.lake.get_deck(tenant, account, version), currency),
        )

    def book(self, tenant: str, version: int | None = None) -> _Book:
        """The tenant's policy and candidate suppliers (with their decks), at most ttl old and,
        given the tenant's routing `version` as just read, built at that version."""
        now = self.clock()
        book = self._books.get(tenant)
        if (
            book is not None
            and now - book.loaded_at < self.ttl
            and (version is None or version == book.version)
        ):
            return book
        policy = Policy.of(self.routes.get_policy(tenant))
        candidates = tuple(
            Candidate(
                supplier=s.account,
                index=self._deck(tenant, s.account, s.deck_version, s.currency),
                rounding=Rounding(s.rounding_decimals, RoundingMethod(s.rounding)),
                currency=s.currency,
                status=s.status,
                blocks=tuple(s.blocks),
                target=s.target,
            )
            for s in self.routes.list_suppliers(tenant)
            if s.deck_version is not None
        )
        # Read after `version` was: a version bumped meanwhile rebuilds once more, harmlessly.
        book = _Book(policy, candidates, now, version)
        with self._lock:
            self._books[tenant] = book
        return book

    def stats(
        self, tenant: str, keys: Sequence[tuple[str, str]], hour: int, policy: Policy
    ) -> dict[tuple[str, str], Stats]:
        if not keys:
            return {}
        cache_key = (tenant, tuple(sorted(keys)), hour, policy.window_hours)
        now = self.clock()
        cached = self._stats.get(cache_key)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        found = self.quality.get_stats(tenant, keys, hour - policy.window_hours + 1, hour)
        with self._lock:
            if len(self._stats) > 10_000:  # a bound, not an LRU: the next calls refill it
                self._stats.clear()
            self._stats[cache_key] = (now, found)
        return found

    def customer_quote(
        self, tenant: str, account: str, callee: str, at: dt.datetime | int
    ) -> Decimal | None:
        """The account's own per-minute price (rate and surcharge) for the call on its default
        deck, or None when it has no live rate for it."""
        return self.customer_price(tenant, account, callee, at)[0]

    def customer_price(
        self, tenant: str, account: str, callee: str, at: dt.datetime | int, caller: str = ""
    ) -> tuple[Decimal | None, str]:
        """`customer_quote` and the account's currency (the quote's)."""
        if self.accounts is None:
            raise ValueError("this route service has no accounts store to price the customer")
        owner = self.accounts.get_account(tenant, account)
        if owner.kind == "supplier":
            raise ValueError(f"account {account!r} is a supplier, not a customer")
        if owner.deck_version is None:
            return None, owner.currency
        index = self._deck(tenant, account, owner.deck_version, owner.currency)
        pricing = price_numbers(
            index,
            DialledNumbers.of(pa.array([callee], pa.string())),
            np.array([epoch_seconds(at)], np.int64),
            np.zeros(1, np.int64),
            Rounding(),
            CallerNumbers.of(pa.array([caller], pa.string())),
        )
        if not pricing.rated[0]:
            return None, owner.currency
        row = int(pricing.row[0])
        rate = int(index.rate_e8[row]) + int(index.surcharge_e8[row])
        return units_to_decimal(rate, RATE_SCALE), owner.currency

    def routes_for(
        self,
        tenant: str,
        account: str | None,
        callee: str,
        at: dt.datetime | int,
        customer_quote_rate: Decimal | None,
        *,
        caller: str | None = None,
        quote_currency: str | None = None,
        routes_version: int | None = None,
    ) -> list[dict[str, Any]]:
        """The ordered routes for a call (functions.rate.routing's dicts). The margin guard
        applies against `customer_quote_rate` (the customer's per-minute price, in
        `quote_currency` when given); None with an account prices it on the account's deck
        (in its currency), None without one: no guard. `caller` matters only to supplier
        decks with origin entries (without it only their any-caller entries match).
        `routes_version`: the tenant's routing version as the caller read it (the book is
        rebuilt when it was built at another one)."""
        start = epoch_seconds(at)
        book = self.book(tenant, routes_version)
        matches = match_routes(callee, start, book.candidates, caller)
        stats = self.stats(tenant, [m.key for m in matches], start // 3600, book.policy)
        if customer_quote_rate is None and account is not None and self.accounts is not None:
            customer_quote_rate, quote_currency = self.customer_price(
                tenant, account, callee, start, caller or ""
            )
        return rank_routes(matches, stats, book.policy, customer_quote_rate, quote_currency)


# --- quality stats from a rated file ---------------------------------------------------------


def _plain(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column


_SUMS = ("attempts", "answered", "seconds", "pdd_sum_ms", "pdd_count")


def _sum_by(table: pa.Table, keys: list[str]) -> pa.Table:
    grouped = table.group_by(keys).aggregate([(c, "sum") for c in _SUMS])
    return grouped.rename_columns([name.removesuffix("_sum") for name in grouped.column_names])


def part_buckets(rated: pa.Table, pdd: pa.Table | None) -> pa.Table:
    """One rated part's sums per (supplier, destination, hour): attempts, answered, answered
    seconds, PDD sum and count (PDD joined from `pdd`: the day's normalised line, pdd_ms).
    The destination is `destination_key` of the supplier deck's destination name and prefix
    (a part without `supplier_destination`, rated before it was written: the prefix)."""
    supplier = _plain(rated.column("supplier"))
    prefix = _plain(rated.column("supplier_prefix"))
    if "supplier_destination" in rated.column_names:
        named = _plain(rated.column("supplier_destination"))
    else:
        named = pa.nulls(rated.num_rows, pa.string())
    billsec = pc.fill_null(_plain(rated.column("billsec")), 0).cast(pa.int64())
    micros = _plain(rated.column("start_time")).cast(pa.int64())
    if pdd is not None and pdd.num_rows and "pdd_ms" in pdd.column_names:
        where = pc.index_in(_plain(rated.column("line")), value_set=_plain(pdd.column("line")))
        delay = _plain(pdd.column("pdd_ms")).take(where)
    else:
        delay = pa.nulls(rated.num_rows, pa.int64())
    answered = pc.greater(billsec, 0)
    table = pa.table(
        {
            "supplier": supplier,
            "prefix": prefix,
            "named": named,
            "hour": pc.divide(micros, 3_600_000_000),
            "attempts": pa.array(np.ones(rated.num_rows, np.int64)),
            "answered": answered.cast(pa.int64()),
            "seconds": pc.if_else(answered, billsec, 0),
            "pdd_sum_ms": pc.fill_null(delay, 0).cast(pa.int64()),
            "pdd_count": pc.is_valid(delay).cast(pa.int64()),
        }
    )
    keep = pc.and_(pc.is_valid(table.column("supplier")), pc.is_valid(table.column("prefix")))
    # Per deck row first (a few thousand groups at most), then each row's destination key
    # in Python, the one function routing looks up with, then per destination.
    by_row = _sum_by(table.filter(keep), ["supplier", "prefix", "named", "hour"])
    keys: dict[tuple[str | None, str], str] = {}
    destination = [
        keys.get((name, code)) or keys.setdefault((name, code), destination_key(name, code))
        for name, code in zip(
            by_row.column("named").to_pylist(), by_row.column("prefix").to_pylist(), strict=True
        )
    ]
    by_row = by_row.drop_columns(["prefix", "named"]).append_column(
        "destination", pa.array(destination, pa.string())
    )
    return _sum_by(by_row, ["supplier", "destination", "hour"])


def add_buckets(into: dict[tuple[str, str, int], Stats], grouped: pa.Table) -> None:
    """Sum a part's grouped rows into the file's buckets (a row per bucket, not per call)."""
    columns = grouped.to_pydict()
    for i, supplier in enumerate(columns["supplier"]):
        key = (supplier, columns["destination"][i], int(columns["hour"][i]))
        one = Stats(
            columns["attempts"][i],
            columns["answered"][i],
            columns["seconds"][i],
            columns["pdd_sum_ms"][i],
            columns["pdd_count"][i],
        )
        into[key] = into.get(key, Stats()) + one


def record_file_quality(tenant: str, file_id: str, *, files: Any, lake: Any, quality: Any) -> int:
    """Count a rated file into the route quality stats, once; bucket updates made now."""
    days = list(files.get_file(tenant, file_id).meta.get("days", []))
    buckets: dict[tuple[str, str, int], Stats] = {}  # (supplier, destination, hour)
    with lake.Spool() as spool:
        for day in sorted(days):
            pdd_parts = list(
                lake.table_parts("normalized", tenant, [day], file_id, spool, NORMALIZED_COLUMNS)
            )
            pdd = pa.concat_tables(pdd_parts) if pdd_parts else None
            for part in lake.table_parts("rated", tenant, [day], file_id, spool, RATED_COLUMNS):
                if "supplier_prefix" not in part.column_names or not part.num_rows:
                    continue
                add_buckets(buckets, part_buckets(part, pdd))
    return quality.add_stats(tenant, file_id, buckets)


__all__ = ["RouteService", "epoch_seconds", "part_buckets", "record_file_quality"]
