"""The canonical CDR: what every switch format is parsed into, column-wise as Arrow.

A file of CDRs is never a list of Python objects: parsers produce a `pa.Table` with
`CDR_SCHEMA`, and rows that cannot be accepted become `QUARANTINE_SCHEMA` rows instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    import numpy as np

UTC_MICROS = pa.timestamp("us", tz="UTC")
# A mean opinion score as the lake keeps it: 1.00 to 5.00.
MOS_TYPE = pa.decimal128(3, 2)

CDR_SCHEMA = pa.schema(
    [
        # Physical line of the source file (1-based; header is line 1). For JSON formats the
        # line on which the record starts.
        pa.field("line", pa.int64(), nullable=False),
        pa.field("call_id", pa.string(), nullable=False),
        pa.field("caller", pa.string()),
        # Normalised E.164 digits (no '+', no '00'), see functions.ingest.numbers.
        pa.field("callee", pa.string(), nullable=False),
        pa.field("start_time", UTC_MICROS, nullable=False),
        pa.field("answer_time", UTC_MICROS),
        pa.field("end_time", UTC_MICROS),
        # Answered (talk) seconds: what billing increments apply to. 0 = unanswered.
        pa.field("billsec", pa.int64(), nullable=False),
        pa.field("disposition", pa.string(), nullable=False),
        pa.field("customer", pa.string()),
        pa.field("supplier", pa.string()),
        pa.field("pdd_ms", pa.int64()),
        # What the switch wrote, before any translation: the callee as sent (tech prefix,
        # national form and all), and the trunks and peer IPs the call came in and went out
        # on. Null where the format or the row does not say. `customer`/`supplier` are
        # resolved from these at rating time, so a trunk mapping added later applies on rerate.
        pa.field("dialled", pa.string()),
        pa.field("ingress_trunk", pa.string()),
        pa.field("ingress_ip", pa.string()),
        pa.field("egress_trunk", pa.string()),
        pa.field("egress_ip", pa.string()),
        # The switch's own name for this attempt's outgoing leg where it has one per attempt
        # (Asterisk's dstchannel, `SIP/carrierB-0000001b`): two tries of one call, even to the
        # same vendor, differ here. See `attempt_keys`.
        pa.field("egress_leg", pa.string()),
        # Call quality where the switch writes it: the MOS it estimated for the call's audio
        # (FreeSWITCH `rtp_audio_in_mos`, a mapped switch's MOS column), rounded half-up to 2
        # places; null where absent or not a score in [1, 5]. See QUALITY_COLUMNS.
        pa.field("mos", MOS_TYPE),
    ]
)

# Where the switch says a call came in and went out; normalised Parquet written before these
# columns existed lacks them (read as null).
TRUNK_COLUMNS = ("ingress_trunk", "ingress_ip", "egress_trunk", "egress_ip")
# Call quality written by some switches only; normalised Parquet written before `mos` existed
# lacks it (read as null). `pdd_ms` is older than the lake and always present.
QUALITY_COLUMNS = ("mos",)
# What tells two attempts of one call apart, first present wins (see `attempt_legs`).
LEG_COLUMNS = ("egress_leg", "egress_trunk")

# Reason codes, stable strings that operators filter on.
QUARANTINE_REASONS = (
    "column_count",  # row does not have the format's number of fields
    "malformed",  # row could not be decoded (bad JSON, a quote never closed, a stray CR)
    "encoding",  # neither UTF-8 nor Windows-1252 (a byte cp1252 leaves undefined)
    "field_too_long",  # a field over 4 KiB, or a CSV line over 1 MiB (raw text cut to 4 KiB)
    "missing_field",  # a required field is empty
    "bad_number",  # callee is not a dialable number after normalisation
    "bad_time",  # a timestamp does not parse, or times are out of order
    "bad_duration",  # billsec negative or not an integer
    "duplicate_call_id",  # the same attempt earlier in the same file (the first one wins)
    "bad_disposition",  # disposition not one of DISPOSITIONS after the format's mapping
    # A Kamailio acc row that makes no call with the others: an answered INVITE without its
    # BYE (an open call), a BYE without its answered INVITE, another method.
    "unpaired",
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("line", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        # The field at fault ("" when the whole row is at fault) and a human sentence.
        pa.field("field", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
    ]
)

# Canonical dispositions; formats map their own vocabularies onto these.
DISPOSITIONS = ("ANSWERED", "NO_ANSWER", "BUSY", "FAILED", "CONGESTION", "CANCEL")


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """A CDR file after parsing and validation: accepted rows, quarantined rows, input rows.

    Invariant: `rows_in == cdrs.num_rows + quarantine.num_rows`.
    """

    cdrs: pa.Table
    quarantine: pa.Table
    rows_in: int
    # Every call id the file's rows carry, accepted or quarantined (distinct): what a later
    # part of the same file is checked against for duplicates when a file is read in chunks.
    call_ids: pa.Array | None = None
    # Every row's attempt, accepted or quarantined, in file order (ATTEMPT_SCHEMA): what a
    # later part's rows with one of these call ids are compared with.
    attempts: pa.Table | None = None
    # The 64-bit key of each of `call_ids` (functions.ingest.validate.call_id_keys), when
    # validation has hashed them already: the check across parts need not hash them again.
    call_id_keys: np.ndarray | None = None

    def __post_init__(self) -> None:
        accounted = self.cdrs.num_rows + self.quarantine.num_rows
        if accounted != self.rows_in:
            raise AssertionError(
                f"{self.rows_in} rows in, but {self.cdrs.num_rows} accepted + "
                f"{self.quarantine.num_rows} quarantined"
            )


# One row per attempt of a file: its call id, start (null when unreadable) and leg.
ATTEMPT_SCHEMA = pa.schema(
    [
        pa.field("call_id", pa.string()),
        pa.field("start_time", UTC_MICROS),
        pa.field("leg", pa.string()),
    ]
)


def attempt_legs(cdrs: pa.Table) -> pa.Array | pa.ChunkedArray | None:
    """Each CDR's leg: `egress_leg`, else `egress_trunk`, else null; None when no row has one.

    A switch that retries a call on another route writes one CDR per try under the same
    call id (Asterisk route advance). Its outgoing channel tells the tries apart, even two
    tries to the same vendor; a format without one has the egress trunk at best, and a
    format with neither writes one try per call id. Absent columns (Parquet written before
    they existed) count as null.
    """
    legs = [cdrs.column(name) for name in LEG_COLUMNS if name in cdrs.column_names]
    legs = [leg for leg in legs if leg.null_count < len(leg)]
    if not legs:
        return None
    leg = pc.coalesce(*legs) if len(legs) > 1 else legs[0]
    return pc.if_else(pc.equal(leg, ""), pa.scalar(None, pa.string()), leg)


def attempt_key_texts(call_id, start_time, leg=None) -> pa.Array:
    """Exact text keys of attempts (call id, start, leg): equal exactly when all three are.

    A leg-less attempt is `call_id|start_micros`, the key calls were claimed by before legs
    existed, so claim sets written then still match. An attempt with a leg is
    `call_id|start_micros>leg`, the leg with `\\` and `|` escaped (`\\\\`, `\\;`): the text
    after the last `|` is then the start alone (digits) or start `>` leg, so no two attempts
    share a key. A missing start (a row quarantined for it) is empty text.
    """
    start = pc.cast(pc.cast(start_time, pa.int64()), pa.string())
    if start.null_count:
        start = pc.fill_null(start, "")
    keys = pc.binary_join_element_wise(call_id, start, "|")
    if leg is not None and leg.null_count < len(leg):
        escaped = pc.replace_substring(pc.replace_substring(leg, "\\", "\\\\"), "|", "\\;")
        keys = pc.coalesce(pc.binary_join_element_wise(keys, escaped, ">"), keys)
    return keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys


def attempt_keys(cdrs: pa.Table) -> pa.Array:
    """Per CDR, what makes it the same attempt again: call id, start and leg (`attempt_legs`).

    The duplicate rule, within a file and across files: an attempt seen before is not charged
    again; two attempts of one call (vendor A failed, vendor B answered) are two attempts.
    """
    return attempt_key_texts(cdrs.column("call_id"), cdrs.column("start_time"), attempt_legs(cdrs))
