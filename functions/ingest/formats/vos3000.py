"""`vos3000`: VOS3000 GetCdr InfoCdr records as JSON (formats.md §3).

Accepted layouts: a JSON array of InfoCdr objects, an object holding them under `infoCdrs` or
`cdrs`, or JSON Lines. `start`/`stop` are ms since 1970 UTC (setup and release), `holdTime` is
the talk time in seconds, so the answer instant is `stop - holdTime` when holdTime > 0.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.formats.source import CdrFileError, read_json_records
from functions.ingest.numbers import NumberingPlan
from functions.ingest.validate import MappedRows, blank_to_null, cast_or_null, validate
from functions.shared.cdr import UTC_MICROS, ParsedFile

NAME = "vos3000"
WRAPPERS = ("infoCdrs", "cdrs")

# Canonical field ← InfoCdr keys, first present (non-empty) wins.
FIELDS: dict[str, tuple[str, ...]] = {
    "call_id": ("flowNo",),
    "caller": ("callerE164",),
    "callee": ("calleeE164",),
    "start": ("start",),
    "stop": ("stop",),
    "billsec": ("holdTime",),
    "customer": ("account", "callerGateway"),
    "supplier": ("calleeGateway",),
    # Post-dial delay as the customer experienced it, else as the supplier delivered it.
    "pdd_ms": ("callerpdd", "calleepdd"),
    # The gateways (VOS's trunks) and peer IPs the call came in from and went out to.
    "ingress_trunk": ("callerGateway",),
    "ingress_ip": ("callerip",),
    "egress_trunk": ("calleeGateway",),
    "egress_ip": ("calleeip",),
}


def parse(
    data: bytes,
    *,
    timezone: str = "UTC",
    source: str = "<file>",
    numbering: NumberingPlan | None = None,
) -> ParsedFile:
    """InfoCdr records; `timezone` is unused (VOS gives epoch milliseconds).

    Disposition: ANSWERED when holdTime > 0, otherwise NO_ANSWER. VOS's endReason codes would
    distinguish busy/failed, but no verified vendor table exists yet (formats.md §3), so
    unanswered calls are not split further.
    """
    if not data or data.isspace():
        raise CdrFileError(f"{source}: no JSON document in the file")
    decoded = read_json_records(data, source=source, wrappers=WRAPPERS)
    columns: dict[str, list[str]] = {name: [] for name in FIELDS}
    for record in decoded.records:
        if not isinstance(record, dict):
            record = {}  # quarantined as missing fields, raw text kept
        for name, keys in FIELDS.items():
            columns[name].append(_first(record, keys))
    table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    start = _millis(table["start"])
    stop = _millis(table["stop"])
    hold = cast_or_null(blank_to_null(table["billsec"]), pa.int64())
    answered = pc.fill_null(pc.greater(hold, 0), False)
    answer_ms = pc.if_else(answered, pc.subtract(stop, pc.multiply(hold, 1000)), None)
    fields = {
        "line": pa.array(decoded.lines, pa.int64()),
        "call_id": table["call_id"],
        "caller": table["caller"],
        "callee": table["callee"],
        "start_time": _instant(start),
        "start_time_text": table["start"],
        "answer_time": _instant(answer_ms),
        "answer_time_text": pc.fill_null(pc.cast(answer_ms, pa.string()), ""),
        "end_time": _instant(stop),
        "end_time_text": table["stop"],
        "billsec": table["billsec"],
        "disposition": pc.if_else(answered, "ANSWERED", "NO_ANSWER"),
        "customer": table["customer"],
        "supplier": table["supplier"],
        "pdd_ms": table["pdd_ms"],
        "ingress_trunk": table["ingress_trunk"],
        "ingress_ip": table["ingress_ip"],
        "egress_trunk": table["egress_trunk"],
        "egress_ip": table["egress_ip"],
    }
    raw_column = pa.array(decoded.raws, pa.string())
    mapped = MappedRows(
        fields=pa.table(fields),
        raw=lambda positions: raw_column.take(pa.array(positions, pa.int64())),
        rejected=decoded.rejected,
    )
    return validate(mapped, numbering)


def _first(record: dict, keys: tuple[str, ...]) -> str:
    for key in keys:
        value = record.get(key)
        if value is not None and value != "":
            return str(value)
    return ""


def _millis(text):
    return cast_or_null(blank_to_null(text), pa.int64())


def _instant(millis):
    return pc.cast(pc.multiply(millis, 1000), pa.int64()).cast(UTC_MICROS)
