"""Ingest one dropped CDR file: parse, validate, normalise, and hand it to rating.

Every write lands under a key derived from the file's identity, so a redelivered event or a
retried crash rewrites the same objects and records the same file; nothing is ever charged
here. The stores arrive as ports (the adapters in production, fakes in tests).

Memory follows the part, not the file: the CDR file is copied to local disk (the lake port's
spool; a Lambda's /tmp is disk), gunzipped there if it is gzip, memory-mapped, and parsed a
part at a time (`iter_cdr_chunks`); each part's rows are appended to the day's normalised
Parquet file and to the quarantine file in the spool, and the finished files are uploaded
once the whole file has been read. A file refused half-way uploads nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import mmap
import zlib
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.formats import iter_cdr_chunks
from functions.ingest.formats.source import GZIP_MAGIC, CdrFileError
from functions.shared.cdr import TRUNK_COLUMNS, ParsedFile

# CDR fields a switch may name its customer or supplier account by (`assign_parties`).
STRING_FIELDS = (
    "call_id",
    "caller",
    "callee",
    "disposition",
    "customer",
    "supplier",
    *TRUNK_COLUMNS,
)


@dataclass(frozen=True, slots=True)
class DroppedFile:
    """A CDR file that arrived in the CDR bucket, as the S3 event named it."""

    bucket: str
    key: str
    etag: str
    tenant: str
    switch: str
    name: str
    arrived: dt.date  # the event's day: where the file's quarantine rows are filed
    size: int | None = None  # bytes, as the event said (kept with a file refused whole)

    @property
    def file_id(self) -> str:
        """The same object (bucket, key, content) always gets the same id."""
        digest = hashlib.sha256(f"{self.bucket}\n{self.key}\n{self.etag}".encode()).hexdigest()
        return digest[:32]


_BLOCK = 1 << 20  # bytes gunzipped at a time
# Bytes of CDR text parsed at a time. A part's tables and the validation's work arrays take
# ~8 bytes of memory per byte of text: 16 MiB keeps a part near 130 MB, next to the state
# that spans parts (every earlier call id and attempt: ~100 bytes per CDR of the file).
CHUNK_BYTES = 16 * 1024 * 1024


class Spool(Protocol):
    """Local files of one invocation (functions.store.lake.Spool)."""

    def __enter__(self) -> Spool: ...
    def __exit__(self, *exc_info: Any) -> None: ...
    def path(self, name: Hashable) -> Path: ...
    def write(self, name: Hashable, table: pa.Table) -> None: ...


class CdrFiles(Protocol):
    Spool: Callable[[], Spool]

    def fetch_cdr(self, tenant: str, switch: str, name: str, spool: Spool) -> Path: ...
    def put_spooled(self, area, tenant, day, file_id: str, spool: Spool, name) -> str: ...


class Switches(Protocol):
    def get_switch(self, tenant: str, switch: str) -> Any: ...


class FileLedger(Protocol):
    def get_file(self, tenant: str, file_id: str) -> Any: ...
    def put_file(self, tenant: str, file_id: str, status: str, counts=None, meta=None) -> bool: ...


class RateRequests(Protocol):
    def send_rate_request(self, tenant: str, switch: str, file_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    file_id: str
    status: str  # ingested | rejected | already (seen before; rating re-requested)
    rows: int = 0
    accepted: int = 0
    quarantined: int = 0
    error: str = ""


def ingest(
    drop: DroppedFile,
    *,
    lake: CdrFiles,
    switches: Switches,
    files: FileLedger,
    rate_requests: RateRequests,
    chunk_bytes: int = CHUNK_BYTES,
) -> IngestOutcome:
    """Read, validate and normalise a dropped file, then ask for it to be rated.

    `chunk_bytes`: about how much of the file's text is parsed at a time."""
    file_id = drop.file_id
    try:
        record = files.get_file(drop.tenant, file_id)
    except LookupError:
        record = None
    if record is not None:
        # Seen before. Its tables were written before its record, so only the hand-off
        # to rating may be missing (a crash after the record): ask again; rating is
        # idempotent, and a file already rated ignores the request.
        if record.status == "ingested":
            rate_requests.send_rate_request(drop.tenant, drop.switch, file_id)
        return IngestOutcome(file_id, "already")

    meta = {"switch": drop.switch, "name": drop.name, "key": drop.key, "etag": drop.etag}
    if drop.size is not None:
        meta["size"] = drop.size
    with lake.Spool() as spool:
        try:
            switch = switches.get_switch(drop.tenant, drop.switch)
            local = lake.fetch_cdr(drop.tenant, drop.switch, drop.name, spool)
            read = normalise(local, switch, spool, source=drop.name, chunk_bytes=chunk_bytes)
        except (LookupError, ValueError) as error:
            # Unknown tenant or switch, unknown format, unreadable file: nothing to retry.
            # The raw file stays where it was dropped; the record says why it was refused.
            files.put_file(drop.tenant, file_id, "rejected", meta=meta | {"error": str(error)})
            return IngestOutcome(file_id, "rejected", error=str(error))
        for day in read.days:
            lake.put_spooled("normalized", drop.tenant, day, file_id, spool, ("normalized", day))
        lake.put_spooled("quarantine", drop.tenant, drop.arrived, file_id, spool, QUARANTINE)

    counts = {"rows": read.rows_in, "quarantined": read.quarantined}
    meta |= {
        "days": [day.isoformat() for day in read.days],
        "quarantine_day": drop.arrived.isoformat(),
        "format": switch.format,
    }
    files.put_file(drop.tenant, file_id, "ingested", counts=counts, meta=meta)
    rate_requests.send_rate_request(drop.tenant, drop.switch, file_id)
    return IngestOutcome(file_id, "ingested", read.rows_in, read.accepted, read.quarantined)


QUARANTINE = "quarantine"  # the spool's name for the quarantine table


@dataclass(frozen=True, slots=True)
class Normalised:
    """What reading a file wrote to the spool: a normalised table per day, the quarantine."""

    days: list[dt.date]
    rows_in: int
    accepted: int
    quarantined: int


def normalise(
    local: Path, switch: Any, spool: Spool, *, source: str, chunk_bytes: int | None = None
) -> Normalised:
    """Parse and validate a local CDR file a part at a time into the spool's tables:
    `("normalized", day)` per UTC day of call start, and `QUARANTINE` (always written, even
    empty, with the file's name on every row)."""
    days: set[dt.date] = set()
    rows_in = accepted = quarantined = 0
    for part in _parts(local, switch, spool, source=source, chunk_bytes=chunk_bytes):
        cdrs = assign_parties(
            part.cdrs, switch.customer_field, switch.supplier_field, switch.default_supplier
        )
        for day, table in split_by_day(cdrs):
            spool.write(("normalized", day), table)
            days.add(day)
        rejected = part.quarantine
        names = pa.repeat(pa.scalar(source), rejected.num_rows).cast(pa.string())
        spool.write(QUARANTINE, rejected.add_column(0, "file", names))
        rows_in += part.rows_in
        accepted += cdrs.num_rows
        quarantined += rejected.num_rows
        del part, cdrs, rejected
        # What the part freed goes back to the system, not to Arrow's allocator's reserve.
        pa.default_memory_pool().release_unused()
    return Normalised(sorted(days), rows_in, accepted, quarantined)


def _parts(
    local: Path, switch: Any, spool: Spool, *, source: str, chunk_bytes: int | None
) -> Iterator[ParsedFile]:
    """The file's parts, read from a memory map of its (gunzipped) local copy.

    Mapped pages count as the process's memory while they stay mapped, so the pages read so
    far are dropped after every part (they stay in the page cache; the next part's are
    mapped in as it is read): the map holds about one part, never the file.
    """
    path = _gunzipped(local, spool, source)
    with path.open("rb") as handle:
        size = path.stat().st_size
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    parts = iter_cdr_chunks(
        data,
        switch.format,
        timezone=switch.timezone,
        source=source,
        chunk_bytes=chunk_bytes,
        template=switch.template,
        numbering=switch.numbering,
        mapping=getattr(switch, "column_mapping", None),
    )
    drop_pages = isinstance(data, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED")  # not Windows
    try:
        for part in parts:
            if drop_pages:
                data.madvise(mmap.MADV_DONTNEED)
            yield part
    finally:
        parts.close()  # lets go of its view of the map, so the map can close now
        del parts
        if isinstance(data, mmap.mmap):
            with contextlib.suppress(BufferError):  # still viewed: closed when collected
                data.close()


def _gunzipped(local: Path, spool: Spool, source: str) -> Path:
    """The local file, or its gunzipped copy when it starts with the gzip magic (whatever it
    is called): decompressed to disk a block at a time, never whole in memory."""
    with local.open("rb") as head:
        if head.read(len(GZIP_MAGIC)) != GZIP_MAGIC:
            return local
    target = spool.path("cdr.gunzipped")
    with gzip.open(local, "rb") as packed, target.open("wb") as plain:
        while True:
            try:
                block = packed.read(_BLOCK)
            except (OSError, EOFError, zlib.error) as exc:
                raise CdrFileError(f"{source}: gzip data is corrupt or truncated ({exc})") from exc
            if not block:
                break
            plain.write(block)
    local.unlink()  # /tmp is small: keep one copy
    return target


def assign_parties(
    cdrs: pa.Table, customer_field: str, supplier_field: str, default_supplier: str | None = None
) -> pa.Table:
    """Point `customer` and `supplier` at the CDR fields this switch uses to name them;
    calls whose CDR names no supplier go to the switch's default supplier, if it has one.

    A switch whose trunks are mapped to accounts has them resolved at rating time instead
    (functions.rate.trunks), from the trunk columns kept in the normalised table."""
    for role, field in (("customer", customer_field), ("supplier", supplier_field)):
        if field == role:
            continue
        if field not in STRING_FIELDS:
            raise ValueError(f"switch maps {role} to {field!r}, not one of {STRING_FIELDS}")
        cdrs = cdrs.set_column(cdrs.schema.get_field_index(role), role, cdrs.column(field))
    if default_supplier:
        supplier = pc.fill_null(cdrs.column("supplier"), default_supplier)
        supplier = pc.if_else(pc.equal(supplier, ""), default_supplier, supplier)
        cdrs = cdrs.set_column(cdrs.schema.get_field_index("supplier"), "supplier", supplier)
    return cdrs


def split_by_day(cdrs: pa.Table) -> list[tuple[dt.date, pa.Table]]:
    """The file's CDRs per UTC day of their start (the lake's date partition)."""
    day = pc.cast(cdrs.column("start_time"), pa.date32())
    out = []
    for value in pc.unique(day).to_pylist():
        out.append((value, cdrs.filter(pc.equal(day, pa.scalar(value, pa.date32())))))
    return sorted(out, key=lambda pair: pair[0])
