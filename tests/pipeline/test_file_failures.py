"""Poison files: the handlers record failures on the file, and a retried file is charged once.

The handlers run against real moto stores, fed SQS records as Lambda delivers them (receive
count and source queue ARN included); the queues have the template's kind of RedrivePolicy,
with a smaller maxReceiveCount. A failure is injected into a store call and kept until the
operator "fixes" it; the retry then goes through the CLI, and the end state is compared
with a clean run's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from functions.cli import main
from functions.rate.handler import handle_normalized_files
from functions.shared.settings import settings
from functions.store import (
    ConflictError,
    NotFoundError,
    accounts,
    client,
    files,
    ledger,
    queues,
)
from tests.conftest import moto_account
from tests.pipeline.carrier import FIRST_FILE, SECOND_FILE, SWITCH, TENANT, drop, set_up_carrier
from tests.pipeline.deliveries import (
    MAX_RECEIVES,
    deliver_queued,
    delivery,
    ingest_delivery,
    rate_delivery,
    with_dead_letter_queues,
)
from tests.pipeline.test_exactly_once import snapshot


class Broken(Exception):
    """A fault that persists until the operator fixes its cause (an outage, a bad config)."""


@pytest.fixture
def pipeline(aws, tmp_path) -> None:
    with_dead_letter_queues()
    set_up_carrier(tmp_path)


def drain(queue: str) -> None:
    """Forget what ingest asked for while the test drives deliveries by hand."""
    sqs = client("sqs")
    sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"])


def failing(monkeypatch, module: Any, name: str, when: Callable[..., bool] = lambda *a, **k: True):
    """Make `module.name` raise Broken while `when(...)` holds; returns the fix."""
    original = getattr(module, name)
    state = {"broken": True}

    def call(*args, **kwargs):
        if state["broken"] and when(*args, **kwargs):
            raise Broken(f"{name} unavailable")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, call)
    return lambda: state.update(broken=False)


def record_of(name: str) -> files.FileRecord:
    [record] = [r for r in files.list_files(TENANT) if r.meta.get("name") == name]
    return record


# --- what a failure leaves on the file ---------------------------------------------------------


def test_a_rate_failure_is_noted_on_each_delivery_and_the_last_leaves_the_file_failed(
    pipeline, monkeypatch
):
    """The old handlers logged the error and left the file `ingested` with nothing to show,
    even after its message had gone to the dead-letter queue."""
    dropped = drop("day1.csv", FIRST_FILE)
    ingest_delivery(dropped, 1)
    drain(settings().rate_queue)
    failing(monkeypatch, ledger, "post_balances")

    for count in range(1, MAX_RECEIVES):
        with pytest.raises(Exception, match="All records failed"):
            rate_delivery(dropped.file_id, count)
        record = files.get_file(TENANT, dropped.file_id)
        assert (record.status, record.stage, record.failures) == ("ingested", "rate", count)
        assert record.error == "Broken: post_balances unavailable"

    with pytest.raises(Exception, match="All records failed"):
        rate_delivery(dropped.file_id, MAX_RECEIVES)
    record = files.get_file(TENANT, dropped.file_id)
    assert (record.status, record.stage, record.error) == (
        "failed",
        "rate",
        "Broken: post_balances unavailable",
    )
    assert {a: ledger.get_balance(TENANT, a)[0] for a in ("direct", "tata")} == {
        "direct": 0,
        "tata": 0,
    }


def test_an_ingest_failure_leaves_a_retrying_file_and_its_last_delivery_a_failed_one(
    pipeline, monkeypatch
):
    """The old ingest handler recorded nothing: a file that never got through ingest was
    invisible to `tollgate file status`."""
    dropped = drop("day1.csv", FIRST_FILE)
    fix = failing(monkeypatch, accounts, "get_switch")

    with pytest.raises(Exception, match="All records failed"):
        ingest_delivery(dropped, 1)
    record = record_of("day1.csv")
    assert (record.file_id, record.status, record.stage) == (dropped.file_id, "retrying", "ingest")
    assert record.error == "Broken: get_switch unavailable"
    assert (record.meta["switch"], record.meta["key"], record.meta["etag"]) == (
        SWITCH,
        dropped.key,
        dropped.etag,
    )
    with pytest.raises(NotFoundError):  # so the next delivery is ingested as new
        files.get_file(TENANT, dropped.file_id)

    for count in range(2, MAX_RECEIVES + 1):
        with pytest.raises(Exception, match="All records failed"):
            ingest_delivery(dropped, count)
    assert files.get_file(TENANT, dropped.file_id).status == "failed"

    fix()
    ingest_delivery(dropped, MAX_RECEIVES + 1)  # a stray delivery of a failed file: ignored
    assert files.get_file(TENANT, dropped.file_id).status == "failed"
    assert files.reopen_file(TENANT, dropped.file_id) == "ingest"
    ingest_delivery(dropped, 1)  # the retried drop
    record = files.get_file(TENANT, dropped.file_id)
    assert (record.status, record.counts["rows"], record.error, record.retries) == (
        "ingested",
        7,
        None,
        1,
    )


def test_a_late_success_wins_over_a_failure_and_done_never_moves_back(aws):
    """A delivery that overlapped the failing one may still finish; its outcome stands."""
    files.put_file(TENANT, "f1", "ingested", {"rows": 3}, {"name": "a.csv", "days": []})
    assert files.record_failure(TENANT, "f1", "Boom", stage="rate", final=True) == "failed"
    assert files.set_file_status(TENANT, "f1", "done", {"rated": 3})
    done = files.get_file(TENANT, "f1")
    assert (done.status, done.error, done.stage, done.failures) == ("done", None, None, 1)
    assert files.record_failure(TENANT, "f1", "Boom", stage="rate", final=True) is None
    assert not files.put_file(TENANT, "f1", "ingested", {"rows": 3})
    with pytest.raises(ConflictError, match="is done: its calls were charged once"):
        files.reopen_file(TENANT, "f1")
    assert files.get_file(TENANT, "f1").status == "done"

    files.put_file(TENANT, "f2", "rejected", meta={"name": "b.csv", "error": "unknown switch"})
    assert files.record_failure(TENANT, "f2", "Boom", stage="ingest", final=True) is None
    assert files.get_file(TENANT, "f2").reason == "unknown switch"
    assert files.reopen_file(TENANT, "f2") == "ingest"
    assert files.find_file(TENANT, "f2").status == "retrying"
    assert files.put_file(TENANT, "f2", "rejected", meta={"error": "unknown format"})

    # An ingest that started before the failure was recorded finishes after it.
    assert files.record_failure(TENANT, "f3", "Boom", stage="ingest", final=True) == "failed"
    assert files.put_file(TENANT, "f3", "ingested", {"rows": 1}, {"days": []})
    assert files.get_file(TENANT, "f3").status == "ingested"


# Every way the files table is written for one file, in any order (concurrent deliveries,
# late successes, operator retries): the invariants of the status model hold throughout.
STEPS = {
    "ingested": lambda f: files.put_file(TENANT, f, "ingested", {"rows": 1}, {"days": []}),
    "rejected": lambda f: files.put_file(TENANT, f, "rejected", meta={"error": "bad"}),
    "failing": lambda f: files.record_failure(TENANT, f, "E", stage="rate", final=False),
    "failed": lambda f: files.record_failure(TENANT, f, "E", stage="ingest", final=True),
    "done": lambda f: files.set_file_status(TENANT, f, "done", {"rated": 1}),
    "reopen": lambda f: files.reopen_file(TENANT, f),
}


@hypothesis.settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(steps=st.lists(st.sampled_from(sorted(STEPS)), min_size=1, max_size=8))
def test_done_is_final_a_success_wins_and_a_retrying_file_is_not_yet_processed(aws, steps):
    file_id = uuid.uuid4().hex  # one moto account for every example
    done = False
    for step in steps:
        try:
            result = STEPS[step](file_id)
        except (NotFoundError, ConflictError):
            result = None
        record = files.find_file(TENANT, file_id)
        if record is None:
            continue
        done = done or record.status == "done"
        assert record.status == ("done" if done else record.status)
        if step in ("ingested", "rejected", "done") and result is True:
            assert (record.status, record.error) == (step, None)  # a success clears the error
        if record.status == "retrying":
            with pytest.raises(NotFoundError):
                files.get_file(TENANT, file_id)
        if step == "reopen" and result is not None:
            assert record.status == ("ingested" if result == "rate" else "retrying")


# --- retry after the fix: charged once, whatever step had failed -----------------------------

# The store call that keeps failing until the file is `failed`: before anything is priced
# for good, where the money moves, and after it moved (test_exactly_once crashes at every
# store call; what is new here is the operator's retry after the last delivery).
FAULTS = [
    ("files", "commit_pricing_run"),
    ("ledger", "post_balances"),
    ("files", "set_file_status"),
]
_CLEAN: dict[str, Any] = {}


def _comparable(state: dict) -> dict:
    # The retried file posts after the other one: the journal is compared as a multiset.
    return state | {"journal": {a: sorted(e) for a, e in state["journal"].items()}}


def clean_state(tmp_path: Path) -> dict:
    """Both files through a fresh account without faults (computed once per session)."""
    if "state" not in _CLEAN:
        with moto_account():
            with_dead_letter_queues()
            set_up_carrier(tmp_path / "clean")
            for name, text in (("day1.csv", FIRST_FILE), ("day1-resent.csv", SECOND_FILE)):
                ingest_delivery(drop(name, text), 1)
                deliver_queued(settings().rate_queue, handle_normalized_files)
            _CLEAN["state"] = _comparable(snapshot())
    return _CLEAN["state"]


@pytest.mark.parametrize(("module", "name"), FAULTS, ids=[f"{m}.{n}" for m, n in FAULTS])
def test_a_file_whose_rating_failed_at_any_step_is_charged_once_when_retried(
    aws_environment, tmp_path, monkeypatch, capsys, module, name
):
    clean = clean_state(tmp_path)
    stores = {"files": files, "ledger": ledger}
    with moto_account():
        with_dead_letter_queues()
        set_up_carrier(tmp_path / "faulty")
        first = drop("day1.csv", FIRST_FILE)
        ingest_delivery(first, 1)
        drain(settings().rate_queue)
        fix = failing(monkeypatch, stores[module], name, lambda *a, **k: first.file_id in a)
        for count in range(1, MAX_RECEIVES + 1):
            with pytest.raises(Exception, match="All records failed"):
                rate_delivery(first.file_id, count)
        assert files.get_file(TENANT, first.file_id).status == "failed"
        # Meanwhile the switch's next file goes through (its resent calls are duplicates).
        ingest_delivery(drop("day1-resent.csv", SECOND_FILE), 1)
        deliver_queued(settings().rate_queue, handle_normalized_files)

        fix()
        capsys.readouterr()
        assert main(["file", "retry", TENANT, "day1.csv", "--json"]) == 0
        [row] = json.loads(capsys.readouterr().out)
        assert (row["was"], row["status"], row["requested"]) == ("failed", "ingested", "rate")
        assert deliver_queued(settings().rate_queue, handle_normalized_files) == 1
        rate_delivery(first.file_id, 1)  # the same request again (SQS: at least once)

        assert _comparable(snapshot()) == clean
        # Retried once done: refused, nothing requested, nothing changed.
        assert main(["file", "retry", TENANT, "day1.csv"]) == 1
        assert "is done: its calls were charged once" in capsys.readouterr().err
        assert deliver_queued(settings().rate_queue, handle_normalized_files) == 0
        assert _comparable(snapshot()) == clean


def test_a_failed_attempt_is_not_recorded_when_the_queue_has_no_redrive_policy(aws):
    """Without a dead-letter queue SQS retries for ever: the file never becomes `failed`."""
    record = delivery(settings().rate_queue, "{}", 99)["Records"][0]
    assert not queues.is_last_delivery(record)
    with_dead_letter_queues()
    queues.reset()
    assert queues.is_last_delivery(record)
    assert not queues.is_last_delivery(delivery(settings().rate_queue, "{}", 2)["Records"][0])
    assert not queues.is_last_delivery({"messageId": "m", "body": "{}"})  # not from SQS
