"""S3 objects through boto3: Parquet tables, deck versions, raw CDR drops, claimed-call sets.

Small Parquet objects are serialised in memory (pyarrow's own S3 client does not run under
in-process moto). A file's tables, which grow with its CDRs, go through a `Spool` instead: local
temporary files (a Lambda's /tmp is disk, not memory) written and read a part at a time.

Key layout:
    CDR bucket   incoming/{tenant}/{switch}/{name}                              raw drop
    lake bucket  {area}/tenant={t}/date={d}/{file_id}.parquet                   area: normalized,
                                                                                quarantine, rated,
                                                                                charges
                 staging/tenant={t}/file={file_id}/run={run}/{area}/date={d}.parquet  a pricing
                                                                                run's output
                 staging/tenant={t}/file={file_id}/run={run}/totals.json        what it adds up to
                 decks/tenant={t}/account={a}/v{n}.parquet                      immutable
                 dedup/tenant={t}/switch={s}/date={d}/set/v{n:08d}-{file_id}.parquet
                 dedup/tenant={t}/switch={s}/date={d}/claims/{file_id}-v{n}.npy

A claimed-call set is one Parquet column of unique call keys. Its key names the version it is
and the file that wrote it, so two files racing to write version n never overwrite each
other's set; the loser's set is simply never referenced. A claim result is keyed by the file
and the version its commit would produce, so duplicate deliveries of one file racing each
other cannot leave a result that disagrees with the committed set.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import itertools
import json
import re
import tempfile
from collections.abc import Collection, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from botocore.config import Config
from botocore.exceptions import ClientError

from functions.shared.settings import settings
from functions.store import (
    ConflictError,
    NotFoundError,
    check_day,
    check_name,
    check_slot,
    check_token,
    client,
)

TABLE_AREAS = ("normalized", "quarantine", "rated", "charges")
PARQUET_COMPRESSION = "zstd"
# Rows per row group of a spooled table at most: a reader that takes one row group at a time
# (the rate service) then holds at most this many rows, however the parts were cut.
ROW_GROUP_ROWS = 1 << 17
# Columns whose values (nearly) never repeat in a file: no dictionary encoding. Parquet would
# build one per row group up to its 1 MB page limit and then give up, which costs time and,
# with the row groups of a file written in parts, ~15% more bytes.
_UNIQUE_COLUMNS = frozenset(
    (
        "line",
        "call_id",
        "start_time",
        "answer_time",
        "end_time",
        "caller",
        "callee",
        "dialled",
        "raw",
    )
)
_BLOCK = 1 << 20  # bytes per read or write while an object streams to or from disk
_CDR_NAME = re.compile(r"[^/\x00-\x1f\x7f]{1,255}")
_SET_KEY = re.compile(
    r"dedup/tenant=(?P<tenant>[^/]+)/switch=(?P<switch>[^/]+)/date=(?P<day>[0-9-]{10})"
    r"(?:/hour=(?P<hour>[0-9]{2}))?"
    r"/set/v(?P<version>[0-9]{8})-(?P<file_id>[^/]+)\.parquet"
)


def _put(bucket: str, key: str, body: bytes, **extra: str) -> str:
    """Put an object; returns its ETag (unquoted)."""
    response = client("s3").put_object(Bucket=bucket, Key=key, Body=body, **extra)
    return response["ETag"].strip('"')


def _get(bucket: str, key: str) -> bytes:
    try:
        return client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise NotFoundError(f"no object s3://{bucket}/{key}") from None
        raise


def _download(bucket: str, key: str, target: Path, what: str) -> str:
    """Copy an object to a local file a block at a time; returns its ETag (unquoted)."""
    try:
        response = client("s3").get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise NotFoundError(f"no {what} s3://{bucket}/{key}") from None
        raise
    with target.open("wb") as local:
        for block in response["Body"].iter_chunks(_BLOCK):
            local.write(block)
    return response["ETag"].strip('"')


def _upload(bucket: str, key: str, source: Path, **extra: str) -> str:
    """Put a local file as one object, streamed from disk; returns its ETag (unquoted)."""
    with source.open("rb") as body:
        response = client("s3").put_object(Bucket=bucket, Key=key, Body=body, **extra)
    return response["ETag"].strip('"')


def _exists(bucket: str, key: str) -> bool:
    try:
        client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return False
        raise
    return True


def table_to_parquet(table: pa.Table, **options: object) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=PARQUET_COMPRESSION, **options)
    return sink.getvalue().to_pybytes()


def table_from_parquet(data: bytes) -> pa.Table:
    # ParquetFile, not read_table: the same table, without importing pyarrow.dataset (~0.2 s
    # of a cold start).
    return pq.ParquetFile(pa.BufferReader(data)).read()


# --- raw CDR drops ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CdrObject:
    tenant: str
    switch: str
    name: str
    key: str


def cdr_key(tenant: str, switch: str, name: str) -> str:
    if not _CDR_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"invalid CDR file name {name!r}")
    return f"incoming/{check_name('tenant', tenant)}/{check_name('switch', switch)}/{name}"


def parse_cdr_key(key: str) -> CdrObject:
    """Tenant, switch and file name of a CDR bucket key (already URL-decoded)."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "incoming":
        raise ValueError(f"not a CDR drop key: {key!r}")
    _, tenant, switch, name = parts
    return CdrObject(tenant, switch, name, cdr_key(tenant, switch, name))


def put_cdr(tenant: str, switch: str, name: str, data: bytes, *, s3: Any = None) -> CdrObject:
    """Drop a raw CDR file into the CDR bucket (its notification starts the ingest).

    `s3` is the client to upload with; on AWS it must be the switch's own (its drop role's
    session, functions.store.iam.drop_credentials): the bucket refuses anyone else's upload.
    """
    key = cdr_key(tenant, switch, name)
    (s3 or client("s3")).put_object(Bucket=settings().cdr_bucket, Key=key, Body=data)
    return CdrObject(tenant, switch, name, key)


def get_cdr(tenant: str, switch: str, name: str) -> tuple[bytes, str]:
    """A raw CDR file's bytes and ETag."""
    key = cdr_key(tenant, switch, name)
    try:
        response = client("s3").get_object(Bucket=settings().cdr_bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise NotFoundError(f"no CDR file {name!r} from switch {switch!r}") from None
        raise
    return response["Body"].read(), response["ETag"].strip('"')


def fetch_cdr(tenant: str, switch: str, name: str, spool: Spool) -> Path:
    """A raw CDR file copied into the spool (to disk, a block at a time): its local path."""
    key = cdr_key(tenant, switch, name)
    target = spool.path("cdr")
    try:
        _download(settings().cdr_bucket, key, target, "CDR file")
    except NotFoundError:
        raise NotFoundError(f"no CDR file {name!r} from switch {switch!r}") from None
    return target


# --- Parquet tables per file -----------------------------------------------------------


def table_key(area: str, tenant: str, day: dt.date | str, file_id: str) -> str:
    if area not in TABLE_AREAS:
        raise ValueError(f"invalid area {area!r}: use one of {', '.join(TABLE_AREAS)}")
    tenant = check_name("tenant", tenant)
    return f"{area}/tenant={tenant}/date={check_day(day)}/{check_token('file id', file_id)}.parquet"


def put_table(area: str, tenant: str, day: dt.date | str, file_id: str, table: pa.Table) -> str:
    """Write a file's normalised, quarantine or rated table; returns the key."""
    key = table_key(area, tenant, day, file_id)
    _put(settings().lake_bucket, key, table_to_parquet(table))
    return key


def get_table(area: str, tenant: str, day: dt.date | str, file_id: str) -> pa.Table:
    return table_from_parquet(_get(settings().lake_bucket, table_key(area, tenant, day, file_id)))


def put_spooled(
    area: str, tenant: str, day: dt.date | str, file_id: str, spool: Spool, name: Hashable
) -> str:
    """Upload a table the spool wrote part by part as a file's table; returns the key."""
    key = table_key(area, tenant, day, file_id)
    _upload(settings().lake_bucket, key, spool.finish(name))
    return key


def fetch_table(
    area: str, tenant: str, day: dt.date | str, file_id: str, spool: Spool
) -> pq.ParquetFile:
    """A file's table copied into the spool, open to be read a part at a time."""
    return spool.open(_local_copy(table_key(area, tenant, day, file_id), spool))


def table_parts(
    area: str,
    tenant: str,
    days: Iterable[dt.date | str],
    file_id: str,
    spool: Spool,
    columns: Sequence[str],
    rows: int = ROW_GROUP_ROWS,
) -> Iterator[pa.Table]:
    """A file's published table of each day, `rows` rows and only `columns` at a time (those
    the table has): a reader of a million-call file holds one part, not the file."""
    for day in sorted({check_day(d) for d in days}):
        parquet = fetch_table(area, tenant, day, file_id, spool)
        present = [c for c in columns if c in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(batch_size=rows, columns=present):
            yield pa.Table.from_batches([batch])


def read_columns(
    area: str, tenant: str, day: dt.date | str, file_id: str, columns: Sequence[str]
) -> pa.Table:
    """Only `columns` (those it has) of a file's table of one day, read in memory: for the
    daily checks that read a few narrow columns of every file of a day."""
    return _read_columns(client("s3"), table_key(area, tenant, day, file_id), columns)


def listed_tables(area: str, tenant: str, first: dt.date | str, last: dt.date | str) -> list:
    """(day, file id) of the tenant's `area` tables of days first..last: one listing walk
    (a page per 1,000 files), whatever the files hold."""
    if area not in TABLE_AREAS:
        raise ValueError(f"invalid area {area!r}: use one of {', '.join(TABLE_AREAS)}")
    prefix = f"{area}/tenant={check_name('tenant', tenant)}/"
    return sorted(_listed(client("s3"), prefix, check_day(first), check_day(last)))


# --- the spool: tables on local disk, a part at a time ---------------------------------


class Spool:
    """Local temporary files for the tables one invocation reads and writes.

    Each `write` appends a part to a table's Parquet file as row groups, so a file's tables
    never sit whole in memory (a Lambda's /tmp is disk); a table is uploaded only once it is
    finished, so an abandoned spool (a crash, a rejected file) leaves nothing half-written
    in S3. Everything is deleted when the spool is closed.
    """

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="tollgate-spool-")
        self._files: dict[Hashable, Path] = {}
        self._writers: dict[Hashable, pq.ParquetWriter] = {}
        self._opened: list[pq.ParquetFile] = []
        self.parts: dict[Hashable, int] = {}  # parts written per table
        self.rows: dict[Hashable, int] = {}

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def path(self, name: Hashable) -> Path:
        """A local file of this spool for `name` (the same name, the same file)."""
        if name not in self._files:
            self._files[name] = Path(self._folder.name) / f"{len(self._files)}.bin"
        return self._files[name]

    def write(self, name: Hashable, table: pa.Table) -> None:
        """Append `table` to table `name` (its first part fixes the schema; an empty part after
        the first adds nothing)."""
        writer = self._writers.get(name)
        if writer is None:
            if name in self.rows:
                raise ValueError(f"table {name!r} of the spool is already finished")
            writer = pq.ParquetWriter(
                self.path(name),
                table.schema,
                compression=PARQUET_COMPRESSION,
                use_dictionary=[c for c in table.column_names if c not in _UNIQUE_COLUMNS],
            )
            self._writers[name] = writer
            self.parts[name], self.rows[name] = 0, 0
        elif table.num_rows == 0:
            return
        elif not table.schema.equals(writer.schema, check_metadata=False):
            table = table.cast(writer.schema)  # e.g. a column typed null in this part only
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.parts[name] += 1
        self.rows[name] += table.num_rows

    def has(self, name: Hashable) -> bool:
        """Whether table `name` has had a part written."""
        return name in self.rows

    def holds(self, name: Hashable) -> bool:
        """Whether local file `name` exists (written, downloaded or aliased)."""
        return name in self._files and self._files[name].exists()

    def alias(self, name: Hashable, existing: Hashable) -> None:
        """Let `name` refer to the local file of `existing` too."""
        self._files[name] = self._files[existing]

    def finish(self, name: Hashable) -> Path:
        """Close table `name`'s Parquet file (no more parts); its local path."""
        writer = self._writers.pop(name, None)
        if writer is not None:
            writer.close()
        elif name not in self.rows:
            raise KeyError(f"the spool has no table {name!r}")
        return self._files[name]

    def open(self, path: Path) -> pq.ParquetFile:
        """A local Parquet file, to be read a row group at a time: plain reads (no mapped
        pages), and no pre-buffering (which would read ahead of the row group asked for)."""
        opened = pq.ParquetFile(path, memory_map=False, pre_buffer=False)
        self._opened.append(opened)
        return opened

    def close(self) -> None:
        try:
            for writer in self._writers.values():
                writer.close()
            for opened in self._opened:
                opened.close()
        finally:  # the local files go, whatever happened
            self._writers.clear()
            self._opened.clear()
            self._folder.cleanup()


# --- pricing runs: staged output, published once ---------------------------------------
#
# A run of the rate service writes its rated and charges tables under its own run id, outside
# every table's location (Athena never reads staging/); the run committed on the files table is
# then published. Publishing is a conditional put (If-None-Match: *): the first copy stays, so
# a slow concurrent run can never replace it, nor overwrite a later re-rating.


def staged_key(area: str, tenant: str, day: dt.date | str, file_id: str, run: str) -> str:
    if area not in ("rated", "charges"):
        raise ValueError(f"invalid staged area {area!r}: use rated or charges")
    tenant = check_name("tenant", tenant)
    file_id = check_token("file id", file_id)
    where = f"run={check_token('pricing run', run)}/{area}/date={check_day(day)}"
    return f"staging/tenant={tenant}/file={file_id}/{where}.parquet"


def stage_spooled(
    area: str, tenant: str, day: dt.date | str, file_id: str, run: str, spool: Spool, name: Hashable
) -> str:
    """Upload a table the spool wrote part by part as a run's staged table; returns the key.

    The local file stays in the spool as that object's copy (publishing reads it from there).
    """
    key = staged_key(area, tenant, day, file_id, run)
    _upload(settings().lake_bucket, key, spool.finish(name))
    spool.alias(("object", key), name)
    return key


def fetch_staged(
    area: str, tenant: str, day: dt.date | str, file_id: str, run: str, spool: Spool
) -> pq.ParquetFile:
    """A run's staged table copied into the spool, open to be read a part at a time."""
    return spool.open(_local_copy(staged_key(area, tenant, day, file_id, run), spool))


def _local_copy(key: str, spool: Spool) -> Path:
    """The lake object `key` in the spool: the copy it already holds, else a download."""
    name = ("object", key)
    if not spool.holds(name):
        _download(settings().lake_bucket, key, spool.path(name), "object")
    return spool.path(name)


def run_totals_key(tenant: str, file_id: str, run: str) -> str:
    tenant = check_name("tenant", tenant)
    file_id = check_token("file id", file_id)
    run = check_token("pricing run", run)
    return f"staging/tenant={tenant}/file={file_id}/run={run}/totals.json"


def put_run_totals(tenant: str, file_id: str, run: str, totals: dict) -> str:
    """Store what a run's staged tables add up to (integers only: micro-units, counts)."""
    key = run_totals_key(tenant, file_id, run)
    body = json.dumps(totals, sort_keys=True, allow_nan=False).encode()
    _put(settings().lake_bucket, key, body, ContentType="application/json")
    return key


def get_run_totals(tenant: str, file_id: str, run: str) -> dict:
    """A run's totals; NotFoundError for a run staged before runs stored them."""
    return json.loads(_get(settings().lake_bucket, run_totals_key(tenant, file_id, run)))


def publish_staged(
    area: str, tenant: str, day: dt.date | str, file_id: str, run: str, spool: Spool
) -> bool:
    """Publish a run's staged table as the lake's; False if the lake already holds one.

    The bytes come from the spool's copy of the staged object (from disk, never whole in
    memory); the put is conditional on the key being free.
    """
    bucket = settings().lake_bucket
    key = table_key(area, tenant, day, file_id)
    if _exists(bucket, key):
        return False
    local = _local_copy(staged_key(area, tenant, day, file_id, run), spool)
    try:
        _upload(bucket, key, local, IfNoneMatch="*")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            return False
        raise
    return True


def copy_area(
    area: str, tenant: str, target: Path, days: Collection[str] | None = None
) -> list[Path]:
    """Copy one tenant's Parquet of an area to a local folder, keeping the hive layout.

    For SQL engines that cannot read s3:// offline (DuckDB here): only this tenant's
    partitions are copied (only the `days` given, 'YYYY-MM-DD', if any), so a query over the
    folder can only ever see this tenant.
    """
    if area not in TABLE_AREAS:
        raise ValueError(f"invalid area {area!r}: use one of {', '.join(TABLE_AREAS)}")
    prefix = f"{area}/tenant={check_name('tenant', tenant)}/"
    bucket = settings().lake_bucket
    copied = []
    for page in (
        client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    ):
        for entry in page.get("Contents", []):
            if not entry["Key"].endswith(".parquet"):
                continue
            if days is not None and entry["Key"].split("/")[2].removeprefix("date=") not in days:
                continue
            path = target / entry["Key"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_get(bucket, entry["Key"]))
            copied.append(path)
    return copied


# --- rate decks ------------------------------------------------------------------------
#
#     lake bucket  decks/tenant={t}/account={a}/v{n}.parquet          the timeline after v{n}
#                  decks/tenant={t}/account={a}/v{n}.upload.parquet   v{n}'s rows as uploaded
#
# Both immutable: written once (a conditional put), never rewritten nor deleted, so a rater
# or an audit that read version n reads the same bytes for ever.


def deck_key(tenant: str, account: str, version: int) -> str:
    """Key of the account's rate timeline after `version` (functions.rate.timeline)."""
    return f"{_deck_prefix(tenant, account, version)}.parquet"


def deck_upload_key(tenant: str, account: str, version: int) -> str:
    """Key of the rows `version` uploaded, as they entered the timeline."""
    return f"{_deck_prefix(tenant, account, version)}.upload.parquet"


def _deck_prefix(tenant: str, account: str, version: int) -> str:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"invalid deck version {version!r}")
    tenant = check_name("tenant", tenant)
    return f"decks/tenant={tenant}/account={check_name('account', account)}/v{version}"


def put_deck(tenant: str, account: str, version: int, table: pa.Table) -> tuple[str, str]:
    """Write the timeline after version n (once: ConflictError if it exists with other bytes).

    Returns (key, sha256 of the Parquet bytes).
    """
    return _put_once(deck_key(tenant, account, version), table, f"deck version {version}")


def put_deck_upload(tenant: str, account: str, version: int, table: pa.Table) -> tuple[str, str]:
    """Write the rows version n uploaded (once, as `put_deck`); returns (key, sha256)."""
    key = deck_upload_key(tenant, account, version)
    return _put_once(key, table, f"upload of deck version {version}")


def _put_once(key: str, table: pa.Table, what: str) -> tuple[str, str]:
    bucket = settings().lake_bucket
    body = table_to_parquet(table)
    digest = hashlib.sha256(body).hexdigest()
    try:
        _put(bucket, key, body, Metadata={"sha256": digest}, IfNoneMatch="*")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
            raise
        # A retry of the same write is harmless; other bytes under the key never are.
        if hashlib.sha256(_get(bucket, key)).hexdigest() != digest:
            raise ConflictError(f"{what} exists with other rows ({key})") from None
    return key, digest


def get_deck(tenant: str, account: str, version: int) -> pa.Table:
    """The account's whole rate timeline after `version` (what rating and re-rating read)."""
    return table_from_parquet(_get(settings().lake_bucket, deck_key(tenant, account, version)))


def get_deck_upload(tenant: str, account: str, version: int) -> pa.Table:
    """The rows `version` uploaded (NotFoundError for a rollback, which uploaded none)."""
    key = deck_upload_key(tenant, account, version)
    return table_from_parquet(_get(settings().lake_bucket, key))


# --- duplicate-claim hash sets and claim results ---------------------------------------


def _dedup_prefix(tenant: str, switch: str, day: dt.date | str) -> str:
    tenant = check_name("tenant", tenant)
    day_part, hour = check_slot(day)
    where = f"date={day_part}/hour={hour}" if hour else f"date={day_part}"
    return f"dedup/tenant={tenant}/switch={check_name('switch', switch)}/{where}"


def claim_set_key(tenant: str, switch: str, day: dt.date | str, version: int, file_id: str) -> str:
    """Key of the claimed-call set that `file_id` proposes as `version` of the day's set."""
    if version < 1:
        raise ValueError("a claimed-call set version starts at 1")
    prefix = _dedup_prefix(tenant, switch, day)
    return f"{prefix}/set/v{version:08d}-{check_token('file id', file_id)}.parquet"


def _check_set_key(key: str) -> str:
    if not _SET_KEY.fullmatch(key):
        raise ValueError(f"not a claimed-call set key: {key!r}")
    return key


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _from_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def put_claim_set(key: str, calls: pa.Array) -> None:
    """Store a day's claimed calls: unique strings (call key = call id and start).

    Exact strings rather than 64-bit hashes: no collision can ever drop a real call as a
    duplicate, and Arrow's hash join (`is_in`) checks a million keys in ~0.1 s.
    """
    if not pa.types.is_string(calls.type) and not pa.types.is_large_string(calls.type):
        raise TypeError(f"a claimed-call set is a string array, got {calls.type}")
    if calls.null_count or pc.count_distinct(calls).as_py() != len(calls):
        raise ValueError("a claimed-call set must hold unique, non-null keys")
    table = pa.table({"call": calls})
    # Unique keys: a dictionary would only be built to be given up (time and memory).
    body = table_to_parquet(table, use_dictionary=False)
    _put(settings().lake_bucket, _check_set_key(key), body)


def get_claim_set(key: str | None) -> pa.Array:
    """The claimed-call set stored under `key` (None = version 0 = the empty set).

    NotFoundError if a superseded set was deleted meanwhile: re-read the claim.
    """
    if key is None:
        return pa.array([], pa.string())
    table = table_from_parquet(_get(settings().lake_bucket, _check_set_key(key)))
    if table.column_names != ["call"]:
        raise ConflictError(f"{key} does not hold a claimed-call set")
    return table.column("call").combine_chunks()


def delete_claim_set(key: str) -> None:
    """Drop a superseded set (only the current version's set is ever read)."""
    client("s3").delete_object(Bucket=settings().lake_bucket, Key=_check_set_key(key))


def claim_result_key(
    tenant: str, switch: str, day: dt.date | str, file_id: str, version: int
) -> str:
    prefix = _dedup_prefix(tenant, switch, day)
    return f"{prefix}/claims/{check_token('file id', file_id)}-v{int(version)}.npy"


def put_claim_result(
    tenant: str,
    switch: str,
    day: dt.date | str,
    file_id: str,
    version: int,
    result: np.ndarray,
) -> str:
    """Store what a file claimed when committing `version`: a mask over its calls."""
    result = np.asarray(result)
    if result.dtype not in (np.bool_, np.uint8) or result.ndim != 1:
        raise TypeError(f"a claim result is a 1-d bool/uint8 mask, got {result.dtype}")
    key = claim_result_key(tenant, switch, day, file_id, version)
    _put(settings().lake_bucket, key, _npy(result))
    return key


def get_claim_result(
    tenant: str, switch: str, day: dt.date | str, file_id: str, version: int
) -> np.ndarray:
    key = claim_result_key(tenant, switch, day, file_id, version)
    return _from_npy(_get(settings().lake_bucket, key))


# --- re-rating: pending rewrites of a (day, file)'s rated and charges tables -------------
#
#     lake bucket  rerate/tenant={t}/pending/date={d}/{file_id}.parquet          charges: intent
#                  rerate/tenant={t}/pending/date={d}/{file_id}.rated.parquet    rated
#
# While a re-rating of (tenant, day, file) is between "difference decided" and "tables
# replaced": the new tables, the charges one carrying the posting it owes in its schema
# metadata (functions.rate.rerate). Each is written whole, so it exists complete or not at all;
# both are deleted once the live tables have been replaced. Only intents are listed.

_PENDING_KEY = re.compile(
    r"rerate/tenant=(?P<tenant>[^/]+)/pending/date=(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"/(?P<file_id>[^/.]+)\.parquet"
)
_PENDING_SUFFIX = {"charges": ".parquet", "rated": ".rated.parquet"}


def rerate_pending_key(area: str, tenant: str, day: dt.date | str, file_id: str) -> str:
    if area not in _PENDING_SUFFIX:
        raise ValueError(f"invalid pending area {area!r}: use rated or charges")
    tenant = check_name("tenant", tenant)
    file_id = check_token("file id", file_id)
    return f"rerate/tenant={tenant}/pending/date={check_day(day)}/{file_id}{_PENDING_SUFFIX[area]}"


def put_rerate_pending(
    area: str, tenant: str, day: dt.date | str, file_id: str, table: pa.Table
) -> str:
    """Store the re-rated table owed to (day, file), metadata included; returns the key."""
    key = rerate_pending_key(area, tenant, day, file_id)
    _put(settings().lake_bucket, key, table_to_parquet(table))
    return key


def get_rerate_pending(area: str, tenant: str, day: dt.date | str, file_id: str) -> pa.Table:
    """The pending re-rated table of (day, file); NotFoundError if none is pending."""
    return table_from_parquet(
        _get(settings().lake_bucket, rerate_pending_key(area, tenant, day, file_id))
    )


def delete_rerate_pending(area: str, tenant: str, day: dt.date | str, file_id: str) -> None:
    """Forget a finished re-rating (deleting an absent object is not an error in S3)."""
    client("s3").delete_object(
        Bucket=settings().lake_bucket, Key=rerate_pending_key(area, tenant, day, file_id)
    )


def list_rerate_pending(tenant: str) -> list[tuple[str, str]]:
    """(day, file_id) of every pending re-rating intent of the tenant, sorted."""
    prefix = f"rerate/tenant={check_name('tenant', tenant)}/pending/"
    found = []
    for page in (
        client("s3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=settings().lake_bucket, Prefix=prefix)
    ):
        for entry in page.get("Contents", []):
            match = _PENDING_KEY.fullmatch(entry["Key"])
            if match and match["tenant"] == tenant:
                found.append((match["day"], match["file_id"]))
    return sorted(found)


# --- traffic reads for the API (GET /v1/usage, /v1/cdrs) and their CSV exports -----------
#
#     lake bucket  exports/tenant={t}/{token}/{name}.csv    a CSV too large to answer inline
#
# The API reads a tenant's rated and charges tables of a range of days with boto3 (pyarrow's
# own S3 client does not run under moto), a file's pair at a time, only the columns it needs,
# as the tenant's query role (`tenant_reader`): IAM itself confines those reads to the
# tenant's own lake prefixes, whatever the code asks. Exports are the API's own (its role
# writes and signs them); they expire (infra/template.yaml), the link to one sooner.

EXPORT_LINK_SECONDS = 300
_DAY_KEY = re.compile(r"date=(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})/(?P<file_id>[^/]+)\.parquet")


@dataclass(frozen=True, slots=True)
class DayFile:
    """A file's published tables of one day: rated always, charges if it has them."""

    day: str
    file_id: str
    charges: bool


@functools.lru_cache(maxsize=1)
def _session_of(clients: object) -> boto3.session.Session:
    return boto3.session.Session()


def _session() -> boto3.session.Session:
    """One boto3 session while the store's clients live (a new session loads botocore's
    service models again: ~0.3 s a request)."""
    return _session_of(client("sts"))


def tenant_reader(tenant: str) -> Any:
    """An S3 client holding the tenant's query role's credentials (functions.store.iam; the
    role `tollgate access provision TENANT` made): it may list and read that tenant's lake
    prefixes and nothing else. One AssumeRole per request; credentials are never kept."""
    from functions.store import iam

    issued = iam.query_credentials(check_name("tenant", tenant))
    return _session().client(
        "s3",
        aws_access_key_id=issued.access_key_id,
        aws_secret_access_key=issued.secret_access_key,
        aws_session_token=issued.session_token,
        region_name=issued.region,
    )


def _listed(s3: Any, prefix: str, first: str, last: str) -> set[tuple[str, str]]:
    """(day, file_id) of the tables under `prefix` of days first..last: one listing walk
    from the first day's partition, stopped past the last."""
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings().lake_bucket, Prefix=prefix, StartAfter=f"{prefix}date={first}"
    )
    found = set()
    for page in pages:
        for entry in page.get("Contents", []):
            match = _DAY_KEY.fullmatch(entry["Key"].removeprefix(prefix))
            if match is None:
                continue
            if match["day"] > last:
                return found
            if match["day"] >= first:
                found.add((match["day"], match["file_id"]))
    return found


def day_files(
    tenant: str, first: dt.date | str, last: dt.date | str, s3: Any = None
) -> list[DayFile]:
    """The tenant's published rated tables of days first..last, by (day, file id), each
    with whether its charges table exists (listed, never probed: a 404 needs a grant on
    the whole bucket, which a tenant's role does not have)."""
    s3 = s3 or client("s3")
    first, last = check_day(first), check_day(last)
    tenant = check_name("tenant", tenant)
    rated = _listed(s3, f"rated/tenant={tenant}/", first, last)
    charged = _listed(s3, f"charges/tenant={tenant}/", first, last)
    return [DayFile(day, file_id, (day, file_id) in charged) for day, file_id in sorted(rated)]


def _read_columns(s3: Any, key: str, columns: Sequence[str]) -> pa.Table:
    """Only `columns` (those the table has) of a lake table."""
    data = s3.get_object(Bucket=settings().lake_bucket, Key=key)["Body"].read()
    parquet = pq.ParquetFile(pa.BufferReader(data))
    present = [c for c in columns if c in parquet.schema_arrow.names]
    return parquet.read(columns=present)


def read_file_pairs(
    tenant: str,
    files: Sequence[DayFile],
    rated_columns: Sequence[str],
    charges_columns: Sequence[str],
    s3: Any = None,
    workers: int = 8,
) -> Iterator[tuple[DayFile, pa.Table, pa.Table | None]]:
    """(file, rated, charges or None) of each file in order, read `workers` at a time (a
    window ahead, never the whole range in memory)."""
    from concurrent.futures import ThreadPoolExecutor

    s3 = s3 or client("s3")

    def read(file: DayFile) -> tuple[pa.Table, pa.Table | None]:
        rated = _read_columns(s3, table_key("rated", tenant, file.day, file.file_id), rated_columns)
        if not file.charges:
            return rated, None
        key = table_key("charges", tenant, file.day, file.file_id)
        return rated, _read_columns(s3, key, charges_columns)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        todo = iter(files)
        pending = [(f, pool.submit(read, f)) for f in itertools.islice(todo, 2 * workers)]
        try:
            while pending:
                file, future = pending.pop(0)
                rated, charges = future.result()
                following = next(todo, None)
                if following is not None:
                    pending.append((following, pool.submit(read, following)))
                yield file, rated, charges
        finally:  # a reader that stops early (a full page) does not wait for the window
            for _, future in pending:
                future.cancel()


def export_key(tenant: str, name: str) -> str:
    """A fresh key under the tenant's exports prefix (an unguessable folder per export)."""
    import secrets

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}", name):
        raise ValueError(f"invalid export name {name!r}")
    return f"exports/tenant={check_name('tenant', tenant)}/{secrets.token_hex(16)}/{name}"


def put_export(tenant: str, name: str, source: Path, content_type: str) -> str:
    """Upload a local file as an export of the tenant's; returns its key."""
    key = export_key(tenant, name)
    _upload(settings().lake_bucket, key, source, ContentType=content_type)
    return key


def export_link(key: str, expires_in: int = EXPORT_LINK_SECONDS) -> str:
    """A pre-signed GET of an export, valid `expires_in` seconds, served as a download."""
    if not key.startswith("exports/tenant="):
        raise ValueError(f"not an export key: {key!r}")
    filename = key.rsplit("/", 1)[-1]
    # Signature version 4, whatever the shared client's default: every region takes it.
    signer = _session().client("s3", config=Config(signature_version="s3v4"))
    return signer.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": settings().lake_bucket,
            "Key": key,
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
        },
        ExpiresIn=expires_in,
    )
