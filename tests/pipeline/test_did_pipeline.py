"""Issue 10 §4 through the pipeline: inbound calls to a DID are charged to its owner, once.

Before DIDs, a call whose callee is a rented number was charged to nobody but its calling
and terminating parties; now the DID's owner pays its per-minute rate (component `did`),
in the lake's cdrs_charges and in its balance, exactly once under redelivery.
"""

from __future__ import annotations

from decimal import Decimal

from functions.store import files, lake, ledger
from tests.pipeline.carrier import (
    DAY,
    HEADER,
    TENANT,
    cdr_line,
    drop,
    ingest_drop,
    rate_ingested,
    run,
    set_up_carrier,
)

DID = "442071234567"
# An upstream carrier (no account here) delivers two calls to the rented number, and retail
# calls the UK through bt as usual. 61 s at 0.002/min billed per second: 0.002033 each.
INBOUND = (
    "\n".join(
        [
            HEADER,
            cdr_line("in1", "upstream", "", DID, 61),
            cdr_line("in2", "upstream", "", DID, 61, minute=3),
            cdr_line("in3", "upstream", "", "442071234568", 61),  # not rented
            cdr_line("out1", "retail", "bt", "442079460000", 60),  # usage: 0.015 / 0.010
        ]
    )
    + "\n"
)


def test_inbound_did_calls_are_charged_to_the_owner_once(aws, tmp_path):
    set_up_carrier(tmp_path)
    run("did", "add", TENANT, DID, "--account", "direct", "--monthly", "2.00",
        "--per-minute", "0.002", "--from", "2024-05-01")  # fmt: skip
    dropped = drop("inbound.csv", INBOUND)
    for _ in range(2):  # the same S3 event delivered twice
        ingest_drop(dropped)
        rate_ingested(dropped.file_id)

    assert ledger.get_balance(TENANT, "direct")[0] == -(2_033 + 2_033)
    assert ledger.get_balance(TENANT, "retail")[0] == -15_000
    assert len(files.list_files(TENANT)) == 1

    charges = lake.get_table("charges", TENANT, DAY, dropped.file_id)
    did_rows = sorted(
        (r for r in charges.to_pylist() if r["component"] == "did"), key=lambda r: r["call_id"]
    )
    assert [(r["call_id"], r["account"], r["prefix"], r["billed_seconds"], r["amount"])
            for r in did_rows] == [
        ("in1", "direct", DID, 61, Decimal("0.002033")),
        ("in2", "direct", DID, 61, Decimal("0.002033")),
    ]  # fmt: skip
    usage = {r["component"] for r in charges.to_pylist() if r["call_id"] == "out1"}
    assert usage == {"usage"}
