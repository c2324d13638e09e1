import json

from functions.ingest.formats import parse_cdr_file
from functions.ingest.samples import generate_vos3000_json
from tests.ingest.sample_call import ANSWERED_CALL

# formats.md §3, GetCdr InfoCdr.
ANSWERED = {
    "callerE164": "15551230000",
    "calleeE164": "442071234567",
    "callerGateway": "CUST_A",
    "calleeGateway": "VEND_B",
    "start": 1714564800000,
    "stop": 1714564872000,
    "holdTime": 65,
    "feeTime": 66,
    "fee": 0.0143,
    "endDirection": 1,
    "endReason": 0,
    "callerpdd": 2300,
    "flowNo": 88123401,
}
UNANSWERED = {**ANSWERED, "flowNo": 88123402, "holdTime": 0, "feeTime": 0, "account": "acct42"}


def parse(data: str):
    return parse_cdr_file(data.encode(), "vos3000", source="vos.json")


def test_answer_is_stop_minus_hold_time_and_gateways_map_to_parties():
    [cdr] = parse(json.dumps([ANSWERED])).cdrs.to_pylist()
    assert cdr == {
        "line": 1,
        "call_id": "88123401",
        **ANSWERED_CALL,
        "customer": "CUST_A",
        "supplier": "VEND_B",
        "pdd_ms": 2300,
        "dialled": "442071234567",
        "ingress_trunk": "CUST_A",
        "ingress_ip": None,
        "egress_trunk": "VEND_B",
        "egress_ip": None,
        "egress_leg": None,
        "mos": None,
    }


def test_unanswered_record_prefers_account_over_caller_gateway():
    [cdr] = parse(json.dumps({"retCode": 0, "infoCdrs": [UNANSWERED]})).cdrs.to_pylist()
    assert (cdr["answer_time"], cdr["disposition"], cdr["customer"]) == (
        None,
        "NO_ANSWER",
        "acct42",
    )


def test_wrapped_and_line_layouts_give_the_same_rows():
    records = [ANSWERED, UNANSWERED]
    wrapped = parse(json.dumps({"cdrs": records}, indent=2)).cdrs
    lines = parse("\n".join(json.dumps(r) for r in records) + "\n").cdrs
    assert wrapped.drop_columns(["line"]).equals(lines.drop_columns(["line"]))
    assert lines["line"].to_pylist() == [1, 2]


def test_bad_callee_is_quarantined_with_the_record_text():
    bad = {**ANSWERED, "calleeE164": "44abc"}
    text = json.dumps(bad)
    [row] = parse(text + "\n").quarantine.to_pylist()
    assert row == {
        "line": 1,
        "reason": "bad_number",
        "field": "callee",
        "detail": "callee: '44abc' is not a dialable number",
        "raw": text,
    }


def test_generated_array_file_reconciles():
    data = generate_vos3000_json(2_000, seed=9, bad_fraction=0.1)
    parsed = parse_cdr_file(data, "vos3000")
    assert parsed.rows_in == 2_000
    assert parsed.cdrs["line"][0].as_py() == 2  # the array opens on line 1
