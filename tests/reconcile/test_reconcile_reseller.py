"""`tollgate reconcile` of a reseller, end to end on moto: our side is the partner's own
charges (`cdrs_charges`), so a reseller's file holds every call of the customers below it, at
the reseller's own charge (usage plus surcharge, each rounded on its own, summed per call).

The carrier sells to reseller `resa` at 0.010/min + a 0.0025/min surcharge, `resa` sells to
its customer `cust` at 0.015/min, the carrier sells to `direct` at 0.014/min and buys from
supplier `mtn` at 0.012/min; 1/1 increments, half-up to 6 places per charge. Day D:
  c0 cust   60 s  resa 0.010000 + 0.002500 = 0.012500   cust 0.015000   mtn 0.012000
  c1 cust   61 s  resa 0.010167 + 0.002542 = 0.012709   cust 0.015250   mtn 0.012200
  c2 cust  125 s  resa 0.020833 + 0.005208 = 0.026041   cust 0.031250   mtn 0.025000
  c3 cust    0 s  unanswered: left out
  d0 direct 90 s                          direct 0.021000                  mtn 0.018000
(c1 at the combined 0.0125/min would be 0.012708: the last digit says the charges are summed.)
Day E, a file whose charges table was never written (before charges existed):
  e0 cust   60 s  cust 0.015000 from the rated table; nothing of resa's there.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from functions.cli import main
from functions.ingest.service import DroppedFile, ingest
from functions.rate.service import DeckCache, rate_file
from functions.shared.settings import settings
from functions.store import accounts, files, lake, ledger, queues
from tests.conftest import operator_account
from tests.reconcile.test_reconcile_cli import _NoEvents, _row, _run

TENANT = "recres"
SWITCH = "sbc1"
D = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)
E = D - dt.timedelta(days=3)  # read as E-1..E+1: never D's files
HEADER = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier"
)
DECKS = {
    "resa": "prefix,destination,rate,surcharge\n234,Nigeria,0.010,0.0025\n",
    "cust": "prefix,destination,rate\n234,Nigeria,0.015\n",
    "direct": "prefix,destination,rate\n234,Nigeria,0.014\n",
    "mtn": "prefix,destination,rate\n234,Nigeria,0.012\n",
}
# (id, customer, callee, seconds after D 01:00, billsec, amounts by partner)
CALLS = [
    ("c0", "cust", "2348030000000", 0, 60, {"resa": "0.012500", "cust": "0.015000",
                                             "mtn": "0.012000"}),
    ("c1", "cust", "2348030000001", 20, 61, {"resa": "0.012709", "cust": "0.015250",
                                              "mtn": "0.012200"}),
    ("c2", "cust", "2348030000002", 200, 125, {"resa": "0.026041", "cust": "0.031250",
                                                "mtn": "0.025000"}),
    ("c3", "cust", "2348030000003", 400, 0, {"resa": "0", "cust": "0", "mtn": "0"}),
    ("d0", "direct", "2348030000004", 600, 90, {"direct": "0.021000", "mtn": "0.018000"}),
]  # fmt: skip


def _start(day: dt.date, seconds: int) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, 1, tzinfo=dt.UTC) + dt.timedelta(
        seconds=seconds
    )


def our_file() -> str:
    rows = [_row(c[0], c[2], _start(D, c[3]), c[4], c[1]) for c in CALLS]
    return "\n".join([HEADER, *rows]) + "\n"


def their_file(partner: str) -> str:
    """The partner's own CDRs of the calls it is billed for (or paid for), 4 s ahead of our
    clock, with its billed amount."""
    rows = [
        _row(f"T-{c[0]}", f"+{c[2]}", _start(D, c[3] + 4), c[4], "", "") + f",{c[5][partner]}"
        for c in CALLS
        if partner in c[5]
    ]
    return "\n".join([HEADER + ",amount", *rows]) + "\n"


def _ingest_and_rate(name: str, text: str, day: dt.date) -> str:
    obj = lake.put_cdr(TENANT, SWITCH, name, text.encode())
    _, etag = lake.get_cdr(TENANT, SWITCH, name)
    dropped = DroppedFile("tollgate-cdr", obj.key, etag, TENANT, SWITCH, name, day)
    ingest(dropped, lake=lake, switches=accounts, files=files, rate_requests=queues)
    rate_file(
        TENANT, SWITCH, dropped.file_id, lake=lake, files=files, accounts=accounts,
        ledger=ledger, events=_NoEvents(), decks=DeckCache(),
    )  # fmt: skip
    return dropped.file_id


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reconcile-reseller")
    with operator_account():
        _run("tenant", "create", TENANT)
        _run("switch", "create", TENANT, SWITCH, "--format", "generic")
        _run("account", "create", TENANT, "resa", "--kind", "reseller")
        _run("account", "create", TENANT, "cust", "--kind", "customer", "--parent", "resa")
        _run("account", "create", TENANT, "direct", "--kind", "customer")
        _run("account", "create", TENANT, "mtn", "--kind", "supplier")
        for account, text in DECKS.items():
            path = folder / f"{account}.csv"
            path.write_text(text)
            _run("deck", "upload", TENANT, account, str(path))
        _ingest_and_rate("ours.csv", our_file(), D)
        # Day E's file as written before the charges table existed: its rated table only.
        old = _row("e0", "2348030000009", _start(E, 0), 60, "cust")
        file_id = _ingest_and_rate("old.csv", f"{HEADER}\n{old}\n", E)
        key = lake.table_key("charges", TENANT, E, file_id)
        lake.client("s3").delete_object(Bucket=settings().lake_bucket, Key=key)
        for partner in ("resa", "cust", "direct", "mtn"):
            (folder / f"{partner}.theirs.csv").write_text(their_file(partner))
        e0 = _row("T-e0", "+2348030000009", _start(E, 4), 60, "", "")
        (folder / "cust.old.csv").write_text(f"{HEADER},amount\n{e0},0.015000\n")
        (folder / "resa.old.csv").write_text(f"{HEADER},amount\n{e0},0.012500\n")
        yield folder


def reconcile_json(capsys, *argv: str, day: dt.date = D) -> dict:
    capsys.readouterr()
    status = main(["reconcile", TENANT, *argv, "--from", str(day), "--to", str(day), "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out)


def _summary(document: dict) -> dict:
    return {k: document[k] for k in list(document)[:9]}


def test_a_resellers_file_holds_its_customers_calls_at_its_own_charge(world, capsys):
    document = reconcile_json(capsys, "resa", str(world / "resa.theirs.csv"))
    assert _summary(document) == {
        "clock_offset_seconds": "4",
        "matched": 3,
        "duration_mismatch": 0,
        "missing_ours": 0,
        "missing_theirs": 0,
        "rate_mismatch": 0,
        "our_amount": "0.051250",
        "their_amount": "0.051250",
        "difference": "0.000000",
    }
    assert document["role"] == "customer"
    assert (document["our_unanswered"], document["their_unanswered"]) == (1, 1)
    assert document["files_without_charges"] == 0
    assert document["classes"]["matched"] == {
        "count": 3, "seconds": 246, "minutes": "4.10", "difference": "0.000000",
    }  # fmt: skip


def test_a_resellers_customer_a_direct_customer_and_the_supplier(world, capsys):
    expected = {"cust": ("3", "0.061500"), "direct": ("1", "0.021000"), "mtn": ("4", "0.067200")}
    for partner, (count, amount) in expected.items():
        document = reconcile_json(capsys, partner, str(world / f"{partner}.theirs.csv"))
        assert _summary(document) == {
            "clock_offset_seconds": "4",
            "matched": int(count),
            "duration_mismatch": 0,
            "missing_ours": 0,
            "missing_theirs": 0,
            "rate_mismatch": 0,
            "our_amount": amount,
            "their_amount": amount,
            "difference": "0.000000",
        }, partner
        role = "supplier" if partner == "mtn" else "customer"
        assert (document["role"], document["files_without_charges"]) == (role, 0)


def test_a_file_without_charges_falls_back_to_the_rated_table(world, capsys):
    document = reconcile_json(capsys, "cust", str(world / "cust.old.csv"), day=E)
    assert document["files_without_charges"] == 1
    assert (document["matched"], document["our_amount"], document["difference"]) == (
        1, "0.015000", "0.000000",
    )  # fmt: skip
    # The rated table names the calling customer only: a reseller's calls are not there.
    document = reconcile_json(capsys, "resa", str(world / "resa.old.csv"), day=E)
    assert document["files_without_charges"] == 1
    assert (document["matched"], document["missing_ours"], document["our_amount"]) == (
        0, 1, "0.000000",
    )  # fmt: skip
    capsys.readouterr()
    argv = ["reconcile", TENANT, "resa", str(world / "resa.old.csv"), "--from", str(E),
            "--to", str(E)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 file of ours has no charges table" in out


def test_our_side_sums_a_partys_charges_per_call():
    """Pure: the partner's charges of a call summed exactly; a call with an unrated charge of
    its, or one in another currency, has no amount; other parties' charges are ignored."""
    import pyarrow as pa

    from functions.reconcile.result import MONEY
    from functions.reconcile.sides import our_side

    def money(values):
        return pa.array([None if v is None else Decimal(v) for v in values], MONEY)

    start = dt.datetime(2026, 11, 3, 10, tzinfo=dt.UTC)
    rated = pa.table(
        {
            "line": [2, 3, 4, 5],
            "call_id": ["a", "b", "c", "d"],
            "callee": ["2341", "2342", "2343", "2344"],
            "start_time": [start + dt.timedelta(minutes=i) for i in range(4)],
            "billsec": [60, 61, 30, 0],
        }
    )
    rows = [  # line, account, role, amount, currency
        (2, "cust", "customer", "0.015000", "USD"),
        (2, "resa", "reseller", "0.010000", "USD"),
        (2, "resa", "reseller", "0.002500", "USD"),  # its surcharge
        (2, "mtn", "supplier", "0.012000", "USD"),
        (3, "resa", "reseller", "0.010167", "USD"),
        (3, "resa", "reseller", None, "USD"),  # an unrated charge: no amount
        (4, "resa", "reseller", "0.005000", "EUR"),  # another currency: no amount
        (5, "resa", "reseller", "0", "USD"),  # unanswered: counted apart
    ]
    line, account, role, amount, currency = zip(*rows, strict=True)
    charges = pa.table(
        {
            "line": list(line),
            "account": pa.array(account).dictionary_encode(),
            "role": pa.array(role).dictionary_encode(),
            "amount": money(amount),
            "currency": list(currency),
        }
    )
    period = {"date_from": start.date(), "date_to": start.date(), "currency": "USD"}
    side = our_side([(rated, charges)], partner="resa", role="customer", **period)
    assert side.table.column("line").to_pylist() == [2, 3, 4]
    assert side.table.column("amount").to_pylist() == [Decimal("0.012500"), None, None]
    assert (side.unanswered, side.without_charges) == (1, 0)
    side = our_side([(rated, charges)], partner="mtn", role="supplier", **period)
    assert side.table.column("amount").to_pylist() == [Decimal("0.012000")]
    assert (
        our_side([(rated, charges)], partner="resa", role="supplier", **period).table.num_rows == 0
    )
