"""`tollgate rerate`: corrected decks re-price charged calls; balances move by the difference.

The carrier of tests/pipeline/carrier.py rates its two files (c1-c5, then c1/c2 resent and
c7), an operator uploads corrected decks through the CLI and re-rates. The rated lake must
show the new prices, every balance must move by exactly the printed difference, and a crash
before any store call of the re-rating, followed by retries, must end in the clean state.
"""

from __future__ import annotations

import contextlib
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from functions.cli import build_parser
from functions.rate.rerate import generation, rerate
from functions.rate.service import DeckCache
from functions.shared.settings import settings
from functions.store import accounts, client, files, lake, ledger
from tests.pipeline.carrier import EXPECTED_BALANCES, TENANT, Published, run, set_up_carrier
from tests.pipeline.test_exactly_once import Crash, Faults, process

DAY = "2024-05-01"
# India mobile to `direct` down from 0.008 to 0.007; the supplier's India rate down to 0.006.
CORRECTED = {
    "direct": "prefix,destination,rate,increment\n917,India - Mobile,0.007,1/1\n44,UK,0.012,60/6\n",
    "tata": "prefix,destination,rate\n91,India,0.006\n",
}
# c1: 8000 → 7000 for direct, 6500 → 6000 for tata; c2: 6608 → 6100; c7: 13000 → 12000.
CORRECTED_BALANCES = EXPECTED_BALANCES | {
    "direct": EXPECTED_BALANCES["direct"] + 1_000,
    "tata": EXPECTED_BALANCES["tata"] - 2_008,
}


def tollgate_rerate(*argv: str) -> tuple[int, str]:
    """`tollgate rerate ...` in this process (the command's output captured)."""
    args = build_parser("rerate").parse_args(["rerate", *argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = args.run(args)
    return status, out.getvalue()


def rerate_json(*argv: str) -> dict:
    status, out = tollgate_rerate(TENANT, *argv, "--json")
    assert status == 0
    return json.loads(out)


def upload(tmp_path: Path, decks: dict[str, str], effective: str | None = DAY) -> None:
    """Corrected decks in force from `effective` (a back-dated correction: the first decks'
    rows had no date, so they are in force from the beginning)."""
    for account, text in decks.items():
        path = tmp_path / f"{account}-corrected-{len(list(tmp_path.iterdir()))}.csv"
        path.write_text(text)
        when = ["--effective", effective] if effective else []
        run("deck", "upload", TENANT, account, str(path), *when)


def balances() -> dict[str, int]:
    return {a: ledger.get_balance(TENANT, a)[0] for a in EXPECTED_BALANCES}


def rated() -> dict[tuple[str, str], dict[str, dict]]:
    """Rated rows per (file name, day), by call id."""
    tables = {}
    for record in files.list_files(TENANT):
        for day in record.meta["days"]:
            table = lake.get_table("rated", TENANT, day, record.file_id)
            tables[(record.meta["name"], day)] = {r["call_id"]: r for r in table.to_pylist()}
    return tables


def snapshot() -> dict:
    generations = {
        (r.meta["name"], day): generation(lake.get_table("rated", TENANT, day, r.file_id))
        for r in files.list_files(TENANT)
        for day in r.meta["days"]
    }
    charges_generations = {
        (r.meta["name"], day): generation(lake.get_table("charges", TENANT, day, r.file_id))
        for r in files.list_files(TENANT)
        for day in r.meta["days"]
    }
    assert charges_generations == generations  # the two tables of a (day, file) move together
    return {
        "balances": balances(),
        "rated": rated(),
        "generations": generations,
        "pending": lake.list_rerate_pending(TENANT),
    }


def by_account(payload: dict) -> dict[str, tuple[str, str, str]]:
    return {a["account"]: (a["old"], a["new"], a["difference"]) for a in payload["accounts"]}


def rate_carrier(tmp_path: Path) -> None:
    set_up_carrier(tmp_path)
    process(Faults(), Published())
    assert balances() == EXPECTED_BALANCES


@pytest.fixture
def carrier(aws, tmp_path) -> Path:
    rate_carrier(tmp_path)
    return tmp_path


class Recorder:
    """A port that records the names of the calls made through it."""

    def __init__(self, adapter) -> None:
        self.adapter, self.calls = adapter, []

    def __getattr__(self, name):
        target = getattr(self.adapter, name)
        if callable(target) and not name.endswith("_key"):
            self.calls.append(name)
        return target


def test_a_corrected_deck_reprices_the_calls_and_posts_only_the_difference(carrier):
    upload(carrier, CORRECTED)
    status, text = tollgate_rerate(TENANT, "--from", DAY, "--to", DAY)
    assert status == 0

    assert balances() == CORRECTED_BALANCES
    first, resent = rated()[("day1.csv", DAY)], rated()[("day1-resent.csv", DAY)]
    assert first["c1"]["customer_amount"] == Decimal("0.007000")
    assert first["c1"]["supplier_amount"] == Decimal("0.006000")
    assert first["c1"]["margin"] == Decimal("0.001000")
    assert first["c2"]["customer_amount"] == Decimal("0.009658")  # retail's deck unchanged
    assert first["c2"]["supplier_amount"] == Decimal("0.006100")
    assert first["c3"]["customer_amount"] == Decimal("0.013200")
    assert first["c5"]["reason"] == "no_rate"
    assert set(resent) == {"c7"}  # the resent c1 and c2 stay duplicates: never charged
    assert resent["c7"]["supplier_amount"] == Decimal("0.012000")

    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines()[2:]}
    assert lines["direct"] == ["USD", "-0.021200", "-0.020200", "0.001000"]
    assert lines["tata"] == ["USD", "0.026108", "0.024100", "-0.002008"]
    assert lines["retail"] == ["USD", "-0.028658", "-0.028658", "0.000000"]
    assert "2 rated tables re-rated, 0 unchanged" in text.splitlines()[0]


def test_a_rerate_without_deck_change_writes_and_posts_nothing(carrier):
    lake_port, ledger_port = Recorder(lake), Recorder(ledger)
    report = rerate(
        TENANT,
        DAY,
        DAY,
        lake=lake_port,
        files=files,
        accounts=accounts,
        ledger=ledger_port,
        decks=DeckCache(),
    )
    assert ledger_port.calls == []
    assert not {"put_table", "put_rerate_pending"} & set(lake_port.calls)
    assert [t.status for t in report.tables] == ["unchanged", "unchanged"]
    assert all(c.difference == 0 and c.old == c.new for c in report.accounts)
    assert balances() == EXPECTED_BALANCES

    payload = rerate_json("--from", DAY, "--to", DAY)
    assert by_account(payload)["direct"] == ("-0.021200", "-0.021200", "0.000000")


def test_a_second_change_posts_only_the_difference_to_the_rerated_output(carrier):
    upload(carrier, CORRECTED)
    rerate_json("--from", DAY, "--to", DAY)
    again = rerate_json("--from", DAY, "--to", DAY)  # the same decks: nothing moves
    assert {d for _, _, d in by_account(again).values()} == {"0.000000"}
    assert balances() == CORRECTED_BALANCES

    # A back-dated correction: from April on, India mobile to direct is 0.0065.
    upload(
        carrier,
        {
            "direct": "prefix,destination,rate,increment,effective_from\n"
            "917,India - Mobile,0.0065,1/1,2024-04-01\n44,UK,0.012,60/6,2024-01-01\n"
        },
        effective=None,  # the rows say when they apply
    )
    payload = rerate_json("--from", DAY, "--to", DAY)
    assert by_account(payload)["direct"] == ("-0.020200", "-0.019700", "0.000500")
    assert by_account(payload)["tata"] == ("0.024100", "0.024100", "0.000000")
    assert balances() == CORRECTED_BALANCES | {"direct": CORRECTED_BALANCES["direct"] + 500}
    assert rated()[("day1.csv", DAY)]["c1"]["customer_amount"] == Decimal("0.006500")
    assert snapshot()["generations"] == {("day1.csv", DAY): 2, ("day1-resent.csv", DAY): 1}


def test_account_restricts_the_rerating_to_the_calls_it_is_party_to(carrier):
    upload(carrier, CORRECTED)
    before = rated()
    payload = rerate_json("--from", DAY, "--to", DAY, "--account", "direct")

    # direct's calls (c1, c3, c4, c5) are re-rated whole, so tata's side of c1 moves too;
    # tata's calls for retail (c2, c7) keep their old price.
    assert balances() == EXPECTED_BALANCES | {
        "direct": EXPECTED_BALANCES["direct"] + 1_000,
        "tata": EXPECTED_BALANCES["tata"] - 500,
    }
    assert by_account(payload) == {
        "bt": ("0.006300", "0.006300", "0.000000"),
        "direct": ("-0.021200", "-0.020200", "0.001000"),
        "tata": ("0.006500", "0.006000", "-0.000500"),
    }
    after = rated()
    assert after[("day1.csv", DAY)]["c2"] == before[("day1.csv", DAY)]["c2"]
    assert after[("day1-resent.csv", DAY)] == before[("day1-resent.csv", DAY)]
    assert after[("day1.csv", DAY)]["c1"]["supplier_amount"] == Decimal("0.006000")
    statuses = {(t["name"], t["day"]): t["status"] for t in payload["tables"]}
    assert statuses == {("day1.csv", DAY): "rerated", ("day1-resent.csv", DAY): "unchanged"}

    # The rest follows when every account is re-rated: in total, exactly the full change.
    rest = rerate_json("--from", DAY, "--to", DAY)
    assert by_account(rest)["tata"] == ("0.025608", "0.024100", "-0.001508")
    assert balances() == CORRECTED_BALANCES


def test_a_range_without_rated_calls_changes_nothing(carrier):
    upload(carrier, CORRECTED)
    before = snapshot()
    status, text = tollgate_rerate(TENANT, "--from", "2024-06-01", "--to", "2024-06-30")
    assert status == 0
    assert "no rated calls in range" in text
    assert snapshot() == before


def test_bad_arguments_fail_with_one_clear_message(aws, tmp_path):
    from functions.cli import CliError

    set_up_carrier(tmp_path)
    with pytest.raises(CliError, match="before"):
        tollgate_rerate(TENANT, "--from", "2024-05-02", "--to", DAY)
    with pytest.raises(CliError, match="unknown account"):
        tollgate_rerate(TENANT, "--from", DAY, "--to", DAY, "--account", "nobody")
    with pytest.raises(CliError, match="unknown tenant"):
        tollgate_rerate("nobody", "--from", DAY, "--to", DAY)


def rerate_until_done(faults: Faults, *argv) -> None:
    port = faults.wrap
    for _ in range(5):
        try:
            rerate(
                TENANT,
                *argv,
                lake=port(lake),
                files=port(files),
                accounts=port(accounts),
                ledger=port(ledger),
                decks=DeckCache(),
            )
            return
        except Crash:
            continue
    raise AssertionError("the rerate kept failing after retries")


class Checkpoint:
    """The lake objects and ledger items, saved and put back: what a re-rating can change.

    Restoring is much cheaper than setting the carrier up again for every crash point.
    """

    def __init__(self) -> None:
        names = settings()
        self.s3, self.dynamodb = client("s3"), client("dynamodb")
        self.bucket, self.table = names.lake_bucket, names.ledger_table
        self.objects = {key: self._read(key) for key in self._keys()}
        self.items = self._items()

    def _keys(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return [entry["Key"] for page in pages for entry in page.get("Contents", [])]

    def _read(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def _items(self) -> list[dict]:
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table)
        return [item for page in pages for item in page["Items"]]

    def restore(self) -> None:
        for key in self._keys():
            if key not in self.objects:
                self.s3.delete_object(Bucket=self.bucket, Key=key)
        for key, body in self.objects.items():
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        for item in self._items():
            key = {"pk": item["pk"], "sk": item["sk"]}
            self.dynamodb.delete_item(TableName=self.table, Key=key)
        for item in self.items:
            self.dynamodb.put_item(TableName=self.table, Item=item)


def test_a_crash_before_any_store_call_then_a_retry_ends_in_the_clean_state(carrier):
    upload(carrier, CORRECTED)
    checkpoint = Checkpoint()
    counting = Faults()
    rerate_until_done(counting, DAY, DAY)
    expected = snapshot()
    assert expected["balances"] == CORRECTED_BALANCES
    assert expected["pending"] == []
    assert counting.calls >= 18  # accounts, decks, listings, and 6 calls per rated table
    for at in range(1, counting.calls + 1):
        checkpoint.restore()
        assert balances() == EXPECTED_BALANCES
        faults = Faults(at)
        rerate_until_done(faults, DAY, DAY)
        assert faults.crashed, at
        assert snapshot() == expected, f"crash before store call {at}"


class CrashAfterPosting:
    """The ledger port of a run that dies right after its first posting went through."""

    def post_balances(self, *args, **kwargs):
        ledger.post_balances(*args, **kwargs)
        raise Crash("after the posting, before the rated table was replaced")


def test_an_interrupted_rerate_is_finished_by_the_next_run_whatever_its_range(carrier):
    upload(carrier, CORRECTED)
    with pytest.raises(Crash):
        rerate(
            TENANT,
            DAY,
            DAY,
            lake=lake,
            files=files,
            accounts=accounts,
            ledger=CrashAfterPosting(),
            decks=DeckCache(),
        )
    assert len(lake.list_rerate_pending(TENANT)) == 1
    posted = balances()
    assert posted != EXPECTED_BALANCES  # the first table's difference is on the balances

    # Another correction arrives before anyone retries; a run over other days comes first.
    upload(carrier, {"retail": "prefix,destination,rate\n917,India - Mobile,0.01\n44,UK,0.015\n"})
    payload = rerate_json("--from", "2024-06-01", "--to", "2024-06-01")
    # the table the crashed run was on (the first in file id order), with its difference
    assert [t["status"] for t in payload["tables"]] == ["finished"]
    moved = {a["account"]: int(Decimal(a["difference"]) * 10**6) for a in payload["accounts"]}
    assert posted == {a: EXPECTED_BALANCES[a] + moved.get(a, 0) for a in EXPECTED_BALANCES}
    assert lake.list_rerate_pending(TENANT) == []
    assert balances() == posted  # finishing re-posts nothing: the lake catches up

    rerate_json("--from", DAY, "--to", DAY)
    # retail: c2 61 s at 0.01 = 0.010167 (was 0.009658), c7 120 s = 0.020000 (was 0.019)
    assert balances() == CORRECTED_BALANCES | {
        "retail": EXPECTED_BALANCES["retail"] - (10_167 - 9_658) - (20_000 - 19_000)
    }
    assert rated()[("day1.csv", DAY)]["c2"]["customer_amount"] == Decimal("0.010167")


def test_account_rerates_days_stored_before_the_plan_and_surcharge_columns(carrier):
    """Tables rated before `plan` and `customer_surcharge` existed lack them: re-rating one
    account's calls brings the day to today's layout instead of refusing it."""
    older = {"rated": ("plan", "customer_surcharge"), "charges": ("plan",)}
    for record in files.list_files(TENANT):
        for area, dropped in older.items():
            table = lake.get_table(area, TENANT, DAY, record.file_id)
            lake.put_table(area, TENANT, DAY, record.file_id, table.drop_columns(list(dropped)))
    upload(carrier, CORRECTED)
    payload = rerate_json("--from", DAY, "--to", DAY, "--account", "direct")
    assert by_account(payload)["direct"] == ("-0.021200", "-0.020200", "0.001000")
    assert balances()["direct"] == EXPECTED_BALANCES["direct"] + 1_000
    first = next(r for r in files.list_files(TENANT) if r.meta["name"] == "day1.csv")
    rated_now = lake.get_table("rated", TENANT, DAY, first.file_id)
    assert {"plan", "customer_surcharge"} <= set(rated_now.column_names)
    by_call = {row["call_id"]: row for row in rated_now.to_pylist()}
    assert by_call["c1"]["plan"] == "default"  # re-rated: priced by the default plan
    assert by_call["c2"]["plan"] is None  # kept as stored: its plan was never recorded
