"""`tollgate deck impact`: a supplier's recent calls replayed through a proposed deck.

Issue 14 §4: "Nigeria from 0.012 to 0.015". A tenant's calls are rated through the real
ingest and rate services (moto), then the proposed deck raises Nigeria to 0.015 (two routes,
234 and 2348), lowers UK to 0.006 but bills it 60/60, and drops France. The supplier rounds
each charge up to 4 places (its own contract rule), the customer half-up to 6.

Per call, by hand (cost old -> new; revenue = the customer's charge, 0.014/min Nigeria,
0.015 UK, 0.030 France):
  n1 2348..., 60 s, 2 days 1h ago  0.0120 -> 0.0150      revenue 0.014000
  n2 2348..., 61 s, 1 day ago    0.0122 -> 0.0153 (0.01525 up)  revenue 0.014233
  n3 2348..., unanswered         0      -> 0           revenue 0
  n4 234 1..., 60 s, 2 days 1h ago 0.0120 -> 0.0150      revenue 0.014000
  u1 44..., 61 s, 3 days ago     0.0102 (0.0101666 up) -> 0.0120 (120 s billed)  revenue 0.015250
  f1 33..., 30 s, 1 day ago      0.0100 -> no rate     revenue 0.015000
Not counted: the same Nigeria call 10 days ago (outside --days 7) and one carried by bt.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from functions.cli import main
from functions.ingest.service import DroppedFile, ingest
from functions.rate.service import DeckCache, rate_file
from functions.store import accounts, files, lake, ledger, queues
from tests.cli.conftest import json_document, run_command

SWITCH = "sbc1"
HEADER = (
    "call_id,caller,callee,start_time,answer_time,end_time,billsec,disposition,customer,supplier"
)
DECKS = {
    "direct": "prefix,destination,rate\n234,Nigeria,0.014\n44,UK,0.015\n33,France,0.030\n",
    "mtn": "prefix,destination,rate\n234,Nigeria,0.012\n44,UK,0.010\n33,France,0.020\n",
    "bt": "prefix,destination,rate\n234,Nigeria,0.011\n",
}
PROPOSED = (
    "prefix,destination,rate,increment\n"
    "234,Nigeria,0.015,1/1\n"
    "2348,Nigeria,0.015,1/1\n"
    "44,UK,0.006,60/60\n"
)


def _run(*argv: str) -> None:
    status = main(list(argv))
    assert status == 0, f"tollgate {' '.join(argv)} exited {status}"


def _cdr(call_id: str, callee: str, billsec: int, ago: dt.timedelta, supplier="mtn") -> str:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - ago
    text = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    if billsec == 0:
        return f"{call_id},15551230000,{callee},{text},,{text},0,NO_ANSWER,direct,{supplier}"
    answer = start + dt.timedelta(seconds=5)
    end = answer + dt.timedelta(seconds=billsec)
    return (
        f"{call_id},15551230000,{callee},{text},{answer.strftime('%Y-%m-%dT%H:%M:%SZ')},"
        f"{end.strftime('%Y-%m-%dT%H:%M:%SZ')},{billsec},ANSWERED,direct,{supplier}"
    )


def _rate(tenant: str, name: str, text: str) -> None:
    obj = lake.put_cdr(tenant, SWITCH, name, text.encode())
    _, etag = lake.get_cdr(tenant, SWITCH, name)
    dropped = DroppedFile("tollgate-cdr", obj.key, etag, tenant, SWITCH, name, dt.date.today())
    ingest(dropped, lake=lake, switches=accounts, files=files, rate_requests=queues)
    rate_file(
        tenant, SWITCH, dropped.file_id, lake=lake, files=files, accounts=accounts,
        ledger=ledger, events=_NoEvents(), decks=DeckCache(),
    )  # fmt: skip


class _NoEvents:
    def publish_file_rated(self, detail: dict) -> None:
        pass


@pytest.fixture(scope="module")
def tenant(tenant_numbers, tmp_path_factory) -> tuple[str, Path]:
    name = f"acme{next(tenant_numbers)}"
    folder = tmp_path_factory.mktemp("impact")
    _run("tenant", "create", name)
    _run("switch", "create", name, SWITCH, "--format", "generic")
    _run("account", "create", name, "direct", "--kind", "customer")
    _run("account", "create", name, "mtn", "--kind", "supplier", "--rounding", "up",
         "--decimals", "4")  # fmt: skip
    _run("account", "create", name, "bt", "--kind", "supplier")
    _run("account", "create", name, "tata", "--kind", "supplier")  # no traffic at all
    for account, text in DECKS.items():
        path = folder / f"{account}.csv"
        path.write_text(text)
        _run("deck", "upload", name, account, str(path))
    day, hour = dt.timedelta(days=1), dt.timedelta(hours=1)
    calls = [
        _cdr("n1", "2348031234567", 60, 2 * day + hour),
        _cdr("n2", "2348031234568", 61, day),
        _cdr("n3", "2348031234569", 0, day),
        _cdr("n4", "23412345678", 60, 2 * day + hour),
        _cdr("u1", "442071234567", 61, 3 * day),
        _cdr("f1", "33123456789", 30, day),
        _cdr("old", "2348031234567", 60, 10 * day),  # outside the week
        _cdr("bt1", "2348031234567", 60, day, supplier="bt"),  # another supplier's
    ]
    _rate(name, "week.csv", "\n".join([HEADER, *calls]) + "\n")
    proposed = folder / "mtn-proposed.csv"
    proposed.write_text(PROPOSED)
    return name, proposed


def _figures(entry: dict) -> tuple:
    keys = ("calls", "answered", "minutes", "old_cost", "new_cost", "difference", "revenue")
    keys += ("old_margin", "new_margin", "loses_money", "losing_calls")
    return tuple(entry[k] for k in keys)


def test_the_proposed_deck_is_replayed_per_destination_to_the_last_digit(tenant, capsys):
    name, proposed = tenant
    document = json_document(capsys, "deck", "impact", name, "mtn", str(proposed))
    assert (document["tenant"], document["supplier"], document["currency"]) == (
        name, "mtn", "USD",
    )  # fmt: skip
    assert document["days"] == 7
    nigeria, uk = document["destinations"]
    assert nigeria["destination"] == "Nigeria"
    # calls answered minutes old new difference revenue old-margin new-margin loses losing
    assert _figures(nigeria) == (
        4, 3, "3.02", "0.036200", "0.045300", "0.009100", "0.042233", "0.006033",
        "-0.003067", True, 3,
    )  # fmt: skip
    routes = {r["prefix"]: _figures(r) for r in nigeria["routes"]}
    assert routes == {
        "234": (1, 1, "1.00", "0.012000", "0.015000", "0.003000", "0.014000", "0.002000",
                "-0.001000", True, 1),
        "2348": (3, 2, "2.02", "0.024200", "0.030300", "0.006100", "0.028233", "0.004033",
                 "-0.002067", True, 2),
    }  # fmt: skip
    assert uk["destination"] == "UK"
    assert _figures(uk) == (
        1, 1, "1.02", "0.010200", "0.012000", "0.001800", "0.015250", "0.005050",
        "0.003250", False, 0,
    )  # fmt: skip
    assert document["losing_destinations"] == ["Nigeria"]
    assert document["losing_routes"] == ["Nigeria 234", "Nigeria 2348"]
    unrated = document["unrated"]
    assert unrated["calls"] == 1
    (france,) = unrated["destinations"]
    assert (france["destination"], france["calls"], france["old_cost"]) == ("France", 1, "0.010000")
    assert (france["new_cost"], france["new_margin"], france["revenue"]) == (None, None, "0.015000")
    # the total is that of the calls the proposed deck prices (France's apart)
    assert _figures(document["total"])[:7] == (
        5, 4, "4.03", "0.046400", "0.057300", "0.010900", "0.057483",
    )  # fmt: skip
    assert document["other_currency_calls"] == 0
    assert set(document) == {
        "tenant", "supplier", "deck", "currency", "since", "until", "days", "as_of",
        "files_without_charges", "destinations", "losing_destinations", "losing_routes",
        "unrated", "other_currency_calls", "total",
    }  # fmt: skip


def test_fewer_days_leave_the_older_calls_out(tenant, capsys):
    name, proposed = tenant
    document = json_document(capsys, "deck", "impact", name, "mtn", str(proposed), "--days", "2")
    # n1, n4 (2 days and an hour ago) and u1 (3 days) are out.
    (nigeria,) = document["destinations"]
    assert _figures(nigeria)[:7] == (2, 1, "1.02", "0.012200", "0.015300", "0.003100", "0.014233")
    assert document["unrated"]["calls"] == 1


def test_the_text_report_flags_the_loss_and_the_unrated_calls(tenant, capsys):
    name, proposed = tenant
    status, out, err = run_command(capsys, "deck", "impact", name, "mtn", str(proposed))
    assert status == 0, err
    assert "LOSES MONEY (new cost above revenue): Nigeria" in out
    assert "UNRATED by the proposed deck: 1 call (France)" in out
    france = next(line for line in out.splitlines() if line.startswith("France"))
    assert france.split() == [
        "France", "(no", "rate)", "1", "0.50", "0.010000", "-", "-", "0.015000", "0.005000",
        "-", "UNRATED",
    ]  # fmt: skip
    nigeria = next(line for line in out.splitlines() if line.startswith("Nigeria"))
    assert nigeria.split() == [
        "Nigeria", "4", "3.02", "0.036200", "0.045300", "0.009100", "0.042233", "0.006033",
        "-0.003067", "LOSS",
    ]  # fmt: skip


def test_a_supplier_without_traffic_has_nothing_to_report(tenant, capsys):
    name, proposed = tenant
    document = json_document(capsys, "deck", "impact", name, "tata", str(proposed))
    assert document["destinations"] == [] and document["total"]["calls"] == 0


def test_a_bad_deck_exits_2_naming_its_line(tenant, capsys, tmp_path):
    name, _ = tenant
    bad = tmp_path / "bad.csv"
    bad.write_text("prefix,destination,rate\n234,Nigeria,0.015\n44,UK,cheap\n")
    status, out, err = run_command(capsys, "deck", "impact", name, "mtn", str(bad))
    assert status == 2
    assert "bad.csv" in err and "line 3" in err and "rate" in err
    assert out == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("direct",), "is a customer, not a supplier"),
        (("mtn", "--currency", "EUR"), "deck currency EUR differs"),
        (("nobody",), "nobody"),
    ],
)
def test_refusals_exit_2(tenant, capsys, argv, message):
    name, proposed = tenant
    account, *flags = argv
    status, _, err = run_command(capsys, "deck", "impact", name, account, str(proposed), *flags)
    assert status == 2 and message in err


def test_days_must_be_a_positive_whole_number(tenant, capsys):
    name, proposed = tenant
    with pytest.raises(SystemExit) as stopped:
        main(["deck", "impact", name, "mtn", str(proposed), "--days", "0"])
    assert stopped.value.code == 2
    assert "--days must be 1..366, got 0" in capsys.readouterr().err
