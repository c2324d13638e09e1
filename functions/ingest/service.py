"""Ingest one dropped CDR file: parse, validate, normalise, and hand it to rating.

Every write lands under a key derived from the file's identity, so a redelivered event or a
retried crash rewrites the same objects and records the same file; nothing is ever charged
here. The stores arrive as ports (the adapters in production, fakes in tests).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.formats import parse_cdr_file
from functions.shared.cdr import TRUNK_COLUMNS

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

    @property
    def file_id(self) -> str:
        """The same object (bucket, key, content) always gets the same id."""
        digest = hashlib.sha256(f"{self.bucket}\n{self.key}\n{self.etag}".encode()).hexdigest()
        return digest[:32]


class CdrFiles(Protocol):
    def get_cdr(self, tenant: str, switch: str, name: str) -> tuple[bytes, str]: ...
    def put_table(self, area: str, tenant: str, day: Any, file_id: str, table: pa.Table) -> str: ...


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
) -> IngestOutcome:
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
    try:
        switch = switches.get_switch(drop.tenant, drop.switch)
        data, _ = lake.get_cdr(drop.tenant, drop.switch, drop.name)
        parsed = parse_cdr_file(
            data,
            switch.format,
            timezone=switch.timezone,
            source=drop.name,
            template=switch.template,
            numbering=switch.numbering,
        )
        cdrs = assign_parties(
            parsed.cdrs,
            switch.customer_field,
            switch.supplier_field,
            switch.default_supplier,
        )
    except (LookupError, ValueError) as error:
        # Unknown tenant or switch, unknown format, unreadable file: nothing to retry.
        # The raw file stays where it was dropped; the record says why it was refused.
        files.put_file(drop.tenant, file_id, "rejected", meta=meta | {"error": str(error)})
        return IngestOutcome(file_id, "rejected", error=str(error))

    days = []
    for day, table in split_by_day(cdrs):
        lake.put_table("normalized", drop.tenant, day, file_id, table)
        days.append(day.isoformat())
    quarantine = parsed.quarantine.add_column(
        0, "file", pa.repeat(pa.scalar(drop.name), parsed.quarantine.num_rows).cast(pa.string())
    )
    lake.put_table("quarantine", drop.tenant, drop.arrived, file_id, quarantine)
    counts = {"rows": parsed.rows_in, "quarantined": parsed.quarantine.num_rows}
    meta |= {"days": days, "quarantine_day": drop.arrived.isoformat(), "format": switch.format}
    files.put_file(drop.tenant, file_id, "ingested", counts=counts, meta=meta)
    rate_requests.send_rate_request(drop.tenant, drop.switch, file_id)
    return IngestOutcome(
        file_id, "ingested", parsed.rows_in, cdrs.num_rows, parsed.quarantine.num_rows
    )


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
