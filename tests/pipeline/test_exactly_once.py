"""Exactly once, nothing lost: the ingest and rate services under redelivery and crashes.

The services run against real moto stores. A crash is injected before every store call
of the whole two-file sequence (so between every pair of steps); the failed step is then
redelivered, as SQS would, until it succeeds. Every run must end in exactly the state of a
clean run: balances to the micro-unit, file records and counts, the rated lake.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from functions.ingest.service import ingest
from functions.rate.service import DeckCache, rate_file
from functions.store import accounts, files, lake, ledger, queues
from tests.conftest import moto_account
from tests.pipeline.carrier import (
    EXPECTED_BALANCES,
    FIRST_FILE,
    SECOND_FILE,
    SWITCH,
    TENANT,
    Published,
    drop,
    ingest_drop,
    rate_ingested,
    set_up_carrier,
)


class Crash(Exception):
    """A Lambda dying mid-way (timeout, out of memory, a lost connection)."""


class Faults:
    """Counts store calls across every wrapped adapter; raises Crash before call `at`."""

    def __init__(self, at: int | None = None) -> None:
        self.at = at
        self.calls = 0
        self.crashed = False
        self.names: list[str] = []  # every store call made, in order

    def wrap(self, adapter):
        faults = self

        class Wrapped:
            def __getattr__(self, name):
                target = getattr(adapter, name)
                if not callable(target) or name.endswith("_key"):  # key builders are pure
                    return target

                def call(*args, **kwargs):
                    faults.calls += 1
                    faults.names.append(name)
                    if faults.calls == faults.at:
                        faults.crashed = True
                        raise Crash(f"crash before {adapter.__name__}.{name}")
                    return target(*args, **kwargs)

                return call

        return Wrapped()


def process(faults: Faults, published: Published) -> None:
    """Both files through ingest and rate; a crashed step is redelivered until it succeeds."""
    port = faults.wrap
    decks = DeckCache()

    def until_done(step: Callable[[], object]) -> object:
        for _ in range(5):
            try:
                return step()
            except Crash:
                continue
        raise AssertionError("a step kept failing after redelivery")

    for name, text in (("day1.csv", FIRST_FILE), ("day1-resent.csv", SECOND_FILE)):
        dropped = drop(name, text)
        until_done(
            lambda d=dropped: ingest(
                d,
                lake=port(lake),
                switches=port(accounts),
                files=port(files),
                rate_requests=port(queues),
            )
        )
        until_done(
            lambda d=dropped: rate_file(
                TENANT,
                SWITCH,
                d.file_id,
                lake=port(lake),
                files=port(files),
                accounts=port(accounts),
                ledger=port(ledger),
                events=published,
                decks=decks,
            )
        )


def snapshot() -> dict:
    """Everything money and accounting depend on."""
    records = sorted(files.list_files(TENANT), key=lambda r: r.meta["name"])
    rated, charges = {}, {}
    for record in records:
        for day in record.meta.get("days", []):
            table = lake.get_table("rated", TENANT, day, record.file_id)
            rated[(record.meta["name"], day)] = table.sort_by("call_id").to_pylist()
            table = lake.get_table("charges", TENANT, day, record.file_id)
            charges[(record.meta["name"], day)] = sorted(
                table.to_pylist(), key=lambda c: (c["call_id"], c["role"], c["level"] or 0)
            )
    return {
        "balances": {a: ledger.get_balance(TENANT, a) for a in EXPECTED_BALANCES},
        "journal": {a: _journal(a) for a in EXPECTED_BALANCES},
        "files": [(r.meta["name"], r.status, r.counts) for r in records],
        "rated": rated,
        "charges": charges,
    }


def _journal(account: str) -> list[tuple[str, int]]:
    """What the account's statement lists: (kind, amount) per posting, booking times aside."""
    return [(e.kind, e.amount) for e in ledger.list_entries(TENANT, account)]


def run_with_faults(tmp_path: Path, faults: Faults) -> tuple[dict, Published]:
    """Both files through a fresh account; the end state and what was published."""
    set_up_carrier(tmp_path)
    published = Published()
    process(faults, published)
    files_seen = {r.file_id for r in files.list_files(TENANT)}
    # every file's totals were published at least once; consumers key on file_id
    assert {d["file_id"] for d in published.details} == files_seen
    return snapshot(), published


@pytest.fixture
def clean_run(aws, tmp_path) -> tuple[dict, int, Published]:
    faults = Faults()
    state, published = run_with_faults(tmp_path, faults)
    return state, faults.calls, published


def test_a_clean_run_charges_every_party_to_the_micro_unit(clean_run):
    state, _, published = clean_run
    assert state["balances"] == {a: (v, 0) for a, v in EXPECTED_BALANCES.items()}
    assert state["files"] == [
        (
            "day1-resent.csv",
            "done",
            {
                "rows": 3,
                "rated": 1,
                "unrated": 0,
                "quarantined": 0,
                "duplicates": 2,
                "unknown_account": 0,
            },
        ),
        (
            "day1.csv",
            "done",
            {
                "rows": 7,
                "rated": 4,
                "unrated": 1,
                "quarantined": 2,
                "duplicates": 0,
                "unknown_account": 0,
            },
        ),
    ]
    first = state["rated"][("day1.csv", "2024-05-01")]
    by_call = {row["call_id"]: row for row in first}
    assert by_call["c2"]["customer_amount"] == Decimal("0.009658")
    assert by_call["c2"]["supplier_amount"] == Decimal("0.006608")
    # The carrier's margin: what resellco (the top of c2's chain) pays minus the supplier cost.
    assert by_call["c2"]["margin"] == Decimal("0.001017")
    assert by_call["c3"]["billed_seconds"] == 66
    assert by_call["c5"]["reason"] == "no_rate"
    c2 = [c for c in state["charges"][("day1.csv", "2024-05-01")] if c["call_id"] == "c2"]
    assert [(c["account"], c["level"], c["counterparty"], c["amount"]) for c in c2] == [
        ("retail", 0, "resellco", Decimal("0.009658")),
        ("resellco", 1, "carrier", Decimal("0.007625")),
        ("tata", None, "carrier", Decimal("0.006608")),
    ]
    # Each balance moved by exactly the sum of its rated charges, one journal entry per file.
    moved: dict[str, int] = {}
    for charges in state["charges"].values():
        for c in charges:
            if c["status"] == "rated":
                units = int(c["amount"].scaleb(6))
                moved[c["account"]] = moved.get(c["account"], 0) + (
                    units if c["role"] == "supplier" else -units
                )
    assert {a: b for a, (b, _) in state["balances"].items()} == moved
    assert state["journal"]["retail"] == [("charges", -9_658), ("charges", -19_000)]
    assert sorted(d["file_id"] for d in published.details) == sorted(
        r.file_id for r in files.list_files(TENANT)
    )


def test_two_runs_of_one_file_with_a_deck_change_between_leave_lake_and_balances_agreeing(
    aws, tmp_path
):
    """Fails on the old service: two overlapping runs of one file (ingest re-sends rate
    requests on purpose) each wrote the rated Parquet, so when the customer's deck changed in
    between, the lake kept the slow run's prices while the balances held the other's."""
    set_up_carrier(tmp_path)
    dropped = drop("day1.csv", FIRST_FILE)
    ingest_drop(dropped)

    class Overtaken:
        """The files port of a slow run: just before it commits its pricing run, a second
        run of the same file starts, after a deck upload, and finishes."""

        def __getattr__(self, name):
            return getattr(files, name)

        def commit_pricing_run(self, tenant, file_id, run, moves=()):
            cheaper = tmp_path / "cheaper.csv"
            cheaper.write_text("prefix,rate\n917,0.001\n44,0.001\n")
            from tests.pipeline.carrier import run as tollgate

            tollgate("deck", "upload", TENANT, "direct", str(cheaper), "--effective", "2024-01-01")
            fast = rate_ingested(file_id)
            assert fast.status == "done"
            return files.commit_pricing_run(tenant, file_id, run, moves)

    slow = rate_ingested(dropped.file_id, files=Overtaken())
    assert slow.status == "done"
    rated = lake.get_table("rated", TENANT, "2024-05-01", dropped.file_id)
    charges = lake.get_table("charges", TENANT, "2024-05-01", dropped.file_id)
    direct = rated.filter(pc.equal(rated["customer"], "direct"))
    # The second run priced with the cheaper deck (1/1 increments) and committed first: c1
    # 60 s at 0.001, c3 61 s at 0.001. Lake (both tables) and balance say the same.
    assert pc.sum(direct["customer_amount"]).as_py() == Decimal("0.002017")
    charged = charges.filter(pc.equal(charges["account"].cast(pa.string()), "direct"))
    assert pc.sum(charged["amount"]).as_py() == Decimal("0.002017")
    assert ledger.get_balance(TENANT, "direct") == (-2_017, 0)


def test_counts_reconcile_per_file(clean_run):
    state, _, _ = clean_run
    for _, _, counts in state["files"]:
        accounted = (
            counts["rated"] + counts["unrated"] + counts["quarantined"] + counts["duplicates"]
        )
        assert counts["rows"] == accounted


# Store calls that change nothing stored: crashing just before the call after one of them
# leaves exactly the state of crashing just before it.
_READS = ("get_", "list_", "read_", "fetch_", "Spool")


def distinct_crash_points(names: list[str]) -> list[int]:
    """The calls to crash before whose stored state differs: the first, and each call that
    follows a write (after a read, the stored state is the one before that read)."""
    return [1] + [k + 1 for k, name in enumerate(names[:-1], 1) if not name.startswith(_READS)]


def test_only_reads_are_skipped_as_crash_points():
    names = ["get_file", "put_file", "get_deck", "stage_spooled", "commit_pricing_run", "get_x"]
    assert distinct_crash_points(names) == [1, 3, 5, 6]


# The crash points are shared out between this many tests, so that the test workers run them
# side by side (each shard runs the clean sequence once more to count the calls).
SHARDS = 4


@pytest.mark.parametrize("shard", range(SHARDS))
def test_a_crash_before_any_store_call_then_redelivery_changes_nothing(
    aws_environment, tmp_path, shard
):
    with moto_account():
        counting = Faults()
        expected, _ = run_with_faults(tmp_path / "clean", counting)
    assert counting.calls > 40  # the sequence really exercises the stores
    points = distinct_crash_points(counting.names)
    assert len(points) > 25  # every write is followed by a crash point
    for at in points[shard::SHARDS]:
        with moto_account():
            faults = Faults(at)
            state, _ = run_with_faults(tmp_path / str(at), faults)
            assert faults.crashed, at
            assert state == expected, f"crash before store call {at}"


def test_the_same_s3_event_delivered_twice_is_rated_and_charged_once(aws, tmp_path):
    set_up_carrier(tmp_path)
    dropped = drop("day1.csv", FIRST_FILE)
    for _ in range(2):
        ingest_drop(dropped)
        rate_ingested(dropped.file_id)
    assert ledger.get_balance(TENANT, "direct") == (-(8_000 + 13_200), 0)
    assert len(files.list_files(TENANT)) == 1


def test_a_rated_file_keeps_its_charges_when_a_deck_changes_before_a_retry(aws, tmp_path):
    """A retry after the rated output was stored posts what the lake holds, not a re-rating."""
    set_up_carrier(tmp_path)
    dropped = drop("day1.csv", FIRST_FILE)
    ingest_drop(dropped)

    class CrashOnPost:
        def post_balances(self, *args, **kwargs):
            raise Crash("after the rated output, before the posting")

    with pytest.raises(Crash):
        rate_ingested(dropped.file_id, ledger=CrashOnPost())
    cheaper = tmp_path / "cheaper.csv"
    cheaper.write_text("prefix,rate\n917,0.001\n44,0.001\n")
    from tests.pipeline.carrier import run

    run("deck", "upload", TENANT, "direct", str(cheaper), "--effective", "2024-01-01")
    rate_ingested(dropped.file_id)
    rated = lake.get_table("rated", TENANT, "2024-05-01", dropped.file_id)
    charged = pc.sum(rated.filter(pc.equal(rated["customer"], "direct"))["customer_amount"])
    assert charged.as_py() == Decimal("0.021200")
    assert ledger.get_balance(TENANT, "direct") == (-21_200, 0)
