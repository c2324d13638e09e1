import json

import pytest

from functions.ingest.formats import CdrFileError, parse_cdr_file
from functions.ingest.formats.freeswitch import parse_json_legs
from tests.ingest.sample_call import ANSWERED_CALL


def a_leg(uuid="3da8bf84-c133-4959-9e24-e72875cb33a1", billsec="65", answer="1714564807"):
    return {
        "core-uuid": "6f0c",
        "switchname": "c4-fs1",
        "channel_data": {"state": "CS_REPORTING", "direction": "inbound"},
        "variables": {
            "uuid": uuid,
            "direction": "inbound",
            "sip_req_user": "999",
            "start_stamp": "2024-05-01%2012%3A00%3A00",
            "start_epoch": "1714564800",
            "answer_epoch": answer,
            "end_epoch": "1714564872",
            "billsec": billsec,
            "hangup_cause": "NORMAL_CLEARING",
            "accountcode": "acct%2042",
        },
        "callflow": [
            {
                "caller_profile": {
                    "caller_id_number": "15551230000",
                    "destination_number": "+442071234567",
                    "uuid": uuid,
                },
            }
        ],
    }


def b_leg():
    doc = a_leg(uuid="7f1c2e9a-0b7d-4c53-9a51-0d2b7e3e1f20")
    doc["variables"]["direction"] = "outbound"
    doc["callflow"][0]["caller_profile"]["originator"] = "3da8bf84-c133-4959-9e24-e72875cb33a1"
    return doc


def parse(data: str, **kwargs):
    return parse_cdr_file(data.encode(), "freeswitch-json", source="a.cdr.json", **kwargs)


def test_single_document_prefers_epochs_and_url_decodes_variables():
    [cdr] = parse(json.dumps(a_leg(), indent=1)).cdrs.to_pylist()
    assert cdr == {
        "line": 1,
        "call_id": "3da8bf84-c133-4959-9e24-e72875cb33a1",
        **ANSWERED_CALL,
        "customer": "acct 42",
        "supplier": None,
        "pdd_ms": None,
        "dialled": "+442071234567",
        "ingress_trunk": None,
        "ingress_ip": None,
        "egress_trunk": None,
        "egress_ip": None,
        "egress_leg": None,
        "mos": None,
    }


def test_b_legs_are_dropped_before_counting_rows():
    text = json.dumps(a_leg()) + "\n" + json.dumps(b_leg()) + "\n"
    parsed, b_legs = parse_json_legs(text.encode())
    assert (parsed.rows_in, parsed.cdrs.num_rows, b_legs) == (1, 1, 1)


def test_unanswered_leg_has_answer_epoch_zero():
    [cdr] = parse(json.dumps(a_leg(billsec="0", answer="0"))).cdrs.to_pylist()
    assert (cdr["answer_time"], cdr["disposition"]) == (None, "NO_ANSWER")


def test_json_lines_report_the_starting_line_and_quarantine_broken_lines():
    good = json.dumps(a_leg())
    text = f"{good}\n\n{{broken json\n{json.dumps(a_leg(uuid='u-2'))}\n"
    parsed = parse(text)
    assert parsed.cdrs["line"].to_pylist() == [1, 4]
    [bad] = parsed.quarantine.to_pylist()
    assert (bad["line"], bad["reason"], bad["raw"]) == (3, "malformed", "{broken json")


def test_array_document_lines_are_where_each_record_starts():
    text = "[\n" + json.dumps(a_leg()) + ",\n" + json.dumps(a_leg(uuid="u-2")) + "\n]\n"
    assert parse(text).cdrs["line"].to_pylist() == [2, 3]


def test_callee_falls_back_to_sip_req_user_and_duplicate_uuid_is_quarantined():
    doc = a_leg()
    del doc["callflow"]
    text = json.dumps(doc) + "\n" + json.dumps(a_leg()) + "\n"
    parsed = parse(text)
    assert parsed.cdrs["callee"].to_pylist() == ["999"]
    assert parsed.quarantine["reason"].to_pylist() == ["duplicate_call_id"]


def test_empty_or_undecodable_file_is_a_file_error():
    with pytest.raises(CdrFileError, match=r"a\.cdr\.json: no JSON document"):
        parse("  \n")
    with pytest.raises(CdrFileError, match=r"a\.cdr\.json"):
        parse('{"variables": {')
