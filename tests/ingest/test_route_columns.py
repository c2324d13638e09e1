"""Where each format says a call came in and went out: the trunk columns and `dialled`.

Every test here fails on the code before issue 8 §4: CDR_SCHEMA had no `dialled`,
`ingress_trunk`, `ingress_ip`, `egress_trunk`, `egress_ip` or `egress_leg`, and a FreeSWITCH
switch could not declare its own CSV template.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from functions.ingest.formats import CdrFileError, iter_cdr_chunks, parse_cdr_file
from functions.ingest.formats.freeswitch import EXAMPLE_TEMPLATE, check_template
from tests.ingest.test_formats_asterisk_csv import ANSWERED as ASTERISK_ANSWERED
from tests.ingest.test_formats_asterisk_csv import UNANSWERED as ASTERISK_UNANSWERED
from tests.ingest.test_formats_freeswitch_json import a_leg
from tests.ingest.test_formats_vos3000 import ANSWERED as VOS_ANSWERED

ROUTE = ["dialled", "ingress_trunk", "ingress_ip", "egress_trunk", "egress_ip", "egress_leg"]


def route(parsed) -> list[dict]:
    return parsed.cdrs.select(ROUTE).to_pylist()


def test_generic_reads_the_optional_trunk_columns_and_keeps_the_callee_as_sent():
    header = (
        "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,"
        "supplier,ingress_trunk,ingress_ip,egress_trunk,egress_ip"
    )
    row = (
        "c-1,1555,+44 20 7123-4567,2024-05-01T12:00:00Z,2024-05-01T12:00:07Z,"
        "2024-05-01T12:01:12Z,65,ANSWERED,,,CUST_A,198.51.100.4,VEND_B,203.0.113.7"
    )
    unrouted = "c-2,1555,442071234567,2024-05-01T12:00:00Z,,2024-05-01T12:00:30Z,0,,a,s,,,,"
    parsed = parse_cdr_file(f"{header}\n{row}\n{unrouted}\n".encode(), "generic")
    assert route(parsed) == [
        {
            "dialled": "+44 20 7123-4567",
            "ingress_trunk": "CUST_A",
            "ingress_ip": "198.51.100.4",
            "egress_trunk": "VEND_B",
            "egress_ip": "203.0.113.7",
            "egress_leg": None,
        },
        {"dialled": "442071234567", **dict.fromkeys(ROUTE[1:])},
    ]
    assert parsed.cdrs["callee"].to_pylist() == ["442071234567", "442071234567"]


def test_asterisk_trunks_are_the_channel_peers_and_the_leg_the_whole_dstchannel():
    parsed = parse_cdr_file(
        f"{ASTERISK_ANSWERED}\n{ASTERISK_UNANSWERED}\n".encode(), "asterisk-csv"
    )
    assert route(parsed) == [
        {
            "dialled": "442071234567",
            "ingress_trunk": "carrierA",
            "ingress_ip": None,
            "egress_trunk": "carrierB",
            "egress_ip": None,
            "egress_leg": "SIP/carrierB-0000001b",
        },
        {
            "dialled": "33612345678",
            "ingress_trunk": "carrierA",
            "ingress_ip": None,
            "egress_trunk": "carrierC",
            "egress_ip": None,
            "egress_leg": "SIP/carrierC-0000001d",
        },
    ]


def test_asterisk_pjsip_peers_and_a_call_never_dialled_out():
    row = ASTERISK_ANSWERED.replace('"SIP/carrierA-0000001a"', '"PJSIP/cust-7-00000004"')
    row = row.replace('"SIP/carrierB-0000001b"', '""').replace(",65,", ",0,")
    row = row.replace('"ANSWERED"', '"NO ANSWER"').replace('"2024-05-01 12:00:07"', "")
    [cdr] = route(parse_cdr_file(f"{row}\n".encode(), "asterisk-csv"))
    assert (cdr["ingress_trunk"], cdr["egress_trunk"], cdr["egress_leg"]) == ("cust-7", None, None)


def test_vos3000_gateways_and_ips():
    record = {**VOS_ANSWERED, "callerip": "198.51.100.4", "calleeip": "203.0.113.7"}
    [cdr] = route(parse_cdr_file(json.dumps([record]).encode(), "vos3000"))
    assert cdr == {
        "dialled": "442071234567",
        "ingress_trunk": "CUST_A",
        "ingress_ip": "198.51.100.4",
        "egress_trunk": "VEND_B",
        "egress_ip": "203.0.113.7",
        "egress_leg": None,
    }


def fs_json(*documents: dict):
    return parse_cdr_file("\n".join(json.dumps(d) for d in documents).encode(), "freeswitch-json")


def test_freeswitch_json_a_leg_ingress_from_the_caller_profile_egress_from_its_bridge():
    """An A-leg as FreeSWITCH writes it: `network_addr` in the caller profile, the From host
    in `sip_from_host`, and no `sip_gateway_name` (set on the outbound leg only): its
    egress is the gateway of the bridge in app_log."""
    doc = a_leg()
    doc["callflow"][0]["caller_profile"]["network_addr"] = "198.51.100.4"
    doc["variables"] |= {"sip_from_host": "sbc.cust-a.example", "sip_network_ip": "10.0.0.9"}
    doc["app_log"] = {
        "applications": [
            {"app_name": "set", "app_data": "hangup_after_bridge=true"},
            {
                "app_name": "bridge",
                "app_data": "{leg_timeout=30}sofia/gateway/vendorB/442071234567",
            },
        ]
    }
    [cdr] = route(fs_json(doc))
    assert cdr == {
        "dialled": "+442071234567",
        "ingress_trunk": "sbc.cust-a.example",
        "ingress_ip": "198.51.100.4",
        "egress_trunk": "vendorB",
        "egress_ip": None,
        "egress_leg": None,
    }


def test_freeswitch_json_named_gateways_win_and_a_failover_list_names_none():
    inbound = a_leg(uuid="u1")
    # A call from a configured gateway: FreeSWITCH sets sip_gateway on the inbound leg.
    inbound["variables"] |= {
        "sip_gateway": "custA",
        "sip_from_host": "198.51.100.4",
        "sip_gateway_name": "vendorC",  # exported to the A-leg by the dialplan
        "last_app": "bridge",
        "last_arg": "sofia/gateway/vendorB/44207",
    }
    failover = a_leg(uuid="u2")
    failover["variables"] |= {
        "last_app": "bridge",
        "last_arg": "sofia/gateway/vendorA/44207%7Csofia/gateway/vendorB/44207",
        "sip_network_ip": "198.51.100.9",
    }
    by_last_arg = a_leg(uuid="u3")
    by_last_arg["variables"] |= {"last_app": "bridge", "last_arg": "sofia/gateway/ext::vendorD/1"}
    other_app = a_leg(uuid="u4")
    other_app["variables"] |= {"last_app": "playback", "last_arg": "sofia/gateway/vendorE/1"}
    cdrs = route(fs_json(inbound, failover, by_last_arg, other_app))
    assert [(c["ingress_trunk"], c["ingress_ip"], c["egress_trunk"]) for c in cdrs] == [
        ("custA", None, "vendorC"),
        (None, "198.51.100.9", None),
        (None, None, "vendorD"),
        (None, None, None),
    ]


CUSTOM = (*EXAMPLE_TEMPLATE, "sip_gateway_name", "network_addr", "sip_from_host")
FS_ROW = (
    '"Alice","15551230000","02071234567","public","2024-05-01 12:00:00",'
    '"2024-05-01 12:00:07","2024-05-01 12:01:12","72","65","NORMAL_CLEARING",'
    '"3da8bf84-c133-4959-9e24-e72875cb33a1","7f1c2e9a-0b7d-4c53-9a51-0d2b7e3e1f20","acct42",'
    '"PCMA","PCMA","vendorB","198.51.100.4","sbc.cust-a.example"'
)


def test_freeswitch_csv_reads_a_switchs_own_template():
    parsed = parse_cdr_file(f"{FS_ROW}\n".encode(), "freeswitch-csv", template=CUSTOM)
    [cdr] = parsed.cdrs.to_pylist()
    assert (cdr["call_id"], cdr["callee"], cdr["billsec"], cdr["customer"]) == (
        "3da8bf84-c133-4959-9e24-e72875cb33a1",
        "02071234567",
        65,
        "acct42",
    )
    assert {k: cdr[k] for k in ROUTE} == {
        "dialled": "02071234567",
        "ingress_trunk": "sbc.cust-a.example",
        "ingress_ip": "198.51.100.4",
        "egress_trunk": "vendorB",
        "egress_ip": None,
        "egress_leg": None,
    }


def test_a_template_with_a_bridge_argument_names_the_egress_gateway():
    template = ("uuid", "destination_number", "start_stamp", "answer_stamp", "billsec", "last_arg")
    row = '"u1","442071234567","2024-05-01 12:00:00","","0","sofia/gateway/vendorB/4420"'
    [cdr] = route(parse_cdr_file(f"{row}\n".encode(), "freeswitch-csv", template=template))
    assert cdr["egress_trunk"] == "vendorB"


def test_a_template_file_read_in_parts_is_the_whole_file():
    rows = [FS_ROW.replace("3da8bf84", f"{i:08x}") for i in range(300)]
    data = ("\n".join(rows) + "\n").encode()
    whole = parse_cdr_file(data, "freeswitch-csv", template=CUSTOM)
    parts = list(iter_cdr_chunks(data, "freeswitch-csv", template=CUSTOM, chunk_bytes=8_000))
    assert len(parts) > 2
    assert pa.concat_tables([p.cdrs for p in parts]).equals(whole.cdrs)
    assert whole.cdrs.num_rows == 300


def test_stock_templates_keep_working_and_a_file_in_another_template_is_refused():
    stock = ",".join(FS_ROW.split(",")[:15])
    assert parse_cdr_file(f"{stock}\n".encode(), "freeswitch-csv").cdrs.num_rows == 1
    with pytest.raises(CdrFileError, match=r"Master\.csv: rows have 15 fields; expected 18"):
        parse_cdr_file(
            f"{stock}\n".encode(), "freeswitch-csv", template=CUSTOM, source="Master.csv"
        )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (("uuid", "destination_number", "start_stamp", "billsec"), "lacks answer_stamp"),
        ((*CUSTOM, "uuid"), "uuid listed twice"),
        ((*CUSTOM, "${uuid}"), r"'\$\{uuid\}' is not a channel variable name"),
    ],
)
def test_a_template_that_cannot_bill_is_refused_naming_the_variable(template, message):
    with pytest.raises(ValueError, match=f"template: .*{message}"):
        check_template(template)


def test_only_freeswitch_csv_takes_a_template():
    with pytest.raises(ValueError, match="format 'asterisk-csv' takes no template"):
        parse_cdr_file(ASTERISK_ANSWERED.encode(), "asterisk-csv", template=CUSTOM)
