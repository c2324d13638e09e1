"""Processed-file ledger and duplicate-claim items: the files table (PynamoDB).

Key layout (table `settings().files_table`; every pk is the tenant):
    pk={tenant}  sk=FILE#{file_id}              status, switch, day, counts, meta, timestamps
    pk={tenant}  sk=DEDUP#{switch}#{day}        version, files (committed file ids), set_key
    pk={tenant}  sk=RUN#{file_id}               the committed pricing run of the file

File status: `ingested` (normalised and quarantine Parquet written) → `done` (rated, posted);
`rejected` is terminal for a file that could not be read at all. A status never moves back:
an ingest retried after rating has finished leaves the file `done`.

Duplicate claim for (tenant, switch, day): `files` lists the committed files in commit order,
so the file at position i moved the claim from version i to i+1 (version == len(files)).
`commit_claim` moves version v to v+1 on the condition that the version is still v and the
file is not listed; the claimed calls themselves live in S3 (see functions.store.lake).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
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
from pynamodb.exceptions import DoesNotExist, PutError, UpdateError
from pynamodb.expressions.condition import Contains
from pynamodb.expressions.operand import Path, Value

from functions.shared.settings import settings
from functions.store import NotFoundError, check_name, check_slot, check_token
from functions.store.items import IntAttribute, Item, bind, conditional_failed, now

FILE_STATUSES = ("ingested", "rejected", "done")
COUNT_NAMES = ("rows", "rated", "unrated", "quarantined", "duplicates", "unknown_account")
# Which stored status a write of each status may replace (None = no item yet).
_REPLACES = {
    "ingested": ("ingested",),
    "rejected": ("rejected",),
    "done": ("ingested", "done"),
}


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


class _RunItem(Item):
    run = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()


class _ClaimItem(Item):
    version = IntAttribute()
    files = ListAttribute(of=UnicodeAttribute)
    set_key = UnicodeAttribute()


@cache
def _models(table: str) -> SimpleNamespace:
    return SimpleNamespace(
        file=bind(_FileItem, table), claim=bind(_ClaimItem, table), run=bind(_RunItem, table)
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


def _record(item: _FileItem) -> FileRecord:
    return FileRecord(
        tenant=item.pk,
        file_id=item.sk.removeprefix("FILE#"),
        status=item.status,
        counts={name: int(getattr(item, name) or 0) for name in COUNT_NAMES},
        meta=dict(item.meta.as_dict()) if item.meta is not None else {},
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


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
    condition = model.pk.does_not_exist() | model.status.is_in(*_REPLACES[status])
    try:
        item.save(condition=condition)
    except PutError as error:
        if conditional_failed(error):
            return False
        raise
    return True


def set_file_status(
    tenant: str, file_id: str, status: str, counts: Mapping[str, int] | None = None
) -> bool:
    """Move a recorded file to `status` (updating the given counts); False if not allowed.

    Allowed: ingested → done, and the same status again (a retry). NotFoundError for an
    unknown file.
    """
    model = _m().file
    _check_status(status)
    checked = _check_counts(counts or {})
    if _get_item(tenant, file_id) is None:
        raise NotFoundError(f"unknown file {file_id!r} in tenant {tenant!r}")
    item = model(tenant, f"FILE#{file_id}")
    actions = [model.status.set(status), model.updated_at.set(now())]
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
    item = _get_item(tenant, file_id)
    if item is None:
        raise NotFoundError(f"unknown file {file_id!r} in tenant {tenant!r}")
    return _record(item)


def list_files(tenant: str) -> list[FileRecord]:
    """Every file of the tenant, in file id order."""
    model = _m().file
    items = model.query(check_name("tenant", tenant), model.sk.startswith("FILE#"))
    return [_record(item) for item in items]


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


def commit_pricing_run(tenant: str, file_id: str, run: str) -> str:
    """Commit `run` as the file's pricing run unless one is committed; return the committed one."""
    model = _m().run
    item = model(
        check_name("tenant", tenant),
        f"RUN#{check_token('file id', file_id)}",
        run=check_token("pricing run", run),
        created_at=now(),
    )
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
