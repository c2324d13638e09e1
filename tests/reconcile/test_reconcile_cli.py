"""`tollgate reconcile` end to end on moto: our calls rated through the real ingest and rate
services, their file generated from them with a clock offset, drops, jitter, an inflated
duration and a changed price.

Our calls (supplier mtn at 0.012/min, 1/1: billsec x 0.0002; customer direct 0.014/min,
half-up to 6 places), day D; their clock is 7 s ahead:
  c0  60 s  0.012000  theirs 1 s later than the offset          matched
  c1  61 s  0.012200  theirs 62 s at the same amount            matched (within 2 s)
  c2 120 s  0.024000  theirs 1 s earlier                        matched
  c3  30 s  0.006000  theirs 45 s, 0.009000                     duration_mismatch  +0.003000
  c4  90 s  0.018000  theirs 0.019500                           rate_mismatch      +0.001500
  c5  45 s  0.009000  not in their file                         missing_theirs     -0.009000
  x6                  theirs only, 75 s, 0.015000               missing_ours       +0.015000
  c7   0 s            unanswered on both sides: left out
  c8  10 s  0.002000  ours 23:59:57, theirs 00:00:04 of D+1     matched (our start is in D)
  c9  60 s            D+1 02:00 on both sides: outside the period
and one row of theirs with an unreadable start (quarantined).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from functions.cli import main
from functions.ingest.service import DroppedFile, ingest
from functions.rate.service import DeckCache, rate_file
from functions.store import accounts, files, lake, ledger, queues
from tests.conftest import operator_account

TENANT = "recon"
SWITCH = "sbc1"
D = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)
HEADER = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier"
)
DECKS = {
    "direct": "prefix,destination,rate\n234,Nigeria,0.014\n",
    "mtn": "prefix,destination,rate\n234,Nigeria,0.012\n",
}
OFFSET = 7
# (id, callee, our start, billsec, fate, their start jitter, their billsec, their amount)
CALLS = [
    ("c0", "2348030000000", (0, 30), 60, "both", 1, 60, "0.012000"),
    ("c1", "2348030000001", (0, 50), 61, "both", 0, 62, "0.012200"),
    ("c2", "2348030000002", (1, 10), 120, "both", -1, 120, "0.024000"),
    ("c3", "2348030000003", (1, 30), 30, "both", 0, 45, "0.009000"),
    ("c4", "2348030000004", (1, 50), 90, "both", 0, 90, "0.019500"),
    ("c5", "2348030000005", (2, 10), 45, "ours", 0, 45, None),
    ("x6", "2348039999999", (2, 30), 75, "theirs", 0, 75, "0.015000"),
    ("c7", "2348030000007", (2, 50), 0, "both", 0, 0, "0"),
    ("c8", "2348030000008", (23, 59, 57), 10, "both", 0, 10, "0.002000"),
    ("c9", "2348030000009", (26, 0), 60, "both", 0, 60, "0.012000"),
]


def _time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(call_id, callee, start: dt.datetime, billsec, customer="direct", supplier="mtn") -> str:
    if billsec == 0:
        return f"{call_id},15551230000,{callee},{_time(start)},,{_time(start)},0,NO_ANSWER,"  \
            f"{customer},{supplier}"  # fmt: skip
    answer = start + dt.timedelta(seconds=5)
    end = answer + dt.timedelta(seconds=billsec)
    return (
        f"{call_id},15551230000,{callee},{_time(start)},{_time(answer)},{_time(end)},{billsec},"
        f"ANSWERED,{customer},{supplier}"
    )


def _start(at: tuple) -> dt.datetime:
    hours, minutes, *seconds = at
    base = dt.datetime(D.year, D.month, D.day, tzinfo=dt.UTC)
    return base + dt.timedelta(hours=hours, minutes=minutes, seconds=seconds[0] if seconds else 0)


def our_file() -> str:
    rows = [_row(c[0], c[1], _start(c[2]), c[3]) for c in CALLS if c[4] in ("both", "ours")]
    return "\n".join([HEADER, *rows]) + "\n"


def their_file(amounts: bool = True) -> str:
    rows = []
    for call_id, callee, at, _, fate, jitter, billsec, amount in CALLS:
        if fate == "ours":
            continue
        start = _start(at) + dt.timedelta(seconds=OFFSET + jitter)
        row = _row(f"T-{call_id}", f"+{callee}", start, billsec, customer="", supplier="")
        rows.append(row + (f",{amount}" if amounts else ""))
    bad = "T-bad,1555,2348030000010,not-a-time,,,10,ANSWERED,,"
    rows.insert(3, bad + (",0.001" if amounts else ""))
    return "\n".join([HEADER + (",amount" if amounts else ""), *rows]) + "\n"


def asterisk_file(zone: str) -> str:
    """Their calls as Asterisk's Master.csv (18 columns) in local wall-clock time of `zone`:
    no amounts; the unreadable row is left out."""
    local = ZoneInfo(zone)
    rows = []
    for number, (call_id, callee, at, _, fate, jitter, billsec, _) in enumerate(CALLS):
        if fate == "ours":
            continue
        start = (_start(at) + dt.timedelta(seconds=OFFSET + jitter)).astimezone(local)
        answer = start + dt.timedelta(seconds=5) if billsec else None
        end = (answer or start) + dt.timedelta(seconds=billsec)
        stamp = "%Y-%m-%d %H:%M:%S"
        answered = f'"{answer.strftime(stamp)}"' if answer else ""
        rows.append(
            f'"acct","15551230000","{callee}","from-mtn","""x"" <1555>","SIP/a-{number}",'
            f'"SIP/b-{number}","Dial","SIP/b","{start.strftime(stamp)}",{answered},'
            f'"{end.strftime(stamp)}",{billsec + 5},{billsec},'
            f'"{"ANSWERED" if billsec else "NO ANSWER"}","DOCUMENTATION","T-{call_id}",""'
        )
    return "\n".join(rows) + "\n"


# A partner's spreadsheet (Kolmisoft's dispute layout: Source, Destination, Start, Billsec,
# Price), `;`-separated, start as epoch seconds, no call ids: read through a column mapping.
SHEET_MAPPING = {
    "columns": {"caller": "Source", "callee": "Destination", "start": "Start",
                "duration": "Billsec", "amount": "Price"},
    "time_format": "EPOCH",
    "delimiter": ";",
}  # fmt: skip


def spreadsheet() -> str:
    rows = ["Source;Destination;Start;Billsec;Price"]
    for _, callee, at, _, fate, jitter, billsec, amount in CALLS:
        if fate == "ours":
            continue
        start = _start(at) + dt.timedelta(seconds=OFFSET + jitter)
        rows.append(f"15551230000;{callee};{int(start.timestamp())};{billsec};{amount}")
    rows.insert(3, "1555;2348030000010;not-a-time;10;0.001")
    return "\n".join(rows) + "\n"


class _NoEvents:
    def publish_file_rated(self, detail: dict) -> None:
        pass


def _run(*argv: str) -> None:
    assert main(list(argv)) == 0, f"tollgate {' '.join(argv)}"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reconcile")
    with operator_account():
        _run("tenant", "create", TENANT)
        _run("switch", "create", TENANT, SWITCH, "--format", "generic")
        _run("switch", "create", TENANT, "ast", "--format", "asterisk-csv",
             "--timezone", "Europe/Paris")  # fmt: skip
        _run("account", "create", TENANT, "direct", "--kind", "customer")
        _run("account", "create", TENANT, "mtn", "--kind", "supplier")
        for account, text in DECKS.items():
            path = folder / f"{account}.csv"
            path.write_text(text)
            _run("deck", "upload", TENANT, account, str(path))
        obj = lake.put_cdr(TENANT, SWITCH, "ours.csv", our_file().encode())
        _, etag = lake.get_cdr(TENANT, SWITCH, "ours.csv")
        dropped = DroppedFile("tollgate-cdr", obj.key, etag, TENANT, SWITCH, "ours.csv", D)
        ingest(dropped, lake=lake, switches=accounts, files=files, rate_requests=queues)
        rate_file(
            TENANT, SWITCH, dropped.file_id, lake=lake, files=files, accounts=accounts,
            ledger=ledger, events=_NoEvents(), decks=DeckCache(),
        )  # fmt: skip
        (folder / "theirs.csv").write_text(their_file())
        (folder / "theirs-bare.csv").write_text(their_file(amounts=False))
        (folder / "Master.csv").write_text(asterisk_file("Europe/Paris"))
        (folder / "sheet.csv").write_text(spreadsheet())
        (folder / "sheet.json").write_text(json.dumps(SHEET_MAPPING))
        yield folder


def reconcile_json(capsys, *argv: str) -> dict:
    capsys.readouterr()
    status = main(["reconcile", TENANT, *argv, "--from", str(D), "--to", str(D), "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out)


def test_a_supplier_file_is_reconciled_to_the_last_digit(world, capsys):
    document = reconcile_json(capsys, "mtn", str(world / "theirs.csv"))
    assert {k: document[k] for k in list(document)[:9]} == {
        "clock_offset_seconds": "7",
        "matched": 4,
        "duration_mismatch": 1,
        "missing_ours": 1,
        "missing_theirs": 1,
        "rate_mismatch": 1,
        "our_amount": "0.083200",
        "their_amount": "0.093700",
        "difference": "0.010500",
    }
    assert document["classes"] == {
        "matched": {"count": 4, "seconds": 252, "minutes": "4.20", "difference": "0.000000"},
        "duration_mismatch": {
            "count": 1,
            "seconds": 45,
            "minutes": "0.75",
            "difference": "0.003000",
        },
        "rate_mismatch": {"count": 1, "seconds": 90, "minutes": "1.50", "difference": "0.001500"},
        "missing_ours": {"count": 1, "seconds": 75, "minutes": "1.25", "difference": "0.015000"},
        "missing_theirs": {"count": 1, "seconds": 45, "minutes": "0.75", "difference": "-0.009000"},
    }
    assert (document["role"], document["currency"], document["their_amounts"]) == (
        "supplier", "USD", True,
    )  # fmt: skip
    assert (document["our_unanswered"], document["their_unanswered"]) == (1, 1)
    assert document["their_quarantined"] == 1


def test_a_customer_file_without_amounts(world, capsys):
    document = reconcile_json(capsys, "direct", str(world / "theirs-bare.csv"))
    assert document["role"] == "customer" and document["their_amounts"] is False
    # No amounts of theirs: c4 is matched too, and no pair moves money.
    assert [document[k] for k in ("matched", "duration_mismatch", "rate_mismatch")] == [5, 1, 0]
    assert [document[k] for k in ("missing_ours", "missing_theirs")] == [1, 1]
    # What we charge direct: 0.014/min, half-up to 6 places per call.
    assert document["our_amount"] == "0.097066"
    assert document["their_amount"] == "0.000000"
    assert document["classes"]["missing_theirs"]["difference"] == "-0.010500"


def test_an_asterisk_file_in_local_time(world, capsys):
    document = reconcile_json(
        capsys, "mtn", str(world / "Master.csv"), "--format", "asterisk-csv",
        "--timezone", "Europe/Paris",
    )  # fmt: skip
    assert document["clock_offset_seconds"] == "7"
    counts = [document[k] for k in ("matched", "duration_mismatch", "rate_mismatch")]
    assert counts == [5, 1, 0]  # no amounts of theirs: c4 is matched
    assert [document[k] for k in ("missing_ours", "missing_theirs")] == [1, 1]
    assert (document["their_amounts"], document["their_unanswered"]) == (False, 1)
    assert document["our_amount"] == "0.083200"
    # The same through a switch that writes Master.csv in Paris time.
    same = reconcile_json(capsys, "mtn", str(world / "Master.csv"), "--switch", "ast")
    assert same == document
    # Read as UTC, the same wall-clock times are an hour or two off: nothing pairs.
    document = reconcile_json(capsys, "mtn", str(world / "Master.csv"), "--format", "asterisk-csv")
    assert document["matched"] == 0


def test_the_text_report(world, capsys):
    capsys.readouterr()
    argv = ["reconcile", TENANT, "mtn", str(world / "theirs.csv"), "--from", str(D), "--to",
            str(D), "--start-tolerance", "0"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    # With no start tolerance only the calls exactly 7 s off pair (c1, c3, c4, c8).
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:8]}
    assert lines["matched"] == ["2", "1.20", "0.000000"]
    assert lines["missing_ours"] == ["3", "4.25", "0.051000"]
    assert lines["missing_theirs"] == ["3", "3.75", "-0.045000"]
    assert lines["total"] == ["10", "11.45", "0.010500"]
    assert "clock offset 7 s" in out
    assert "left out: 1 unanswered of ours, 1 unanswered and 1 unreadable rows of theirs" in out


def test_out_writes_the_dispute_pack(world, capsys, tmp_path):
    """--out writes the dispute pack (functions.reconcile.dispute), the letter too over the
    threshold."""
    argv = ["reconcile", TENANT, "mtn", str(world / "theirs.csv"), "--from", str(D), "--to",
            str(D), "--out", str(tmp_path / "pack"), "--threshold-amount", "0.01",
            "--json"]  # fmt: skip
    capsys.readouterr()
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 0, err
    written = [Path(p).name for p in json.loads(out)["dispute_pack"]]
    # 0.010500 over 0.01: the letter too.
    assert written == [
        "disputed_cdrs.csv", "summary_by_day.csv", "summary.json", "dispute_letter.pdf"
    ]  # fmt: skip
    disputed = (tmp_path / "pack" / "disputed_cdrs.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in disputed[1:]] == [
        "duration_mismatch", "rate_mismatch", "missing_theirs", "missing_ours"
    ]  # fmt: skip


def test_bad_input_exits_2(world, capsys, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(their_file().replace("0.019500", "0.0195001"))  # c4, line 7
    worse = tmp_path / "worse.csv"
    worse.write_text(their_file().replace("0.024000", "12.5.0"))  # c2, line 4
    cases = [
        (("mtn", str(bad)), "line 7: amount: '0.0195001' has more than 6 decimal places"),
        (("mtn", str(worse)), "line 4: amount: '12.5.0' is not a decimal amount"),
        (("mtn", str(world / "theirs.csv"), "--format", "nope"), "unknown CDR format 'nope'"),
        (("ghost", str(world / "theirs.csv")), "unknown account 'ghost'"),
        (("mtn", str(world / "theirs.csv"), "--timezone", "Mars/Olympus"), "unknown time zone"),
        (("mtn", str(world / "theirs.csv"), "--switch", "nope"), "unknown switch 'nope'"),
        (("mtn", str(tmp_path / "none.csv")), "cannot read"),
    ]  # fmt: skip
    for argv, message in cases:
        capsys.readouterr()
        status = main(["reconcile", TENANT, *argv, "--from", str(D), "--to", str(D)])
        out, err = capsys.readouterr()
        assert (status, out) == (2, ""), err
        assert message in err


def test_a_partners_spreadsheet_through_a_column_mapping(world, capsys):
    """The same calls as theirs.csv, as a spreadsheet read with --format mapped --mapping: the
    same classes and money to the last digit (its Price column is their amount)."""
    document = reconcile_json(
        capsys, "mtn", str(world / "sheet.csv"), "--format", "mapped",
        "--mapping", str(world / "sheet.json"),
    )  # fmt: skip
    assert {k: document[k] for k in list(document)[:9]} == {
        "clock_offset_seconds": "7",
        "matched": 4,
        "duration_mismatch": 1,
        "missing_ours": 1,
        "missing_theirs": 1,
        "rate_mismatch": 1,
        "our_amount": "0.083200",
        "their_amount": "0.093700",
        "difference": "0.010500",
    }
    assert document["their_amounts"] is True and document["their_quarantined"] == 1


def test_a_mapped_file_needs_its_mapping(world, capsys):
    argv = ["reconcile", TENANT, "mtn", str(world / "sheet.csv"), "--format", "mapped",
            "--from", str(D), "--to", str(D)]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 2
    assert "--format mapped needs --mapping" in capsys.readouterr().err


def test_a_bad_price_in_a_mapped_spreadsheet_is_named(world, capsys, tmp_path):
    """As for a generic file's amount column: a price that is no number stops the
    reconciliation (exit 2) naming the file, the line and the column, rather than becoming a
    call without an amount."""
    sheet = spreadsheet().splitlines()
    sheet[2] = sheet[2].rsplit(";", 1)[0] + ";12,5"
    path = tmp_path / "bad-sheet.csv"
    path.write_text("\n".join(sheet) + "\n")
    argv = ["reconcile", TENANT, "mtn", str(path), "--format", "mapped",
            "--mapping", str(world / "sheet.json"), "--from", str(D), "--to", str(D)]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "bad-sheet.csv" in err and "line 3" in err and "Price" in err
