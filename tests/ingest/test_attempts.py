"""Route advance: two attempts of one call are two CDRs; the same attempt twice is one.

An attempt is (call id, start, leg): `attempt_keys` for the lake and the cross-file claims,
the same rule in `validate` within a file and in `iter_cdr_chunks` across its parts.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.ingest.formats import iter_cdr_chunks, parse_cdr_file
from functions.shared.cdr import CDR_SCHEMA, attempt_keys

# One channel, one uniqueid: Dial() to vendor A fails, the dialplan's next Dial() to vendor B
# is answered (Asterisk 12+ writes a CDR per Dial, each with its own dstchannel; the start
# can be the same second when A fails fast).
FAILED_A = (
    '"acct42","15551230000","442071234567","from-cust","""Alice"" <15551230000>",'
    '"SIP/custA-0000001a","SIP/vendorA-0000001b","Dial","SIP/vendorA/442071234567,60",'
    '"2024-05-01 12:00:00",,"2024-05-01 12:00:00",0,0,"FAILED","DOCUMENTATION",'
    '"1714564800.26",""'
)
ANSWERED_B = (
    '"acct42","15551230000","442071234567","from-cust","""Alice"" <15551230000>",'
    '"SIP/custA-0000001a","SIP/vendorB-0000001c","Dial","SIP/vendorB/442071234567,60",'
    '"2024-05-01 12:00:00","2024-05-01 12:00:07","2024-05-01 12:01:12",72,65,"ANSWERED",'
    '"DOCUMENTATION","1714564800.26",""'
)


def asterisk(*rows: str) -> bytes:
    return ("\n".join(rows) + "\n").encode()


def test_asterisk_route_advance_keeps_both_attempts_and_the_answered_one_is_billable():
    """Before: the answered row was quarantined duplicate_call_id (same uniqueid) and the
    call was never charged."""
    parsed = parse_cdr_file(asterisk(FAILED_A, ANSWERED_B), "asterisk-csv")
    assert parsed.quarantine.num_rows == 0
    assert parsed.cdrs.select(["call_id", "disposition", "billsec", "supplier"]).to_pylist() == [
        {"call_id": "1714564800.26", "disposition": "FAILED", "billsec": 0, "supplier": "vendorA"},
        {
            "call_id": "1714564800.26",
            "disposition": "ANSWERED",
            "billsec": 65,
            "supplier": "vendorB",
        },
    ]


def test_a_retry_to_the_same_vendor_is_another_attempt_the_same_row_again_is_not():
    retry = ANSWERED_B.replace("vendorB-0000001c", "vendorA-0000001d").replace(
        "SIP/vendorB/", "SIP/vendorA/"
    )
    parsed = parse_cdr_file(asterisk(FAILED_A, retry, retry, FAILED_A), "asterisk-csv")
    assert parsed.cdrs["line"].to_pylist() == [1, 2]
    assert parsed.quarantine.select(["line", "reason", "field"]).to_pylist() == [
        {"line": 3, "reason": "duplicate_call_id", "field": "call_id"},
        {"line": 4, "reason": "duplicate_call_id", "field": "call_id"},
    ]


def test_a_row_whose_start_cannot_be_read_claims_its_call_id():
    """Which attempt a row with an unreadable start was cannot be told, so a later row with
    its call id is not charged (the rule before attempts, kept for these rows)."""
    garbled = FAILED_A.replace('"2024-05-01 12:00:00",,', '"2024-05-01 25:00:00",,')
    parsed = parse_cdr_file(asterisk(garbled, ANSWERED_B), "asterisk-csv")
    assert parsed.cdrs.num_rows == 0
    assert parsed.quarantine.select(["line", "reason"]).to_pylist() == [
        {"line": 1, "reason": "bad_time"},
        {"line": 2, "reason": "duplicate_call_id"},
    ]


def test_route_advance_across_parts_is_what_the_whole_file_gives():
    """The two attempts, and a resend of the answered one, each in a different part."""
    filler = [
        ANSWERED_B.replace("1714564800.26", f"1714564900.{i}").replace("0000001c", f"{i:08x}")
        for i in range(120)
    ]
    rows = [FAILED_A, *filler[:60], ANSWERED_B, *filler[60:], ANSWERED_B]
    data = asterisk(*rows)
    whole = parse_cdr_file(data, "asterisk-csv")
    parts = list(iter_cdr_chunks(data, "asterisk-csv", chunk_bytes=6_000))
    assert len(parts) >= 3
    assert pa.concat_tables([p.cdrs for p in parts]).equals(whole.cdrs)
    quarantine = pa.concat_tables([p.quarantine for p in parts])
    assert quarantine.to_pylist() == whole.quarantine.to_pylist()
    assert quarantine.select(["line", "reason"]).to_pylist() == [
        {"line": len(rows), "reason": "duplicate_call_id"}
    ]
    kept = whole.cdrs.filter(pa.compute.equal(whole.cdrs["call_id"], "1714564800.26"))
    assert kept["line"].to_pylist() == [1, 62]


T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def cdrs(rows: list[dict]) -> pa.Table:
    base = {"line": 1, "caller": "1", "callee": "44", "billsec": 0, "disposition": "FAILED"}
    return pa.Table.from_pylist([base | r for r in rows], schema=CDR_SCHEMA)


def test_attempt_keys_equal_for_a_resent_attempt_and_differ_for_two_attempts():
    a = {"call_id": "1714564800.26", "start_time": T0, "egress_leg": "SIP/vendorA-0000001b"}
    b = a | {"egress_leg": "SIP/vendorB-0000001c"}
    keys = attempt_keys(cdrs([a, b, a | {"line": 9, "billsec": 5}])).to_pylist()
    assert keys[0] == keys[2] != keys[1]


def test_attempt_keys_of_leg_less_calls_are_the_keys_calls_were_claimed_by_before():
    """Claim sets written before attempts hold `call_id|start_micros`: a resend after the
    change must still match them."""
    table = cdrs([{"call_id": "c1", "start_time": T0}, {"call_id": "c|2", "start_time": T0}])
    assert attempt_keys(table).to_pylist() == ["c1|1714564800000000", "c|2|1714564800000000"]
    assert attempt_keys(table.drop_columns(["egress_leg", "egress_trunk"])).to_pylist() == (
        attempt_keys(table).to_pylist()
    )


def test_without_a_leg_of_its_own_the_egress_trunk_tells_attempts_apart():
    rows = [
        {"call_id": "c1", "start_time": T0, "egress_trunk": "VEND_A"},
        {"call_id": "c1", "start_time": T0, "egress_trunk": "VEND_B"},
        {"call_id": "c1", "start_time": T0, "egress_trunk": "VEND_B", "egress_leg": "x-1"},
    ]
    assert len(set(attempt_keys(cdrs(rows)).to_pylist())) == 3


texts = st.text(alphabet="ab|>\\;1", max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(texts, st.integers(-(10**15), 10**15), st.one_of(st.none(), texts)),
        min_size=2,
        max_size=12,
    )
)
def test_attempt_keys_are_equal_exactly_when_the_attempts_are(attempts):
    """Ids and legs full of the key's own separators never make two attempts one key."""
    rows = [
        {"call_id": c, "start_time": pa.scalar(s, pa.timestamp("us", tz="UTC")).as_py(),
         "egress_leg": leg}
        for c, s, leg in attempts
    ]  # fmt: skip
    keys = attempt_keys(cdrs(rows)).to_pylist()
    # A blank leg is no leg.
    identities = [(c, s, leg or None) for c, s, leg in attempts]
    for i in range(len(rows)):
        for j in range(len(rows)):
            assert (keys[i] == keys[j]) == (identities[i] == identities[j])


def test_tollgate_rate_charges_the_answered_attempt_of_a_route_advanced_call(tmp_path, monkeypatch):
    """Through the CLI: before, `tollgate rate` quarantined the answered row as a duplicate
    and the call earned nothing."""
    import csv

    from functions.cli import main

    monkeypatch.setenv("TOLLGATE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "Master.csv").write_bytes(asterisk(FAILED_A, ANSWERED_B))
    (tmp_path / "sell.csv").write_text("prefix,destination,rate,increment\n44,UK,0.012,60/6\n")
    argv = ["rate", str(tmp_path / "Master.csv"), "--format", "asterisk-csv"]
    argv += ["--customer-deck", str(tmp_path / "sell.csv"), "--out", str(tmp_path / "out.csv")]
    assert main(argv) == 0
    with (tmp_path / "out.csv").open() as handle:
        rated = list(csv.DictReader(handle))
    with (tmp_path / "out.quarantine.csv").open() as handle:
        assert list(csv.DictReader(handle)) == []
    # 65 s at 60/6 bill 66 s: 66/60 x 0.012 = 0.0132
    assert [(r["line"], r["billsec"], r["status"], r["customer_amount"]) for r in rated] == [
        ("1", "0", "rated", "0.000000"),
        ("2", "65", "rated", "0.013200"),
    ]
