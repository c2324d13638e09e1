"""Rate one normalised file for every party, charge balances exactly once, publish totals.

Steps, each safe to repeat after a crash at any point, and safe when two runs of one file
overlap (ingest re-sends rate requests on purpose):
1. claim the file's call attempts per (switch, hour): attempts another file claimed first are
   duplicates (a CDR resent in a later file is never charged twice);
2. price: unless a pricing run of this file is already committed, rate the new calls for every
   party (customer, each reseller above it, supplier) and stage the rated and charges Parquet
   under this run's own keys; then commit the run on the files table, first committer wins;
3. publish the committed run's tables as the lake's (written once: an object already there is
   never replaced, so a slow loser cannot overwrite the winner, nor a later re-rating);
4. post the per-account deltas derived from the committed run's charges, once (the ledger's
   posting marker). Lake and balances therefore always come from one pricing run, even when a
   deck changed between two runs;
5. publish the file's totals, then mark the file done.

Memory follows the part, not the file: the normalised table is read `PART_ROWS` calls at a
time from a local copy (the lake port's spool: /tmp is disk), each part's rated and charges
rows are appended to the staged Parquet files there, and the run's totals (balance deltas in
micro-units, counts, minutes per destination) are added up as the parts go. The totals are
staged with the tables, before the commit, so the committed run's own totals are what is
posted, and a retry never needs to read the charges again. Only the claim reads a whole day,
and only its attempts (call id, start, leg).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.rate.contracts import Contracts, Counter, CounterKey, Move, RunCounters
from functions.rate.deck_cache import DeckCache
from functions.rate.parties import Account, Parties, rate_parties
from functions.rate.rating import DeckIndex
from functions.rate.recurring import Did
from functions.rate.totals import MAX_DESTINATIONS, RunTotals
from functions.rate.trunks import TrunkPlan, resolve_parties
from functions.shared.cdr import LEG_COLUMNS, attempt_keys
from functions.shared.money import Rounding, RoundingMethod, units_to_str

__all__ = ["DeckCache", "RateOutcome", "load_parties", "rate_file"]

CLAIM_ATTEMPTS = 20  # lost races before giving up (the message is then retried by SQS)
PRICE_ATTEMPTS = 5  # pricing runs whose counters moved before commit, before giving up
AREAS = ("rated", "charges")
# Calls priced at a time. A part's tables (its rated row and 2-4 charges per call) and the
# pricing's work arrays take ~1 KB per call: 65,536 calls keep a part near 70 MB, and the
# rated and charges files get row groups of that many calls.
PART_ROWS = 1 << 16
CLAIM_COLUMNS = ("call_id", "start_time", *LEG_COLUMNS)  # what `attempt_keys` reads


class Spool(Protocol):
    """Local files of one invocation (functions.store.lake.Spool)."""

    def __enter__(self) -> Spool: ...
    def __exit__(self, *exc_info: Any) -> None: ...
    def write(self, name: Hashable, table: pa.Table) -> None: ...


class ParquetParts(Protocol):
    """A local Parquet file (pyarrow.parquet.ParquetFile), read a row group at a time."""

    schema_arrow: pa.Schema
    num_row_groups: int

    def read_row_group(self, i: int, columns=None, use_threads: bool = True) -> pa.Table: ...


class Lake(Protocol):
    Spool: Callable[[], Spool]

    def fetch_table(self, area: str, tenant: str, day: Any, file_id, spool) -> ParquetParts: ...
    def get_deck(self, tenant: str, account: str, version: int) -> pa.Table: ...
    def stage_spooled(self, area, tenant, day, file_id, run, spool, name) -> str: ...
    def fetch_staged(self, area, tenant, day, file_id, run, spool) -> ParquetParts: ...
    def put_run_totals(self, tenant: str, file_id: str, run: str, totals: dict) -> str: ...
    def get_run_totals(self, tenant: str, file_id: str, run: str) -> dict: ...
    def publish_staged(self, area, tenant, day, file_id: str, run: str, spool) -> bool: ...
    def claim_set_key(self, tenant, switch, day, version: int, file_id: str) -> str: ...
    def get_claim_set(self, key: str | None) -> pa.Array: ...
    def put_claim_set(self, key: str, calls: pa.Array) -> None: ...
    def delete_claim_set(self, key: str) -> None: ...
    def put_claim_result(self, tenant, switch, day, file_id, version, result) -> str: ...
    def get_claim_result(self, tenant, switch, day, file_id, version) -> np.ndarray: ...


class Files(Protocol):
    def get_file(self, tenant: str, file_id: str) -> Any: ...
    def set_file_status(self, tenant: str, file_id: str, status: str, counts=None) -> bool: ...
    def read_claim(self, tenant: str, switch: str, day: Any) -> Any: ...
    def commit_claim(self, tenant, switch, day, expected_version, new_set_key, file_id) -> bool: ...
    def get_pricing_run(self, tenant: str, file_id: str) -> str | None: ...
    def commit_pricing_run(
        self, tenant, file_id, run, moves: Sequence[Move] = ()
    ) -> str | None: ...
    def read_counter(self, tenant: str, key: CounterKey) -> Counter: ...


class Accounts(Protocol):
    def get_tenant(self, tenant: str) -> Any: ...
    def list_accounts(self, tenant: str) -> list[Any]: ...
    def list_dids(self, tenant: str) -> list[Did]: ...
    def list_contracts(self, tenant: str) -> list[Any]: ...
    def get_trunk_plan(self, tenant: str, switch: str) -> TrunkPlan: ...


class Ledger(Protocol):
    def post_balances(self, tenant: str, posting_id: str, deltas: dict[str, int], **kw) -> bool: ...


class Events(Protocol):
    def publish_file_rated(self, detail: dict) -> None: ...


class Holds(Protocol):
    """Money held by live calls (functions.store.holds): a rated call's hold is released."""

    def list_holds(self, tenant: str) -> list[Any]: ...
    def release_holds(self, tenant: str, holds: list[Any]) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class RateOutcome:
    file_id: str
    status: str  # done | already
    counts: dict[str, int] = field(default_factory=dict)


def claim_new_calls(
    tenant: str, switch: str, day: str, file_id: str, keys: pa.Array, *, lake: Lake, files: Files
) -> np.ndarray:
    """Mask of this file's calls in slot `day` (a day or an hour of one) that no other file
    claimed first (see module doc).

    The slot's claimed set lives in S3, versioned; the claim item in DynamoDB moves from
    version v to v+1 under a condition, so concurrent files serialise without a write per
    call. A retry finds the file listed and reuses the result it stored before committing.
    """
    for _ in range(CLAIM_ATTEMPTS):
        claim = files.read_claim(tenant, switch, day)
        committed = claim.committed_version(file_id)
        if committed is not None:
            return lake.get_claim_result(tenant, switch, day, file_id, committed).astype(bool)
        try:
            claimed = lake.get_claim_set(claim.set_key)
        except LookupError:  # superseded and deleted since we read the claim: read again
            continue
        new = pc.invert(pc.is_in(keys, value_set=claimed)).to_numpy(zero_copy_only=False)
        version = claim.version + 1
        set_key = lake.claim_set_key(tenant, switch, day, version, file_id)
        lake.put_claim_set(set_key, pa.concat_arrays([claimed, keys.filter(pa.array(new))]))
        lake.put_claim_result(tenant, switch, day, file_id, version, new)
        if files.commit_claim(tenant, switch, day, claim.version, set_key, file_id):
            if claim.set_key:
                lake.delete_claim_set(claim.set_key)
            return new
    raise RuntimeError(f"{file_id}: lost {CLAIM_ATTEMPTS} claim races on {switch} {day}")


def claim_day(
    tenant: str,
    switch: str,
    day: str,
    file_id: str,
    attempts: tuple[pa.Array, np.ndarray],
    *,
    lake: Lake,
    files: Files,
) -> np.ndarray:
    """Claim one day's calls hour by hour (of their start); `attempts` are their attempt keys
    and start hours (`day_attempts`).

    A call's start fixes its hour, so a resent call always meets its first claim; and each
    hour's claimed set stays 1/24 of a busy switch-day's, so a Lambda's memory follows the
    file, not how many calls the switch already sent that day.
    """
    keys, hours = attempts
    new = np.zeros(len(keys), dtype=bool)
    for hour in np.unique(hours):
        rows = np.flatnonzero(hours == hour)
        slot = f"{day}T{int(hour):02d}"
        new[rows] = claim_new_calls(
            tenant, switch, slot, file_id, keys.take(pa.array(rows)), lake=lake, files=files
        )
    return new


def rounding_of(account: Any) -> Rounding:
    """The contract rounding stored on an account (half-up to 6 places unless set)."""
    return Rounding(
        getattr(account, "rounding_decimals", 6),
        RoundingMethod(getattr(account, "rounding", "half_up")),
    )


class PartyBook:
    """The tenant's accounts, read once, and the compiled decks of the parties named so far:
    a file priced in parts loads each deck when the first part that needs it comes."""

    def __init__(self, tenant: str, *, accounts: Accounts, lake: Lake, decks: DeckCache) -> None:
        self.tenant, self.lake, self.decks = tenant, lake, decks
        self.found = accounts.list_accounts(tenant)
        self.accounts = {
            a.account: Account(a.account, a.kind, a.parent, a.currency, rounding_of(a))
            for a in self.found
        }
        self.indexes: dict[str, DeckIndex] = {}
        self.plan_indexes: dict[tuple[str, str], DeckIndex] = {}  # plans other than default
        self.plan_rules = {
            a.account: dict(rules) for a in self.found if (rules := getattr(a, "plan_rules", None))
        }
        # Every DID record (released ones too: a late file's calls fall in their service).
        self.dids = tuple(accounts.list_dids(tenant))
        stored = accounts.list_contracts(tenant)
        self.timezone = accounts.get_tenant(tenant).timezone if self.dids or stored else "UTC"
        self.contracts = contracts_by_account(stored, self.timezone)

    def parties(
        self, customers: list[str] | None = None, suppliers: list[str] | None = None
    ) -> Parties:
        """The accounts, with the decks these calling and terminating accounts need (all
        decks if none are named)."""
        if customers is None and suppliers is None:
            needed = set(self.accounts)
        else:
            needed = Parties(self.accounts, {}).needed_by(customers or [], suppliers or [])
        for a in self.found:
            if a.deck_version is None or a.account not in needed or a.account in self.indexes:
                continue
            self.indexes[a.account] = self.decks.get(
                (self.tenant, a.account, a.deck_version),
                lambda a=a: DeckIndex.build(
                    self.lake.get_deck(self.tenant, a.account, a.deck_version), a.currency
                ),
            )
        for a in self.found:
            if a.account not in needed or a.kind == "supplier":  # suppliers price on default
                continue
            # Versions are unique per account, whatever their plan: the cache key needs no plan.
            for plan, version in (getattr(a, "plan_versions", None) or {}).items():
                if (a.account, plan) not in self.plan_indexes:
                    self.plan_indexes[(a.account, plan)] = self.decks.get(
                        (self.tenant, a.account, version),
                        lambda a=a, version=version: DeckIndex.build(
                            self.lake.get_deck(self.tenant, a.account, version), a.currency
                        ),
                    )
        return Parties(
            self.accounts,
            dict(self.indexes),
            self.dids,
            self.timezone,
            plan_decks=dict(self.plan_indexes),
            plan_rules=self.plan_rules,
            contracts=self.contracts,
        )

    def parties_of(self, calls: pa.Table) -> Parties:
        return self.parties(_names(calls, "customer"), _names(calls, "supplier"))


def contracts_by_account(stored: Sequence[Any], timezone: str) -> dict[str, Contracts]:
    """The accounts' stored tiers and bundles (`StoredContract`s) as their `Contracts`; their
    periods are calendar months in the tenant's time zone."""
    tiers: dict[str, list] = {}
    bundles: dict[str, list] = {}
    for item in stored:
        kind = tiers if item.kind == "tier" else bundles
        kind.setdefault(item.account, []).append(item.terms)
    return {
        account: Contracts(tiers.get(account, ()), bundles.get(account, ()), timezone)
        for account in sorted({*tiers, *bundles})
    }


def load_parties(
    tenant: str,
    *,
    accounts: Accounts,
    lake: Lake,
    decks: DeckCache,
    customers: list[str] | None = None,
    suppliers: list[str] | None = None,
) -> Parties:
    """The tenant's accounts and the decks of those a file needs (all, if none are named)."""
    book = PartyBook(tenant, accounts=accounts, lake=lake, decks=decks)
    return book.parties(customers, suppliers)


def _names(table: pa.Table, column: str) -> list[str]:
    return sorted(v for v in pc.unique(table.column(column)).to_pylist() if v)


def rate_file(
    tenant: str,
    switch: str,
    file_id: str,
    *,
    lake: Lake,
    files: Files,
    accounts: Accounts,
    ledger: Ledger,
    events: Events,
    decks: DeckCache,
    part_rows: int = PART_ROWS,
    holds: Holds | None = None,
) -> RateOutcome:
    record = files.get_file(tenant, file_id)
    if record.status != "ingested":
        return RateOutcome(file_id, "already", dict(record.counts))
    days: list[str] = list(record.meta.get("days", []))
    with lake.Spool() as spool:
        normalised: dict[str, ParquetParts] = {}
        new: dict[str, np.ndarray] = {}
        duplicates = 0
        for day in days:
            normalised[day] = lake.fetch_table("normalized", tenant, day, file_id, spool)
            new[day] = claim_day(
                tenant, switch, day, file_id, day_attempts(normalised[day]), lake=lake, files=files
            )
            duplicates += int((~new[day]).sum())
            _release_freed_memory()

        run = files.get_pricing_run(tenant, file_id)
        totals = None
        for _ in range(PRICE_ATTEMPTS):
            if run is not None:
                break
            mine = uuid.uuid4().hex
            totals = _price_run(
                tenant, switch, file_id, mine, days, normalised, new, spool, part_rows,
                lake=lake, files=files, accounts=accounts, decks=decks,
            )  # fmt: skip
            run = files.commit_pricing_run(tenant, file_id, mine, totals.moves)
            if run != mine:  # another run of this file committed first: its output is the truth
                totals = None
        if run is None:
            raise RuntimeError(
                f"{file_id}: its tier and bundle counters moved under {PRICE_ATTEMPTS} pricing "
                "runs in a row (the message is retried)"
            )
        if totals is None:
            totals = committed_totals(tenant, file_id, run, days, spool, lake=lake)
        for day in days:
            for area in AREAS:
                lake.publish_staged(area, tenant, day, file_id, run, spool)
        # Real-time authorization's holds of this file's calls: one Query of the tenant's
        # holds; the file's call ids are read only if any call holds money.
        held = holds.list_holds(tenant) if holds is not None else []
        rated_holds = held and _holds_of_calls(held, normalised.values())

    ledger.post_balances(
        tenant, file_id, totals.deltas, kind="charges", description=str(record.meta.get("name", ""))
    )
    if rated_holds:  # after the charges are posted: the money moves from held to charged
        holds.release_holds(tenant, rated_holds)
    counts = file_counts(record.counts, totals, duplicates)
    events.publish_file_rated(file_rated_detail(tenant, switch, file_id, counts, totals))
    files.set_file_status(tenant, file_id, "done", counts=counts)
    return RateOutcome(file_id, "done", counts)


def _price_run(
    tenant: str,
    switch: str,
    file_id: str,
    run: str,
    days: list[str],
    normalised: dict[str, ParquetParts],
    new: dict[str, np.ndarray],
    spool: Spool,
    part_rows: int,
    *,
    lake: Lake,
    files: Files,
    accounts: Accounts,
    decks: DeckCache,
) -> RunTotals:
    """Price the file's new calls for every party and stage the run's tables and totals;
    `totals.moves` are the tier and bundle counters to commit with it."""
    # Trunks become accounts now, not at ingest: a mapping added later reaches `rerate`.
    plan = accounts.get_trunk_plan(tenant, switch)
    book = PartyBook(tenant, accounts=accounts, lake=lake, decks=decks)
    counters = RunCounters(lambda key: files.read_counter(tenant, key))
    totals = RunTotals()
    for day in days:
        counters.section = day
        for calls in _new_calls(normalised[day], new[day], part_rows):
            calls = resolve_parties(calls, plan)
            priced = rate_parties(calls, book.parties_of(calls), file_id, counters=counters)
            for area, table in (("rated", priced.rated), ("charges", priced.charges)):
                spool.write((area, day, run), table)
            totals.add_rated(priced.rated)
            totals.add_charges(priced.charges)
            del calls, priced
            _release_freed_memory()
        for area in AREAS:
            lake.stage_spooled(area, tenant, day, file_id, run, spool, (area, day, run))
    totals.finish()
    totals.counters, totals.moves = counters.marks, counters.moves()  # empty without contracts
    lake.put_run_totals(tenant, file_id, run, totals.to_dict())
    return totals


def _release_freed_memory() -> None:
    """Hand the memory of a finished part back to the system.

    Arrow's allocator keeps what a part freed, and what it keeps counts as the function's
    memory; the claim's keys, a part's calls and its charges differ in shape, so what one
    step kept is not always what the next can reuse.
    """
    pa.default_memory_pool().release_unused()


def _row_parts(table: ParquetParts, part_rows: int, columns: list[str] | None = None):
    """A local table's rows, `part_rows` at most at a time, read a row group at a time, on
    this thread (a 1 GB Lambda has under one vCPU: reader threads would only add buffers)."""
    for group in range(table.num_row_groups):
        rows = table.read_row_group(group, columns=columns, use_threads=False)
        for start in range(0, rows.num_rows, part_rows):
            yield rows.slice(start, part_rows)
        del rows


def _holds_of_calls(held: list[Any], tables: Any) -> list[Any]:
    """The holds whose call id is one of these normalised tables' calls."""
    by_call: dict[str, list[Any]] = {}
    for hold in held:
        by_call.setdefault(hold.call_id, []).append(hold)
    found: list[Any] = []
    for table in tables:
        for part in _row_parts(table, PART_ROWS, ["call_id"]):
            calls = pc.unique(part.column("call_id")).to_pylist()
            found += [h for call in calls if call in by_call for h in by_call.pop(call)]
    return found


def day_attempts(normalised: ParquetParts) -> tuple[pa.Array, np.ndarray]:
    """A day's attempt keys and the hour each call started, a row group at a time: only the
    keys are ever held for the whole day, not the columns they are made of."""
    present = set(normalised.schema_arrow.names)
    columns = [c for c in CLAIM_COLUMNS if c in present]
    keys, hours = [], []
    for part in _row_parts(normalised, PART_ROWS, columns):
        keys.append(attempt_keys(part))
        hours.append(pc.hour(part.column("start_time")).to_numpy(zero_copy_only=False))
    if not keys:
        return pa.array([], pa.string()), np.zeros(0, np.int64)
    return pa.chunked_array(keys).combine_chunks(), np.concatenate(hours)


def _new_calls(normalised: ParquetParts, new: np.ndarray, part_rows: int):
    """The day's calls the claim left new, `part_rows` normalised rows at a time; at least one
    (maybe empty) part, so that even a day of duplicates has its (empty) tables."""
    offset, given = 0, False
    for part in _row_parts(normalised, part_rows):
        keep = new[offset : offset + part.num_rows]
        offset += part.num_rows
        if not keep.any() and given:
            continue
        given = True
        yield part if keep.all() else part.filter(pa.array(keep))
    if not given:
        yield normalised.schema_arrow.empty_table()


def committed_totals(
    tenant: str, file_id: str, run: str, days: list[str], spool: Spool, *, lake: Lake
) -> RunTotals:
    """The totals the committed run staged; for a run staged before runs stored them, added
    up from its staged tables, a part at a time."""
    try:
        return RunTotals.from_dict(lake.get_run_totals(tenant, file_id, run))
    except LookupError:
        pass
    totals = RunTotals()
    for day in days:
        for area, add in (("rated", totals.add_rated), ("charges", totals.add_charges)):
            staged = lake.fetch_staged(area, tenant, day, file_id, run, spool)
            for part in _row_parts(staged, PART_ROWS):
                add(part)
    return totals.finish()


def file_counts(ingested: dict[str, int], totals: RunTotals, duplicates: int) -> dict[str, int]:
    """rows = rated + unrated + quarantined + duplicates; unknown_account counts the calls a
    trunk or account field left without an account on some side (they are among `unrated` or,
    when only the supplier is unknown, among `rated`)."""
    return {
        "rows": int(ingested.get("rows", 0)),
        "rated": totals.rated,
        "unrated": totals.unrated,
        "quarantined": int(ingested.get("quarantined", 0)),
        "duplicates": duplicates,
        "unknown_account": int(totals.unknown_account or 0),
    }


def file_rated_detail(
    tenant: str, switch: str, file_id: str, counts: dict[str, int], totals: RunTotals
) -> dict:
    """The `FileRated` event: per-account totals and minutes per destination."""
    destinations = [
        {
            "customer": row["customer"],
            "destination": row["destination"],
            "calls": row["calls"],
            "minutes": str((Decimal(row["billed_seconds"]) / 60).quantize(Decimal("0.01"))),
        }
        for row in totals.destinations or []
    ]
    return {
        "tenant": tenant,
        "switch": switch,
        "file_id": file_id,
        "counts": counts,
        "accounts": {
            account: units_to_str(delta, 6) for account, delta in sorted(totals.deltas.items())
        },
        "destinations": destinations,
        "destinations_truncated": len(destinations) == MAX_DESTINATIONS,
    }
