"""Re-rating: price already charged calls again with the decks as they now stand.

A corrected deck version, a back-dated rate or a trunk mapping added late changes what calls
already rated should have cost. `rerate` re-prices them, rewrites the rated and charges Parquet
of the days concerned and moves each balance by the difference only, exactly once, however
often it is retried or crashed.

Which calls. For every file of the tenant with status `done` and every one of its days in
[first, last]: exactly the calls in the stored rated table of (day, file), i.e. the calls that
file claimed (duplicates stay duplicates: the claims are not touched). They are taken again
from the normalised table, row for row by `line` (unique within a file), resolved to accounts
by the switch's current trunk map and priced for every party by `rate_parties`, as the rate
service did.

With an account A, only the calls in which A is a party (customer, any reseller level or
supplier, in the stored charges or in the re-rated ones) are replaced, whole: a call's charges
at every level come from one rating, so every party of those calls moves by its own difference
(re-rating a customer's calls also corrects its reseller's and supplier's side of them). The
other rows are kept byte for byte, so their parties' balances cannot move.

Exactly once. Both tables of (day, file) carry a generation in their Parquet metadata
(absent = 0, as the rate service wrote them). Moving (day, file) from generation g to g+1 takes,
in order:
1. compute the new tables and the difference per account: deltas(new) - deltas(stored), both
   from the charges tables; unchanged → nothing is written; no difference → the tables are
   simply replaced;
2. put the new rated table, then the new charges table with the difference (and the old/new
   totals for the report) in its metadata, under `rerate/tenant=…/pending/date=…/`: the charges
   object is the intent, written last so that it exists only complete with its rated table;
3. post the difference under posting id `rerate:{day}:{file_id}:g{g+1}`;
4. replace the live charges table, then the live rated table (now at generation g+1);
5. delete the pending objects.
Before anything else, every run finishes the tenant's pending intents, whatever range or
account they were written for: if the live charges table is still at g the posting is
(re)made, idempotently by its id, and the tables replaced; if it already reached g+1 the posting
was made (the charges table only moves after it), so only the rated table is brought to g+1 if
it is not yet, and the pending objects deleted. Hence at every crash point: before 2 nothing
changed; between 2 and 5 the intent holds the difference that was decided, so a retry never
recomputes it against a half-replaced state, and a deck changed meanwhile is only applied
afterwards, as a further difference; after 5 the work is done and a retry finds new = stored.
The posting id names the generation, not the run, so the same transition is never posted
twice. Runs for one tenant must not overlap (there is no lease): two runs racing on one table
still cannot charge twice (one posting id per generation; different amounts fail the ledger's
digest check with ConflictError), but the loser's table write could leave the lake out of step
with the balances. A run of the same range with unchanged decks writes and posts nothing.

Money stays integer micro-units; the difference is a sum of exact per-charge amounts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from functions.rate.contracts import RunCounters
from functions.rate.parties import Parties, charge_deltas, rate_parties
from functions.rate.service import DeckCache, load_parties
from functions.rate.trunks import TrunkPlan, resolve_parties

GENERATION = b"tollgate.rerate.generation"
PENDING = b"tollgate.rerate.pending"
AREAS = ("rated", "charges")
# The intent is the charges table: written after the rated one, read first when finishing.
INTENT = "charges"


class Lake(Protocol):
    def get_table(self, area: str, tenant: str, day: Any, file_id: str) -> pa.Table: ...
    def put_table(self, area: str, tenant: str, day: Any, file_id: str, table: pa.Table) -> str: ...
    def get_deck(self, tenant: str, account: str, version: int) -> pa.Table: ...
    def put_rerate_pending(self, area, tenant, day, file_id: str, table: pa.Table) -> str: ...
    def get_rerate_pending(self, area, tenant, day, file_id: str) -> pa.Table: ...
    def delete_rerate_pending(self, area, tenant, day, file_id: str) -> None: ...
    def list_rerate_pending(self, tenant: str) -> list[tuple[str, str]]: ...
    def get_run_totals(self, tenant: str, file_id: str, run: str) -> dict: ...


class Files(Protocol):
    def list_files(self, tenant: str) -> list[Any]: ...
    def get_pricing_run(self, tenant: str, file_id: str) -> str | None: ...


class Accounts(Protocol):
    def list_accounts(self, tenant: str) -> list[Any]: ...
    def get_trunk_plan(self, tenant: str, switch: str) -> TrunkPlan: ...


class Ledger(Protocol):
    def post_balances(self, tenant: str, posting_id: str, deltas: dict[str, int], **kw) -> bool: ...


# --- pure core -------------------------------------------------------------------------


def generation(table: pa.Table) -> int:
    """How many times the table was re-rated (the rate service writes generation 0)."""
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


def _lines_of(charges: pa.Table, account: str) -> pa.Array:
    """The lines (calls) in which `account` is a party at any level."""
    party = pc.equal(charges.column("account").cast(pa.string()), account)
    return pc.unique(charges.filter(pc.fill_null(party, False)).column("line"))


def _conform(fresh: pa.Table, stored: pa.Table) -> pa.Table | None:
    """`fresh` in the stored table's exact types (None if the layouts differ)."""
    if fresh.column_names != stored.column_names:
        return None
    try:
        return fresh.cast(stored.schema.remove_metadata())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return None


def _upgraded(stored: pa.Table, schema: pa.Schema) -> pa.Table | None:
    """A stored table in a later layout: the columns it lacks added as nulls, every column in
    the later order and types (None if it has a column the layout dropped, or cannot cast)."""
    if not set(stored.column_names) <= set(schema.names):
        return None
    columns = [
        stored.column(f.name) if f.name in stored.column_names else pa.nulls(len(stored), f.type)
        for f in schema
    ]
    try:
        return pa.table(columns, schema=pa.schema(list(schema))).cast(schema.remove_metadata())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return None


def _splice(stored: pa.Table, fresh: pa.Table, selected: pa.Array) -> pa.Table:
    """The stored rows of unselected calls, then the fresh rows of selected ones."""
    in_stored = pc.is_in(stored.column("line"), value_set=selected)
    in_fresh = pc.is_in(fresh.column("line"), value_set=selected)
    return pa.concat_tables(
        [stored.replace_schema_metadata(None).filter(pc.invert(in_stored)), fresh.filter(in_fresh)]
    )


@dataclass(frozen=True)
class Rerating:
    """One (day, file) re-rated: the tables to store and what they change."""

    rated: pa.Table  # the full new rated table (kept rows + replaced rows)
    charges: pa.Table
    unchanged: bool  # same rows as stored: nothing to write or post
    difference: dict[str, int]  # balance movement per account, micro-units
    old: dict[str, int]  # the selected calls' balance effect before / after (report)
    new: dict[str, int]


def rerate_tables(
    stored_rated: pa.Table,
    stored_charges: pa.Table,
    normalised: pa.Table,
    parties: Parties,
    file_id: str,
    account: str | None = None,
    counters: RunCounters | None = None,
) -> Rerating:
    """Re-price the calls of a stored (day, file) (only those of `account`, if given).

    `counters` start each tier and bundle where the file's committed run started them that
    day (`RunCounters.replay`): a re-rating does not move the period's counters, so the
    seconds priced must be priced from the same point.
    """
    where = pc.index_in(stored_rated["line"], value_set=normalised["line"].combine_chunks())
    if where.null_count:
        raise ValueError("the rated table names lines that are not in the normalised table")
    counters = counters if counters is not None else RunCounters.replay({})
    fresh = rate_parties(normalised.take(where), parties, file_id, counters=counters)
    rated = _conform(fresh.rated, stored_rated)
    charges = _conform(fresh.charges, stored_charges)
    kept_rated, kept_charges = stored_rated, stored_charges  # the rows an account's run keeps
    if account is not None and (rated is None or charges is None):
        # Stored before columns were added (plan, customer_surcharge, ...): the kept rows take
        # today's layout, their new columns null (never recorded), and the day is rewritten.
        kept_rated = _upgraded(stored_rated, fresh.rated.schema)
        kept_charges = _upgraded(stored_charges, fresh.charges.schema)
        if kept_rated is None or kept_charges is None:
            raise ValueError("the stored tables have another layout: re-rate every account")
        rated, charges = fresh.rated, fresh.charges
    if account is None:
        selected = stored_rated.column("line").combine_chunks()
        new_rated = rated if rated is not None else fresh.rated
        new_charges = charges if charges is not None else fresh.charges
    else:
        selected = pc.unique(
            pa.concat_arrays(
                [_lines_of(stored_charges, account), _lines_of(fresh.charges, account)]
            )
        )
        new_rated = _splice(kept_rated, rated, selected)
        new_charges = _splice(kept_charges, charges, selected)
    new_rated = new_rated.replace_schema_metadata(stored_rated.schema.metadata)
    new_charges = new_charges.replace_schema_metadata(stored_charges.schema.metadata)
    unchanged = (
        rated is not None
        and charges is not None
        and new_rated.equals(stored_rated)
        and new_charges.equals(stored_charges)
    )

    def of_selected(table: pa.Table) -> dict[str, int]:
        return charge_deltas(table.filter(pc.is_in(table.column("line"), value_set=selected)))

    return Rerating(
        new_rated,
        new_charges,
        unchanged,
        subtract(charge_deltas(new_charges), charge_deltas(stored_charges)),
        of_selected(stored_charges),
        of_selected(new_charges),
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


def _replace(
    tenant: str, day: str, file_id: str, area: str, table: pa.Table, gen: int, *, lake: Lake
) -> None:
    lake.put_table(
        area, tenant, day, file_id, _with_metadata(table, {GENERATION: str(gen).encode()})
    )


def _apply(
    tenant: str,
    day: str,
    file_id: str,
    record: dict,
    tables: Mapping[str, pa.Table],
    *,
    lake: Lake,
    ledger: Ledger,
) -> None:
    """Steps 3-5: post the difference (once, by its id), replace the live tables, forget them."""
    ledger.post_balances(
        tenant,
        record["posting_id"],
        record["difference"],
        kind="rerate",
        description=record.get("description", f"re-rate {day} {file_id}"),
    )
    for area in (INTENT, "rated"):  # charges first: its generation says the posting was made
        _replace(tenant, day, file_id, area, tables[area], record["generation"], lake=lake)
    for area in AREAS:
        lake.delete_rerate_pending(area, tenant, day, file_id)


def _finish(tenant: str, day: str, file_id: str, *, lake: Lake, ledger: Ledger) -> dict | None:
    """Complete an interrupted re-rating; its record, or None if a later one superseded it."""
    intent = lake.get_rerate_pending(INTENT, tenant, day, file_id)
    record = json.loads(intent.schema.metadata[PENDING])
    live = generation(lake.get_table(INTENT, tenant, day, file_id))
    if live == record["generation"] - 1:  # the tables have not moved: post (again) and replace
        rated = lake.get_rerate_pending("rated", tenant, day, file_id)
        _apply(
            tenant, day, file_id, record, {INTENT: intent, "rated": rated}, lake=lake, ledger=ledger
        )
        return record
    if live < record["generation"]:
        raise RuntimeError(
            f"charges table {day}/{file_id} is at generation {live}, pending "
            f"re-rating expects {record['generation'] - 1}"
        )
    # The charges table reached this generation, so the posting was made (it only moves after
    # it): the crash came before the rated table moved or before the deletes; or a later
    # re-rating superseded this one.
    rated_generation = generation(lake.get_table("rated", tenant, day, file_id))
    if live == record["generation"] and rated_generation < live:
        rated = lake.get_rerate_pending("rated", tenant, day, file_id)
        _replace(tenant, day, file_id, "rated", rated, live, lake=lake)
    for area in AREAS:
        lake.delete_rerate_pending(area, tenant, day, file_id)
    return record if live == record["generation"] else None


def _replayed(tenant: str, file_id: str, day: str, *, lake: Lake, files: Files) -> RunCounters:
    """The file's tier and bundle counters as its committed run found them on `day`."""
    run = files.get_pricing_run(tenant, file_id)
    try:
        marks = lake.get_run_totals(tenant, file_id, run).get("counters", {}) if run else {}
    except LookupError:  # a run from before runs stored their totals: no contracts then
        marks = {}
    return RunCounters.replay(marks.get(day, {}))


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
    plans: dict[str, TrunkPlan] = {}  # each switch's current trunk map, read once per run

    for day, file_id in lake.list_rerate_pending(tenant):
        try:
            record = _finish(tenant, day, file_id, lake=lake, ledger=ledger)
        except LookupError:  # finished by another run since the listing
            continue
        if record is not None:
            totals.add((day, file_id), record["old"], record["new"])
            report.tables.append(TableOutcome(day, file_id, names.get(file_id, ""), "finished"))

    for found in found_files:
        if found.status != "done":
            continue
        for day in sorted(found.meta.get("days", [])):
            if not first <= _day(day) <= last:
                continue
            stored = {area: lake.get_table(area, tenant, day, found.file_id) for area in AREAS}
            normalised = lake.get_table("normalized", tenant, day, found.file_id)
            switch = str(found.meta["switch"])
            if switch not in plans:
                plans[switch] = accounts.get_trunk_plan(tenant, switch)
            normalised = resolve_parties(normalised, plans[switch])
            change = rerate_tables(
                stored["rated"], stored["charges"], normalised, parties, found.file_id, account,
                _replayed(tenant, found.file_id, day, lake=lake, files=files),
            )  # fmt: skip
            totals.add((day, found.file_id), change.old, change.new)
            status = "unchanged" if change.unchanged else "rerated"
            report.tables.append(TableOutcome(day, found.file_id, names[found.file_id], status))
            if change.unchanged:
                continue
            new_generation = generation(stored[INTENT]) + 1
            tables = {"rated": change.rated, INTENT: change.charges}
            if not change.difference:  # no money moves: the replacement alone is enough
                for area in (INTENT, "rated"):
                    _replace(
                        tenant, day, found.file_id, area, tables[area], new_generation, lake=lake
                    )
                continue
            record = {
                "generation": new_generation,
                "posting_id": posting_id(day, found.file_id, new_generation),
                "difference": change.difference,
                "old": change.old,
                "new": change.new,
                "description": f"re-rate {day} {names[found.file_id]}",
            }
            lake.put_rerate_pending("rated", tenant, day, found.file_id, change.rated)
            intent = _with_metadata(change.charges, {PENDING: json.dumps(record).encode()})
            lake.put_rerate_pending(INTENT, tenant, day, found.file_id, intent)
            _apply(tenant, day, found.file_id, record, tables, lake=lake, ledger=ledger)

    currency_of = {name: a.currency for name, a in parties.accounts.items()}
    report.accounts = totals.changes(currency_of)
    return report
