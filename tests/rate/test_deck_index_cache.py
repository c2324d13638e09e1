"""A built DeckIndex survives one Arrow table, and `load_deck_index` caches it as Arrow IPC.

The round trip must be lossless (equal arrays, identical prices); the cache must be used on a
hit (proved by state, not timing) and rebuilt whenever its file is torn, foreign or stale.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from functions.rate import deck as deck_module
from functions.rate import rating
from functions.rate.deck import (
    DeckRowError,
    InvalidDeckError,
    cache_key,
    load_deck_index,
    parse_deck,
)
from functions.rate.rating import DeckIndex, DeckIndexFormatError, price
from functions.rate.samples import generate_deck_csv
from functions.shared.money import Rounding

SAMPLE = generate_deck_csv(400, seed=2, india_mobile_rate="0.008")


def epoch(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())


# Before the sample deck starts, while it is current, after its re-rates and after closures.
INSTANTS = [epoch(d) for d in ("2024-04-01", "2024-05-10", "2024-05-20", "2024-06-15")]


def sample_calls(index: DeckIndex) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """A call to every prefix (and one digit short of it) at every instant, various lengths."""
    prefixes = index.prefix_text.to_pylist()
    numbers = [p + "4821930" for p in prefixes] + [p[:-1] for p in prefixes if len(p) > 1]
    rng = np.random.default_rng(7)
    callee = pa.array(numbers * len(INSTANTS))
    start = np.repeat(np.array(INSTANTS, dtype=np.int64), len(numbers))
    answered = rng.integers(0, 400, size=len(callee))
    return callee, start, answered


def prices(index: DeckIndex, callee, start, answered, rounding=None):
    """Everything `price` says about each call, for comparing two indexes."""
    got = price(index, callee, start, answered, rounding or Rounding())
    return {
        "row": got.row.tolist(),
        "rated": got.rated.tolist(),
        "closed": got.closed.tolist(),
        "billed": got.billed.tolist(),
        "amount": got.amount.tolist(),
        "prefix": index.deck.column("prefix").take(pa.array(np.maximum(got.row, 0))).to_pylist(),
    }


def assert_same_index(got: DeckIndex, expected: DeckIndex) -> None:
    for field in dataclasses.fields(DeckIndex):
        a, b = getattr(got, field.name), getattr(expected, field.name)
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype, field.name
            assert np.array_equal(a, b), field.name
        elif isinstance(b, pa.Array | pa.Table):
            assert a.equals(b), field.name
        else:
            assert a == b, field.name


def through_ipc(table: pa.Table) -> pa.Table:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return pa.ipc.open_file(sink.getvalue()).read_all()


# --- DeckIndex.to_table / from_table ---------------------------------------------------


def test_a_sample_deck_index_round_trips_with_equal_arrays_and_identical_prices():
    euro = generate_deck_csv(400, seed=2, currency="EUR")
    built = DeckIndex.build(parse_deck(euro, currency="EUR").table, "EUR")
    table = built.to_table()
    assert table.num_rows == 1
    restored = DeckIndex.from_table(through_ipc(table))
    assert_same_index(restored, built)
    calls = sample_calls(built)
    assert prices(restored, *calls) == prices(built, *calls)
    assert (restored.currency, restored.width) == ("EUR", built.width)


def test_an_empty_deck_round_trips():
    built = DeckIndex.build(parse_deck(b"Code,Rate\n").table)
    restored = DeckIndex.from_table(through_ipc(built.to_table()))
    assert_same_index(restored, built)
    assert restored.deck.num_rows == len(restored.cell_lo) == 0


def test_restored_arrays_are_read_only_views_of_the_table():
    table = DeckIndex.build(parse_deck(SAMPLE).table).to_table()
    restored = DeckIndex.from_table(table)
    stored = table.column("seg_key").chunk(0).flatten()
    assert np.shares_memory(restored.seg_key, np.frombuffer(stored.buffers()[1], np.int64))
    assert not restored.rate_e8.flags.writeable


def test_a_table_of_another_format_version_is_rejected(monkeypatch):
    table = DeckIndex.build(parse_deck(SAMPLE).table).to_table()
    monkeypatch.setattr(rating, "INDEX_FORMAT", "deck-index-999")
    with pytest.raises(DeckIndexFormatError, match="deck-index-999"):
        DeckIndex.from_table(table)


def test_a_foreign_or_inconsistent_table_is_rejected():
    good = DeckIndex.build(parse_deck(SAMPLE).table).to_table()
    metadata = good.schema.metadata
    foreign = pa.table({"x": [1]}).replace_schema_metadata(metadata)
    short = good.set_column(
        good.schema.get_field_index("seg_end"),
        "seg_end",
        pa.array([[1, 2, 3]], pa.list_(pa.int64())),
    ).replace_schema_metadata(metadata)
    for table in (pa.table({"x": [1]}), foreign, short):
        with pytest.raises(DeckIndexFormatError):
            DeckIndex.from_table(table)


# --- load_deck_index: the Arrow IPC cache ----------------------------------------------


@pytest.fixture
def deck_file(tmp_path):
    path = tmp_path / "sell.csv"
    path.write_bytes(SAMPLE)
    return path


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def index_path(cache, data=SAMPLE, currency="USD", skip_invalid=False):
    return cache / f"{cache_key(data, currency, skip_invalid)}.index.arrow"


def fresh(data=SAMPLE, currency="USD") -> DeckIndex:
    return DeckIndex.build(parse_deck(data, currency=currency).table, currency)


def test_a_first_load_builds_the_index_and_caches_it_next_to_the_compiled_deck(deck_file, cache):
    index, skipped = load_deck_index(deck_file, cache_dir=cache)
    assert skipped == ()
    assert_same_index(index, fresh())
    key = cache_key(SAMPLE, "USD", False)
    assert sorted(p.name for p in cache.iterdir()) == [f"{key}.index.arrow", f"{key}.parquet"]


def test_a_hit_reads_only_the_index_file(deck_file, cache, monkeypatch):
    first, _ = load_deck_index(deck_file, cache_dir=cache)
    parquet = cache / f"{cache_key(SAMPLE, 'USD', False)}.parquet"
    parquet.unlink()

    def no_parsing(*args, **kwargs):
        raise AssertionError("a cache hit parsed the deck CSV")

    monkeypatch.setattr(deck_module, "parse_deck", no_parsing)
    # None in sys.modules makes any import of these modules fail.
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    monkeypatch.setitem(sys.modules, "pyarrow.dataset", None)
    again, _ = load_deck_index(deck_file, cache_dir=cache)
    assert_same_index(again, first)
    calls = sample_calls(first)
    assert prices(again, *calls) == prices(fresh(), *calls)
    assert not parquet.exists()  # a miss would have recompiled and rewritten it


def test_a_hit_returns_the_stored_index_not_a_rebuilt_one(deck_file, cache):
    load_deck_index(deck_file, cache_dir=cache)
    cached = index_path(cache)
    # Doctor the cached rates: if load_deck_index rebuilt the index it could not price this.
    # (Read into memory: rewriting a file in place under a live memory map is unsafe.)
    stored = pa.ipc.open_file(pa.py_buffer(cached.read_bytes())).read_all()
    column = stored.schema.get_field_index("rate_e8")
    rates = stored.column("rate_e8").chunk(0).flatten().to_numpy() + 1
    doctored = stored.set_column(
        column, stored.schema.field(column), pa.array([rates], pa.list_(pa.int64()))
    )
    with pa.OSFile(str(cached), "wb") as sink, pa.ipc.new_file(sink, doctored.schema) as writer:
        writer.write_table(doctored)

    again, _ = load_deck_index(deck_file, cache_dir=cache)
    assert np.array_equal(again.rate_e8, fresh().rate_e8 + 1)


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: b"not arrow" * 100, id="garbage"),
        pytest.param(lambda b: b[:-100] + bytes(100), id="torn-footer"),
    ],
)
def test_a_torn_or_corrupt_index_file_is_rebuilt(deck_file, cache, spoil):
    load_deck_index(deck_file, cache_dir=cache)
    cached = index_path(cache)
    good = cached.read_bytes()
    cached.write_bytes(spoil(good))
    index, _ = load_deck_index(deck_file, cache_dir=cache)
    calls = sample_calls(index)
    assert prices(index, *calls) == prices(fresh(), *calls)
    assert cached.read_bytes() == good  # rewritten whole
    assert not list(cache.glob("*.tmp"))


def test_a_foreign_arrow_file_under_the_key_is_rebuilt(deck_file, cache):
    cache.mkdir()
    cached = index_path(cache)
    foreign = pa.table({"x": [1, 2]})
    with pa.OSFile(str(cached), "wb") as sink, pa.ipc.new_file(sink, foreign.schema) as writer:
        writer.write_table(foreign)
    index, _ = load_deck_index(deck_file, cache_dir=cache)
    assert_same_index(index, fresh())
    with pa.memory_map(str(cached)) as source:
        assert_same_index(DeckIndex.from_table(pa.ipc.open_file(source).read_all()), fresh())


def test_an_index_of_a_stale_format_version_is_rebuilt(deck_file, cache, monkeypatch):
    with monkeypatch.context() as old:
        old.setattr(rating, "INDEX_FORMAT", "deck-index-0")
        load_deck_index(deck_file, cache_dir=cache)
    cached = index_path(cache)

    def stored_format() -> bytes:
        with pa.memory_map(str(cached)) as source:
            return pa.ipc.open_file(source).schema.metadata[b"tollgate.index.format"]

    assert stored_format() == b"deck-index-0"
    index, _ = load_deck_index(deck_file, cache_dir=cache)
    assert stored_format() == rating.INDEX_FORMAT.encode()
    calls = sample_calls(index)
    assert prices(index, *calls) == prices(fresh(), *calls)


def test_a_changed_deck_gets_a_different_key_and_its_own_prices(deck_file, cache):
    before, _ = load_deck_index(deck_file, cache_dir=cache)
    changed = SAMPLE.replace(b'"917","0.00800000"', b'"917","0.00900000"')
    assert changed != SAMPLE
    deck_file.write_bytes(changed)
    after, _ = load_deck_index(deck_file, cache_dir=cache)
    assert index_path(cache).exists() and index_path(cache, changed).exists()
    call = (pa.array(["917012345678"]), np.array([INSTANTS[1]]), np.array([60]))
    assert prices(before, *call)["amount"] == [8000]
    assert prices(after, *call)["amount"] == [9000]


def test_currency_and_skipped_rows_survive_a_hit(tmp_path, cache):
    data = b"Code,Description,Rate\n44,UK,0.0065\n45,Denmark,bad\n46,Norway,0.01\n"
    path = tmp_path / "eur.csv"
    path.write_bytes(data)
    expected = (DeckRowError(3, "rate", "bad", "not a plain decimal number"),)
    first = load_deck_index(path, currency="eur", skip_invalid=True, cache_dir=cache)
    again = load_deck_index(path, currency="eur", skip_invalid=True, cache_dir=cache)
    assert index_path(cache, data, "EUR", True).exists()
    for index, skipped in (first, again):
        assert skipped == expected
        assert index.currency == "EUR"
        assert index.deck.column("prefix").to_pylist() == ["44", "46"]


def test_an_invalid_deck_raises_like_load_deck_and_caches_nothing(tmp_path, cache):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"Code,Rate\n44,0.01\n45,bad\n")
    with pytest.raises(InvalidDeckError) as raised:
        load_deck_index(path, cache_dir=cache)
    assert raised.value.errors == [DeckRowError(3, "rate", "bad", "not a plain decimal number")]
    assert not cache.exists()


def test_an_unreadable_deck_raises_oserror(tmp_path, cache):
    with pytest.raises(FileNotFoundError):
        load_deck_index(tmp_path / "missing.csv", cache_dir=cache)


def test_an_unwritable_cache_only_warns(deck_file, tmp_path):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    with pytest.warns(UserWarning, match="deck cache not written"):
        index, _ = load_deck_index(deck_file, cache_dir=blocker / "sub")
    assert_same_index(index, fresh())
