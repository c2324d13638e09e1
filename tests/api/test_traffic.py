"""GET /v1/usage and GET /v1/cdrs on moto: two CDR files rated through the real pipeline
(ingest and rate services in-process, decks uploaded with the operator CLI) for the API
tests' tenant (RES_A reselling to CUST_A1, DIRECT, the supplier CARRIER_X), then every role
asks. Figures are asserted to the micro-unit; a reseller or customer answer never names the
supplier nor carries a cost."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import jsonschema
import pytest
from botocore.exceptions import ClientError
from chalice.test import Client

from functions.api import handler, traffic
from functions.api.openapi import document
from functions.api.throttle import Limit, Limiter
from functions.local.gateway import use_gateway_responses
from functions.shared.settings import settings
from functions.store import accounts, apikeys, iam
from functions.store import client as aws_client
from tests.api.conftest import KEYS, World
from tests.api.test_openapi import METHODS, json_schema
from tests.conftest import FAKE_ENVIRONMENT, moto_account
from tests.pipeline.carrier import HEADER, SWITCH, TENANT, process_file, run

# what the carrier sells (RES_A, DIRECT), what RES_A sells CUST_A1, what CARRIER_X charges
DECKS = {
    "RES_A": "prefix,destination,rate\n917,India - Mobile,0.0075\n44,UK,0.010\n",
    "CUST_A1": "prefix,destination,rate\n917,India - Mobile,0.0095\n44,UK,0.015\n",
    "DIRECT": "prefix,destination,rate,increment\n917,India - Mobile,0.008,1/1\n44,UK,0.012,60/6\n",
    "CARRIER_X": "prefix,destination,rate\n91,India,0.0065\n44,UK,0.006\n",
}
CALLERS = {"CUST_A1": "+4930111111", "DIRECT": "4930222222", "RES_A": "4930333333"}


def cdr(call_id: str, account: str, callee: str, billsec: int, start: str) -> str:
    begin = dt.datetime.fromisoformat(start)
    stamp = begin.strftime("%Y-%m-%dT%H:%M:%SZ")
    caller = CALLERS[account]
    if billsec == 0:
        return f"{call_id},{caller},{callee},{stamp},,{stamp},0,NO_ANSWER,{account},CARRIER_X"
    answer = begin + dt.timedelta(seconds=5)
    end = answer + dt.timedelta(seconds=billsec)
    return (
        f"{call_id},{caller},{callee},{stamp},{answer:%Y-%m-%dT%H:%M:%SZ},"
        f"{end:%Y-%m-%dT%H:%M:%SZ},{billsec},ANSWERED,{account},CARRIER_X"
    )


FIRST = [
    cdr("a1", "CUST_A1", "917012345601", 60, "2024-05-01T10:00:00"),
    cdr("a2", "CUST_A1", "447700900001", 90, "2024-05-01T10:01:00"),
    cdr("a3", "CUST_A1", "917012345602", 0, "2024-05-01T10:02:00"),
    cdr("d1", "DIRECT", "917012345603", 61, "2024-05-01T10:03:00"),
    cdr("d2", "DIRECT", "442071234567", 61, "2024-05-01T10:04:00"),
    cdr("r1", "RES_A", "917012345604", 30, "2024-05-01T10:05:00"),
    cdr("d3", "DIRECT", "33123456789", 30, "2024-05-01T10:06:00"),  # no rate anywhere
    cdr("a4", "CUST_A1", "917012345605", 120, "2024-05-02T09:00:00"),
]
SECOND = [
    cdr("d4", "DIRECT", "917012345606", 120, "2024-05-02T09:30:00"),
    cdr("a5", "CUST_A1", "447700900002", 30, "2024-05-01T10:00:00"),  # a1's start too
]
RANGE = "from=2024-05-01&to=2024-05-02"


@dataclass
class Traffic(World):
    files: tuple[str, str] = ("", "")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[Traffic]:
    folder = tmp_path_factory.mktemp("decks")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        # the many requests of these tests never meet the per-key rate limit (test_throttle)
        patch.setattr(handler, "LIMITER", Limiter(Limit(1e6, 10**6), clock=lambda: 0.0))
        with moto_account():
            run("tenant", "create", TENANT, "--currency", "EUR")
            run("switch", "create", TENANT, SWITCH, "--format", "generic")
            run("account", "create", TENANT, "RES_A", "--kind", "reseller")
            run("account", "create", TENANT, "CUST_A1", "--kind", "customer", "--parent", "RES_A")
            run("account", "create", TENANT, "DIRECT", "--kind", "customer")
            run("account", "create", TENANT, "CARRIER_X", "--kind", "supplier")
            for account, text in DECKS.items():
                path = folder / f"{account}.csv"
                path.write_text(text)
                run("deck", "upload", TENANT, account, str(path))
            files = (
                process_file("traffic-1.csv", "\n".join([HEADER, *FIRST]) + "\n"),
                process_file("traffic-2.csv", "\n".join([HEADER, *SECOND]) + "\n"),
            )
            actor = accounts.caller(by="test")
            keys = {
                name: apikeys.create_key(TENANT, r, account=a, allow_ips=ips, actor=actor)[1]
                for name, (r, a, ips, _) in KEYS.items()
            }
            from app import app

            with Client(app) as client:
                yield Traffic(use_gateway_responses(client.http), keys, "", "", "", files)


def usage(world, key: str, query: str = RANGE, status: int = 200) -> dict:
    answer = world.get(f"/v1/usage?{query}", key)
    assert answer.status_code == status, answer.json_body
    return answer.json_body


def by_group(body: dict) -> dict[str, dict]:
    return {item["group"]: item for item in body["items"]}


# --- usage: exact figures per role ------------------------------------------------------


def test_a_customer_sees_its_own_calls_at_its_own_price(world):
    body = usage(world, "customer", RANGE + "&group_by=destination")
    assert body == {
        "from": "2024-05-01",
        "to": "2024-05-02",
        "group_by": "destination",
        "items": [
            {  # a1 60 s, a3 unanswered, a4 120 s at 0.0095 a minute
                "group": "India - Mobile",
                "currency": "EUR",
                "attempts": 3,
                "answered": 2,
                "minutes": "3.0000",
                "asr": 66.67,
                "acd": 90.0,
                "amount": "0.028500",
            },
            {  # a2 90 s, a5 30 s at 0.015
                "group": "UK",
                "currency": "EUR",
                "attempts": 2,
                "answered": 2,
                "minutes": "2.0000",
                "asr": 100.0,
                "acd": 60.0,
                "amount": "0.030000",
            },
        ],
    }


@pytest.mark.parametrize("key", ["reseller", "readonly_res"])
def test_a_reseller_sees_its_subtree_at_its_own_price_with_its_margin_and_no_cost(world, key):
    items = by_group(usage(world, key))
    assert items == {
        "India - Mobile": {  # a1, a3, a4 of CUST_A1 and RES_A's own r1 (30 s) at 0.0075
            "group": "India - Mobile",
            "currency": "EUR",
            "attempts": 4,
            "answered": 3,
            "minutes": "3.5000",
            "asr": 75.0,
            "acd": 70.0,
            "amount": "0.026250",
            # CUST_A1 paid 0.009500 + 0 + 0.019000, RES_A paid 0.007500 + 0 + 0.015000;
            # its own call r1 earns it nothing
            "margin": "0.006000",
        },
        "UK": {  # a2 90 s, a5 30 s at 0.010: CUST_A1 paid 0.022500 + 0.007500
            "group": "UK",
            "currency": "EUR",
            "attempts": 2,
            "answered": 2,
            "minutes": "2.0000",
            "asr": 100.0,
            "acd": 60.0,
            "amount": "0.020000",
            "margin": "0.010000",
        },
    }


@pytest.mark.parametrize("key", ["admin", "finance"])
def test_the_carrier_sees_every_call_with_cost_and_margin(world, key):
    items = by_group(usage(world, key))
    assert items == {
        "India - Mobile": {  # a1, a3, a4 and r1 at RES_A's price, d1 and d4 at DIRECT's
            "group": "India - Mobile",
            "currency": "EUR",
            "attempts": 6,
            "answered": 5,
            "minutes": "6.5167",  # 60 + 120 + 30 + 61 + 120 = 391 s
            "asr": 83.33,
            "acd": 78.2,
            "amount": "0.050383",  # 0.0075 + 0.015 + 0.00375 + 0.008133 + 0.016
            "cost": "0.042358",  # 0.0065 + 0.013 + 0.00325 + 0.006608 + 0.013
            "margin": "0.008025",
        },
        "UK": {  # a2 90 s and a5 30 s at 0.010, d2 61 s billed 66 s at 0.012
            "group": "UK",
            "currency": "EUR",
            "attempts": 3,
            "answered": 3,
            "minutes": "3.1000",
            "asr": 100.0,
            "acd": 60.33,  # 181 answered seconds over 3 calls
            "amount": "0.033200",
            "cost": "0.018100",  # 0.009 + 0.003 + 0.0061
            "margin": "0.015100",
        },
    }


def test_a_tenant_read_only_key_sees_the_carriers_revenue_without_cost_or_margin(world):
    items = by_group(usage(world, "readonly"))
    assert {g: (i["attempts"], i["amount"]) for g, i in items.items()} == {
        "India - Mobile": (6, "0.050383"),
        "UK": (3, "0.033200"),
    }
    assert all("cost" not in i and "margin" not in i for i in items.values())


def test_group_by_day_and_account(world):
    days = by_group(usage(world, "admin", RANGE + "&group_by=day"))
    assert {d: (i["attempts"], i["amount"], i["margin"]) for d, i in days.items()} == {
        # a1 a2 a3 d1 d2 r1 a5 (d3 is unrated); a4 d4
        "2024-05-01": (7, "0.052583", "0.018125"),
        "2024-05-02": (2, "0.031000", "0.005000"),
    }
    reseller = by_group(usage(world, "reseller", RANGE + "&group_by=account"))
    assert {a: (i["attempts"], i["amount"], i["margin"]) for a, i in reseller.items()} == {
        "CUST_A1": (5, "0.042500", "0.016000"),
        "RES_A": (1, "0.003750", None),  # its own call: no customer paid it
    }
    one_day = usage(world, "customer", "from=2024-05-02&to=2024-05-02&group_by=day")
    assert [(i["group"], i["attempts"], i["amount"]) for i in one_day["items"]] == [
        ("2024-05-02", 1, "0.019000")
    ]


def test_account_narrows_to_a_visible_subtree_or_supplier_else_404(world):
    narrowed = by_group(usage(world, "admin", RANGE + "&group_by=account&account=RES_A"))
    assert {a: i["amount"] for a, i in narrowed.items()} == {
        "CUST_A1": "0.042500",
        "RES_A": "0.003750",
    }
    supplier = usage(world, "finance", RANGE + "&group_by=account&account=CARRIER_X")
    assert {i["group"]: i["cost"] for i in supplier["items"]} == {
        "CUST_A1": "0.031500",
        "DIRECT": "0.025708",
        "RES_A": "0.003250",
    }
    mine = by_group(usage(world, "reseller", RANGE + "&group_by=account&account=CUST_A1"))
    assert list(mine) == ["CUST_A1"]
    for key, account in [
        ("reseller", "DIRECT"),
        ("reseller", "CARRIER_X"),
        ("customer", "RES_A"),
        ("readonly", "CARRIER_X"),
        ("admin", "NOBODY"),
    ]:
        body = usage(world, key, RANGE + f"&account={account}", status=404)
        assert body == {"code": "not_found", "message": f"no account {account!r}"}


def test_no_traffic_in_range_is_no_items(world):
    body = usage(world, "admin", "from=2024-06-01&to=2024-06-30&group_by=day")
    assert body == {"from": "2024-06-01", "to": "2024-06-30", "group_by": "day", "items": []}


# --- CDRs -------------------------------------------------------------------------------


def cdrs(world, key: str, query: str = RANGE, status: int = 200):
    answer = world.get(f"/v1/cdrs?{query}", key)
    assert answer.status_code == status, answer.body
    return answer


def walk(world, key: str, query: str, limit: int) -> tuple[list[dict], int]:
    items, cursor, pages = [], None, 0
    while True:
        extra = f"&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        body = cdrs(world, key, query + extra).json_body
        items += body["items"]
        cursor, pages = body["next_cursor"], pages + 1
        if cursor is None:
            return items, pages


def test_a_customers_cdrs_carry_its_own_price_only(world):
    body = cdrs(world, "customer").json_body
    assert body["next_cursor"] is None
    assert [c["call_id"] for c in body["items"][2:]] == ["a2", "a3", "a4"]
    assert sorted(c["call_id"] for c in body["items"][:2]) == ["a1", "a5"]  # same start
    first = next(c for c in body["items"] if c["call_id"] == "a1")
    assert first == {
        "call_id": "a1",
        "account": "CUST_A1",
        "start": "2024-05-01T10:00:00Z",
        "caller": "+4930111111",
        "callee": "917012345601",
        "destination": "India - Mobile",
        "duration": 60,
        "billed_seconds": 60,
        "amount": "0.009500",
        "currency": "EUR",
    }


def test_a_resellers_cdrs_carry_its_price_its_customers_price_and_margin(world):
    items = {c["call_id"]: c for c in cdrs(world, "reseller").json_body["items"]}
    assert sorted(items) == ["a1", "a2", "a3", "a4", "a5", "r1"]
    assert items["a2"] == {
        "call_id": "a2",
        "account": "CUST_A1",
        "start": "2024-05-01T10:01:00Z",
        "caller": "+4930111111",
        "callee": "447700900001",
        "destination": "UK",
        "duration": 90,
        "billed_seconds": 90,
        "amount": "0.015000",
        "currency": "EUR",
        "customer_amount": "0.022500",
        "customer_currency": "EUR",
        "margin": "0.007500",
    }
    assert (items["r1"]["amount"], items["r1"]["customer_amount"], items["r1"]["margin"]) == (
        "0.003750",
        None,
        None,
    )


def test_the_carriers_cdrs_name_the_supplier_and_list_unrated_calls(world):
    items = {c["call_id"]: c for c in cdrs(world, "finance").json_body["items"]}
    assert sorted(items) == ["a1", "a2", "a3", "a4", "a5", "d1", "d2", "d3", "d4", "r1"]
    assert {k: items["d2"][k] for k in ("amount", "billed_seconds", "supplier", "cost")} == {
        "amount": "0.013200",
        "billed_seconds": 66,
        "supplier": "CARRIER_X",
        "cost": "0.006100",
    }
    assert (items["d2"]["margin"], items["d2"]["cost_currency"]) == ("0.007100", "EUR")
    # a reseller's customer's call: the carrier's price is what RES_A pays it
    assert (items["a1"]["amount"], items["a1"]["margin"]) == ("0.007500", "0.001000")
    unrated = items["d3"]
    assert (unrated["amount"], unrated["currency"], unrated["destination"]) == (None, None, None)


def test_number_matches_a_prefix_of_callee_or_caller(world):
    def calls(key, number):
        return sorted(
            c["call_id"] for c in cdrs(world, key, RANGE + f"&number={number}").json_body["items"]
        )

    assert calls("admin", "44") == ["a2", "a5", "d2"]
    assert calls("admin", "447700900001") == ["a2"]  # the whole number: that call
    assert calls("admin", "4930222") == ["d1", "d2", "d3", "d4"]  # DIRECT's calling number
    assert calls("reseller", "4930222") == []  # not its subtree's
    assert calls("customer", "4930111111") == ["a1", "a2", "a3", "a4", "a5"]  # '+' ignored


def test_pages_follow_the_cursor_without_gaps_or_repeats(world):
    whole = cdrs(world, "admin").json_body["items"]
    assert len(whole) == 10
    for limit in (1, 4):
        items, pages = walk(world, "admin", RANGE, limit)
        assert items == whole
        assert pages == -(-10 // limit)
    narrowed, _ = walk(world, "reseller", RANGE + "&account=CUST_A1", 2)
    assert [c["call_id"] for c in narrowed] == [
        c["call_id"] for c in whole if c["account"] == "CUST_A1"
    ]


def test_cdrs_in_csv_are_the_json_rows(world):
    answer = cdrs(world, "reseller", RANGE + "&format=csv")
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert answer.headers["Content-Disposition"] == (
        'attachment; filename="cdrs-2024-05-01-2024-05-02.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(answer.body.decode())))
    as_json = cdrs(world, "reseller").json_body["items"]
    assert rows == [{k: "" if v is None else str(v) for k, v in c.items()} for c in as_json]
    header = answer.body.decode().splitlines()[0]
    assert "supplier" not in header and "cost" not in header


def test_a_large_csv_is_an_export_behind_a_short_pre_signed_link(world, monkeypatch):
    inline = cdrs(world, "admin", RANGE + "&format=csv").body
    monkeypatch.setattr(traffic, "CSV_DOWNLOAD_ROWS", 9)
    answer = cdrs(world, "admin", RANGE + "&format=csv", status=303)
    url = answer.json_body["url"]
    assert answer.json_body == {"url": url, "expires_in": 300}
    assert answer.headers["Location"] == url
    parsed = urllib.parse.urlparse(url)
    query = urllib.parse.parse_qs(parsed.query)
    assert query["X-Amz-Expires"] == ["300"]
    bucket = settings().lake_bucket
    assert parsed.hostname.startswith(f"{bucket}.")  # virtual-hosted style, SigV4
    key = urllib.parse.unquote(parsed.path).removeprefix("/")
    assert key.startswith("exports/tenant=acme/")
    assert key.endswith("/cdrs-2024-05-01-2024-05-02.csv")
    stored = aws_client("s3").get_object(Bucket=bucket, Key=key)
    assert stored["Body"].read() == inline
    assert stored["ContentType"] == "text/csv; charset=utf-8"
    # nine rows still come inline
    monkeypatch.setattr(traffic, "CSV_DOWNLOAD_ROWS", 10)
    assert cdrs(world, "admin", RANGE + "&format=csv").body == inline


def test_no_reseller_or_customer_answer_names_the_supplier_or_a_cost(world):
    for key in ("reseller", "readonly_res", "customer", "direct"):
        bodies = [
            world.get(f"/v1/usage?{RANGE}&group_by={g}", key).body
            for g in ("destination", "day", "account")
        ]
        bodies += [
            world.get(f"/v1/cdrs?{RANGE}", key).body,
            world.get(f"/v1/cdrs?{RANGE}&format=csv", key).body,
        ]
        for body in bodies:
            text = body.decode()
            assert "CARRIER_X" not in text and "cost" not in text and "supplier" not in text, key
    direct = cdrs(world, "direct").json_body["items"]
    assert [c["call_id"] for c in direct] == ["d1", "d2", "d3", "d4"]
    assert all("margin" not in c for c in direct)


# --- bad requests -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "query", "field"),
    [
        ("usage", "from=2024-5-01&to=2024-05-02", "from"),
        ("usage", "from=2024-05-01&to=2024-02-30", "to"),
        ("usage", "to=2024-05-02", "from"),
        ("usage", "from=2024-05-02&to=2024-05-01", "to"),
        ("usage", "from=2024-01-01&to=2024-04-01", "to"),  # 92 days is the most: this is 92
        ("usage", "from=2024-01-01&to=2024-04-02", "to"),
        ("usage", RANGE + "&group_by=week", "group_by"),
        ("usage", RANGE + "&format=csv", "format"),
        ("cdrs", RANGE + "&format=xml", "format"),
        ("cdrs", RANGE + "&number=%2B44", "number"),
        ("cdrs", RANGE + "&limit=0", "limit"),
        ("cdrs", RANGE + "&cursor=bm9wZQ", "cursor"),
        ("cdrs", RANGE + "&format=csv&limit=5", "limit"),
        ("cdrs", RANGE + "&from=2024-05-01", "from"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(world, route, query, field):
    answer = world.get(f"/v1/{route}?{query}", "admin")
    if query.startswith("from=2024-01-01&to=2024-04-01"):
        assert answer.status_code == 200
        return
    assert answer.status_code == 400, answer.json_body
    assert answer.json_body["code"] == "bad_parameter"
    assert answer.json_body["field"] == field


def test_the_routes_need_a_key(world):
    for path in ("/v1/usage?" + RANGE, "/v1/cdrs?" + RANGE):
        assert world.get(path).status_code == 401
        assert world.get(path + "&group_by=nonsense").status_code == 401


# --- the OpenAPI document ---------------------------------------------------------------


def check(doc: dict, path: str, answer, met: set) -> None:
    responses = doc["paths"][path]["get"]["responses"]
    status = str(answer.status_code)
    assert status in responses, (path, status, answer.body)
    media = answer.headers["Content-Type"].split(";")[0]
    content = responses[status]["content"]
    assert media in content, (path, status, media)
    body = answer.body.decode() if media == "text/csv" else answer.json_body
    schema = content[media]["schema"]
    root = {**json_schema(schema), "components": json_schema(doc["components"])}
    jsonschema.Draft202012Validator(root).validate(body)
    met.add((path, status, media))


def test_every_traffic_answer_matches_its_schema(world, monkeypatch):
    doc = document()
    met: set = set()
    for key in (None, "tg_x", "admin", "readonly", "reseller", "customer"):
        reads = key in world.keys  # refused keys: every request, cheaply (401)
        for group in ("destination", "account") if reads else ("day",):
            check(doc, "/v1/usage", world.get(f"/v1/usage?{RANGE}&group_by={group}", key), met)
        for query in (RANGE + "&limit=2", RANGE + "&format=csv"):
            check(doc, "/v1/cdrs", world.get(f"/v1/cdrs?{query}", key), met)
    for key in (None, "admin"):
        check(doc, "/v1/usage", world.get("/v1/usage?from=x&to=y", key), met)
        check(doc, "/v1/usage", world.get(f"/v1/usage?{RANGE}&account=NOBODY", key), met)
        check(doc, "/v1/cdrs", world.get("/v1/cdrs?from=1", key), met)
        check(doc, "/v1/cdrs", world.get(f"/v1/cdrs?{RANGE}&account=NOBODY", key), met)
    monkeypatch.setattr(traffic, "CSV_DOWNLOAD_ROWS", 1)
    check(doc, "/v1/cdrs", world.get(f"/v1/cdrs?{RANGE}&format=csv", "admin"), met)
    monkeypatch.setattr(iam, "client", lambda service: RefusingSts())
    for path in ("/v1/usage", "/v1/cdrs"):
        check(doc, path, world.get(f"{path}?{RANGE}", "admin"), met)
    monkeypatch.setattr(handler, "LIMITER", Limiter(Limit(1e-6, 1), clock=lambda: 0.0))
    world.get(f"/v1/usage?{RANGE}", "customer")  # takes the key's one token
    for path in ("/v1/usage", "/v1/cdrs"):
        check(doc, path, world.get(f"{path}?{RANGE}", "customer"), met)
    documented = {
        (p, s, media)
        for p in ("/v1/usage", "/v1/cdrs")
        for s, response in doc["paths"][p]["get"]["responses"].items()
        for media in response["content"]
    }
    assert met == documented
    assert {m for p in ("/v1/usage", "/v1/cdrs") for m in doc["paths"][p]} & METHODS == {"get"}
    assert json.loads(json.dumps(doc)) == doc


def test_the_answers_add_up_to_what_the_lakes_named_queries_say(world, tmp_path):
    """One set of figures: each party's usage amount is what balance_check says its charges
    moved its balance by, and the reseller's margin is reseller_margin's (DuckDB)."""
    from decimal import Decimal

    from functions.invoice.lake_sql import LocalLakeSql
    from functions.store import lake

    for area in ("rated", "charges"):
        lake.copy_area(area, TENANT, tmp_path)
    with LocalLakeSql(TENANT, tmp_path) as sql:
        effects = {r["account"]: r["balance_effect"] for r in sql.named("balance_check")}
        [margin] = sql.named("reseller_margin")

    def total(key: str, member: str) -> Decimal:
        return sum(Decimal(i[member] or "0") for i in usage(world, key)["items"])

    assert total("customer", "amount") == -effects["CUST_A1"] == Decimal("0.058500")
    assert total("direct", "amount") == -effects["DIRECT"] == Decimal("0.037333")
    assert total("reseller", "amount") == -effects["RES_A"] == Decimal("0.046250")
    assert total("admin", "cost") == effects["CARRIER_X"] == Decimal("0.060458")
    assert (margin["reseller"], margin["period"]) == ("RES_A", "2024-05")
    assert total("reseller", "margin") == margin["margin"] == Decimal("0.016000")


class RefusingSts:
    """AWS answers AssumeRole of a role `tollgate access provision` never made with
    AccessDenied; moto grants any AssumeRole, so this STS refuses instead."""

    meta = type("Meta", (), {"region_name": "us-east-1"})

    def get_caller_identity(self):
        return {"Account": "123456789012", "Arn": "arn:aws:sts::123456789012:assumed-role/x"}

    def assume_role(self, **request):
        error = {"Error": {"Code": "AccessDenied", "Message": "not authorized"}}
        raise ClientError(error, "AssumeRole")


def test_a_tenant_whose_query_role_is_missing_gets_409_not_a_500(world, monkeypatch):
    monkeypatch.setattr(iam, "client", lambda service: RefusingSts())
    for path in (f"/v1/usage?{RANGE}", f"/v1/cdrs?{RANGE}"):
        answer = world.get(path, "admin")
        assert answer.status_code == 409, answer.body
        assert answer.json_body["code"] == "lake_not_provisioned"
        assert "tollgate access provision acme" in answer.json_body["message"]
