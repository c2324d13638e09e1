from functions.ingest.formats import parse_cdr_file
from functions.ingest.samples import generate_asterisk_csv
from tests.ingest.sample_call import ANSWERED_CALL, utc

# formats.md §2 (18 columns: loguniqueid + loguserfield).
ANSWERED = (
    '"acct42","15551230000","442071234567","from-carrier","""Alice"" <15551230000>",'
    '"SIP/carrierA-0000001a","SIP/carrierB-0000001b","Dial","SIP/carrierB/442071234567,60",'
    '"2024-05-01 12:00:00","2024-05-01 12:00:07","2024-05-01 12:01:12",72,65,"ANSWERED",'
    '"DOCUMENTATION","1714564800.26",""'
)
UNANSWERED = (
    '"acct42","15551230000","33612345678","from-carrier","""Alice"" <15551230000>",'
    '"SIP/carrierA-0000001c","SIP/carrierC-0000001d","Dial","SIP/carrierC/33612345678,60",'
    '"2024-05-01 12:02:00",,"2024-05-01 12:02:30",30,0,"NO ANSWER","DOCUMENTATION",'
    '"1714564920.27",""'
)


def parse(text: str, timezone: str = "UTC"):
    return parse_cdr_file(text.encode(), "asterisk-csv", timezone=timezone, source="Master.csv")


def test_eighteen_columns_use_uniqueid_and_the_dstchannel_peer_as_supplier():
    parsed = parse(f"{ANSWERED}\n{UNANSWERED}\n")
    assert parsed.quarantine.num_rows == 0
    first, second = parsed.cdrs.to_pylist()
    assert first == {
        "line": 1,
        "call_id": "1714564800.26",
        **ANSWERED_CALL,
        "customer": "acct42",
        "supplier": "carrierB",
        "pdd_ms": None,
        "dialled": "442071234567",
        "ingress_trunk": "carrierA",
        "ingress_ip": None,
        "egress_trunk": "carrierB",
        "egress_ip": None,
        "egress_leg": "SIP/carrierB-0000001b",
        "mos": None,
    }
    assert (second["answer_time"], second["disposition"], second["supplier"]) == (
        None,
        "NO_ANSWER",
        "carrierC",
    )


def test_sixteen_columns_derive_call_id_from_channel_and_start():
    row = ANSWERED.rsplit(',"1714564800.26",""', 1)[0]
    [cdr] = parse(row + "\n").cdrs.to_pylist()
    assert cdr["call_id"] == "SIP/carrierA-0000001a@2024-05-01 12:00:00"


def test_doubled_quotes_in_clid_do_not_shift_columns():
    row = ANSWERED.replace('"""Alice"" <15551230000>"', '"""Smith, ""J"""" <1555>"')
    assert parse(row + "\n").cdrs["billsec"].to_pylist() == [65]


def test_local_times_follow_the_switch_zone():
    [cdr] = parse(ANSWERED + "\n", timezone="America/New_York").cdrs.to_pylist()
    assert cdr["start_time"] == utc(2024, 5, 1, 16, 0, 0)


def test_dispositions_and_bad_rows():
    rows = [
        UNANSWERED.replace('"NO ANSWER"', '"BUSY"'),
        UNANSWERED.replace('"NO ANSWER"', '"CONGESTION"').replace(".27", ".28"),
        UNANSWERED.replace('"NO ANSWER"', '"HELD"').replace(".27", ".29"),
        ANSWERED.replace(",65,", ",-5,").replace(".26", ".30"),
        ANSWERED.replace('"442071234567","from', '"44abc","from').replace(".26", ".31"),
    ]
    parsed = parse("\n".join(rows) + "\n")
    assert parsed.cdrs["disposition"].to_pylist() == ["BUSY", "CONGESTION"]
    assert parsed.quarantine.select(["line", "reason", "detail"]).to_pylist() == [
        {
            "line": 3,
            "reason": "bad_disposition",
            "detail": "disposition: 'HELD' is not one of ANSWERED, NO_ANSWER, BUSY, FAILED, "
            "CONGESTION, CANCEL",
        },
        {"line": 4, "reason": "bad_duration", "detail": "billsec: '-5' is negative"},
        {"line": 5, "reason": "bad_number", "detail": "callee: '44abc' is not a dialable number"},
    ]
    assert parsed.quarantine["raw"].to_pylist() == rows[2:]


def test_generated_file_reconciles():
    parsed = parse_cdr_file(generate_asterisk_csv(2_000, seed=5, bad_fraction=0.1), "asterisk-csv")
    assert parsed.rows_in == 2_000
    assert set(parsed.quarantine["reason"].to_pylist()) == {
        "bad_time",
        "bad_duration",
        "bad_number",
    }
