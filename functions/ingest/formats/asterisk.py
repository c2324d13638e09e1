"""`asterisk-csv`: Asterisk cdr_csv Master.csv, 16 or 18 columns per file (formats.md §2).

RFC 4180 quoting (embedded quotes doubled, as in a clid of `""Alice"" <15551230000>`), unquoted
integers, and an empty unquoted answer for unanswered calls. Times are wall-clock in the
switch's `timezone` (UTC for installs with usegmtime=yes, the shipped sample's setting).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.formats.source import read_csv_rows, sniff_width
from functions.ingest.numbers import NumberingPlan
from functions.ingest.validate import (
    TIME_FIELDS,
    MappedRows,
    empty_parsed_file,
    parse_local_times,
    validate,
)
from functions.shared.cdr import ParsedFile

NAME = "asterisk-csv"

COLUMNS_16 = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
# loguniqueid=yes and loguserfield=yes, as in the shipped cdr.conf.sample.
COLUMNS_18 = (*COLUMNS_16, "uniqueid", "userfield")

# Canonical field ← Master.csv column. call_id and supplier are derived, see below.
FIELDS: dict[str, str] = {
    "caller": "src",
    "callee": "dst",
    "start_time": "start",
    "answer_time": "answer",
    "end_time": "end",
    "billsec": "billsec",
    "disposition": "disposition",
    "customer": "accountcode",
}

DISPOSITIONS: dict[str, str] = {
    "ANSWERED": "ANSWERED",
    "NO ANSWER": "NO_ANSWER",
    "BUSY": "BUSY",
    "FAILED": "FAILED",
    "CONGESTION": "CONGESTION",
    "CANCEL": "CANCEL",
}

# `SIP/carrierB-0000001b`, `PJSIP/carrierB-00000004`, `IAX2/carrierB-1234`: technology, peer
# (the supplier's trunk name), then the channel's sequence suffix (and `;1`/`;2` for Local).
_PEER = r"^[A-Za-z0-9_]+/(?P<peer>.+?)-[0-9a-fA-F]+(?:;[0-9]+)?$"


WIDTHS = (len(COLUMNS_16), len(COLUMNS_18))


def parse(
    data: bytes,
    *,
    timezone: str = "UTC",
    source: str = "<file>",
    width: int | None = None,
    numbering: NumberingPlan | None = None,
) -> ParsedFile:
    """Master.csv rows; call_id is uniqueid (18 columns) or channel@start (16 columns).

    Trunks are channel peers: ingress the peer of `channel` (the customer's), egress the peer
    of `dstchannel`; the whole `dstchannel` is the attempt's leg, as route advance writes one
    row per try under one uniqueid, each with its own outgoing channel.
    """
    if not data or data.isspace():
        return empty_parsed_file()
    # `width` is given when a file is read in parts: the layout is the whole file's.
    width = width or sniff_width(data, WIDTHS, source=source)
    names = list(COLUMNS_16 if width == len(COLUMNS_16) else COLUMNS_18)
    rows = read_csv_rows(data, source=source, column_names=names)
    table = rows.table
    fields: dict[str, object] = {"line": rows.line}
    for canonical, column in FIELDS.items():
        key = f"{canonical}_text" if canonical in TIME_FIELDS else canonical
        fields[key] = table[column]
    fields["call_id"] = call_ids(table)
    fields["supplier"] = supplier_from_dstchannel(table["dstchannel"])
    fields["ingress_trunk"] = channel_peer(table["channel"])
    fields["egress_trunk"] = fields["supplier"]
    fields["egress_leg"] = table["dstchannel"]
    fields["disposition"] = pc.coalesce(
        pc.take(
            pa.array(list(DISPOSITIONS.values())),
            pc.index_in(table["disposition"], pa.array(list(DISPOSITIONS))),
        ),
        table["disposition"],  # unknown words reach validation as they are: bad_disposition
    )
    times = parse_local_times({f: table[FIELDS[f]] for f in TIME_FIELDS}, timezone)
    for name, (instants, problem) in times.items():
        fields[name] = instants
        fields[f"{name}_problem"] = problem
    mapped = MappedRows(
        fields=pa.table(fields),
        raw=rows.raw,
        rejected=rows.rejected,
    )
    return validate(mapped, numbering)


def call_ids(table: pa.Table):
    """uniqueid when logged; otherwise `<channel>@<start>`.

    Without loguniqueid nothing in a 16-column row is unique by itself, but a channel name
    (`SIP/trunk-0000001a`) is unique among live channels and start has one-second resolution,
    so the pair identifies the call and is the same every time the file is read.
    """
    if "uniqueid" in table.column_names:
        return table["uniqueid"]
    derived = pc.binary_join_element_wise(table["channel"], table["start"], "@")
    blank = pc.or_(pc.equal(table["channel"], ""), pc.equal(table["start"], ""))
    return pc.if_else(blank, "", derived)


def supplier_from_dstchannel(dstchannel):
    """The peer of the outgoing channel: `SIP/carrierB-0000001b` → `carrierB`; else null."""
    return channel_peer(dstchannel)


def channel_peer(channel):
    """The peer (trunk) a channel name was made for: `SIP/carrierA-0000001a` → `carrierA`;
    null when the name has no peer (empty, or not `tech/peer-suffix`)."""
    peer = pc.struct_field(pc.extract_regex(channel, _PEER), [0])
    return pc.if_else(pc.equal(peer, ""), pa.scalar(None, pa.string()), peer)
