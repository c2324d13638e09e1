"""A small carrier for pipeline tests: one tenant, a reseller chain, two suppliers, decks.

Set up through the operator CLI's code path (`functions.cli.main`), as an operator would;
its files go through the ingest and rate services in-process, with the real adapters.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from functions.cli import main
from functions.ingest.service import DroppedFile, IngestOutcome, ingest
from functions.rate.service import DeckCache, RateOutcome, rate_file
from functions.store import accounts, events, files, lake, ledger, queues

TENANT = "acme"
SWITCH = "sbc1"
DAY = dt.date(2024, 5, 1)

HEADER = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier"
)

# India mobile sold at 0.008 and bought at 0.0065 (the README's example), UK with 60/6.
DECKS = {
    # what the carrier sells to its direct customer and to the reseller
    "direct": "prefix,destination,rate,increment\n917,India - Mobile,0.008,1/1\n44,UK,0.012,60/6\n",
    "resellco": "prefix,destination,rate\n917,India - Mobile,0.0075\n44,UK,0.010\n",
    # what the reseller sells to its own customer
    "retail": "prefix,destination,rate\n917,India - Mobile,0.0095\n44,UK,0.015\n",
    # what the carrier pays its suppliers
    "tata": "prefix,destination,rate\n91,India,0.0065\n",
    "bt": "prefix,destination,rate,connect_fee\n44,UK,0.006,0.0002\n",
}


def run(*argv: str) -> None:
    status = main(list(argv))
    if status != 0:
        raise AssertionError(f"tollgate {' '.join(argv)} exited {status}")


def set_up_carrier(tmp_path: Path) -> None:
    tmp_path.mkdir(parents=True, exist_ok=True)
    run("tenant", "create", TENANT)
    run("switch", "create", TENANT, SWITCH, "--format", "generic")
    run("account", "create", TENANT, "resellco", "--kind", "reseller")
    run("account", "create", TENANT, "retail", "--kind", "customer", "--parent", "resellco")
    run("account", "create", TENANT, "direct", "--kind", "customer", "--prepaid")
    run("account", "create", TENANT, "tata", "--kind", "supplier")
    run("account", "create", TENANT, "bt", "--kind", "supplier")
    for account, text in DECKS.items():
        path = tmp_path / f"{account}.csv"
        path.write_text(text)
        run("deck", "upload", TENANT, account, str(path))


def cdr_line(
    call_id: str, customer: str, supplier: str, callee: str, billsec: int, minute=0
) -> str:
    start = f"2024-05-01T10:{minute:02d}:00Z"
    if billsec == 0:
        return f"{call_id},15551230000,{callee},{start},,{start},0,NO_ANSWER,{customer},{supplier}"
    answer = f"2024-05-01T10:{minute:02d}:05Z"
    end = (dt.datetime(2024, 5, 1, 10, minute, 5) + dt.timedelta(seconds=billsec)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    return (
        f"{call_id},15551230000,{callee},{start},{answer},{end},{billsec},ANSWERED,"
        f"{customer},{supplier}"
    )


FIRST_FILE = (
    "\n".join(
        [
            HEADER,
            cdr_line("c1", "direct", "tata", "+91 7012 345678", 60),  # 0.008000 / 0.006500
            cdr_line("c2", "retail", "tata", "917012345679", 61),  # 0.009658, 0.007625, 0.006608
            cdr_line("c3", "direct", "bt", "442071234567", 61),  # 60/6: 66 s → 0.013200 / 0.006300
            cdr_line("c4", "direct", "tata", "917012345670", 0),  # unanswered: 0
            cdr_line("c5", "direct", "tata", "33123456789", 30),  # no rate: unrated
            "c6,15551230000,44abc,2024-05-01T10:00:00Z,,2024-05-01T10:00:00Z,0,NO_ANSWER,direct,bt",
            cdr_line(
                "c1", "direct", "tata", "917012345678", 60
            ),  # duplicate id in file: quarantined
        ]
    )
    + "\n"
)

# Resent: c1 and c2 again (already charged), plus one new call.
SECOND_FILE = (
    "\n".join(
        [
            HEADER,
            cdr_line("c1", "direct", "tata", "917012345678", 60),
            cdr_line("c2", "retail", "tata", "917012345679", 61),
            cdr_line(
                "c7", "retail", "tata", "917012345671", 120, minute=5
            ),  # 0.019 / 0.015 / 0.013
        ]
    )
    + "\n"
)

# Balances after both files, in micro-units (payments minus charges; suppliers: owed).
EXPECTED_BALANCES = {
    "direct": -(8_000 + 13_200),
    "retail": -(9_658 + 19_000),
    "resellco": -(7_625 + 15_000),
    "tata": 6_500 + 6_608 + 13_000,
    "bt": 6_300,
}


def drop(name: str, text: str) -> DroppedFile:
    """Put a CDR file into the CDR bucket and return the drop its S3 event names."""
    obj = lake.put_cdr(TENANT, SWITCH, name, text.encode())
    _, etag = lake.get_cdr(TENANT, SWITCH, name)
    return DroppedFile(
        bucket="tollgate-cdr",
        key=obj.key,
        etag=etag,
        tenant=TENANT,
        switch=SWITCH,
        name=name,
        arrived=DAY,
    )


class Published:
    """The event port, recording what was published (delivery is at least once)."""

    def __init__(self) -> None:
        self.details: list[dict] = []

    def publish_file_rated(self, detail: dict) -> None:
        events.publish_file_rated(detail)
        self.details.append(detail)


def ingest_drop(dropped: DroppedFile, **overrides) -> IngestOutcome:
    """Ingest a drop with the real adapters; `overrides` replaces a port or sets chunk_bytes."""
    ports = {"lake": lake, "switches": accounts, "files": files, "rate_requests": queues}
    return ingest(dropped, **(ports | overrides))


def rate_ingested(file_id: str, **overrides) -> RateOutcome:
    """Rate an ingested file of the carrier's switch with the real adapters and fresh decks;
    `overrides` replaces a port (a crashing ledger, a recording events port) or sets part_rows."""
    ports = {
        "lake": lake,
        "files": files,
        "accounts": accounts,
        "ledger": ledger,
        "events": events,
        "decks": DeckCache(),
    }
    return rate_file(TENANT, SWITCH, file_id, **(ports | overrides))


def process_file(name: str, text: str) -> str:
    """Drop a file, ingest it and rate it in-process; its file id."""
    dropped = drop(name, text)
    ingest_drop(dropped)
    rate_ingested(dropped.file_id)
    return dropped.file_id
