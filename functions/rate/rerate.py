"""Re-rating: price already charged calls again with the decks as they now stand.

A corrected deck version or a back-dated rate changes what calls already rated should have
cost. `rerate` re-prices them, rewrites the rated Parquet of the days concerned and moves
each balance by the difference only, exactly once, however often it is retried or crashed.

Which calls. For every file of the tenant with status `done` and every one of its days in
[first, last]: exactly the calls in the stored rated table of (day, file), i.e. the calls that
file claimed (duplicates stay duplicates: the claims are not touched). They are taken again
from the normalised table, row for row by `line` (unique within a file), and priced for
every party by `rate_parties`, as the rate service did.

With an account A, only the calls in which A is a party (customer, any reseller level or
supplier, in the stored row or in the re-rated one) are replaced, whole: a call's amounts at
every level come from one rating, so every party of those calls moves by its own difference
(re-rating a customer's calls also corrects its reseller's and supplier's side of them). The
other rows are kept byte for byte, so their parties' balances cannot move.

Exactly once. Each rated table carries a generation in its Parquet metadata (absent = 0,
as the rate service wrote it). Moving (day, file) from generation g to g+1 takes, in order:
1. compute the new table and the difference per account: deltas(new) - deltas(stored);
   unchanged → nothing is written; a difference of zero → the table is simply replaced;
2. put the new table with its difference (and the old/new totals for the report) in its
   metadata under `rerate/tenant=…/pending/date=…/{file_id}.parquet`: the intent;
3. post the difference under posting id `rerate:{day}:{file_id}:g{g+1}`;
4. replace the live rated table (now at generation g+1);
5. delete the pending object.
Before anything else, every run finishes the tenant's pending objects, whatever range or
account they were written for: if the live table is still at g the posting is (re)made,
idempotently by its id, and the table replaced; if the live table already reached g+1 the
posting was made (the table only moves after it) and the object is just deleted. Hence at
every crash point: before 2 nothing changed; between 2 and 5 the pending object holds the
difference that was decided, so a retry never recomputes it against a half-replaced state
(the difference against the new table would be zero and the posting lost), and a deck
changed meanwhile is only applied afterwards, as a further difference; after 5 the work is
done and a retry finds new = stored. The posting id names the generation, not the run, so
the same transition is never posted twice. Runs for one tenant must not overlap (there is
no lease): two runs racing on one table still cannot charge twice (one posting id per
generation; different amounts fail the ledger's digest check with ConflictError), but the
loser's table write could leave the lake out of step with the balances.
A run of the same range with unchanged decks writes and posts nothing.

Money stays integer micro-units; the difference is a sum of exact per-row amounts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.rate.parties import MAX_RESELLER_LEVELS, Parties, balance_deltas, rate_parties
from functions.rate.service import DeckCache, load_parties

GENERATION = b"tollgate.rerate.generation"
PENDING = b"tollgate.rerate.pending"
PARTY_COLUMNS = (
    "customer",
    *(f"reseller{d}" for d in range(1, MAX_RESELLER_LEVELS + 1)),
    "supplier",
)


class Lake(Protocol):
    def get_table(self, area: str, tenant: str, day: Any, file_id: str) -> pa.Table: ...
    def put_table(self, area: str, tenant: str, day: Any, file_id: str, table: pa.Table) -> str: ...
    def get_deck(self, tenant: str, account: str, version: int) -> pa.Table: ...
    def put_rerate_pending(self, tenant: str, day: Any, file_id: str, table: pa.Table) -> str: ...
    def get_rerate_pending(self, tenant: str, day: Any, file_id: str) -> pa.Table: ...
    def delete_rerate_pending(self, tenant: str, day: Any, file_id: str) -> None: ...
    def list_rerate_pending(self, tenant: str) -> list[tuple[str, str]]: ...


class Files(Protocol):
    def list_files(self, tenant: str) -> list[Any]: ...


class Accounts(Protocol):
    def list_accounts(self, tenant: str) -> list[Any]: ...


class Ledger(Protocol):
    def post_balances(self, tenant: str, posting_id: str, deltas: dict[str, int]) -> bool: ...


# --- pure core -------------------------------------------------------------------------


def generation(table: pa.Table) -> int:
    """How many times the rated table was re-rated (the rate service writes generation 0)."""
    return int((table.schema.metadata or {}).get(GENERATION, b"0"))


def _with_metadata(table: pa.Table, extra: Mapping[bytes, bytes]) -> pa.Table:
    metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k != PENDING}
    return table.replace_schema_metadata(metadata | dict(extra))


def posting_id(day: str, file_id: str, new_generation: int) -> str:
    return f"rerate:{day}:{file_id}:g{new_generation}"


def subtract(new: Mapping[str, int], old: Mapping[str, int]) -> dict[str, int]:
    """new - old per account, zeros dropped."""
    accounts = sorted(set(new) | set(old))
    return {a: new.get(a, 0) - old.get(a, 0) for a in accounts if new.get(a, 0) != old.get(a, 0)}


def involves(table: pa.Table, account: str) -> np.ndarray:
    """Rows in which `account` is a party at any level."""
    mask = np.zeros(table.num_rows, dtype=bool)
    for column in PARTY_COLUMNS:
        if column in table.column_names:
            hit = pc.fill_null(pc.equal(table[column], account), False)
            mask |= hit.to_numpy(zero_copy_only=False)
    return mask


def _conform(fresh: pa.Table, stored: pa.Table) -> pa.Table | None:
    """`fresh` in the stored table's exact types (None if the layouts differ)."""
    if fresh.column_names != stored.column_names:
        return None
    try:
        return fresh.cast(stored.schema.remove_metadata())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return None


@dataclass(frozen=True)
class Rerating:
    """One rated table re-rated: the table to store and what it changes."""

    table: pa.Table  # the full new rated table (kept rows + replaced rows)
    unchanged: bool  # same rows as stored: nothing to write or post
    difference: dict[str, int]  # balance movement per account, micro-units
    old: dict[str, int]  # the selected calls' balance effect before / after (report)
    new: dict[str, int]


def rerate_table(
    stored: pa.Table, normalised: pa.Table, parties: Parties, account: str | None = None
) -> Rerating:
    """Re-price the calls of a stored rated table (only those of `account`, if given)."""
    where = pc.index_in(stored["line"], value_set=normalised["line"].combine_chunks())
    if where.null_count:
        raise ValueError("the rated table names lines that are not in the normalised table")
    fresh = rate_parties(normalised.take(where), parties).table
    conformed = _conform(fresh, stored)
    if account is None:
        selected = np.ones(stored.num_rows, dtype=bool)
        table = conformed if conformed is not None else fresh
    else:
        if conformed is None:
            raise ValueError("the stored rated table has another layout: re-rate every account")
        selected = involves(stored, account) | involves(conformed, account)
        n = stored.num_rows
        rows = np.where(selected, np.arange(n) + n, np.arange(n))
        both = pa.concat_tables([stored.replace_schema_metadata(None), conformed])
        table = both.take(pa.array(rows, pa.int64()))
    table = table.replace_schema_metadata(stored.schema.metadata)
    unchanged = conformed is not None and table.equals(stored)
    chosen = pa.array(selected)
    old = balance_deltas(stored.filter(chosen))
    new = balance_deltas(table.filter(chosen))
    return Rerating(
        table, unchanged, subtract(balance_deltas(table), balance_deltas(stored)), old, new
    )


@dataclass(frozen=True, slots=True)
class AccountChange:
    account: str
    currency: str
    old: int  # balance effect of the re-rated calls before, micro-units (charges < 0)
    new: int
    difference: int  # what this run moved the balance by


@dataclass(frozen=True, slots=True)
class TableOutcome:
    day: str
    file_id: str
    name: str  # the file's name as dropped
    status: str  # rerated | unchanged | finished (an interrupted re-rating completed)


@dataclass
class RerateReport:
    tenant: str
    first: dt.date
    last: dt.date
    account: str | None
    tables: list[TableOutcome] = field(default_factory=list)
    accounts: list[AccountChange] = field(default_factory=list)


class _Totals:
    """Per (day, file): the first old balance effect seen and every difference posted."""

    def __init__(self) -> None:
        self.old: dict[tuple[str, str], dict[str, int]] = {}
        self.moved: dict[tuple[str, str], dict[str, int]] = {}

    def add(self, key: tuple[str, str], old: Mapping[str, int], new: Mapping[str, int]) -> None:
        self.old.setdefault(key, dict(old))
        moved = self.moved.setdefault(key, {})
        for account, delta in subtract(new, old).items():
            moved[account] = moved.get(account, 0) + delta

    def changes(self, currency_of: Mapping[str, str]) -> list[AccountChange]:
        old = _sum(self.old.values())
        moved = _sum(self.moved.values())
        return [
            AccountChange(
                a,
                currency_of.get(a, ""),
                old.get(a, 0),
                old.get(a, 0) + moved.get(a, 0),
                moved.get(a, 0),
            )
            for a in sorted(set(old) | set(moved))
        ]


def _sum(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for account, units in part.items():
            total[account] = total.get(account, 0) + units
    return total


def _day(value: str | dt.date) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


# --- the service -----------------------------------------------------------------------


def _apply(
    tenant: str,
    day: str,
    file_id: str,
    pending: pa.Table,
    record: dict,
    *,
    lake: Lake,
    ledger: Ledger,
) -> None:
    """Steps 3-5: post the difference (once, by its id), replace the live table, forget it."""
    ledger.post_balances(tenant, record["posting_id"], record["difference"])
    table = _with_metadata(pending, {GENERATION: str(record["generation"]).encode()})
    lake.put_table("rated", tenant, day, file_id, table)
    lake.delete_rerate_pending(tenant, day, file_id)


def _finish(
    tenant: str, day: str, file_id: str, pending: pa.Table, *, lake: Lake, ledger: Ledger
) -> dict | None:
    """Complete an interrupted re-rating; its record, or None if a later one superseded it."""
    record = json.loads(pending.schema.metadata[PENDING])
    live = generation(lake.get_table("rated", tenant, day, file_id))
    if live == record["generation"] - 1:  # the table has not moved: post (again) and replace
        _apply(tenant, day, file_id, pending, record, lake=lake, ledger=ledger)
        return record
    if live < record["generation"]:
        raise RuntimeError(
            f"rated table {day}/{file_id} is at generation {live}, pending "
            f"re-rating expects {record['generation'] - 1}"
        )
    # The live table reached this generation, so the posting was made (the table only
    # moves after it): the crash came before the delete; or a later re-rating superseded it.
    lake.delete_rerate_pending(tenant, day, file_id)
    return record if live == record["generation"] else None


def rerate(
    tenant: str,
    first: dt.date | str,
    last: dt.date | str,
    account: str | None = None,
    *,
    lake: Lake,
    files: Files,
    accounts: Accounts,
    ledger: Ledger,
    decks: DeckCache,
) -> RerateReport:
    """Re-rate the tenant's rated calls of days first..last (see the module doc)."""
    first, last = _day(first), _day(last)
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    parties = load_parties(tenant, accounts=accounts, lake=lake, decks=decks)
    if account is not None and account not in parties.accounts:
        raise ValueError(f"unknown account {account!r} in tenant {tenant!r}")
    report = RerateReport(tenant, first, last, account)
    totals = _Totals()
    found_files = sorted(files.list_files(tenant), key=lambda r: r.file_id)
    names = {r.file_id: str(r.meta.get("name", "")) for r in found_files}

    for day, file_id in lake.list_rerate_pending(tenant):
        try:
            pending = lake.get_rerate_pending(tenant, day, file_id)
        except LookupError:  # finished by another run since the listing
            continue
        record = _finish(tenant, day, file_id, pending, lake=lake, ledger=ledger)
        if record is not None:
            totals.add((day, file_id), record["old"], record["new"])
            report.tables.append(TableOutcome(day, file_id, names.get(file_id, ""), "finished"))

    for found in found_files:
        if found.status != "done":
            continue
        for day in sorted(found.meta.get("days", [])):
            if not first <= _day(day) <= last:
                continue
            stored = lake.get_table("rated", tenant, day, found.file_id)
            normalised = lake.get_table("normalized", tenant, day, found.file_id)
            change = rerate_table(stored, normalised, parties, account)
            totals.add((day, found.file_id), change.old, change.new)
            status = "unchanged" if change.unchanged else "rerated"
            report.tables.append(TableOutcome(day, found.file_id, names[found.file_id], status))
            if change.unchanged:
                continue
            new_generation = generation(stored) + 1
            table = _with_metadata(change.table, {GENERATION: str(new_generation).encode()})
            if not change.difference:  # no money moves: the replacement alone is enough
                lake.put_table("rated", tenant, day, found.file_id, table)
                continue
            record = {
                "generation": new_generation,
                "posting_id": posting_id(day, found.file_id, new_generation),
                "difference": change.difference,
                "old": change.old,
                "new": change.new,
            }
            pending = _with_metadata(table, {PENDING: json.dumps(record).encode()})
            lake.put_rerate_pending(tenant, day, found.file_id, pending)
            _apply(tenant, day, found.file_id, pending, record, lake=lake, ledger=ledger)

    currency_of = {name: a.currency for name, a in parties.accounts.items()}
    report.accounts = totals.changes(currency_of)
    return report
