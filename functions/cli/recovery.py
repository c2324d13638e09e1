"""`tollgate dlq list|redrive` and `tollgate file retry`: run failed and rejected files again.

A file whose processing raised on its message's last delivery is `failed` (the message is in
its queue's dead-letter queue); a file that could not be read is `rejected`. Once the cause is
fixed (the switch registered, its format corrected, the outage over), `file retry` requests
the step that must run again, and `dlq redrive` sends the dead letters back. Both reopen the
files first (`functions.store.files.reopen_file`), and neither can charge twice: every step of
the pipeline is idempotent, and a `done` file is never reopened.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any
from urllib.parse import unquote_plus

from functions.cli import CliError, OperationError, emit, guarded, json_flag

QUEUES = ("ingest", "rate")


def register(subparsers: argparse._SubParsersAction) -> None:
    dlq = subparsers.add_parser("dlq", help="dead-letter queues: messages the pipeline gave up on")
    actions = dlq.add_subparsers(dest="dlq_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="dead letters with their tenant, file and error")
    listing.add_argument("--queue", choices=QUEUES, help="one queue (default: both)")
    json_flag(listing)
    listing.set_defaults(run=run_dlq_list)
    redrive = actions.add_parser(
        "redrive", help="move dead letters back to their queue, reopening their failed files"
    )
    redrive.add_argument("--queue", choices=QUEUES, help="one queue (default: both)")
    json_flag(redrive)
    redrive.set_defaults(run=run_dlq_redrive)
    # `file retry` is registered by the `file` group (functions.cli.ops).


# --- what a dead letter names ----------------------------------------------------------------


def letter_files(letter: Any) -> list[dict[str, str]]:
    """The files a dead letter names: tenant, switch, file id and (if known) name; none for a
    body that names no valid file (it is listed with its body instead)."""
    from functions.ingest.service import DroppedFile
    from functions.store import check_name, check_token, lake

    try:
        body = json.loads(letter.body)
        if letter.queue == "rate":
            return [
                {
                    "tenant": check_name("tenant", body["tenant"]),
                    "switch": check_name("switch", body["switch"]),
                    "file_id": check_token("file id", body["file_id"]),
                }
            ]
        named = []
        for record in body.get("Records", []):
            s3 = record["s3"]
            where = lake.parse_cdr_key(unquote_plus(s3["object"]["key"]))
            drop = DroppedFile(
                bucket=s3["bucket"]["name"],
                key=where.key,
                etag=s3["object"].get("eTag", "").strip('"'),
                tenant=where.tenant,
                switch=where.switch,
                name=where.name,
                arrived=dt.date.min,  # not part of the file's identity
            )
            named.append(
                {
                    "tenant": drop.tenant,
                    "switch": drop.switch,
                    "file_id": drop.file_id,
                    "file": drop.name,
                }
            )
        return named
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def _letter_rows(letter: Any, dead_letter_queue: str) -> list[dict[str, Any]]:
    """One row per file a dead letter names, with the file's status and last error."""
    from functions.store import files

    base = {
        "queue": letter.queue,
        "dead_letter_queue": dead_letter_queue,
        "message_id": letter.message_id,
        "sent_at": letter.sent_at.isoformat(),
    }
    named = letter_files(letter)
    if not named:
        unknown = dict.fromkeys(
            ("tenant", "switch", "file", "file_id", "status", "error", "failures")
        )
        return [base | unknown | {"body": letter.body[:500]}]
    rows = []
    for where in named:
        record = files.find_file(where["tenant"], where["file_id"])
        meta = record.meta if record else {}
        rows.append(
            base
            | {
                "tenant": where["tenant"],
                "switch": where["switch"],
                "file": where.get("file") or meta.get("name"),
                "file_id": where["file_id"],
                "status": record.status if record else None,
                "error": (record.error or record.reason) if record else None,
                # From the file, not the message: receiving a dead letter (listing it) counts.
                "failures": record.failures if record else None,
            }
        )
    return rows


def _row_text(row: dict[str, Any]) -> str:
    if row["file_id"] is None:
        return f"  {row['queue']:<7} message {row['message_id']}: names no file: {row['body']}"
    status = row["status"] or "no record"
    error = ""
    if row.get("error"):  # a reopened file keeps its last error until it succeeds
        error = (
            f": {row['error']}" if status in ("failed", "rejected") else f" (was: {row['error']})"
        )
    return (
        f"  {row['queue']:<7} {row['tenant']}/{row['file'] or row['file_id']} "
        f"({row['file_id']}, {row['failures'] or 0} failed deliveries) {status}{error}"
    )


# --- dlq list / redrive ----------------------------------------------------------------------


@guarded
def run_dlq_list(args: argparse.Namespace) -> int:
    from functions.store import queues

    rows, names = [], []
    for queue in [args.queue] if args.queue else QUEUES:
        name = queues.dead_letter_queue(queue)
        names.append(name)
        for letter in queues.list_dead_letters(queue):
            rows.extend(_letter_rows(letter, name))
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print(f"no dead letters in {', '.join(names)}")
        return 0
    print(f"{len(rows)} dead letter(s) in {', '.join(names)}:")
    for row in rows:
        print(_row_text(row))
    return 0


@guarded
def run_dlq_redrive(args: argparse.Namespace) -> int:
    from functions.store import files, queues

    rows: list[dict[str, Any]] = []

    def reopen(letter: Any) -> None:
        # A failed file would ignore its message (rating runs only `ingested` files, ingest
        # only new ones): reopen it first. Any other status is left alone: a done file's
        # message changes nothing, a retrying one is ingested as new anyway.
        for where in letter_files(letter):
            record = files.find_file(where["tenant"], where["file_id"])
            if record is not None and record.status == "failed":
                files.reopen_file(where["tenant"], where["file_id"])
        rows.extend(_letter_rows(letter, name))

    text = []
    for queue in [args.queue] if args.queue else QUEUES:
        name = queues.dead_letter_queue(queue)
        moved = queues.redrive(queue, reopen)
        text.append(f"moved {len(moved)} message(s) from {name} to {queues.queue_name(queue)}")
    emit(args, rows, "\n".join(text + [_row_text(row) for row in rows]))
    return 0


# --- file retry ------------------------------------------------------------------------------


@guarded
def run_file_retry(args: argparse.Namespace) -> int:
    from functions.store import accounts, files

    accounts.get_tenant(args.tenant)
    records = [
        r for r in files.list_files(args.tenant) if args.file in (r.file_id, r.meta.get("name"))
    ]
    if not records:
        raise CliError(f"no file {args.file!r} in tenant {args.tenant}")
    # The same name dropped twice is two files; retry those not yet done.
    pending = [r for r in records if r.status != "done"]
    if not pending:
        raise OperationError(
            f"{args.file} is done: its calls were charged once, so there is nothing to retry "
            "(tollgate rerate re-prices its days)"
        )
    rows = [retry_file(args.tenant, record) for record in pending]
    emit(
        args,
        rows,
        "\n".join(
            f"{row['file']} ({row['file_id']}): {row['was']} -> {row['status']}; "
            f"{'ingest' if row['requested'] == 'ingest' else 'rating'} requested"
            for row in rows
        ),
    )
    return 0


def retry_file(tenant: str, record: Any) -> dict[str, Any]:
    """Reopen one file and request the step that runs it again; what was done, as a row."""
    from functions.shared.settings import settings
    from functions.store import files, queues

    meta = record.meta
    bucket = meta.get("bucket") or settings().cdr_bucket
    if files.retry_step(record) == "ingest":
        if not meta.get("key") or not meta.get("etag"):
            raise OperationError(f"file {record.file_id} does not say which object it came from")
        queues.check_drop(bucket, meta["key"], meta["etag"])  # before anything changes
    step = files.reopen_file(tenant, record.file_id)
    if step == "rate":
        queues.send_rate_request(tenant, meta["switch"], record.file_id)
    else:
        queues.resend_drop(bucket, meta["key"], meta["etag"], _arrival(record))
    return {
        "tenant": tenant,
        "file": meta.get("name", record.file_id),
        "file_id": record.file_id,
        "was": record.status,
        "status": "ingested" if step == "rate" else "retrying",
        "requested": step,
    }


def _arrival(record: Any) -> dt.datetime:
    """When the drop arrived, as its notification said: the day its quarantine is filed under."""
    arrived = record.meta.get("arrived")
    if arrived:
        return dt.datetime.combine(dt.date.fromisoformat(arrived), dt.time(), dt.UTC)
    return record.created_at or dt.datetime.now(dt.UTC)
