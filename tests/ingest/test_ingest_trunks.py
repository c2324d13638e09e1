"""Ingest on moto keeps the switch's view in the lake: trunks, IPs, the number as sent.

Both tests fail on the code before issue 8 §4: the normalised Parquet had no trunk columns or
`dialled`, a switch had no numbering plan, and the answered attempt of a route-advanced
Asterisk call was quarantined as a duplicate.
"""

from __future__ import annotations

import datetime as dt
import json

from functions.cli import main
from functions.ingest.service import DroppedFile, ingest
from functions.store import accounts, files, lake, queues
from tests.ingest.test_attempts import ANSWERED_B, FAILED_A

TENANT = "acme"
DAY = dt.date(2024, 5, 1)


def run(*argv: str) -> None:
    assert main(list(argv)) == 0, argv


def drop(switch: str, name: str, data: bytes) -> DroppedFile:
    obj = lake.put_cdr(TENANT, switch, name, data)
    _, etag = lake.get_cdr(TENANT, switch, name)
    return DroppedFile("tollgate-cdr", obj.key, etag, TENANT, switch, name, DAY)


def ingested(switch: str, name: str, data: bytes):
    outcome = ingest(
        drop(switch, name, data), lake=lake, switches=accounts, files=files, rate_requests=queues
    )
    assert outcome.status == "ingested", outcome
    return outcome, lake.get_table("normalized", TENANT, DAY, outcome.file_id)


def test_an_asterisk_file_keeps_its_trunks_dialled_numbers_and_both_attempts(aws):
    run("tenant", "create", TENANT)
    run("switch", "create", TENANT, "ast1", "--format", "asterisk-csv")
    # This switch's customers dial national UK numbers behind a `#123` tech prefix.
    run(
        "switch", "numbering", TENANT, "ast1", "--strip", "#123",
        "--national-prefix", "0", "--country-code", "44",
    )  # fmt: skip
    national = ANSWERED_B.replace('"442071234567","from', '"#12302071234567","from')
    data = f"{FAILED_A}\n{national}\n".encode()
    outcome, table = ingested("ast1", "Master.csv", data)
    assert (outcome.rows, outcome.accepted, outcome.quarantined) == (2, 2, 0)
    assert table.select(
        ["call_id", "callee", "dialled", "ingress_trunk", "egress_trunk", "egress_leg"]
    ).to_pylist() == [
        {
            "call_id": "1714564800.26",
            "callee": "442071234567",
            "dialled": "442071234567",
            "ingress_trunk": "custA",
            "egress_trunk": "vendorA",
            "egress_leg": "SIP/vendorA-0000001b",
        },
        {
            "call_id": "1714564800.26",
            "callee": "442071234567",
            "dialled": "#12302071234567",
            "ingress_trunk": "custA",
            "egress_trunk": "vendorB",
            "egress_leg": "SIP/vendorB-0000001c",
        },
    ]


def test_a_vos3000_file_keeps_its_gateways_and_ips(aws):
    run("tenant", "create", TENANT)
    run("switch", "create", TENANT, "vos", "--format", "vos3000")
    record = {
        "callerE164": "15551230000",
        "calleeE164": "00442071234567",
        "callerGateway": "CUST_A",
        "calleeGateway": "VEND_B",
        "callerip": "198.51.100.4",
        "calleeip": "203.0.113.7",
        "start": 1714564800000,
        "stop": 1714564872000,
        "holdTime": 65,
        "flowNo": 88123401,
    }
    _, table = ingested("vos", "cdr.json", json.dumps([record]).encode())
    [row] = table.select(
        ["callee", "dialled", "ingress_trunk", "ingress_ip", "egress_trunk", "egress_ip"]
    ).to_pylist()
    assert row == {
        "callee": "442071234567",
        "dialled": "00442071234567",
        "ingress_trunk": "CUST_A",
        "ingress_ip": "198.51.100.4",
        "egress_trunk": "VEND_B",
        "egress_ip": "203.0.113.7",
    }


def test_a_freeswitch_switch_with_its_own_template_ingests_its_gateways(aws):
    from tests.ingest.test_route_columns import CUSTOM, FS_ROW

    run("tenant", "create", TENANT)
    run(
        "switch", "create", TENANT, "fs1", "--format", "freeswitch-csv",
        "--template", ",".join(CUSTOM),
    )  # fmt: skip
    _, table = ingested("fs1", "Master.csv", f"{FS_ROW}\n".encode())
    assert table.select(["ingress_trunk", "ingress_ip", "egress_trunk"]).to_pylist() == [
        {
            "ingress_trunk": "sbc.cust-a.example",
            "ingress_ip": "198.51.100.4",
            "egress_trunk": "vendorB",
        }
    ]
