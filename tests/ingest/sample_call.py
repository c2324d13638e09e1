"""The sample call of formats.md, which every switch format's example records.

Alice (15551230000) calls London (442071234567) on 1 May 2024: started 12:00:00 UTC,
answered 12:00:07, ended 12:01:12, 65 s billed. Whatever the format, the parser must give
these canonical fields; the rest (ids, parties, route) is the format's own.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


ANSWERED_CALL = {
    "caller": "15551230000",
    "callee": "442071234567",
    "start_time": utc(2024, 5, 1, 12, 0, 0),
    "answer_time": utc(2024, 5, 1, 12, 0, 7),
    "end_time": utc(2024, 5, 1, 12, 1, 12),
    "billsec": 65,
    "disposition": "ANSWERED",
}
