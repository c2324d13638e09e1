"""Issue 10 §1 (origin) and §5 (surcharges) through the pipeline on the local stack.

The ncli customer's deck prices Nigeria mobile by the caller's origin and adds a per-minute
surcharge; its supplier's deck adds one too. Before them the importer dropped both columns:
every caller paid the last rate listed and no surcharge was charged. Each surcharge is its
own row of cdrs_charges (component `surcharge`) and moves the balance exactly once, however
often the file is delivered or its calls resent.
"""

from __future__ import annotations

from decimal import Decimal

from functions.store import lake, ledger
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

D = Decimal
NG = "2348031234567"
SELL = (
    "prefix,destination,rate,increment,surcharge,origin\n"
    "234803,Nigeria - Mobile,0.0950,60/1,0.0020,\n"
    "234803,Nigeria - Mobile from FR,0.0900,60/1,0.0030,33\n"
)
BUY = "prefix,destination,rate,surcharge\n234,Nigeria,0.08,0.0005\n"
FRENCH = "33140000000"


def calls(*lines: str) -> str:
    return "\n".join([HEADER, *lines]) + "\n"


FIRST = calls(
    # A French caller, 61 s: 0.0900 x 61/60 = 0.0915 and 0.0030 x 61/60 = 0.00305, each
    # rounded up to cents on its own: 0.10 + 0.01. The supplier: 0.081333 + 0.000508.
    cdr_line("n1", "ncli", "mtn", NG, 61).replace("15551230000", FRENCH, 1),
    # Any other caller, 120 s: 0.19 + 0.004 -> 0.01. The supplier: 0.16 + 0.001.
    cdr_line("n2", "ncli", "mtn", NG, 120, minute=2),
    cdr_line("n3", "ncli", "mtn", NG, 0, minute=4),  # unanswered: no charge, no surcharge
)
RESENT = calls(cdr_line("n2", "ncli", "mtn", NG, 120, minute=2))


def test_surcharges_are_their_own_charges_and_move_balances_exactly_once(aws, tmp_path):
    set_up_carrier(tmp_path)
    run("account", "create", TENANT, "ncli", "--kind", "customer", "--rounding", "up",
        "--decimals", "2")  # fmt: skip
    run("account", "create", TENANT, "mtn", "--kind", "supplier")
    for name, text in (("ncli", SELL), ("mtn", BUY)):
        (tmp_path / f"{name}-deck.csv").write_text(text)
        run("deck", "upload", TENANT, name, str(tmp_path / f"{name}-deck.csv"))

    first = drop("ng.csv", FIRST)
    for _ in range(2):  # the same S3 event delivered twice
        ingest_drop(first)
        rate_ingested(first.file_id)
    resent = drop("ng-again.csv", RESENT)
    ingest_drop(resent)
    rate_ingested(resent.file_id)

    # usage + surcharge, once each
    assert ledger.get_balance(TENANT, "ncli")[0] == -(100_000 + 10_000 + 190_000 + 10_000)
    assert ledger.get_balance(TENANT, "mtn")[0] == 81_333 + 508 + 160_000 + 1_000

    charges = lake.get_table("charges", TENANT, DAY, first.file_id).to_pylist()
    got = sorted(
        (r["call_id"], r["account"], r["component"], r["prefix"], r["rate"], r["amount"])
        for r in charges
        if r["status"] == "rated"
    )
    assert got == [
        ("n1", "mtn", "surcharge", "234", D("0.00050000"), D("0.000508")),
        ("n1", "mtn", "usage", "234", D("0.08000000"), D("0.081333")),
        ("n1", "ncli", "surcharge", "234803", D("0.00300000"), D("0.010000")),
        ("n1", "ncli", "usage", "234803", D("0.09000000"), D("0.100000")),
        ("n2", "mtn", "surcharge", "234", D("0.00050000"), D("0.001000")),
        ("n2", "mtn", "usage", "234", D("0.08000000"), D("0.160000")),
        ("n2", "ncli", "surcharge", "234803", D("0.00200000"), D("0.010000")),
        ("n2", "ncli", "usage", "234803", D("0.09500000"), D("0.190000")),
        ("n3", "mtn", "usage", "234", D("0.08000000"), D("0.000000")),
        ("n3", "ncli", "usage", "234803", D("0.09500000"), D("0.000000")),
    ]
    surcharge = next(r for r in charges if r["component"] == "surcharge" and r["level"] == 0)
    assert (surcharge["destination"], surcharge["billed_seconds"], surcharge["role"]) == (
        "Nigeria - Mobile from FR",
        61,
        "customer",
    )
    rated = {
        r["call_id"]: r for r in lake.get_table("rated", TENANT, DAY, first.file_id).to_pylist()
    }
    assert (rated["n1"]["customer_amount"], rated["n1"]["customer_surcharge"]) == (
        D("0.100000"),
        D("0.010000"),
    )
    assert rated["n1"]["margin"] == D("0.10") + D("0.01") - D("0.081333") - D("0.000508")
    assert rated["n3"]["customer_surcharge"] is None
    # The resent call was a duplicate: no charge of any component.
    assert lake.get_table("charges", TENANT, DAY, resent.file_id).num_rows == 0
    # Finance's revenue counts the surcharge (named query over the lake, DuckDB here).
    from functions.invoice.lake_sql import LocalLakeSql

    lake.copy_area("rated", TENANT, tmp_path / "lake")
    with LocalLakeSql(TENANT, tmp_path / "lake") as sql:
        revenue = {
            row["destination"]: row["revenue"]
            for row in sql.named("traffic_by_customer_destination")
            if row["customer"] == "ncli"
        }
    # n1 0.10 + 0.01 (French caller), n2 0.19 + 0.01 (any caller); n3 unanswered.
    assert revenue == {"Nigeria - Mobile from FR": D("0.11"), "Nigeria - Mobile": D("0.20")}
