"""Processed-file ledger and duplicate-claim items: the files table (PynamoDB).

Key layout (table `settings().files_table`; every pk is the tenant):
    pk={tenant}  sk=FILE#{file_id}              status, switch, day, counts, meta, timestamps
    pk={tenant}  sk=ARRIVED#{day}#{switch}#{file_id}
                                                the file arrived on `day` (its first record's
                                                UTC day), whatever became of it: written in
                                                the same transaction as the file's record
                                                (`backfill_arrivals`: records older than it)
    pk={tenant}  sk=DEDUP#{switch}#{day}        version, files (committed file ids), set_key
    pk={tenant}  sk=RUN#{file_id}               the committed pricing run of the file
    pk={tenant}  sk=COUNT#{period}#{account}#{kind}#{name}
                                                seconds, charged, version of a tier or bundle
                                                in a period; closing intent, trued_up

File status (what `tollgate file status` shows):
    ingested  normalised and quarantine Parquet written; rating requested
    done      rated and charged (terminal: a status never moves back from done)
    rejected  the file could not be read at all (unknown switch, format); `meta.error` says why
    failed    processing raised on the message's last delivery (its message is in the DLQ);
              `error` holds the exception, `stage` the function (ingest or rate)
    retrying  its ingest will run again: an attempt failed and SQS redelivers, or an operator
              retried it (`reopen_file`). Not yet a processed file: `get_file` says unknown,
              so the ingest service treats the next delivery of its drop as new.
Transitions (each a conditional write, so a late success always wins over a failure):
    none|retrying       → ingested | rejected | retrying | failed
    ingested            → done | failed (last delivery) | ingested (a retried step)
    failed              → ingested | rejected | done (an overlapping attempt succeeded late)
                        → ingested (reopen: it had been ingested) | retrying (reopen: it had not)
    rejected            → retrying (reopen) | rejected
    done                → done
An attempt that fails before the last delivery only notes its error (and a file without a
record becomes `retrying`): rating needs `ingested`, so a rate failure keeps that status.

Duplicate claim for (tenant, switch, day): `files` lists the committed files in commit order,
so the file at position i moved the claim from version i to i+1 (version == len(files)).
`commit_claim` moves version v to v+1 on the condition that the version is still v and the
file is not listed; the claimed calls themselves live in S3 (see functions.store.lake).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from types import SimpleNamespace
from typing import Any

from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.exceptions import (
    DeleteError,
    DoesNotExist,
    PutError,
    TransactWriteError,
    UpdateError,
)
from pynamodb.expressions.condition import Contains
from pynamodb.expressions.operand import Path, Value
from pynamodb.transactions import TransactWrite

from functions.rate.contracts import Counter, CounterKey, Move
from functions.shared.settings import settings
from functions.store import (
    ConflictError,
    NotFoundError,
    check_day,
    check_name,
    check_slot,
    check_token,
)
from functions.store.items import IntAttribute, Item, bind, conditional_failed, now

logger = logging.getLogger(__name__)

FILE_STATUSES = ("ingested", "rejected", "done", "failed", "retrying")
COUNT_NAMES = ("rows", "rated", "unrated", "quarantined", "duplicates", "unknown_account")
STAGES = ("ingest", "rate")
# Which stored status a write of each status may replace (besides no item yet, for puts).
# A real outcome replaces `failed`: an attempt that overlapped the failing one finished late.
_REPLACES = {
    "ingested": ("ingested", "failed", "retrying"),
    "rejected": ("rejected", "failed", "retrying"),
    "done": ("ingested", "done", "failed"),
}
ERROR_CHARS = 2000  # an exception's text is cut: the log has the rest, the item stays small


class _FileItem(Item):
    status = UnicodeAttribute()
    rows = IntAttribute(default=0)
    rated = IntAttribute(default=0)
    unrated = IntAttribute(default=0)
    quarantined = IntAttribute(default=0)
    duplicates = IntAttribute(default=0)
    unknown_account = IntAttribute(default=0)
    meta = MapAttribute(default=dict)  # strings, ints, bools: where the file came from
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    error = UnicodeAttribute(null=True)  # the last failed attempt's exception, until a success
    stage = UnicodeAttribute(null=True)  # which function raised it: ingest or rate
    failures = IntAttribute(default=0)  # failed deliveries, all time
    retries = IntAttribute(default=0)  # operator retries and redrives, all time


class _ArrivedItem(Item):
    """The day index of the files: one key-only item per file (`arrived_files`)."""


class _RunItem(Item):
    run = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()


class _CounterItem(Item):
    seconds = IntAttribute(default=0)
    charged = IntAttribute(default=0)  # micro-units its tier charged the period's calls
    version = IntAttribute(default=0)  # pricing runs committed on it
    trued_up = IntAttribute(default=0)  # micro-units posted at the period's close(s)
    closes = IntAttribute(default=0)  # true-ups posted
    closing = UnicodeAttribute(null=True)  # a true-up decided, maybe not yet posted (JSON)


class _ClaimItem(Item):
    version = IntAttribute()
    files = ListAttribute(of=UnicodeAttribute)
    set_key = UnicodeAttribute()


@cache
def _models(table: str) -> SimpleNamespace:
    return SimpleNamespace(
        file=bind(_FileItem, table),
        arrived=bind(_ArrivedItem, table),
        claim=bind(_ClaimItem, table),
        run=bind(_RunItem, table),
        counter=bind(_CounterItem, table),
    )


def _m() -> SimpleNamespace:
    return _models(settings().files_table)


# --- processed files -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileRecord:
    tenant: str
    file_id: str
    status: str
    counts: dict[str, int]  # rows, rated, unrated, quarantined, duplicates
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    error: str | None = None  # failed (or failing and retried): the last exception
    stage: str | None = None  # ingest | rate: where `error` was raised
    failures: int = 0
    retries: int = 0

    @property
    def reason(self) -> str | None:
        """Why a rejected file was refused."""
        return self.meta.get("error") if self.status == "rejected" else None


def _record(item: _FileItem) -> FileRecord:
    return FileRecord(
        tenant=item.pk,
        file_id=item.sk.removeprefix("FILE#"),
        status=item.status,
        counts={name: int(getattr(item, name) or 0) for name in COUNT_NAMES},
        meta=_meta(item),
        created_at=item.created_at,
        updated_at=item.updated_at,
        error=item.error,
        stage=item.stage,
        failures=int(item.failures or 0),
        retries=int(item.retries or 0),
    )


def _meta(item: _FileItem) -> dict[str, Any]:
    return dict(item.meta.as_dict()) if item.meta is not None else {}


def _check_counts(counts: Mapping[str, int]) -> dict[str, int]:
    unknown = set(counts) - set(COUNT_NAMES)
    if unknown:
        raise ValueError(f"unknown count(s) {sorted(unknown)}: use {', '.join(COUNT_NAMES)}")
    checked = {}
    for name, value in counts.items():
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise ValueError(f"count {name} must be a non-negative integer, got {value!r}")
        checked[name] = int(value)
    return checked


def _check_status(status: str) -> str:
    if status not in FILE_STATUSES:
        raise ValueError(f"invalid file status {status!r}: use one of {', '.join(FILE_STATUSES)}")
    return status


def put_file(
    tenant: str,
    file_id: str,
    status: str,
    counts: Mapping[str, int] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> bool:
    """Write a file's record; False (nothing written) if it is already at a later status."""
    model = _m().file
    if _check_status(status) not in _REPLACES:
        raise ValueError(f"a file moves to {status!r} through record_failure or reopen_file")
    written = now()
    item = model(
        check_name("tenant", tenant),
        f"FILE#{check_token('file id', file_id)}",
        status=_check_status(status),
        meta=dict(meta or {}),
        created_at=written,
        updated_at=written,
        **_check_counts(counts or {}),
    )
    existing = _get_item(tenant, file_id)
    if existing is not None:
        item.created_at = existing.created_at  # a retry keeps the first ingest time
        item.failures = int(existing.failures or 0)  # and the file's history
        item.retries = int(existing.retries or 0)
    condition = model.pk.does_not_exist() | model.status.is_in(*_REPLACES[status])
    try:
        _save_with_arrival(item, condition, meta or {})
    except (PutError, TransactWriteError) as error:
        if _refused(error):
            return False
        raise
    return True


def _arrived_sk(day: dt.date | str, switch: str, file_id: str) -> str:
    switch, file_id = check_name("switch", switch), check_token("file id", file_id)
    return f"ARRIVED#{check_day(day)}#{switch}#{file_id}"


def _refused(error: PutError | UpdateError | TransactWriteError, *, conflict: bool = False) -> bool:
    """The write (alone or the file's record in a transaction) was refused by its condition;
    with `conflict`, or cancelled by another transaction on the same item at the same time."""
    if isinstance(error, TransactWriteError):
        codes = [r.code if r is not None else None for r in error.cancellation_reasons or []]
        return "ConditionalCheckFailed" in codes or (conflict and "TransactionConflict" in codes)
    return conditional_failed(error)


def _save_with_arrival(item: _FileItem, condition: Any, meta: Mapping[str, Any]) -> None:
    """Save a file's record on `condition`, and in the same transaction its item of the day
    index (the day it first arrived: `created_at`, kept by every rewrite, so a redelivery or a
    retry writes the same index item again). A record naming no valid switch (it was never a
    drop) is saved alone: the day's check could not place it anyway."""
    switch = meta.get("switch")
    try:
        sk = _arrived_sk(
            item.created_at.astimezone(dt.UTC).date(), switch, item.sk.removeprefix("FILE#")
        )
    except (TypeError, ValueError):
        item.save(condition=condition)
        return
    model = _m().arrived
    connection = Connection(region=model.Meta.region, host=model.Meta.host)
    with TransactWrite(connection=connection) as transaction:
        transaction.save(item, condition=condition)
        transaction.save(model(item.pk, sk))


def set_file_status(
    tenant: str, file_id: str, status: str, counts: Mapping[str, int] | None = None
) -> bool:
    """Move a recorded file to `status` (updating the given counts); False if not allowed.

    Allowed: ingested or failed → done, and the same status again (a retry); a success clears
    the last failure's error. NotFoundError for an unknown file.
    """
    model = _m().file
    _check_status(status)
    if status not in _REPLACES:
        raise ValueError(f"a file moves to {status!r} through record_failure or reopen_file")
    checked = _check_counts(counts or {})
    if _get_item(tenant, file_id) is None:
        raise NotFoundError(f"unknown file {file_id!r} in tenant {tenant!r}")
    item = model(tenant, f"FILE#{file_id}")
    actions = [model.status.set(status), model.updated_at.set(now())]
    actions += [model.error.remove(), model.stage.remove()]
    actions += [getattr(model, name).set(value) for name, value in checked.items()]
    try:
        item.update(
            actions=actions, condition=model.pk.exists() & model.status.is_in(*_REPLACES[status])
        )
    except UpdateError as error:
        if conditional_failed(error):
            return False
        raise
    return True


def _get_item(tenant: str, file_id: str) -> _FileItem | None:
    try:
        return _m().file.get(
            check_name("tenant", tenant),
            f"FILE#{check_token('file id', file_id)}",
            consistent_read=True,
        )
    except DoesNotExist:
        return None


def get_file(tenant: str, file_id: str) -> FileRecord:
    """A processed file's record. A `retrying` file has none yet (NotFoundError), so the next
    delivery of its drop is ingested as new; `list_files` shows it."""
    item = _get_item(tenant, file_id)
    if item is None:
        raise NotFoundError(f"unknown file {file_id!r} in tenant {tenant!r}")
    if item.status == "retrying":
        raise NotFoundError(f"file {file_id!r} in tenant {tenant!r} waits for its ingest to run")
    return _record(item)


def find_file(tenant: str, file_id: str) -> FileRecord | None:
    """The file's record whatever its status (`retrying` included), or None."""
    item = _get_item(tenant, file_id)
    return _record(item) if item is not None else None


def arrived_files(
    tenant: str, first: dt.date | str, last: dt.date | str
) -> list[tuple[str, str, str]]:
    """(day, switch, file id) of every file that arrived on the days first..last, whatever
    its status (rejected and failed files too): one Query of the day index, so the reads
    grow with those days' files, not with the tenant's history."""
    model = _m().arrived
    low, high = f"ARRIVED#{check_day(first)}#", f"ARRIVED#{check_day(last)}$"  # '$' > '#'
    out = []
    for item in model.query(check_name("tenant", tenant), model.sk.between(low, high)):
        day, switch, file_id = item.sk.removeprefix("ARRIVED#").split("#")
        out.append((day, switch, file_id))
    return out


def list_files(tenant: str) -> list[FileRecord]:
    """Every file of the tenant, in file id order."""
    model = _m().file
    items = model.query(check_name("tenant", tenant), model.sk.startswith("FILE#"))
    return [_record(item) for item in items]


@dataclass(frozen=True, slots=True)
class ArrivalBackfill:
    """What `backfill_arrivals` found and did."""

    files: int  # records read
    present: int  # their index item was there already
    written: int  # index items written now
    skipped: tuple[tuple[str, str], ...]  # (file id, why it cannot be placed)


def backfill_arrivals(tenant: str) -> ArrivalBackfill:
    """Write the day-index item of every file recorded before the index existed (a one-off
    migration: one Query of the tenant's whole registry and one of its index, then the missing
    items in batches). The item is the one `_save_with_arrival` writes (the day of
    `created_at`, the file's first arrival), so running it again writes nothing. A record
    without a valid switch or without `created_at` cannot be placed: skipped, and named."""
    model = _m().arrived
    tenant = check_name("tenant", tenant)
    present = {item.sk for item in model.query(tenant, model.sk.startswith("ARRIVED#"))}
    records = list_files(tenant)
    wanted, skipped = [], []
    for record in records:
        if record.created_at is None:
            skipped.append((record.file_id, "no arrival time"))
            continue
        try:
            day = record.created_at.astimezone(dt.UTC).date()
            wanted.append(_arrived_sk(day, record.meta.get("switch"), record.file_id))
        except (TypeError, ValueError):
            skipped.append((record.file_id, "no switch"))
    missing = sorted(set(wanted) - present)
    with model.batch_write() as batch:  # 25 items a request, unprocessed ones resent
        for sk in missing:
            batch.save(model(tenant, sk))
    return ArrivalBackfill(len(records), len(wanted) - len(missing), len(missing), tuple(skipped))


# --- failures and retries --------------------------------------------------------------

FAILURE_WRITE_ATTEMPTS = 5  # concurrent writers of one file item before giving up


def record_failure(
    tenant: str,
    file_id: str,
    error: str,
    *,
    stage: str,
    final: bool,
    meta: Mapping[str, Any] | None = None,
) -> str | None:
    """Note a failed attempt at a file; on its message's last delivery (`final`) the file is
    `failed`. Returns the status now stored, or None when the file has an outcome (done,
    rejected), which a failure never replaces.

    `meta` (where the file came from, for a retry) is kept for a file without a record yet.
    """
    if stage not in STAGES:
        raise ValueError(f"invalid stage {stage!r}: use {' or '.join(STAGES)}")
    model = _m().file
    text = error[:ERROR_CHARS]
    for _ in range(FAILURE_WRITE_ATTEMPTS):
        existing = _get_item(tenant, file_id)
        status = existing.status if existing is not None else None
        if status in ("done", "rejected"):
            return None
        if final:
            new = "failed"
        elif status in (None, "retrying"):
            new = "retrying"  # the next delivery ingests it as new
        else:
            new = status  # ingested: rating needs it to stay so; failed: not ours to undo
        written = now()
        try:
            if existing is None:
                item = model(
                    check_name("tenant", tenant),
                    f"FILE#{check_token('file id', file_id)}",
                    status=new,
                    meta=_plain(meta or {}),
                    created_at=written,
                    updated_at=written,
                    error=text,
                    stage=stage,
                    failures=1,
                )
                _save_with_arrival(item, model.pk.does_not_exist(), meta or {})
            else:
                actions = [
                    model.status.set(new),
                    model.error.set(text),
                    model.stage.set(stage),
                    model.failures.add(1),
                    model.updated_at.set(written),
                ]
                if meta and status in ("retrying", "failed") and "days" not in _meta(existing):
                    actions.append(model.meta.set(_meta(existing) | _plain(meta)))
                # Optimistic: nobody wrote the item since we read it.
                existing.update(actions=actions, condition=model.updated_at == existing.updated_at)
        except (PutError, UpdateError, TransactWriteError) as failure:
            if _refused(failure, conflict=True):  # read it again
                continue
            raise
        return new
    logger.warning("could not record the failure of file %s: it kept changing", file_id)
    return None


@contextmanager
def failure_recorded(
    tenant: str,
    file_id: str,
    stage: str,
    *,
    last_delivery: Callable[[], bool],
    meta: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """Run one step of a file; if it raises, record the failure (`record_failure`, final when
    `last_delivery()` says the message goes to the DLQ next) and re-raise for SQS."""
    try:
        yield
    except Exception as error:
        try:
            record_failure(
                tenant,
                file_id,
                f"{type(error).__name__}: {error}",
                stage=stage,
                final=last_delivery(),
                meta=meta,
            )
        except Exception:
            # The original error matters more: SQS still redelivers, the DLQ still holds it.
            logger.exception("could not record the failure of file %s", file_id)
        raise


def reopen_file(tenant: str, file_id: str) -> str:
    """Let a failed, rejected or retrying file run again (an operator's retry or redrive).

    Returns the step to request again: `rate` (the file was ingested: it is `ingested` again)
    or `ingest` (it was not: it is `retrying`, so its drop is ingested as new). An `ingested`
    file is left as it is (`rate`: rating is idempotent). ConflictError for a `done` file,
    whose calls were charged once, and when the file changed meanwhile.
    """
    model = _m().file
    item = _get_item(tenant, file_id)
    if item is None:
        raise NotFoundError(f"unknown file {file_id!r} in tenant {tenant!r}")
    if item.status == "done":
        raise ConflictError(
            f"file {file_id} is done: its calls were charged once, so there is nothing to "
            "retry (tollgate rerate re-prices its days)"
        )
    step = retry_step(_record(item))
    if item.status == "ingested":
        return step
    try:
        item.update(
            actions=[
                model.status.set("ingested" if step == "rate" else "retrying"),
                model.retries.add(1),
                model.updated_at.set(now()),
            ],
            condition=model.status == item.status,
        )
    except UpdateError as error:
        if conditional_failed(error):
            raise ConflictError(f"file {file_id} changed meanwhile: look again") from None
        raise
    return step


def retry_step(record: FileRecord) -> str:
    """What running a file again means: `rate` once it was ingested (its normalised tables
    are complete), else `ingest` (its drop is read again)."""
    if record.status == "ingested" or (record.status == "failed" and "days" in record.meta):
        return "rate"
    return "ingest"


def _plain(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Meta values as DynamoDB takes them: dates as ISO strings."""
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in meta.items()}


# --- pricing runs ----------------------------------------------------------------------
#
# Two runs of one file may overlap (ingest re-sends rate requests on purpose, SQS redelivers),
# and a deck may change between them. Each run stages its own output; the first to commit its
# run id here decides what the lake publishes and the balances are posted from. A separate
# item rather than an attribute of the file's record: an ingest retry rewrites that record.


def get_pricing_run(tenant: str, file_id: str) -> str | None:
    """The file's committed pricing run, or None before any run committed."""
    try:
        item = _m().run.get(
            check_name("tenant", tenant),
            f"RUN#{check_token('file id', file_id)}",
            consistent_read=True,
        )
    except DoesNotExist:
        return None
    return item.run


def commit_pricing_run(
    tenant: str, file_id: str, run: str, moves: Sequence[Move] = ()
) -> str | None:
    """Commit `run` as the file's pricing run unless one is committed; return the committed one.

    With `moves` (the tier and bundle counters the run read and advanced), the run and every
    counter commit in one transaction, each counter on the condition that it is still at the
    version the run read: None means one moved meanwhile (another file of the period
    committed first), and the file must be priced again from the counters as they now are.
    """
    model = _m().run
    item = model(
        check_name("tenant", tenant),
        f"RUN#{check_token('file id', file_id)}",
        run=check_token("pricing run", run),
        created_at=now(),
    )
    if moves:
        return _commit_with_counters(tenant, file_id, item, list(moves))
    try:
        item.save(condition=model.pk.does_not_exist())
    except PutError as error:
        if not conditional_failed(error):
            raise
        committed = get_pricing_run(tenant, file_id)
        if committed is None:  # pragma: no cover - items are never deleted
            raise
        return committed
    return run


# DynamoDB takes at most 100 items in one transaction: the run's own item and 99 counters.
MAX_COUNTER_MOVES = 99


def _commit_with_counters(tenant: str, file_id: str, item: Any, moves: list[Move]) -> str | None:
    if len(moves) > MAX_COUNTER_MOVES:
        raise ValueError(
            f"{file_id}: its calls move {len(moves)} tier and bundle counters; one file may "
            f"move at most {MAX_COUNTER_MOVES} (split the file)"
        )
    run, counter = _m().run, _m().counter
    connection = Connection(region=run.Meta.region, host=run.Meta.host)
    try:
        with TransactWrite(connection=connection) as transaction:
            transaction.save(item, condition=run.pk.does_not_exist())
            for move in moves:
                after = move.after
                read = move.read.version
                unchanged = counter.pk.does_not_exist() if read == 0 else counter.version == read
                transaction.update(
                    counter(tenant, _counter_sk(move.key)),
                    actions=[
                        counter.seconds.set(after.seconds),
                        counter.charged.set(after.charged),
                        counter.version.set(after.version),
                    ],
                    condition=unchanged,
                )
    except TransactWriteError as error:
        reasons = [r.code if r is not None else None for r in error.cancellation_reasons or []]
        if reasons[:1] == ["ConditionalCheckFailed"]:  # another run of this file committed
            committed = get_pricing_run(tenant, file_id)
            if committed is not None:
                return committed
        if "ConditionalCheckFailed" in reasons or "TransactionConflict" in reasons:
            return None
        raise
    return item.run


def _counter_sk(key: CounterKey) -> str:
    for part in (key.account, key.kind, key.name):
        check_name("counter", part)
    check_period(key.period)
    return f"COUNT#{key.period}#{key.account}#{key.kind}#{key.name}"


def _counter_key(sk: str) -> CounterKey:
    _, period, account, kind, name = sk.split("#")
    return CounterKey(account, kind, name, period)


@dataclass(frozen=True, slots=True)
class StoredCounter:
    key: CounterKey
    counter: Counter
    trued_up: int = 0  # micro-units posted by closes
    closes: int = 0
    closing: dict | None = None  # a true-up decided and maybe not yet posted


def _stored(item: Any) -> StoredCounter:
    return StoredCounter(
        _counter_key(item.sk),
        Counter(item.seconds, item.charged, item.version),
        item.trued_up,
        item.closes,
        None if item.closing is None else json.loads(item.closing),
    )


def counter_request(tenant: str, key: CounterKey) -> tuple[str, dict[str, Any]]:
    """The table and the raw DynamoDB key of a counter's item, for a caller that reads it in
    a BatchGetItem with other tables' items (real-time authorization: functions.store.holds
    reads the call's counters with the account's money) or checks it in a transaction."""
    table = _m().counter.Meta.table_name
    return table, {"pk": {"S": check_name("tenant", tenant)}, "sk": {"S": _counter_sk(key)}}


def counter_of(raw: Mapping[str, Any] | None) -> Counter:
    """A counter from its raw DynamoDB item (None or {}: nothing counted yet)."""
    raw = raw or {}

    def number(name: str) -> int:
        return int(raw.get(name, {}).get("N", "0"))

    return Counter(number("seconds"), number("charged"), number("version"))


def read_counter(tenant: str, key: CounterKey) -> Counter:
    """A tier's or bundle's counter in a period (zero before any run committed on it)."""
    return get_counter(tenant, key).counter


def get_counter(tenant: str, key: CounterKey) -> StoredCounter:
    try:
        item = _m().counter.get(
            check_name("tenant", tenant), _counter_sk(key), consistent_read=True
        )
    except DoesNotExist:
        return StoredCounter(key, Counter())
    return _stored(item)


def list_counters(tenant: str, period: str) -> list[StoredCounter]:
    """Every counter of the tenant in a period."""
    model = _m().counter
    prefix = f"COUNT#{check_period(period)}#"
    items = model.query(
        check_name("tenant", tenant), model.sk.startswith(prefix), consistent_read=True
    )
    return [_stored(item) for item in items]


def begin_close(tenant: str, stored: StoredCounter, closing: dict) -> bool:
    """Record a true-up decided from `stored` as it was read; False if the counter changed."""
    model = _m().counter
    closes = model.closes == stored.closes
    if stored.closes == 0:  # never closed: the attribute is not there yet
        closes = model.closes.does_not_exist() | closes
    condition = model.closing.does_not_exist() & (model.version == stored.counter.version) & closes
    try:
        model(tenant, _counter_sk(stored.key)).update(
            actions=[model.closing.set(json.dumps(closing, sort_keys=True))], condition=condition
        )
    except UpdateError as error:
        if conditional_failed(error):
            return False
        raise
    return True


def finish_close(tenant: str, key: CounterKey, closing: dict) -> bool:
    """Count a posted true-up and clear its intent; False if another run finished it."""
    model = _m().counter
    try:
        model(tenant, _counter_sk(key)).update(
            actions=[
                model.trued_up.add(int(closing["amount"])),
                model.closes.add(1),
                model.closing.remove(),
            ],
            condition=model.closing == json.dumps(closing, sort_keys=True),
        )
    except UpdateError as error:
        if conditional_failed(error):
            return False
        raise
    return True


def check_period(period: str) -> str:
    if not isinstance(period, str) or not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period):
        raise ValueError(f"invalid period {period!r}: YYYY-MM expected")
    return period


# --- duplicate claims ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    version: int  # 0 = nothing claimed yet
    file_ids: tuple[str, ...]  # committed files, in commit order
    set_key: str | None  # S3 key of the claimed-call set at `version` (None at version 0)

    def committed_version(self, file_id: str) -> int | None:
        """The version this file's commit produced, or None if it has not committed."""
        try:
            return self.file_ids.index(file_id) + 1
        except ValueError:
            return None


def _claim_sk(switch: str, day: dt.date | str) -> str:
    day_part, hour = check_slot(day)
    slot = f"{day_part}T{hour}" if hour else day_part
    return f"DEDUP#{check_name('switch', switch)}#{slot}"


def read_claim(tenant: str, switch: str, day: dt.date | str) -> Claim:
    """The current claim for (tenant, switch, day), read consistently."""
    try:
        item = _m().claim.get(
            check_name("tenant", tenant), _claim_sk(switch, day), consistent_read=True
        )
    except DoesNotExist:
        return Claim(version=0, file_ids=(), set_key=None)
    return Claim(version=item.version, file_ids=tuple(item.files or ()), set_key=item.set_key)


def commit_claim(
    tenant: str,
    switch: str,
    day: dt.date | str,
    expected_version: int,
    new_set_key: str,
    file_id: str,
) -> bool:
    """Move the claim from `expected_version` to the next, listing `file_id`.

    False if another file committed first (re-read and recompute) or this file is already
    listed (a retry: re-read and reuse the stored claim result).
    """
    model = _m().claim
    check_token("file id", file_id)
    item = model(check_name("tenant", tenant), _claim_sk(switch, day))
    try:
        if expected_version == 0:
            item.version = 1
            item.files = [file_id]
            item.set_key = new_set_key
            item.save(condition=model.pk.does_not_exist())
        else:
            item.update(
                actions=[
                    model.version.set(expected_version + 1),
                    model.files.set(model.files.append([file_id])),
                    model.set_key.set(new_set_key),
                ],
                condition=(model.version == expected_version)
                & ~Contains(Path(["files"]), Value(file_id)),
            )
    except (PutError, UpdateError) as error:
        if conditional_failed(error):
            return False
        raise
    return True


# --- revenue assurance alerts: each published once ---------------------------------------
#   pk={tenant}  sk=ASSURE#{switch}#{day}#{check}   state pending|sent, claimed_at
# The daily check claims an alert before publishing it and marks it sent after
# (functions.ingest.assurance.publish_alerts).

ALERT_LEASE = dt.timedelta(minutes=30)  # a pending claim older than this is claimed again


class _AlertClaimItem(Item):
    state = UnicodeAttribute()
    claimed_at = UTCDateTimeAttribute()


@cache
def _alert_model(table: str) -> type:
    return bind(_AlertClaimItem, table)


def _alert_sk(key: str) -> str:
    return f"ASSURE#{key}"


def claim_alert(tenant: str, key: str, at: dt.datetime) -> bool:
    """Claim the alert `key` ({switch}#{day}#{check}) for publishing; False when it was sent,
    or another run claimed it less than ALERT_LEASE before `at`."""
    model = _alert_model(settings().files_table)
    item = model(check_name("tenant", tenant), _alert_sk(key), state="pending", claimed_at=at)
    free = model.pk.does_not_exist() | (
        (model.state == "pending") & (model.claimed_at < at - ALERT_LEASE)
    )
    try:
        item.save(condition=free)
    except PutError as error:
        if conditional_failed(error):
            return False
        raise
    return True


def alert_sent(tenant: str, key: str) -> None:
    model = _alert_model(settings().files_table)
    model(check_name("tenant", tenant), _alert_sk(key)).update(
        actions=[model.state.set("sent")], condition=model.pk.exists()
    )


def release_alert(tenant: str, key: str) -> None:
    """Forget a pending claim whose publish failed (the next run publishes it)."""
    model = _alert_model(settings().files_table)
    try:
        model(check_name("tenant", tenant), _alert_sk(key)).delete(
            condition=model.state == "pending"
        )
    except DeleteError as error:
        if not conditional_failed(error):  # sent meanwhile: nothing to release
            raise


def get_files(tenant: str, file_ids: Sequence[str]) -> list[FileRecord]:
    """The records of these files (those that have one), in file id order: BatchGetItem,
    100 keys a request, so a day's check reads its files' records, not the tenant's."""
    model = _m().file
    tenant = check_name("tenant", tenant)
    keys = [(tenant, f"FILE#{check_token('file id', f)}") for f in sorted(set(file_ids))]
    records = [_record(item) for item in model.batch_get(keys, consistent_read=True)]
    return sorted(records, key=lambda r: r.file_id)


def alert_state(tenant: str, key: str) -> str | None:
    """pending, sent or None (never claimed)."""
    try:
        item = _alert_model(settings().files_table).get(
            check_name("tenant", tenant), _alert_sk(key), consistent_read=True
        )
    except DoesNotExist:
        return None
    return item.state
