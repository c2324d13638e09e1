"""What a reconciliation of a partner's CDRs against ours is: every CDR of either side in
exactly one class, and the totals per class.

Both sides come in as PARTY_SCHEMA tables (one per side, built by the readers: our rated
CDRs for the partner from the lake, theirs parsed from their file). The matcher pairs them
one to one and returns ROW_SCHEMA rows, one per matched pair or per unmatched CDR:

- matched            a pair whose durations agree (within the tolerance) and amounts agree
- duration_mismatch  a pair whose answered seconds differ by more than the tolerance
- rate_mismatch      a pair whose durations agree but whose billed amounts differ
- missing_ours       their CDR with no partner of ours (they bill a call we have no record of)
- missing_theirs     our CDR with no partner of theirs

Money is decimal128(18, 6) in the reconciliation's currency; a side with no amount (a switch
format that carries no price) has null amounts, and then no pair is a rate_mismatch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa

MONEY = pa.decimal128(18, 6)
UTC_MICROS = pa.timestamp("us", tz="UTC")

CLASSES = ("matched", "duration_mismatch", "rate_mismatch", "missing_ours", "missing_theirs")

# One side's CDRs, as the matcher takes them. `callee` is normalised E.164 digits (no `+`,
# no `00`, tech prefixes stripped); `billsec` answered seconds; `amount` what that side bills.
PARTY_SCHEMA = pa.schema(
    [
        pa.field("line", pa.int64(), nullable=False),  # the source file's line (ours: lake row)
        pa.field("call_id", pa.string()),
        pa.field("callee", pa.string(), nullable=False),
        pa.field("start_time", UTC_MICROS, nullable=False),
        pa.field("billsec", pa.int64(), nullable=False),
        pa.field("amount", MONEY),
    ]
)

# One row per matched pair or unmatched CDR. `their_start` is as they wrote it (before the
# clock offset is applied); `difference` = their_amount - our_amount (null when either is).
ROW_SCHEMA = pa.schema(
    [
        pa.field("class", pa.string(), nullable=False),
        pa.field("callee", pa.string(), nullable=False),
        pa.field("our_line", pa.int64()),
        pa.field("their_line", pa.int64()),
        pa.field("our_call_id", pa.string()),
        pa.field("their_call_id", pa.string()),
        pa.field("our_start", UTC_MICROS),
        pa.field("their_start", UTC_MICROS),
        pa.field("our_billsec", pa.int64()),
        pa.field("their_billsec", pa.int64()),
        pa.field("our_amount", MONEY),
        pa.field("their_amount", MONEY),
        pa.field("difference", MONEY),
    ]
)


@dataclass(frozen=True, slots=True)
class ClassTotal:
    """A class's count, answered minutes (of the side that has the call; the larger of the
    two for a pair, exact seconds / 60) and money (their amount - ours over the class)."""

    count: int
    seconds: int
    difference: Decimal

    @property
    def minutes(self) -> Decimal:
        return Decimal(self.seconds) / 60


@dataclass(frozen=True, slots=True)
class Reconciliation:
    partner: str
    role: str  # customer | supplier: what the partner is to us for these calls
    currency: str
    date_from: dt.date
    date_to: dt.date  # inclusive
    clock_offset_seconds: Decimal  # their clock minus ours, as estimated and corrected
    start_tolerance_seconds: int
    duration_tolerance_seconds: int
    rows: pa.Table  # ROW_SCHEMA
    totals: dict[str, ClassTotal]  # every name of CLASSES
    our_amount: Decimal
    their_amount: Decimal

    @property
    def difference(self) -> Decimal:
        return self.their_amount - self.our_amount
