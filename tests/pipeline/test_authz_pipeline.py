"""Real-time authorization meets the pipeline: the arrival of a call's rated CDR releases
the money the call held (functions/rate/service.py, one Query of the tenant's holds per file),
after the file's charges are posted."""

from __future__ import annotations

from functions.store import holds, ledger
from tests.pipeline.carrier import (
    HEADER,
    TENANT,
    cdr_line,
    drop,
    ingest_drop,
    rate_ingested,
    set_up_carrier,
)


def test_a_rated_cdr_releases_its_calls_hold(aws, tmp_path):
    set_up_carrier(tmp_path)
    ledger.record_payment(TENANT, "direct", 1_000_000, reference="p1", account_kind="customer")
    for call, amount in (("c1", 300_000), ("c2", 200_000), ("live", 100_000)):
        money = holds.read_money(TENANT, "direct")
        holds.place(TENANT, "direct", call, amount, 600, 2_000_000_000, money=money, credit_micro=0)
    assert ledger.get_balance(TENANT, "direct") == (1_000_000, 600_000)
    text = (
        "\n".join(
            [
                HEADER,
                cdr_line("c1", "direct", "tata", "917012345678", 60),  # 0.008000
                cdr_line("c2", "direct", "bt", "442071234567", 61),  # 60/6: 66 s -> 0.013200
            ]
        )
        + "\n"
    )
    dropped = drop("f1.csv", text)
    ingest_drop(dropped)
    assert rate_ingested(dropped.file_id, holds=holds).status == "done"
    # charged, and only the call still live holds money
    assert ledger.get_balance(TENANT, "direct") == (1_000_000 - 8_000 - 13_200, 100_000)
    assert [h.call_id for h in holds.list_holds(TENANT)] == ["live"]


def test_a_file_without_held_calls_reads_no_call_ids(aws, tmp_path):
    set_up_carrier(tmp_path)
    text = HEADER + "\n" + cdr_line("c9", "direct", "tata", "917012345678", 60) + "\n"
    dropped = drop("f2.csv", text)
    ingest_drop(dropped)
    assert rate_ingested(dropped.file_id, holds=holds).status == "done"
    assert ledger.get_balance(TENANT, "direct") == (-8_000, 0)


def test_the_deck_authorization_prices_on_is_the_rating_engines(aws, tmp_path):
    """The default deck's version, warm; a caller rule's or a trunk's plan as rating picks it."""
    from types import SimpleNamespace

    from functions.authz import service
    from functions.rate.rating import DeckIndex
    from functions.store import accounts

    set_up_carrier(tmp_path)
    direct = accounts.get_account(TENANT, "direct")
    index = service.deck_index(TENANT, direct, "15551230000")
    assert isinstance(index, DeckIndex) and index.currency == direct.currency
    assert service.deck_index(TENANT, direct) is index  # the warm cache
    ruled = SimpleNamespace(account="x", plan_rules={"33": "eea"}, deck_version=1)
    assert service.plan_of(ruled, "33123456", None) == "eea"
    assert service.plan_of(ruled, "44123456", None) == "default"
    assert service.plan_of(ruled, "", "wholesale") == "wholesale"
    assert (
        service.deck_index(TENANT, SimpleNamespace(**vars(ruled), plan_versions={}), "331") is None
    )
