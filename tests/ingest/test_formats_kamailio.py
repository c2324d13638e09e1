"""Kamailio acc exports (formats.md §4): `kamailio-acc-cdrs` (dialog CDRs) and `kamailio-acc`
(transaction rows paired into calls), with quarantine reasons and line numbers."""

from __future__ import annotations

import time

import pytest

from functions.ingest.formats import CdrFileError, parse_cdr_file
from functions.ingest.formats.mapped import MappingError
from tests.ingest.sample_call import ANSWERED_CALL, utc

# formats.md §4's sample call as an acc_cdrs export with the documented cdr_extra names.
ACC_CDRS = (
    "id,start_time,end_time,duration,src_user,dst_user,callid,sip_code,src_ip\n"
    "1,2024-05-01 14:00:07,2024-05-01 14:01:11,64.512,15551230000,442071234567,"
    "a84b4c76e66710@10.0.0.5,200,198.51.100.7\n"
    "2,2024-05-01 14:05:00,2024-05-01 14:05:00,0.000,15551230000,442071234568,"
    "b1@10.0.0.5,200,198.51.100.7\n"
    "3,2024-05-01 14:06:00,2024-05-01 14:07:00,sixty,15551230000,442071234569,"
    "c1@10.0.0.5,200,198.51.100.7\n"
    "4,2024-05-01 14:08:00,2024-05-01 14:07:00,5.2,15551230000,442071234560,"
    "d1@10.0.0.5,200,198.51.100.7\n"
)
ACC_HEADER = "id,method,from_tag,to_tag,callid,sip_code,sip_reason,time,src_user,dst_user,src_ip\n"


def acc_row(i, method, from_tag, to_tag, callid, code, at, callee="442071234567"):
    reason = {"200": "OK", "486": "Busy Here", "487": "Request Terminated"}.get(code, "x")
    return (
        f"{i},{method},{from_tag},{to_tag},{callid},{code},{reason},2024-05-01 {at},"
        f"15551230000,{callee},198.51.100.7\n"
    )


# The sample call (answered, callee hangs up: the BYE's tags are swapped), a busy attempt,
# an open call, a lone BYE, a CANCEL, a re-INVITE inside the first call, a cancelled attempt,
# a call whose BYE precedes its answer.
ACC = ACC_HEADER + "".join(
    [
        acc_row(1, "INVITE", "as5f3c", "1928301774", "a84b@10.0.0.5", "200", "14:00:07"),
        acc_row(2, "INVITE", "f2", "t2", "b1@10.0.0.5", "486", "14:00:10", "442071234568"),
        acc_row(3, "INVITE", "as5f3c", "1928301774", "a84b@10.0.0.5", "200", "14:00:30"),
        acc_row(4, "BYE", "1928301774", "as5f3c", "a84b@10.0.0.5", "200", "14:01:12"),
        acc_row(5, "INVITE", "f3", "t3", "c1@10.0.0.5", "200", "14:02:00", "442071234569"),
        acc_row(6, "BYE", "f4", "t4", "d1@10.0.0.5", "200", "14:03:00", "442071234560"),
        acc_row(7, "CANCEL", "f5", "", "e1@10.0.0.5", "200", "14:03:00", "442071234560"),
        acc_row(8, "INVITE", "f6", "t6", "g1@10.0.0.5", "487", "14:04:00", "442071234561"),
        acc_row(9, "INVITE", "f7", "t7", "h1@10.0.0.5", "200", "14:05:00", "442071234562"),
        acc_row(10, "BYE", "f7", "t7", "h1@10.0.0.5", "200", "14:04:59", "442071234562"),
    ]
)


def test_acc_cdrs_reads_the_documented_extras_in_the_switchs_zone():
    parsed = parse_cdr_file(ACC_CDRS.encode(), "kamailio-acc-cdrs", timezone="Europe/Paris")
    first, zero = parsed.cdrs.to_pylist()
    assert first == {
        "line": 2,
        "call_id": "a84b4c76e66710@10.0.0.5",
        **ANSWERED_CALL,  # 14:00:07 Paris = 12:00:07 UTC, 64.512 s billed as 65
        "start_time": utc(2024, 5, 1, 12, 0, 7),  # a dialog starts when it is confirmed
        "end_time": utc(2024, 5, 1, 12, 1, 11),
        "customer": None,
        "supplier": None,
        "pdd_ms": None,
        "dialled": "442071234567",
        "ingress_trunk": None,
        "ingress_ip": "198.51.100.7",
        "egress_trunk": None,
        "egress_ip": None,
        "egress_leg": None,
        "mos": None,
    }
    assert (zero["billsec"], zero["disposition"]) == (0, "ANSWERED")  # confirmed, 0 s
    assert parsed.rows_in == 4
    assert parsed.quarantine.select(["line", "reason", "field"]).to_pylist() == [
        {"line": 4, "reason": "bad_duration", "field": "billsec"},
        {"line": 5, "reason": "bad_time", "field": "end_time"},
    ]


def test_acc_cdrs_extras_of_other_names_come_from_the_switchs_mapping():
    text = (
        "start_time,end_time,duration,caller,ruri_user,trunk\n"
        "2024-05-01 12:00:07,2024-05-01 12:01:12,65.000,15551230000,442071234567,carrierA\n"
    )
    mapping = {"columns": {"callee": "ruri_user", "caller": "caller", "ingress_trunk": "trunk"}}
    [cdr] = parse_cdr_file(text.encode(), "kamailio-acc-cdrs", mapping=mapping).cdrs.to_pylist()
    assert (cdr["callee"], cdr["caller"], cdr["ingress_trunk"], cdr["billsec"]) == (
        "442071234567", "15551230000", "carrierA", 65,
    )  # fmt: skip
    # No callid extra: the id is derived from the row (caller;callee;start as written).
    assert cdr["call_id"] == "15551230000;442071234567;2024-05-01 12:00:07"
    with pytest.raises(CdrFileError, match=r"columns\.callee: required"):
        parse_cdr_file(text.encode(), "kamailio-acc-cdrs", source="k.csv")


def test_acc_rows_pair_into_calls_and_the_rest_is_quarantined_by_line():
    parsed = parse_cdr_file(ACC.encode(), "kamailio-acc", timezone="Europe/Paris")
    cdrs = parsed.cdrs.to_pylist()
    assert cdrs[0] == {
        "line": 2,
        "call_id": "a84b@10.0.0.5",
        **ANSWERED_CALL,
        "start_time": utc(2024, 5, 1, 12, 0, 7),  # acc knows the answer, not the INVITE
        "customer": None,
        "supplier": None,
        "pdd_ms": None,
        "dialled": "442071234567",
        "ingress_trunk": None,
        "ingress_ip": "198.51.100.7",
        "egress_trunk": None,
        "egress_ip": None,
        "egress_leg": "1928301774",
        "mos": None,
    }
    assert [(c["line"], c["call_id"], c["disposition"], c["billsec"]) for c in cdrs] == [
        (2, "a84b@10.0.0.5", "ANSWERED", 65),
        (3, "b1@10.0.0.5", "BUSY", 0),
        (9, "g1@10.0.0.5", "CANCEL", 0),
    ]
    assert cdrs[1]["start_time"] == cdrs[1]["end_time"] == utc(2024, 5, 1, 12, 0, 10)
    quarantine = parsed.quarantine.to_pylist()
    assert [(q["line"], q["reason"], q["field"]) for q in quarantine] == [
        (6, "unpaired", "end_time"),  # answered, no BYE: an open call
        (7, "unpaired", "answer_time"),  # a BYE of no answered INVITE
        (8, "unpaired", "method"),  # CANCEL
        (10, "bad_time", "end_time"),  # its BYE is before its answer
    ]
    assert "an open call" in quarantine[0]["detail"]
    assert quarantine[2]["detail"].startswith("CANCEL: ")
    # A call's raw text is both of its rows.
    assert quarantine[3]["raw"] == (ACC.splitlines()[9] + "\n" + ACC.splitlines()[10])
    # The re-INVITE (line 4) and the BYE (line 5) are part of the first call: no rows of
    # their own. 3 calls + 4 quarantined.
    assert parsed.rows_in == 7


def test_acc_times_in_a_dst_gap_are_bad_times():
    text = ACC_HEADER + acc_row(1, "INVITE", "a", "b", "x@h", "486", "02:30:00").replace(
        "2024-05-01", "2024-03-31"
    )
    quarantine = parse_cdr_file(text.encode(), "kamailio-acc", timezone="Europe/Paris").quarantine
    [bad] = quarantine.to_pylist()
    assert (bad["line"], bad["reason"], bad["field"]) == (2, "bad_time", "start_time")
    assert "does not exist in Europe/Paris" in bad["detail"]


def test_acc_extras_renamed_by_the_mapping_and_its_members_checked():
    text = ACC.replace("src_user,dst_user,src_ip", "from_user,ruri_user,peer")
    mapping = {"columns": {"caller": "from_user", "callee": "ruri_user", "ingress_ip": "peer"}}
    parsed = parse_cdr_file(text.encode(), "kamailio-acc", mapping=mapping)
    assert parsed.cdrs.column("callee").to_pylist()[:2] == ["442071234567", "442071234568"]
    assert parsed.cdrs.column("ingress_ip").to_pylist()[0] == "198.51.100.7"
    with pytest.raises(CdrFileError, match="header lacks acc column"):
        parse_cdr_file(text.encode(), "kamailio-acc", source="acc.csv")
    with pytest.raises(MappingError, match=r"columns\.duration: kamailio-acc maps only"):
        parse_cdr_file(
            ACC.encode(),
            "kamailio-acc",
            mapping={"columns": {"duration": "x"}},
        )


def test_pairing_a_hundred_thousand_rows_is_column_wise():
    rows = []
    for i in range(50_000):
        minute, second = divmod(i % 3600, 60)
        callid, clock = f"{i:08d}@10.0.0.5", f"{minute:02d}:{second:02d}"
        rows.append(acc_row(2 * i, "INVITE", f"a{i}", f"b{i}", callid, "200", f"10:{clock}"))
        rows.append(acc_row(2 * i + 1, "BYE", f"b{i}", f"a{i}", callid, "200", f"11:{clock}"))
    data = (ACC_HEADER + "".join(rows)).encode()
    began = time.perf_counter()
    parsed = parse_cdr_file(data, "kamailio-acc")
    took = time.perf_counter() - began
    assert parsed.cdrs.num_rows == 50_000 and parsed.quarantine.num_rows == 0
    assert set(parsed.cdrs.column("billsec").to_pylist()) == {3600}
    assert took < 10, took  # a loop per row in Python would take minutes on this machine
