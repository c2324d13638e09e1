"""Every switch's CDRs through the pipeline on the local stack (issue 15 §3, "Done when"):
switches of formats kamailio-acc-cdrs, kamailio-acc and mapped are registered as an operator
does, their files dropped, ingested, rated and charged; balances move to the last digit and
the rated table keeps MOS and PDD.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from functions.cli import main
from functions.store import lake
from tests.cli.conftest import json_document
from tests.conftest import local_stack
from tests.pipeline.carrier import TENANT, run, set_up_carrier

# Dialog CDRs of a Kamailio in Paris, its customer `direct` known by its IP, supplier bt.
ACC_CDRS = (
    "id,start_time,end_time,duration,src_user,dst_user,callid,sip_code,src_ip\n"
    # UK, 64.512 s -> 65 s: direct 60/6 -> 66 s at 0.012 = 0.013200; bt 65 s at 0.006 +
    # 0.0002 connect = 0.006700
    "1,2024-05-01 14:00:07,2024-05-01 14:01:11,64.512,15551230000,442071234567,"
    "k1@10.0.0.5,200,198.51.100.7\n"
    # UK, 120 s: direct 0.024000; bt 0.012000 + 0.000200 = 0.012200
    "2,2024-05-01 14:10:00,2024-05-01 14:12:00,120.000,15551230000,442079999999,"
    "k2@10.0.0.5,200,198.51.100.7\n"
    # not a number of seconds: quarantined
    "3,2024-05-01 14:20:00,2024-05-01 14:21:00,sixty,15551230000,442079999998,"
    "k3@10.0.0.5,200,198.51.100.7\n"
)
ACC_HEADER = "id,method,from_tag,to_tag,callid,sip_code,sip_reason,time,src_user,dst_user,src_ip\n"
# Transaction rows of a Kamailio on UTC, its customer `retail` known by its IP, supplier tata.
ACC = ACC_HEADER + (
    # India mobile answered 12:00:00, the callee's BYE at 12:01:01: 61 s. retail 0.0095 ->
    # 0.009658, its reseller 0.0075 -> 0.007625, tata 0.0065 -> 0.006608
    "1,INVITE,ft1,tt1,a1@10.0.0.5,200,OK,2024-05-01 12:00:00,15551230000,917012345679,"
    "198.51.100.8\n"
    "2,INVITE,ft2,tt2,a2@10.0.0.5,486,Busy Here,2024-05-01 12:00:30,15551230000,917012345670,"
    "198.51.100.8\n"
    "3,BYE,tt1,ft1,a1@10.0.0.5,200,OK,2024-05-01 12:01:01,917012345679,15551230000,198.51.100.8\n"
    # answered, never hung up in this file: an open call, quarantined
    "4,INVITE,ft3,tt3,a3@10.0.0.5,200,OK,2024-05-01 12:05:00,15551230000,917012345671,"
    "198.51.100.8\n"
)
# A Sansay-like export: `;`, Paris wall clock, its own words, trunks mapped to accounts.
MAPPED = (
    "SessionId;SRC;DST;Start;Answer;End;Status;InTrunk;OutTrunk;PDD;MOS\n"
    # India mobile, 120 s: direct 0.016000; tata 0.013000
    "s1;15551230000;917012345672;2024-05-01 14:00:00;2024-05-01 14:00:05;2024-05-01 14:02:05;"
    "Normal;cust-7;tata-1;2300;4.356\n"
    "s2;15551230000;917012345673;2024-05-01 14:03:00;;2024-05-01 14:03:20;Busy;cust-7;tata-1;;\n"
    "s3;15551230000;917012345674;2024-05-01 14:04:00;;2024-05-01 14:04:20;Weird;cust-7;tata-1;;\n"
)
SANSAY = (
    "--column", "call_id=SessionId", "--column", "caller=SRC", "--column", "callee=DST",
    "--column", "start=Start", "--column", "answer=Answer", "--column", "end=End",
    "--column", "disposition=Status", "--column", "ingress_trunk=InTrunk",
    "--column", "egress_trunk=OutTrunk", "--column", "pdd_ms=PDD", "--column", "mos=MOS",
    "--time-format", "%Y-%m-%d %H:%M:%S", "--disposition", "Normal=ANSWERED,Busy=BUSY",
    "--delimiter", ";",
)  # fmt: skip

EXPECTED_BALANCES = {
    "direct": -(13_200 + 24_000 + 16_000),
    "bt": 6_700 + 12_200,
    "retail": -9_658,
    "resellco": -7_625,
    "tata": 6_608 + 13_000,
}


@pytest.fixture
def stack(aws_environment):
    with local_stack() as running:
        yield running


def test_kamailio_and_a_mapped_csv_are_billed_to_the_last_digit(stack, tmp_path, capsys):
    set_up_carrier(tmp_path)
    tz = ("--timezone", "Europe/Paris")
    run("switch", "create", TENANT, "kam1", "--format", "kamailio-acc-cdrs", *tz,
        "--default-supplier", "bt")  # fmt: skip
    run("switch", "map", TENANT, "kam1", "--ingress", "198.51.100.7", "direct")
    run("switch", "create", TENANT, "kam2", "--format", "kamailio-acc", "--timezone", "UTC",
        "--default-supplier", "tata")  # fmt: skip
    run("switch", "map", TENANT, "kam2", "--ingress", "198.51.100.8", "retail")
    run("switch", "create", TENANT, "sbc2", "--format", "mapped", *tz)
    run("switch", "columns", TENANT, "sbc2", *SANSAY)
    run("switch", "map", TENANT, "sbc2", "--ingress", "cust-7", "direct")
    run("switch", "map", TENANT, "sbc2", "--egress", "tata-1", "tata")
    for switch, name, text in (
        ("kam1", "acc_cdrs.csv", ACC_CDRS),
        ("kam2", "acc.csv", ACC),
        ("sbc2", "sansay.csv", MAPPED),
    ):
        path = tmp_path / name
        path.write_text(text)
        assert main(["cdr", "drop", TENANT, switch, str(path)]) == 0
    stack.wait_idle(timeout=90)

    assert list(stack.runner.errors) == []
    statuses = {f["file"]: f for f in json_document(capsys, "file", "status", TENANT)}
    counts = {
        name: {k: statuses[name][k] for k in ("status", "rows", "rated", "quarantined")}
        for name in ("acc_cdrs.csv", "acc.csv", "sansay.csv")
    }
    assert counts == {
        "acc_cdrs.csv": {"status": "done", "rows": 3, "rated": 2, "quarantined": 1},
        # two calls (the answered one's BYE is part of it) and the open call
        "acc.csv": {"status": "done", "rows": 3, "rated": 2, "quarantined": 1},
        "sansay.csv": {"status": "done", "rows": 3, "rated": 2, "quarantined": 1},
    }
    for account, expected in EXPECTED_BALANCES.items():
        balance = json_document(capsys, "balance", TENANT, account)
        assert balance["balance"] == f"{expected / 1_000_000:.6f}", account

    rated = lake.get_table("rated", TENANT, "2024-05-01", statuses["sansay.csv"]["file_id"])
    quality = rated.select(["call_id", "billsec", "pdd_ms", "mos"]).to_pylist()
    assert quality == [
        {"call_id": "s1", "billsec": 120, "pdd_ms": 2300, "mos": Decimal("4.36")},
        {"call_id": "s2", "billsec": 0, "pdd_ms": None, "mos": None},
    ]
