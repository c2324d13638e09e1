"""The canonical CDR: what every switch format is parsed into, column-wise as Arrow.

A file of CDRs is never a list of Python objects: parsers produce a `pa.Table` with
`CDR_SCHEMA`, and rows that cannot be accepted become `QUARANTINE_SCHEMA` rows instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

UTC_MICROS = pa.timestamp("us", tz="UTC")

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
    ]
)

# Reason codes, stable strings that operators filter on.
QUARANTINE_REASONS = (
    "column_count",  # row does not have the format's number of fields
    "malformed",  # row could not be decoded at all (bad JSON, bad quoting)
    "missing_field",  # a required field is empty
    "bad_number",  # callee is not a dialable number after normalisation
    "bad_time",  # a timestamp does not parse, or times are out of order
    "bad_duration",  # billsec negative or not an integer
    "duplicate_call_id",  # same call id earlier in the same file (the first one wins)
    "bad_disposition",  # disposition not one of DISPOSITIONS after the format's mapping
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

    def __post_init__(self) -> None:
        accounted = self.cdrs.num_rows + self.quarantine.num_rows
        if accounted != self.rows_in:
            raise AssertionError(
                f"{self.rows_in} rows in, but {self.cdrs.num_rows} accepted + "
                f"{self.quarantine.num_rows} quarantined"
            )
