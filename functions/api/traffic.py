"""The traffic routes' edge: GET /v1/usage and GET /v1/cdrs over the lake.

The engine is pyarrow over the tenant's own Parquet partitions, read with boto3 by the lake
adapter (functions.store.lake: `day_files`, `read_file_pairs`), a CDR file's rated and
charges tables at a time, and aggregated by functions.api.usage. Not Athena: an answer should
take a second, not a query queue, a results bucket round trip and a per-query scan bill; and
the same code runs on AWS, on the local stack and under moto (DuckDB stays a development
tool). The tenant is the engine's scope, not a filter: the reads run as the key's tenant's
query role (`lake.tenant_reader`, the role `tollgate report` runs Athena as), which IAM lets
list and read only that tenant's prefixes. The caller's subtree is then a filter on account
ids (functions.api.usage.View).

A CSV of more than CSV_DOWNLOAD_ROWS rows is not answered inline: it is written under the
lake's exports prefix and the answer is a 303 to a pre-signed link that expires in minutes.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
from chalice.app import Request, Response

from functions.api import usage
from functions.api.handler import serve
from functions.api.paging import decode_cursor, encode_cursor, parse_limit
from functions.api.requests import ApiError, Call, Download, QueryError, Redirect, parse_choice
from functions.store import accounts, iam, lake

CSV_DOWNLOAD_ROWS = 10_000  # above this a CSV is an export behind a pre-signed link
CSV_TYPE = "text/csv; charset=utf-8"
_FOLD_EVERY = 64  # partial usage totals kept before they are added up


def _view(call: Call) -> usage.View:
    tenant = call.caller.tenant
    return usage.view_of(call.caller, accounts.list_accounts(tenant), call.query.get("account"))


def _files(
    call: Call, view: usage.View, first: dt.date, last: dt.date
) -> tuple[Any, list[lake.DayFile]]:
    """The tenant's reader (its query role) and its files of the days asked; none to read
    for a view of no account."""
    if not view.accounts:
        return None, []
    try:
        s3 = lake.tenant_reader(call.caller.tenant)
    except iam.NotProvisionedError:  # the carrier's set-up, not the caller's request
        raise ApiError(
            409,
            "lake_not_provisioned",
            "this tenant's lake is not open to queries yet: its operator runs "
            f"`tollgate access provision {call.caller.tenant}`",
        ) from None
    return s3, lake.day_files(call.caller.tenant, first, last, s3)


def _calls(
    call: Call, view: usage.View, s3: Any, files: list[lake.DayFile], number: str | None = None
) -> Iterator[tuple[str, pa.Table]]:
    """(day, that file's calls in view) of each file, in (day, file) order."""
    pairs = lake.read_file_pairs(
        call.caller.tenant, files, usage.RATED_COLUMNS, usage.CHARGES_COLUMNS, s3
    )
    for file, rated, charges in pairs:
        rows = usage.calls_in_view(view, file.day, file.file_id, rated, charges, number)
        yield file.day, rows


def _days(call: Call, view: usage.View, s3, files, number) -> Iterator[pa.Table]:
    """Each day's calls in view, in the listing's order (one day in memory at a time)."""
    current, parts = None, []
    for day, rows in _calls(call, view, s3, files, number):
        if day != current and parts:
            yield usage.sort_calls(pa.concat_tables(parts))
            parts = []
        current = day
        parts.append(rows)
    if parts:
        yield usage.sort_calls(pa.concat_tables(parts))


def get_usage(request: Request) -> Response:
    def work(call: Call) -> dict[str, Any]:
        first, last = usage.parse_range(call.query)
        group_by = parse_choice(call.query, "group_by", usage.GROUPS, "destination")
        view = _view(call)
        s3, files = _files(call, view, first, last)
        parts: list[pa.Table] = []
        for _, rows in _calls(call, view, s3, files):
            parts.append(usage.usage_totals(rows, view, group_by))
            if len(parts) >= _FOLD_EVERY:
                parts = [usage.add_totals(parts)]
        return {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "group_by": group_by,
            "items": usage.usage_items(usage.add_totals(parts), view),
        }

    return serve(request, work, params=("from", "to", "group_by", "account"))


def get_cdrs(request: Request) -> Response:
    def work(call: Call) -> dict[str, Any] | Download | Redirect:
        query = call.query
        first, last = usage.parse_range(query)
        number = usage.parse_number(query)
        form = parse_choice(query, "format", usage.FORMATS, "json")
        if form == "csv":
            for name in ("limit", "cursor"):
                if name in query:
                    raise QueryError(name, f"a CSV holds every row: no {name!r}")
        limit = parse_limit(query.get("limit"))
        position = None
        if query.get("cursor") is not None:
            position = usage.decode_position(decode_cursor(query["cursor"]))
        view = _view(call)
        s3, files = _files(call, view, first, last)
        if form == "csv":
            return _csv(call, view, s3, files, number, first, last)
        if position is not None:
            files = [f for f in files if f.day >= position[0]]
        return _page(call, view, s3, files, number, limit, position)

    return serve(
        request,
        work,
        params=("from", "to", "number", "account", "format", "limit", "cursor"),
    )


def _page(call, view, s3, files, number, limit, position) -> dict[str, Any]:
    taken, count = [], 0
    for rows in _days(call, view, s3, files, number):
        if position is not None:
            rows = usage.after_position(rows, *position[1:])
        taken.append(rows)
        count += rows.num_rows
        if count > limit:  # one row more than the page: there is a next page
            break
    if not taken:
        return {"items": [], "next_cursor": None}
    rows = pa.concat_tables(taken)
    chosen = rows.slice(0, limit)
    more = rows.num_rows > limit
    cursor = encode_cursor(usage.encode_position(chosen, limit - 1)) if more else None
    return {"items": usage.cdr_table(chosen, view).to_pylist(), "next_cursor": cursor}


def _csv(call, view, s3, files, number, first: dt.date, last: dt.date) -> Download | Redirect:
    name = f"cdrs-{first.isoformat()}-{last.isoformat()}.csv"
    schema = usage.cdr_table(usage.calls_in_view(view, "", "", None, None), view).schema
    options = pa_csv.WriteOptions(quoting_style="needed")
    with tempfile.TemporaryDirectory(prefix="tollgate-cdrs-") as folder:
        path = Path(folder) / name
        count = 0
        with pa_csv.CSVWriter(str(path), schema, write_options=options) as writer:
            for rows in _days(call, view, s3, files, number):
                writer.write_table(usage.cdr_table(rows, view))
                count += rows.num_rows
        if count <= CSV_DOWNLOAD_ROWS:
            return Download(path.read_bytes(), CSV_TYPE, name)
        key = lake.put_export(call.caller.tenant, name, path, CSV_TYPE)
    return Redirect(lake.export_link(key), lake.EXPORT_LINK_SECONDS)
