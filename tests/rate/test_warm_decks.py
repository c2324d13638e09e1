"""The warm rate Lambda's deck cache: bounded by bytes, least recently used out, and only the
decks a file needs are loaded."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace

import pyarrow as pa

from functions.rate.deck_cache import DeckCache, index_bytes
from functions.rate.rating import DeckIndex
from functions.rate.service import load_parties
from tests.rate.reference import Entry, deck_table


def index(prefixes: int) -> DeckIndex:
    entries = [Entry(str(4400 + i), Decimal("0.01")) for i in range(prefixes)]
    return DeckIndex.build(deck_table(entries))


def test_the_least_recently_used_deck_goes_first_once_the_bytes_are_exceeded():
    decks = {name: index(200) for name in "abcd"}
    size = index_bytes(decks["a"])
    assert size > 200 * 8  # arrays, prefix texts and deck rows all count
    cache = DeckCache(max_bytes=2 * size)
    for name in "ab":
        cache.get(name, lambda name=name: decks[name])
    cache.get("a", lambda: decks["a"])  # a is now the most recently used
    cache.get("c", lambda: decks["c"])  # over the bound: b goes, not a
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
    assert cache.bytes == 2 * size
    assert cache.loads == 3
    assert cache.get("a", lambda: decks["d"]) is decks["a"]  # a hit never reloads


def test_a_deck_larger_than_the_bound_is_kept_while_it_is_the_newest():
    big, small = index(500), index(10)
    cache = DeckCache(max_bytes=index_bytes(small))
    cache.get("small", lambda: small)
    assert cache.get("big", lambda: big) is big
    assert len(cache) == 1 and "big" in cache
    assert cache.bytes == index_bytes(big)


@dataclass
class StoredAccount:
    account: str
    kind: str
    parent: str | None = None
    currency: str = "USD"
    deck_version: int | None = 1
    rounding: str = "half_up"
    rounding_decimals: int = 6


class Accounts:
    def __init__(self, found: list[StoredAccount]) -> None:
        self.found = found

    def get_tenant(self, tenant: str) -> SimpleNamespace:
        return SimpleNamespace(tenant=tenant, timezone="UTC")

    def list_accounts(self, tenant: str) -> list[StoredAccount]:
        return self.found

    def list_dids(self, tenant: str) -> list:
        return []

    def list_contracts(self, tenant: str) -> list:
        return []


class Lake:
    """Serves a one-row deck per account and remembers which decks were read."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def get_deck(self, tenant: str, account: str, version: int) -> pa.Table:
        self.read.append(account)
        return deck_table([Entry("44", Decimal("0.01"))])


def test_only_the_decks_of_a_files_parties_and_their_resellers_are_loaded():
    accounts = Accounts(
        [
            StoredAccount("cust", "customer", parent="r1"),
            StoredAccount("r1", "reseller", parent="r2"),
            StoredAccount("r2", "reseller"),
            StoredAccount("other", "customer"),
            StoredAccount("tata", "supplier"),
            StoredAccount("bt", "supplier"),
            StoredAccount("nodeck", "customer", deck_version=None),
        ]
    )
    lake = Lake()
    parties = load_parties(
        "acme",
        accounts=accounts,
        lake=lake,
        decks=DeckCache(),
        customers=["cust", "ghost"],
        suppliers=["tata"],
    )
    assert sorted(lake.read) == ["cust", "r1", "r2", "tata"]
    assert set(parties.decks) == {"cust", "r1", "r2", "tata"}
    assert set(parties.accounts) == {"cust", "r1", "r2", "other", "tata", "bt", "nodeck"}


def test_a_stored_rounding_rule_reaches_the_parties():
    accounts = Accounts([StoredAccount("cust", "customer", rounding="up", rounding_decimals=2)])
    parties = load_parties("acme", accounts=accounts, lake=Lake(), decks=DeckCache())
    rounding = parties.accounts["cust"].rounding
    assert (rounding.decimals, rounding.method) == (2, "up")
