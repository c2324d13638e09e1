"""A small lake of two tenants whose sums are known, in the lake's hive layout.

Tenant `alpha` (the one queried) has rated calls on three days and quarantined rows on two;
tenant `bravo` has rows with the same customer and destination names and amounts a million
times larger, so any leak shows in every sum. The expected figures in the tests were
worked out by hand from the rows below.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.invoice.lake_sql import (
    CHARGES_COLUMNS,
    NORMALIZED_COLUMNS,
    QUARANTINE_COLUMNS,
    RATED_COLUMNS,
    arrow_type,
)

D = Decimal
INDIA, UK = "India - Mobile", "UK - Fixed"
D1, D2, D3 = "2024-05-01", "2024-05-02", "2024-05-03"


def schema(columns) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in columns])


def rated_row(
    customer: str,
    destination: str | None,
    billsec: int,
    billed: int,
    rate: str | None,
    amount: str | None,
    supplier: str | None,
    cost: str | None,
    margin: str | None,
    *,
    status: str = "rated",
    reason: str | None = None,
    supplier_reason: str | None = None,
) -> dict:
    row = dict.fromkeys(c.name for c in RATED_COLUMNS)
    row |= {
        "line": 2,
        "call_id": "c",
        "start_time": dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC),
        "caller": "15551230000",
        "callee": "917000000000" if destination == INDIA else "442000000000",
        "billsec": billsec,
        "disposition": "ANSWERED" if billsec else "NO_ANSWER",
        "status": status,
        "reason": reason,
        "customer": customer,
        "matched_prefix": None if destination is None else "917",
        "destination": destination,
        "billed_seconds": billed,
        "customer_rate": None if rate is None else D(rate),
        "customer_amount": None if amount is None else D(amount),
        "currency": "USD",
        "supplier": supplier,
        "supplier_reason": supplier_reason,
        "supplier_prefix": None if cost is None else "91",
        "supplier_destination": None if cost is None else "India",
        "supplier_rate": None if cost is None else D("0.00700000"),
        "supplier_amount": None if cost is None else D(cost),
        "supplier_currency": None if supplier is None else "USD",
        "margin": None if margin is None else D(margin),
        "supplier_status": "rated" if cost is not None else "unrated",
    }
    return row


# tenant alpha: (day, file id, rows)
ALPHA_RATED = [
    (
        D1,
        "f1",
        [
            rated_row(
                "CUST1", INDIA, 61, 66, "0.01000000", "0.011001", "SUPA", "0.007702", "0.003299"
            ),
            rated_row(
                "CUST1", INDIA, 0, 0, "0.01000000", "0.000000", "SUPA", "0.000000", "0.000000"
            ),
            rated_row(
                "CUST1", UK, 120, 120, "0.00500000", "0.010000", "SUPB", "0.012345", "-0.002345"
            ),
            rated_row(
                "CUST2", INDIA, 30, 60, "0.01200000", "0.012000", "SUPA", "0.007001", "0.004999"
            ),
            rated_row(
                "CUST2",
                None,
                50,
                0,
                None,
                None,
                "SUPA",
                None,
                None,
                status="unrated",
                reason="no_rate",
            ),
        ],
    ),
    (
        D2,
        "f2",
        [
            rated_row(
                "CUST1", INDIA, 6, 60, "0.01000000", "0.010000", "SUPB", "0.011111", "-0.001111"
            ),
            rated_row(
                "CUST1", INDIA, 90, 90, "0.01100000", "0.016500", "SUPA", "0.010499", "0.006001"
            ),
        ],
    ),
    (
        D3,
        "f3",
        [
            rated_row(
                "CUST2", UK, 600, 600, "0.00500000", "0.050000", "SUPB", "0.040007", "0.009993"
            ),
            rated_row(
                "CUST3",
                INDIA,
                45,
                60,
                "0.02000000",
                "0.020000",
                "SUPA",
                "0.010001",
                "0.004999",  # CUST3's reseller RES1 pays the carrier 0.015000 for this call
            ),
            rated_row(
                "CUST2",
                INDIA,
                12,
                60,
                "0.01200000",
                "0.012000",
                None,
                None,
                None,
                supplier_reason="unknown_supplier",
            ),
        ],
    ),
]
# bravo's CUST1 makes the same India call on D1 and D2.
BRAVO_INDIA_CALL = (
    "CUST1",
    INDIA,
    60,
    60,
    "1000.00000000",
    "1000.000000",
    "SUPA",
    "1.000000",
    "999.000000",
)
BRAVO_RATED = [
    (
        D1,
        "g1",
        [
            rated_row(*BRAVO_INDIA_CALL),
            rated_row(
                "CUST9", UK, 60, 60, "5.00000000", "5.000000", "SUPB", "9.000000", "-4.000000"
            ),
        ],
    ),
    (D2, "g2", [rated_row(*BRAVO_INDIA_CALL)]),
]


def charge(
    call: str,
    account: str,
    role: str,
    level: int | None,
    counterparty: str,
    amount: str | None,
) -> dict:
    """One row of cdrs_charges; no amount = an unrated charge (no_rate)."""
    return {
        "file_id": "f",
        "line": int(call.removeprefix("c")),
        "call_id": call,
        "start_time": dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC),
        "account": account,
        "role": role,
        "level": level,
        "counterparty": counterparty,
        "status": "unrated" if amount is None else "rated",
        "reason": "no_rate" if amount is None else None,
        "prefix": None if amount is None else "917",
        "destination": None if amount is None else INDIA,
        "rate": None if amount is None else D("0.01000000"),
        "billed_seconds": 0 if amount is None else 60,
        "amount": None if amount is None else D(amount),
        "currency": "USD",
    }


# Tenant alpha's charges: CUST3 under RES1 under RES2 (which pays the carrier), CUST1 direct.
# balance_check: CUST1 -0.011001, CUST3 -0.030000, RES1 -0.027000, RES2 -0.019000,
# SUPA +0.023703. reseller_margin: RES1 May 0.020000 - 0.019000, June 0.010000 - 0.008000;
# RES2 May 0.019000 - 0.012000, June 0.008000 - 0.007000.
ALPHA_CHARGES = [
    (
        D1,
        "f1",
        [
            charge("c1", "CUST3", "customer", 0, "RES1", "0.020000"),
            charge("c1", "RES1", "reseller", 1, "RES2", "0.015000"),
            charge("c1", "RES2", "reseller", 2, "carrier", "0.012000"),
            charge("c1", "SUPA", "supplier", None, "carrier", "0.010001"),
            charge("c2", "CUST1", "customer", 0, "carrier", "0.011001"),
            charge("c2", "SUPA", "supplier", None, "carrier", "0.007702"),
            # RES2 has no rate for c3 and CUST3 none either: RES1 is still charged.
            charge("c3", "CUST3", "customer", 0, "RES1", None),
            charge("c3", "RES1", "reseller", 1, "RES2", "0.004000"),
            charge("c3", "RES2", "reseller", 2, "carrier", None),
            charge("c3", "SUPA", "supplier", None, "carrier", "0.001000"),
        ],
    ),
    (
        "2024-06-01",
        "f4",
        [
            charge("c1", "CUST3", "customer", 0, "RES1", "0.010000"),
            charge("c1", "RES1", "reseller", 1, "RES2", "0.008000"),
            charge("c1", "RES2", "reseller", 2, "carrier", "0.007000"),
            charge("c1", "SUPA", "supplier", None, "carrier", "0.005000"),
        ],
    ),
]
BRAVO_CHARGES = [
    (
        D1,
        "g1",
        [
            charge("c1", "CUST3", "customer", 0, "RES1", "9000.000000"),
            charge("c1", "RES1", "reseller", 1, "carrier", "1000.000000"),
        ],
    )
]


def quarantine_rows(file: str, *rows: tuple[str, str]) -> list[dict]:
    return [
        {"file": file, "line": i + 2, "reason": r, "field": f, "detail": "x", "raw": "a,b"}
        for i, (r, f) in enumerate(rows)
    ]


ALPHA_QUARANTINE = [
    (
        D1,
        "f1",
        quarantine_rows(
            "a.csv", ("bad_number", "callee"), ("bad_number", "callee"), ("column_count", "")
        ),
    ),
    (D2, "f2", quarantine_rows("b.csv", ("bad_number", "callee"))),
]
BRAVO_QUARANTINE = [(D1, "g1", quarantine_rows("z.csv", *[("bad_time", "start_time")] * 5))]

ALPHA_NORMALIZED = [
    (
        D1,
        "f1",
        [
            {
                "line": 2,
                "call_id": "n1",
                "caller": "1",
                "callee": "917000000000",
                "start_time": dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
                "answer_time": None,
                "end_time": None,
                "billsec": 0,
                "disposition": "NO_ANSWER",
                "customer": "CUST1",
                "supplier": "SUPA",
                "pdd_ms": 1500,
            }
        ],
    )
]

LAKE = {
    "alpha": {
        "rated": ALPHA_RATED,
        "charges": ALPHA_CHARGES,
        "quarantine": ALPHA_QUARANTINE,
        "normalized": ALPHA_NORMALIZED,
    },
    "bravo": {
        "rated": BRAVO_RATED,
        "charges": BRAVO_CHARGES,
        "quarantine": BRAVO_QUARANTINE,
        "normalized": [],
    },
}
COLUMNS = {
    "rated": RATED_COLUMNS,
    "charges": CHARGES_COLUMNS,
    "quarantine": QUARANTINE_COLUMNS,
    "normalized": NORMALIZED_COLUMNS,
}


def lake_tables():
    """(area, tenant, day, file id, Arrow table) of the whole test lake."""
    for tenant, areas in LAKE.items():
        for area, files in areas.items():
            for day, file_id, rows in files:
                yield area, tenant, day, file_id, pa.Table.from_pylist(rows, schema(COLUMNS[area]))


def write_lake(root: Path) -> Path:
    for area, tenant, day, file_id, table in lake_tables():
        folder = root / area / f"tenant={tenant}" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / f"{file_id}.parquet")
    return root


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    """Both tenants' Parquet in one local folder, hive layout."""
    return write_lake(tmp_path / "lake")


@pytest.fixture
def s3_lake(aws) -> None:
    """Both tenants' Parquet in the moto lake bucket, written by the lake adapter."""
    from functions.store import lake

    for area, tenant, day, file_id, table in lake_tables():
        lake.put_table(area, tenant, day, file_id, table)
