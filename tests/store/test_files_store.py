"""Processed-file ledger and the duplicate-claim protocol against moto."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pytest

from functions.store import NotFoundError, files, lake

DAY = "2024-03-01"


# --- processed files -------------------------------------------------------------------


def test_the_first_pricing_run_committed_is_the_files_for_good(aws):
    assert files.get_pricing_run("acme", "f1") is None
    assert files.commit_pricing_run("acme", "f1", "run-a") == "run-a"
    assert files.commit_pricing_run("acme", "f1", "run-b") == "run-a"  # the loser learns it
    assert files.get_pricing_run("acme", "f1") == "run-a"
    files.put_file("acme", "f1", "ingested", {"rows": 1})  # an ingest retry keeps the run
    assert files.get_pricing_run("acme", "f1") == "run-a"
    assert files.get_pricing_run("globex", "f1") is None


def test_file_goes_from_ingested_to_done_with_its_counts(aws):
    meta = {"switch": "sbc-1", "date": DAY, "key": "incoming/acme/sbc-1/a.csv", "bytes": 1234}
    assert files.put_file("acme", "f1", "ingested", {"rows": 10, "quarantined": 2}, meta)
    record = files.get_file("acme", "f1")
    assert record.status == "ingested"
    assert record.counts == {
        "rows": 10,
        "rated": 0,
        "unrated": 0,
        "quarantined": 2,
        "duplicates": 0,
        "unknown_account": 0,
    }
    assert record.meta == meta
    assert files.set_file_status("acme", "f1", "done", {"rated": 6, "unrated": 1, "duplicates": 1})
    done = files.get_file("acme", "f1")
    assert done.status == "done"
    # the rate step's counts join ingest's, which it leaves as they were
    assert done.counts == record.counts | {"rated": 6, "unrated": 1, "duplicates": 1}
    assert done.created_at == record.created_at and done.updated_at >= record.updated_at


def test_status_never_moves_back(aws):
    files.put_file("acme", "f1", "ingested", {"rows": 3})
    files.set_file_status("acme", "f1", "done", {"rated": 3})
    assert files.set_file_status("acme", "f1", "done", {"rated": 3})  # a retried rate step
    assert not files.put_file("acme", "f1", "ingested", {"rows": 3})  # a late ingest retry
    assert not files.set_file_status("acme", "f1", "ingested")
    assert files.get_file("acme", "f1").status == "done"
    files.put_file("acme", "bad", "rejected", {"rows": 0}, {"reason": "unknown format"})
    assert not files.set_file_status("acme", "bad", "done")
    assert files.get_file("acme", "bad").status == "rejected"


def test_an_ingest_retry_before_rating_rewrites_the_same_record(aws):
    assert files.put_file("acme", "f1", "ingested", {"rows": 3})
    assert files.put_file("acme", "f1", "ingested", {"rows": 3})
    assert files.get_file("acme", "f1").counts["rows"] == 3


def test_bad_status_counts_and_unknown_files_are_named(aws):
    with pytest.raises(ValueError, match="invalid file status 'finished'"):
        files.put_file("acme", "f1", "finished")
    with pytest.raises(ValueError, match=r"unknown count\(s\) \['calls'\]"):
        files.put_file("acme", "f1", "ingested", {"calls": 1})
    with pytest.raises(ValueError, match="non-negative"):
        files.put_file("acme", "f1", "ingested", {"rows": -1})
    with pytest.raises(NotFoundError, match="unknown file 'f9'"):
        files.get_file("acme", "f9")
    with pytest.raises(NotFoundError, match="unknown file 'f9'"):
        files.set_file_status("acme", "f9", "done")


def test_files_of_two_tenants_never_mix(aws):
    files.put_file("acme", "same-id", "ingested", {"rows": 1})
    files.put_file("globex", "same-id", "ingested", {"rows": 2})
    files.put_file("globex", "other", "ingested", {"rows": 5})
    files.set_file_status("globex", "same-id", "done")
    assert [(r.file_id, r.status) for r in files.list_files("acme")] == [("same-id", "ingested")]
    assert [r.file_id for r in files.list_files("globex")] == ["other", "same-id"]
    assert files.get_file("acme", "same-id").counts["rows"] == 1


# --- duplicate claims ------------------------------------------------------------------


def test_claim_starts_empty_and_moves_one_version_per_commit(aws):
    empty = files.read_claim("acme", "sbc-1", DAY)
    assert (empty.version, empty.file_ids, empty.set_key) == (0, (), None)
    assert files.commit_claim("acme", "sbc-1", DAY, 0, "k1", "f1")
    assert not files.commit_claim("acme", "sbc-1", DAY, 0, "k1b", "f2")  # lost the race
    assert files.commit_claim("acme", "sbc-1", DAY, 1, "k2", "f2")
    assert not files.commit_claim("acme", "sbc-1", DAY, 2, "k3", "f1")  # already listed
    claim = files.read_claim("acme", "sbc-1", DAY)
    assert (claim.version, claim.file_ids, claim.set_key) == (2, ("f1", "f2"), "k2")
    assert (claim.committed_version("f1"), claim.committed_version("f2")) == (1, 2)
    assert claim.committed_version("f3") is None
    assert files.read_claim("acme", "sbc-2", DAY).version == 0  # per switch
    assert files.read_claim("globex", "sbc-1", DAY).version == 0  # per tenant
    assert files.read_claim("acme", "sbc-1", "2024-03-02").version == 0  # per day


def _claim(file_id: str, calls: list[str], race: threading.Barrier | None = None):
    """The rate service's side of the protocol (docs/architecture.md), for the tests."""
    attempts = 0
    while True:
        claim = files.read_claim("acme", "sbc-1", DAY)
        committed = claim.committed_version(file_id)
        if committed is not None:  # a retry: reuse what was claimed then
            return lake.get_claim_result("acme", "sbc-1", DAY, file_id, committed), attempts
        attempts += 1
        current = set(lake.get_claim_set(claim.set_key).to_pylist())
        new = np.array([c not in current for c in calls])
        version = claim.version + 1
        key = lake.claim_set_key("acme", "sbc-1", DAY, version, file_id)
        lake.put_claim_set(key, pa.array(sorted(current | set(calls))))
        lake.put_claim_result("acme", "sbc-1", DAY, file_id, version, new)
        if race is not None and attempts == 1:
            race.wait()  # both files have computed against the same version
        if files.commit_claim("acme", "sbc-1", DAY, claim.version, key, file_id):
            return new, attempts


def test_two_files_racing_claim_every_call_exactly_once(aws, atomic_items):
    a = [f"call-{i}|1709251200" for i in range(0, 1000)]
    b = [f"call-{i}|1709251200" for i in range(500, 1500)]  # 500 calls overlap with a
    race = threading.Barrier(2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        (mask_a, tries_a), (mask_b, tries_b) = pool.map(
            lambda fh: _claim(*fh, race=race), [("fa", a), ("fb", b)]
        )
    assert sorted([tries_a, tries_b]) == [1, 2]  # the loser recomputed once
    claimed = [c for c, m in zip(a, mask_a, strict=True) if m]
    claimed += [c for c, m in zip(b, mask_b, strict=True) if m]
    assert len(claimed) == len(set(claimed)) == 1500  # each call once, none lost
    winner_mask, loser_mask = (mask_a, mask_b) if tries_a == 1 else (mask_b, mask_a)
    assert winner_mask.all() and loser_mask.sum() == 500  # loser saw the winner's set
    claim = files.read_claim("acme", "sbc-1", DAY)
    assert claim.version == 2 and set(claim.file_ids) == {"fa", "fb"}
    assert set(lake.get_claim_set(claim.set_key).to_pylist()) == set(a) | set(b)
    # A redelivered file finds itself listed and reuses its stored result.
    again, tries = _claim("fb", b)
    assert tries == 0 and np.array_equal(again, mask_b)


def test_many_files_racing_share_a_day_without_double_claims(aws, atomic_items):
    rng = np.random.default_rng(7)
    pool_of_calls = np.array([f"call-{i}|1709251200" for i in range(3000)])
    batches = {f"f{i}": list(rng.choice(pool_of_calls, size=600, replace=False)) for i in range(6)}
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = dict(
            zip(batches, pool.map(lambda fh: _claim(*fh)[0], batches.items()), strict=True)
        )
    claimed = [c for f, m in results.items() for c, new in zip(batches[f], m, strict=True) if new]
    assert len(claimed) == len(set(claimed))
    assert set(claimed) == {c for batch in batches.values() for c in batch}
    assert files.read_claim("acme", "sbc-1", DAY).version == 6
