"""Compiled decks are cached as Parquet, keyed by content and import options."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from functions.rate.deck import (
    DeckRowError,
    InvalidDeckError,
    cache_key,
    load_deck,
    parse_deck,
)

DECK = b"Code,Description,Rate\n44,UK,0.0065\n45,Denmark,bad\n46,Norway,0.01\n"


@pytest.fixture
def deck_file(tmp_path):
    path = tmp_path / "sell.csv"
    path.write_bytes(DECK)
    return path


def test_first_load_compiles_and_writes_the_content_addressed_parquet(deck_file, tmp_path):
    cache = tmp_path / "cache"
    deck = load_deck(deck_file, skip_invalid=True, cache_dir=cache)
    expected = parse_deck(DECK, source=str(deck_file), skip_invalid=True)
    assert deck == expected
    assert [p.name for p in cache.iterdir()] == [f"{cache_key(DECK, 'USD', True)}.parquet"]


def test_cache_hit_returns_the_stored_table_without_reparsing(deck_file, tmp_path):
    cache = tmp_path / "cache"
    first = load_deck(deck_file, skip_invalid=True, cache_dir=cache)
    cached = cache / f"{cache_key(DECK, 'USD', True)}.parquet"
    # Doctor the cached table: if load_deck re-parsed the CSV it could not return this rate.
    stored = pq.read_table(cached)
    doctored = stored.set_column(
        stored.schema.get_field_index("rate_e8"),
        pa.field("rate_e8", pa.int64()),
        pc.add(stored["rate_e8"], 1),
    )
    pq.write_table(doctored, cached)

    again = load_deck(deck_file, skip_invalid=True, cache_dir=cache)
    assert again.table["rate_e8"].to_pylist() == [650_001, 1_000_001]
    assert again.currency == first.currency == "USD"
    assert (
        again.skipped
        == first.skipped
        == (DeckRowError(3, "rate", "bad", "not a plain decimal number"),)
    )


def test_cache_hit_equals_a_fresh_compile_and_reports_the_path_loaded(deck_file, tmp_path):
    cache = tmp_path / "cache"
    load_deck(deck_file, skip_invalid=True, cache_dir=cache)
    renamed = tmp_path / "renamed.csv"
    renamed.write_bytes(DECK)
    hit = load_deck(renamed, skip_invalid=True, cache_dir=cache)
    assert hit.table.equals(parse_deck(DECK, skip_invalid=True).table)
    assert hit.source == str(renamed)
    assert len(list(cache.iterdir())) == 1


def test_currency_and_skip_flag_are_part_of_the_key(deck_file, tmp_path):
    cache = tmp_path / "cache"
    usd = load_deck(deck_file, skip_invalid=True, cache_dir=cache)
    eur = load_deck(deck_file, currency="EUR", skip_invalid=True, cache_dir=cache)
    assert (usd.currency, eur.currency) == ("USD", "EUR")
    assert len(list(cache.iterdir())) == 2
    with pytest.raises(InvalidDeckError):
        load_deck(deck_file, skip_invalid=False, cache_dir=cache)
    assert len(list(cache.iterdir())) == 2  # an invalid deck is never cached


def test_a_corrupt_cache_file_is_recompiled_and_replaced(deck_file, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cached = cache / f"{cache_key(DECK, 'USD', True)}.parquet"
    cached.write_bytes(b"not parquet")
    deck = load_deck(deck_file, skip_invalid=True, cache_dir=cache)
    assert deck.table["prefix"].to_pylist() == ["44", "46"]
    assert pq.read_table(cached).num_rows == 2
    assert [p.name for p in cache.iterdir()] == [cached.name]  # no temp file left behind


def test_default_cache_dir_comes_from_tollgate_cache_dir(deck_file, tmp_path, monkeypatch):
    monkeypatch.setenv("TOLLGATE_CACHE_DIR", str(tmp_path / "env-cache"))
    load_deck(deck_file, skip_invalid=True)
    assert (tmp_path / "env-cache" / f"{cache_key(DECK, 'USD', True)}.parquet").exists()


def test_an_unwritable_cache_does_not_fail_the_load(deck_file, tmp_path):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    with pytest.warns(UserWarning, match="deck cache not written"):
        deck = load_deck(deck_file, skip_invalid=True, cache_dir=blocker / "sub")
    assert deck.table.num_rows == 2
