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
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.rate.deck_cache import DeckCache
from functions.rate.parties import Account, Parties, charge_deltas, rate_parties
from functions.rate.rating import DeckIndex
from functions.rate.trunks import TrunkPlan, resolve_parties
from functions.shared.cdr import attempt_keys
from functions.shared.money import Rounding, RoundingMethod, units_to_str

__all__ = ["DeckCache", "RateOutcome", "load_parties", "rate_file"]

CLAIM_ATTEMPTS = 20  # lost races before giving up (the message is then retried by SQS)
AREAS = ("rated", "charges")


class Lake(Protocol):
    def get_table(self, area: str, tenant: str, day: Any, file_id: str) -> pa.Table: ...
    def get_deck(self, tenant: str, account: str, version: int) -> pa.Table: ...
    def stage_table(self, area, tenant, day, file_id: str, run: str, table: pa.Table) -> None: ...
    def get_staged_table(self, area, tenant, day, file_id: str, run: str) -> pa.Table: ...
    def publish_staged(self, area, tenant, day, file_id: str, run: str) -> bool: ...
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
    def commit_pricing_run(self, tenant: str, file_id: str, run: str) -> str: ...


class Accounts(Protocol):
    def list_accounts(self, tenant: str) -> list[Any]: ...
    def get_trunk_plan(self, tenant: str, switch: str) -> TrunkPlan: ...


class Ledger(Protocol):
    def post_balances(self, tenant: str, posting_id: str, deltas: dict[str, int], **kw) -> bool: ...


class Events(Protocol):
    def publish_file_rated(self, detail: dict) -> None: ...


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
    tenant: str, switch: str, day: str, file_id: str, cdrs: pa.Table, *, lake: Lake, files: Files
) -> np.ndarray:
    """Claim one day's calls hour by hour (of their start).

    A call's start fixes its hour, so a resent call always meets its first claim; and each
    hour's claimed set stays 1/24 of a busy switch-day's, so a Lambda's memory follows the
    file, not how many calls the switch already sent that day.
    """
    keys = attempt_keys(cdrs)
    hours = pc.hour(cdrs.column("start_time")).to_numpy(zero_copy_only=False)
    new = np.zeros(cdrs.num_rows, dtype=bool)
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
    found = accounts.list_accounts(tenant)
    parties = {
        a.account: Account(a.account, a.kind, a.parent, a.currency, rounding_of(a)) for a in found
    }
    if customers is None and suppliers is None:
        needed = set(parties)
    else:
        needed = Parties(parties, {}).needed_by(customers or [], suppliers or [])
    indexes: dict[str, DeckIndex] = {}
    for a in found:
        if a.deck_version is None or a.account not in needed:
            continue
        indexes[a.account] = decks.get(
            (tenant, a.account, a.deck_version),
            lambda a=a: DeckIndex.build(
                lake.get_deck(tenant, a.account, a.deck_version), a.currency
            ),
        )
    return Parties(parties, indexes)


def _names(tables: list[pa.Table], column: str) -> list[str]:
    values: set[str] = set()
    for table in tables:
        values.update(v for v in pc.unique(table.column(column)).to_pylist() if v)
    return sorted(values)


def price_file(
    tenant: str,
    file_id: str,
    days: list[str],
    calls: list[pa.Table],
    *,
    accounts: Accounts,
    lake: Lake,
    decks: DeckCache,
) -> dict[str, dict[str, pa.Table]]:
    """Rated and charges tables per day for a file's new calls (pure pricing, no writes)."""
    parties = load_parties(
        tenant,
        accounts=accounts,
        lake=lake,
        decks=decks,
        customers=_names(calls, "customer"),
        suppliers=_names(calls, "supplier"),
    )
    priced = {}
    for day, table in zip(days, calls, strict=True):
        result = rate_parties(table, parties, file_id)
        priced[day] = {"rated": result.rated, "charges": result.charges}
    return priced


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
) -> RateOutcome:
    record = files.get_file(tenant, file_id)
    if record.status != "ingested":
        return RateOutcome(file_id, "already", dict(record.counts))
    days: list[str] = list(record.meta.get("days", []))
    calls: list[pa.Table] = []
    duplicates = 0
    for day in days:
        normalised = lake.get_table("normalized", tenant, day, file_id)
        new = claim_day(tenant, switch, day, file_id, normalised, lake=lake, files=files)
        duplicates += int((~new).sum())
        calls.append(normalised.filter(pa.array(new)))

    run = files.get_pricing_run(tenant, file_id)
    tables: dict[str, dict[str, pa.Table]] = {}
    if run is None:
        mine = uuid.uuid4().hex
        # Trunks become accounts now, not at ingest: a mapping added later reaches `rerate`.
        plan = accounts.get_trunk_plan(tenant, switch)
        calls = [resolve_parties(table, plan) for table in calls]
        tables = price_file(tenant, file_id, days, calls, accounts=accounts, lake=lake, decks=decks)
        for day in days:
            for area in AREAS:
                lake.stage_table(area, tenant, day, file_id, mine, tables[day][area])
        run = files.commit_pricing_run(tenant, file_id, mine)
        if run != mine:  # another run of this file committed first: its tables are the truth
            tables = {}
    for day in days:
        if day not in tables:
            tables[day] = {
                area: lake.get_staged_table(area, tenant, day, file_id, run) for area in AREAS
            }
        for area in AREAS:
            lake.publish_staged(area, tenant, day, file_id, run)

    rated = pa.concat_tables([tables[d]["rated"] for d in days]) if days else None
    charges = pa.concat_tables([tables[d]["charges"] for d in days]) if days else None
    deltas = charge_deltas(charges) if charges is not None else {}
    ledger.post_balances(
        tenant, file_id, deltas, kind="charges", description=str(record.meta.get("name", ""))
    )
    counts = file_counts(record.counts, rated, charges, duplicates)
    events.publish_file_rated(file_rated_detail(tenant, switch, file_id, counts, deltas, rated))
    files.set_file_status(tenant, file_id, "done", counts=counts)
    return RateOutcome(file_id, "done", counts)


def file_counts(
    ingested: dict[str, int], rated: pa.Table | None, charges: pa.Table | None, duplicates: int
) -> dict[str, int]:
    """rows = rated + unrated + quarantined + duplicates; unknown_account counts the calls a
    trunk or account field left without an account on some side (they are among `unrated` or,
    when only the supplier is unknown, among `rated`)."""
    n_rated = int(pc.sum(pc.equal(rated["status"], "rated")).as_py() or 0) if rated else 0
    unknown = 0
    if charges is not None and charges.num_rows:
        reason = charges.column("reason")
        hit = charges.filter(
            pc.fill_null(pc.equal(reason.cast(pa.string()), "unknown_account"), False)
        )
        unknown = len(pc.unique(hit.column("line"))) if hit.num_rows else 0
    return {
        "rows": int(ingested.get("rows", 0)),
        "rated": n_rated,
        "unrated": (rated.num_rows if rated else 0) - n_rated,
        "quarantined": int(ingested.get("quarantined", 0)),
        "duplicates": duplicates,
        "unknown_account": unknown,
    }


MAX_DESTINATIONS_IN_EVENT = 400  # EventBridge events are capped at 256 KB


def file_rated_detail(
    tenant: str,
    switch: str,
    file_id: str,
    counts: dict[str, int],
    deltas: dict[str, int],
    rated: pa.Table | None,
) -> dict:
    """The `FileRated` event: per-account totals and minutes per destination."""
    destinations: list[dict] = []
    if rated is not None and rated.num_rows:
        # Only the four columns the event needs: filtering the whole table costs ~200 MB.
        columns = rated.select(["status", "customer", "destination", "billed_seconds", "call_id"])
        answered = columns.filter(pc.equal(columns["status"], "rated"))
        by_destination = (
            answered.group_by(["customer", "destination"])
            .aggregate([("billed_seconds", "sum"), ("call_id", "count")])
            .sort_by([("billed_seconds_sum", "descending")])
        )
        for row in by_destination.slice(0, MAX_DESTINATIONS_IN_EVENT).to_pylist():
            minutes = (Decimal(row["billed_seconds_sum"]) / 60).quantize(Decimal("0.01"))
            destinations.append(
                {
                    "customer": row["customer"],
                    "destination": row["destination"],
                    "calls": row["call_id_count"],
                    "minutes": str(minutes),
                }
            )
    return {
        "tenant": tenant,
        "switch": switch,
        "file_id": file_id,
        "counts": counts,
        "accounts": {account: units_to_str(delta, 6) for account, delta in sorted(deltas.items())},
        "destinations": destinations,
        "destinations_truncated": len(destinations) == MAX_DESTINATIONS_IN_EVENT,
    }
