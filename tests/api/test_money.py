"""The API's money routes through Chalice's test client on moto: statements that reconcile
to the micro-unit with the ledger's balance, invoices and their documents' pre-signed links,
payments and their allocations, each for every role (what it sees, what it never sees)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from functions.shared.money import AMOUNT_SCALE, units_to_str
from functions.store import ledger
from tests.api.conftest import KEYS, PAID_RES_A
from tests.api.money_world import PDF, XML, seed

ROLES = list(KEYS)
CARRIER = ("admin", "finance")
# What below tenant level must never read: the supplier, its file names, the carrier's issuer.
LEAKS = ("carrier_x", "carrierx", "carrier-x", "globex", "sbc1", "trunk7", "deck", '"issuer"')


@pytest.fixture(scope="module")
def money(world):
    return seed()


def micro(text: str) -> int:
    """A 6-place decimal string as micro-units, exactly (and it must have 6 places)."""
    whole, _, frac = text.lstrip("-").partition(".")
    assert len(frac) == AMOUNT_SCALE, text
    value = int(whole) * 10**AMOUNT_SCALE + int(frac)
    return -value if text.startswith("-") else value


def walk(world, path: str, key: str, limit: int = 2) -> list[dict]:
    """Every item of a list route, page by page."""
    items, cursor = [], None
    while True:
        sep = "&" if "?" in path else "?"
        target = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        answer = world.get(target, key)
        assert answer.status_code == 200, answer.json_body
        items += answer.json_body["items"]
        cursor = answer.json_body["next_cursor"]
        if cursor is None:
            return items


# --- statements ------------------------------------------------------------------------------


def test_a_march_statement_states_every_posting_of_march_and_adds_up(world, money):
    admin = world.get("/v1/accounts/RES_A/statement?from=2026-03-01&to=2026-03-31", "admin")
    assert admin.status_code == 200
    body = admin.json_body
    assert {k: body[k] for k in ("account", "currency", "timezone", "from", "to")} == {
        "account": "RES_A",
        "currency": "EUR",
        "timezone": "UTC",
        "from": "2026-03-01",
        "to": "2026-03-31",
    }
    assert (body["opening"], body["closing"]) == ("-3.000000", "-14.300001")
    assert [(x["day"], x["booked_at"], x["kind"], x["amount"], x["balance"])
            for x in body["lines"]] == [
        ("2026-03-01", "2026-03-01T00:00:00.000000Z", "charges", "-12.345678", "-15.345678"),
        ("2026-03-15", "2026-03-15T12:00:00.000000Z", "rerate", "0.045678", "-15.300000"),
        ("2026-03-20", "2026-03-20T08:30:00.000000Z", "adjustment", "1.000000", "-14.300000"),
        ("2026-03-31", "2026-03-31T23:59:59.999999Z", "charges", "-0.000001", "-14.300001"),
    ]  # fmt: skip
    opening = micro(body["opening"])
    assert opening + sum(micro(x["amount"]) for x in body["lines"]) == micro(body["closing"])
    # the carrier reads the journal's own texts
    assert [(x["description"], x["reference"]) for x in body["lines"]][::2] == [
        ("sbc1_CARRIER_X_trunk7_20260301.csv", None),
        ("goodwill for the Carrier-X outage of 19 March", "ADJ-7 carrier_x"),
    ]


@pytest.mark.parametrize("key", ["reseller", "readonly_res", "readonly"])
def test_a_reseller_reads_its_statement_without_file_names_or_supplier_texts(world, money, key):
    answer = world.get("/v1/accounts/RES_A/statement?from=2026-03-01&to=2026-03-31", key)
    admin = world.get("/v1/accounts/RES_A/statement?from=2026-03-01&to=2026-03-31", "admin")
    body = answer.json_body
    assert [(x["kind"], x["description"], x["reference"]) for x in body["lines"]] == [
        ("charges", "call charges", None),
        ("rerate", "re-rated call charges", None),
        ("adjustment", "adjustment", None),
        ("charges", "call charges", None),
    ]
    money_of = lambda b: [(x["amount"], x["balance"]) for x in b["lines"]]  # noqa: E731
    assert money_of(body) == money_of(admin.json_body)  # the same money, to the micro-unit
    assert (body["opening"], body["closing"]) == ("-3.000000", "-14.300001")
    assert not any(leak in json.dumps(body).lower() for leak in LEAKS)


def test_an_adjustment_naming_a_suppliers_legal_name_is_plain_below_tenant_level(world, money):
    path = "/v1/accounts/DIRECT/statement?from=2026-03-21&to=2026-03-22"
    texts = lambda key: [  # noqa: E731
        (x["description"], x["reference"], x["amount"])
        for x in world.get(path, key).json_body["lines"]
    ]
    assert texts("direct") == [
        ("late fee", "ADJ-8", "-0.250000"),
        ("adjustment", "ADJ-9", "0.300000"),
    ]
    assert texts("readonly") == texts("direct")  # a tenant-wide read-only key sees no supplier
    assert texts("finance")[1] == ("refund: Globex Wholesale Ltd. failed", "ADJ-9", "0.300000")


def test_a_statement_to_today_closes_on_the_ledgers_balance(world, money):
    today = dt.datetime.now(dt.UTC).date()
    first = today - dt.timedelta(days=365)  # 366 days: the longest period
    for account in ("RES_A", "CUST_A1", "DIRECT", "CARRIER_X"):
        path = f"/v1/accounts/{account}/statement?from={first}&to={today}"
        body = world.get(path, "finance").json_body
        balance, _ = ledger.get_balance("acme", account)
        assert body["closing"] == units_to_str(balance, AMOUNT_SCALE), account
        lines = sum(micro(x["amount"]) for x in body["lines"])
        assert micro(body["opening"]) + lines == balance
    # RES_A: every posting above, the world's payment and the seed's, to the last digit
    expected = (
        -3_000_000 - 12_345_678 + 45_678 + 1_000_000 - 1 - 7 - 25_230_000 + 100_000_000
    ) + PAID_RES_A
    assert ledger.get_balance("acme", "RES_A")[0] == expected == 183_926_781


def test_a_customer_statement_in_its_resellers_view_and_its_own(world, money):
    path = "/v1/accounts/CUST_A1/statement?from=2026-03-01&to=2026-04-30"
    for key in ("reseller", "customer", "admin"):
        body = world.get(path, key).json_body
        assert (body["opening"], body["closing"]) == ("-1.000000", "16.999999")
        assert [(x["kind"], x["amount"], x["balance"], x["reference"]) for x in body["lines"]] == [
            ("charges", "-2.000001", "-3.000001", None),
            ("payment", "20.000000", "16.999999", "CARD-2"),
        ]
        assert body["lines"][1]["description"] == "payment received"


@pytest.mark.parametrize("key", ROLES)
def test_statements_follow_the_keys_view(world, money, key):
    seen = KEYS[key][3]
    for account in ("RES_A", "CUST_A1", "DIRECT", "CARRIER_X", "NOBODY"):
        answer = world.get(f"/v1/accounts/{account}/statement?from=2026-03-01&to=2026-03-31", key)
        if account in seen:
            assert answer.status_code == 200 and answer.json_body["account"] == account
        else:
            assert answer.status_code == 404
            assert answer.json_body == {
                "code": "not_found",
                "message": f"no account {account!r} in this key's view",
            }


def test_a_supplier_statement_is_the_carriers_alone(world, money):
    path = "/v1/accounts/CARRIER_X/statement?from=2026-03-01&to=2026-04-30"
    body = world.get(path, "admin").json_body
    assert (body["opening"], body["closing"]) == ("4.000000", "5.999000")
    assert [(x["kind"], x["amount"]) for x in body["lines"]] == [
        ("charges", "7.000000"),
        ("rerate", "-0.001000"),
        ("payment", "-5.000000"),  # the carrier paid: what it owes fell
    ]
    for key in ("readonly", "reseller", "customer"):
        assert world.get(path, key).status_code == 404


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "from"),
        ("?from=2026-03-01", "to"),
        ("?from=2026-3-1&to=2026-03-31", "from"),
        ("?from=2026-03-01&to=2026-02-30", "to"),
        ("?from=2026-03-31&to=2026-03-01", "to"),
        ("?from=2025-03-01&to=2026-03-02", "to"),  # 367 days
        ("?from=2026-03-01&to=2026-03-31&account=RES_A", "account"),
        ("?from=2026-03-01&from=2026-03-02&to=2026-03-31", "from"),
    ],
)
def test_a_bad_period_is_a_400_naming_the_parameter(world, money, query, field):
    answer = world.get(f"/v1/accounts/RES_A/statement{query}", "reseller")
    assert answer.status_code == 400
    assert (answer.json_body["code"], answer.json_body["field"]) == ("bad_parameter", field)
    # 366 days is the longest period
    longest = world.get("/v1/accounts/RES_A/statement?from=2025-03-01&to=2026-03-01", "reseller")
    assert longest.status_code == 200


def test_a_stranger_learns_nothing(world, money):
    assert world.get("/v1/accounts/RES_A/statement?from=x").status_code == 401
    for path in ("/v1/invoices", f"/v1/invoices/{money.reseller_invoice}/pdf", "/v1/payments"):
        answer = world.get(path, world.revoked)
        assert (answer.status_code, answer.json_body["code"]) == (401, "revoked_key")


# --- invoices ----------------------------------------------------------------------------------

INVOICES = {  # key: the invoices it sees, in paging order (issue date, then number)
    "admin": ["direct", "reseller", "customer", "credit"],
    "finance": ["direct", "reseller", "customer", "credit"],
    "readonly": ["direct", "reseller", "customer", "credit"],
    "reseller": ["reseller", "customer"],
    "readonly_res": ["reseller", "customer"],
    "customer": ["customer"],
    "direct": ["direct", "credit"],
}


def numbers(money, names):
    return [getattr(money, f"{name}_invoice") for name in names]


@pytest.mark.parametrize("key", ROLES)
def test_each_key_lists_the_invoices_of_its_view(world, money, key):
    items = walk(world, "/v1/invoices", key, limit=1)
    assert [i["number"] for i in items] == numbers(money, INVOICES[key])
    everyone = numbers(money, INVOICES["admin"])
    for number in everyone:
        visible = number in numbers(money, INVOICES[key])
        for path in (f"/v1/invoices/{number}", f"/v1/invoices/{number}/pdf"):
            answer = world.get(path, key)
            assert answer.status_code == (200 if path.endswith(number) else 303) if visible else 404
            if not visible:  # the same answer as for a number that does not exist
                assert answer.json_body == {
                    "code": "not_found",
                    "message": f"no invoice {number!r} in this key's view",
                }
    if key not in CARRIER and key != "readonly":
        assert not any(leak in json.dumps(items).lower() for leak in LEAKS)


def test_an_invoice_states_its_money_and_what_was_paid_on_it(world, money):
    number = money.reseller_invoice
    assert number == "INV-2026-000002"
    body = world.get(f"/v1/invoices/{number}", "reseller").json_body
    assert body == {
        "number": number,
        "kind": "invoice",
        "account": "RES_A",
        "credits": None,
        "issue_date": "2026-04-02",
        "due_date": "2026-05-02",
        "period": "2026-03",
        "period_from": "2026-03-01",
        "period_to": "2026-03-31",
        "currency": "EUR",
        "net": "132.800000",
        "tax": "25.230000",
        "total": "158.030000",
        "amount_due": "158.030000",
        "paid": "100.000000",
        "open": "58.030000",
        "credited": "0.000000",
        "status": "partially_paid",
        "delivery": None,
        "documents": ["pdf", "xml"],
    }
    assert micro(body["net"]) + micro(body["tax"]) == micro(body["total"])
    assert micro(body["paid"]) + micro(body["open"]) == micro(body["amount_due"])
    admin = world.get(f"/v1/invoices/{number}", "admin").json_body
    assert admin == {**body, "issuer": "carrier"}


def test_paid_credited_and_prepaid_invoices(world, money):
    direct = world.get(f"/v1/invoices/{money.direct_invoice}", "direct").json_body
    assert (direct["total"], direct["paid"], direct["open"], direct["status"]) == (
        "2.500000",
        "2.500000",
        "0.000000",
        "paid",
    )
    assert direct["credited"] == "1.000000"
    note = world.get(f"/v1/invoices/{money.credit_invoice}", "direct").json_body
    assert note == {
        "number": "CN-2026-000001",
        "kind": "credit_note",
        "account": "DIRECT",
        "credits": money.direct_invoice,
        "issue_date": "2026-04-20",
        "due_date": "2026-04-20",
        "period": "2026-03",
        "period_from": "2026-03-01",
        "period_to": "2026-03-31",
        "currency": "EUR",
        "net": "1.000000",
        "tax": "0.190000",
        "total": "1.190000",
        "amount_due": "0.000000",
        "paid": "0.000000",
        "open": "0.000000",
        "credited": "0.000000",
        "status": "issued",
        "delivery": None,
        "documents": ["pdf"],
    }
    # the credit note's posting gives the 1.19 back on the statement
    lines = world.get(
        "/v1/accounts/DIRECT/statement?from=2026-04-20&to=2026-04-20", "direct"
    ).json_body["lines"]
    assert [(x["kind"], x["description"], x["amount"]) for x in lines] == [
        ("credit", f"credit note CN-2026-000001 on {money.direct_invoice}", "1.190000")
    ]
    # the reseller's own invoice to its prepaid customer: paid from the balance, nothing due
    own = world.get(f"/v1/invoices/{money.customer_invoice}", "customer").json_body
    assert (own["number"], own["total"], own["amount_due"], own["open"]) == (
        "RESA-2026-000001",
        "2.500000",
        "0.000000",
        "0.000000",
    )
    assert own["documents"] == ["pdf"]  # the summary CSV stored beside it is never listed


def test_the_account_filter_and_its_404(world, money):
    only = walk(world, "/v1/invoices?account=CUST_A1", "reseller")
    assert [i["number"] for i in only] == [money.customer_invoice]
    assert world.get("/v1/invoices?account=RES_A", "finance").json_body["items"][0]["number"] == (
        money.reseller_invoice
    )
    for key, account in [("customer", "RES_A"), ("reseller", "DIRECT"), ("direct", "NOBODY")]:
        answer = world.get(f"/v1/invoices?account={account}", key)
        assert (answer.status_code, answer.json_body["code"]) == (404, "not_found")
    assert world.get("/v1/invoices?account=CARRIER_X", "admin").json_body["items"] == []


def test_documents_are_303_to_a_short_lived_link_of_the_stored_bytes(world, money):
    number = money.reseller_invoice
    for fmt, body in (("pdf", PDF), ("xml", XML)):
        answer = world.get(f"/v1/invoices/{number}/{fmt}", "readonly_res")
        assert answer.status_code == 303
        url = answer.headers["Location"]
        assert answer.json_body == {"url": url, "expires_in": 300}
        parts = urlparse(url)
        assert parts.path.endswith(f"/invoices/acme/{number}/{number}.{fmt}")
        query = parse_qs(parts.query)
        assert query["X-Amz-Expires"] == ["300"]
        assert query["response-content-disposition"] == [f'attachment; filename="{number}.{fmt}"']
        fetched = requests.get(url, timeout=10)  # moto answers the signed GET
        assert fetched.status_code == 200 and fetched.content == body + number.encode()
    missing = world.get(f"/v1/invoices/{money.customer_invoice}/xml", "customer")
    assert (missing.status_code, missing.json_body["code"]) == (404, "not_found")
    for number in ("INV-2026-999999", "..", "a" * 65, "INV 1"):
        assert world.get(f"/v1/invoices/{number}/pdf", "admin").status_code == 404


@pytest.mark.parametrize(
    ("query", "field"),
    [("?limit=0", "limit"), ("?cursor=zzz", "cursor"), ("?status=paid", "status")],
)
def test_bad_invoice_list_parameters(world, money, query, field):
    answer = world.get(f"/v1/invoices{query}", "admin")
    assert (answer.status_code, answer.json_body["field"]) == (400, field)


# --- payments ----------------------------------------------------------------------------------

PAYMENTS = {  # key: (account, reference) in booking order; SEPA-1 is the world's, booked last
    "admin": ["SEPA-RES-2", "OUT-1", "CARD-1", "CARD-2", "SEPA-1"],
    "finance": ["SEPA-RES-2", "OUT-1", "CARD-1", "CARD-2", "SEPA-1"],
    "readonly": ["SEPA-RES-2", "CARD-1", "CARD-2", "SEPA-1"],
    "reseller": ["SEPA-RES-2", "CARD-2", "SEPA-1"],
    "readonly_res": ["SEPA-RES-2", "CARD-2", "SEPA-1"],
    "customer": ["CARD-2"],
    "direct": ["CARD-1"],
}


@pytest.mark.parametrize("key", ROLES)
def test_each_key_lists_the_payments_of_its_view(world, money, key):
    items = walk(world, "/v1/payments", key)
    assert [p["reference"] for p in items] == PAYMENTS[key]
    assert {p["account"] for p in items} <= set(KEYS[key][3])


def test_a_payment_shows_what_it_paid_and_what_it_left(world, money):
    items = {p["reference"]: p for p in walk(world, "/v1/payments", "admin", limit=200)}
    assert items["SEPA-RES-2"] == {
        "payment_id": items["SEPA-RES-2"]["payment_id"],
        "account": "RES_A",
        "currency": "EUR",
        "direction": "received",
        "amount": "100.000000",
        "reference": "SEPA-RES-2",
        "booked_at": "2026-04-10T10:00:00.000000Z",
        "allocations": [
            {"invoice": money.reseller_invoice, "amount": "100.000000", "day": "2026-04-10"}
        ],
        "credit": "0.000000",
    }
    assert items["SEPA-RES-2"]["payment_id"].startswith("payment:")
    card = items["CARD-1"]
    assert (card["amount"], card["allocations"], card["credit"]) == (
        "10.500000",
        [{"invoice": money.direct_invoice, "amount": "2.500000", "day": "2026-04-12"}],
        "8.000000",
    )
    paid = sum(micro(a["amount"]) for a in card["allocations"]) + micro(card["credit"])
    assert paid == micro(card["amount"])
    assert (items["OUT-1"]["direction"], items["OUT-1"]["amount"]) == ("made", "5.000000")
    assert (items["OUT-1"]["allocations"], items["OUT-1"]["credit"]) == ([], None)
    world_paid = items["SEPA-1"]
    assert (world_paid["amount"], world_paid["allocations"]) == (
        units_to_str(PAID_RES_A, AMOUNT_SCALE),
        [],
    )
    total = sum(micro(p["amount"]) for p in items.values() if p["direction"] == "received")
    assert Decimal(total).scaleb(-6) == Decimal("253.956789")


def test_payments_by_period_and_account(world, money):
    def refs(query: str, key: str = "admin") -> list[str]:
        return [p["reference"] for p in walk(world, f"/v1/payments{query}", key)]

    assert refs("?from=2026-04-11&to=2026-04-12") == ["OUT-1", "CARD-1"]
    assert refs("?from=2026-04-13&to=2026-04-13") == ["CARD-2"]
    assert refs("?to=2026-04-10") == ["SEPA-RES-2"]
    assert refs("?account=RES_A&from=2026-04-01", "reseller") == ["SEPA-RES-2", "SEPA-1"]
    assert refs("?account=CUST_A1", "reseller") == ["CARD-2"]
    for key, query, status, field in [
        ("reseller", "?account=DIRECT", 404, None),
        ("readonly", "?account=CARRIER_X", 404, None),
        ("admin", "?from=2026-04-12&to=2026-04-11", 400, "to"),
        ("admin", "?from=April", 400, "from"),
        ("admin", "?limit=201", 400, "limit"),
    ]:
        answer = world.get(f"/v1/payments{query}", key)
        assert (answer.status_code, answer.json_body.get("field")) == (status, field)


@pytest.mark.parametrize("key", ["admin", "reseller", "customer"])
def test_the_tenants_pointers_read_at_once_give_the_same_invoices(world, money, key, monkeypatch):
    from functions.api import money as routes

    per_account = walk(world, "/v1/invoices", key)
    monkeypatch.setattr(routes, "_PER_ACCOUNT_QUERIES", 0)  # one query of the tenant's all
    assert walk(world, "/v1/invoices", key) == per_account
    assert [i["number"] for i in per_account] == numbers(money, INVOICES[key])
