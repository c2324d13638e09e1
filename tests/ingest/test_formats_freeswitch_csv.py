from functions.ingest.formats import parse_cdr_file
from functions.ingest.samples import generate_freeswitch_csv
from tests.ingest.sample_call import ANSWERED_CALL, utc

# formats.md §1.1, `example` template (15 fields).
EXAMPLE = (
    '"Alice","15551230000","442071234567","public","2024-05-01 12:00:00","2024-05-01 12:00:07",'
    '"2024-05-01 12:01:12","72","65","NORMAL_CLEARING","3da8bf84-c133-4959-9e24-e72875cb33a1",'
    '"7f1c2e9a-0b7d-4c53-9a51-0d2b7e3e1f20","acct42","PCMA","PCMA"'
)
UNANSWERED = (
    '"Bob","15551230000","+33612345678","public","2024-05-01 12:02:00","","2024-05-01 12:02:31",'
    '"31","0","NO_ANSWER","5b0c1d2e-0000-4000-8000-000000000002","","acct42","PCMA","PCMA"'
)
# Built-in `default` template (13 fields) with its `", "` before accountcode.
DEFAULT = (
    '"Alice","15551230000","442071234567","public","2024-05-01 12:00:00","2024-05-01 12:00:07",'
    '"2024-05-01 12:01:12","72","65","NORMAL_CLEARING","3da8bf84-c133-4959-9e24-e72875cb33a1",'
    '"7f1c2e9a-0b7d-4c53-9a51-0d2b7e3e1f20", "acct42"'
)


def parse(text: str, timezone: str = "UTC"):
    return parse_cdr_file(text.encode(), "freeswitch-csv", timezone=timezone, source="Master.csv")


def test_example_template_maps_uuid_numbers_and_accountcode():
    [cdr] = parse(EXAMPLE + "\n").cdrs.to_pylist()
    assert cdr == {
        "line": 1,
        "call_id": "3da8bf84-c133-4959-9e24-e72875cb33a1",
        **ANSWERED_CALL,
        "customer": "acct42",
        "supplier": None,
        "pdd_ms": None,
        "dialled": "442071234567",
        "ingress_trunk": None,
        "ingress_ip": None,
        "egress_trunk": None,
        "egress_ip": None,
        "egress_leg": None,
        "mos": None,
    }


def test_default_template_space_before_accountcode_is_skipped():
    [cdr] = parse(DEFAULT + "\n").cdrs.to_pylist()
    assert (cdr["customer"], cdr["billsec"]) == ("acct42", 65)


def test_unanswered_call_maps_hangup_cause_to_disposition():
    [cdr] = parse(UNANSWERED + "\n").cdrs.to_pylist()
    assert (cdr["answer_time"], cdr["billsec"], cdr["disposition"], cdr["callee"]) == (
        None,
        0,
        "NO_ANSWER",
        "33612345678",
    )


def test_hangup_causes_map_onto_canonical_dispositions():
    causes = [
        "USER_BUSY",
        "NO_USER_RESPONSE",
        "ORIGINATOR_CANCEL",
        "NORMAL_CIRCUIT_CONGESTION",
        "UNALLOCATED_NUMBER",
        "NORMAL_CLEARING",
    ]
    rows = [
        UNANSWERED.replace("NO_ANSWER", cause).replace("00000002", f"0000000{i}")
        for i, cause in enumerate(causes)
    ]
    parsed = parse("\n".join(rows) + "\n")
    assert parsed.cdrs["disposition"].to_pylist() == [
        "BUSY",
        "NO_ANSWER",
        "CANCEL",
        "CONGESTION",
        "FAILED",
        "NO_ANSWER",
    ]


def test_unescaped_quote_with_comma_in_caller_name_is_a_column_count_row():
    broken = EXAMPLE.replace('"Alice"', '"Bob "Fast, Ltd""').replace("3da8bf84", "4da8bf84")
    parsed = parse(f"{EXAMPLE}\n{broken}\n")
    assert parsed.cdrs["line"].to_pylist() == [1]
    assert parsed.quarantine.to_pylist() == [
        {
            "line": 2,
            "reason": "column_count",
            "field": "",
            "detail": "16 fields, expected 15",
            "raw": broken,
        }
    ]


def test_local_stamps_are_converted_to_utc_across_the_autumn_dst_change():
    # Europe/London: 01:00-02:00 happens twice on 2024-10-27. The call starts in the first
    # (BST) pass and ends in the second (GMT) one: 01:59:30 BST -> 01:00:20 GMT is 50 s.
    row = (
        EXAMPLE.replace("2024-05-01 12:00:00", "2024-10-27 01:59:30")
        .replace("2024-05-01 12:00:07", "2024-10-27 01:59:40")
        .replace("2024-05-01 12:01:12", "2024-10-27 01:00:20")
        .replace('"72","65"', '"50","40"')
    )
    [cdr] = parse(row + "\n", timezone="Europe/London").cdrs.to_pylist()
    assert (cdr["start_time"], cdr["answer_time"], cdr["end_time"]) == (
        utc(2024, 10, 27, 0, 59, 30),
        utc(2024, 10, 27, 0, 59, 40),
        utc(2024, 10, 27, 1, 0, 20),
    )


def test_summer_stamps_are_an_hour_ahead_of_utc_in_london():
    [cdr] = parse(EXAMPLE + "\n", timezone="Europe/London").cdrs.to_pylist()
    assert cdr["start_time"] == utc(2024, 5, 1, 11, 0, 0)


def test_stamp_inside_the_spring_gap_is_bad_time():
    row = EXAMPLE.replace("2024-05-01 12:00:00", "2024-03-31 01:30:00").replace(
        "2024-05-01 12:00:07", "2024-03-31 03:30:07"
    )
    row = row.replace("2024-05-01 12:01:12", "2024-03-31 03:31:12")
    [bad] = parse(row + "\n", timezone="Europe/London").quarantine.to_pylist()
    assert (bad["reason"], bad["field"], bad["detail"]) == (
        "bad_time",
        "start_time",
        "start_time: '2024-03-31 01:30:00' does not exist in Europe/London (clocks went forward)",
    )


def test_bad_time_and_non_numeric_billsec_are_quarantined():
    rows = [
        EXAMPLE.replace("2024-05-01 12:00:07", "2024-13-01 25:00:00"),
        EXAMPLE.replace('"65"', '"abc"').replace("3da8bf84", "5da8bf84"),
    ]
    quarantine = parse("\n".join(rows) + "\n").quarantine
    assert quarantine["detail"].to_pylist() == [
        "answer_time: '2024-13-01 25:00:00' is not a valid time",
        "billsec: 'abc' is not a whole number of seconds",
    ]


def test_generated_default_template_file_reconciles():
    data = generate_freeswitch_csv(3_000, seed=3, template="default", bad_fraction=0.05)
    parsed = parse_cdr_file(data, "freeswitch-csv")
    assert parsed.rows_in == 3_000
    assert parsed.cdrs.num_rows > 2_700
