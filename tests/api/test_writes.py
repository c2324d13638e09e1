"""The API's writes and rates on moto through Chalice's test client: who may create and
change which accounts and decks (every role, above, beside and below a reseller), each body
member at fault named, money exact to the last digit, the store's refusals as 409 codes, every
write in the audit log with its key id (and `tollgate audit` showing it), the rates in force.

One moto account for the module (its own, since these tests write): the tenant acme with
RES_A > {CUST_A1, FRAUDY, SUB_R > CUST_S1}, RES_B > CUST_B1, DIRECT and the supplier CARRIER_X.
Each test writes accounts of its own, so the order of the tests does not matter.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from chalice.test import Client

from functions.cli import main as tollgate
from functions.local.gateway import use_gateway_responses
from functions.store import accounts, apikeys, decks
from tests.conftest import FAKE_ENVIRONMENT, moto_account

# key name: (role, account)
KEYS = {
    "admin": ("tenant-admin", None),
    "finance": ("finance", None),
    "readonly": ("read-only", None),
    "reseller": ("reseller-admin", "RES_A"),
    "readonly_res": ("read-only", "RES_A"),
    "customer": ("customer", "CUST_A1"),
    "sub": ("reseller-admin", "SUB_R"),
    "res_b": ("reseller-admin", "RES_B"),
}
WRITERS = {"admin", "reseller", "sub", "res_b"}
DECK_RES_A = "prefix,destination,rate,connect fee,increment\n44,UK,0.01234567,0.05,60/6\n"
DECK_CUST_A1 = (
    "prefix,destination,rate,connect fee,increment\n"
    "33,France,0.02000001,0,1/1\n44,UK,0.0150,0.10,60/1\n4420,London,0.0145,0,30/6\n"
)
DECK_CARRIER = "prefix,destination,rate\n44,UK,0.0031\n"


@dataclass
class World:
    http: object
    keys: dict[str, str]
    key_ids: dict[str, str]

    def send(self, method: str, path: str, key: str | None, body=None, **headers: str):
        if key is not None:
            headers["Authorization"] = f"Bearer {self.keys[key]}"
        if body is not None and not isinstance(body, bytes | str):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        return self.http.request(method, path, headers=headers, body=body or b"")

    def post(self, key: str, body, **headers):
        return self.send("POST", "/v1/accounts", key, body, **headers)

    def patch(self, key: str, account: str, body):
        return self.send("PATCH", f"/v1/accounts/{account}", key, body)

    def deck(self, key: str, account: str, csv: str, query: str = ""):
        path = f"/v1/accounts/{account}/deck{query}"
        return self.send("PUT", path, key, csv.encode(), **{"Content-Type": "text/csv"})

    def get(self, path: str, key: str):
        return self.send("GET", path, key)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with moto_account():
            accounts.create_tenant("acme", currency="EUR")
            make = accounts.create_account
            make("acme", "RES_A", kind="reseller", credit_limit_micro=500_000_000)
            make("acme", "CUST_A1", kind="customer", parent="RES_A", prepaid=True)
            make("acme", "FRAUDY", kind="customer", parent="RES_A")
            make("acme", "SUB_R", kind="reseller", parent="RES_A")
            make("acme", "CUST_S1", kind="customer", parent="SUB_R")
            make("acme", "RES_B", kind="reseller")
            make("acme", "CUST_B1", kind="customer", parent="RES_B")
            make("acme", "DIRECT", kind="customer")
            make("acme", "CARRIER_X", kind="supplier")
            actor = accounts.caller(by="test")
            accounts.set_account_status(
                "acme", "FRAUDY", "suspended", actor=actor, reason="fraud: alert 7 (burst, SO)"
            )
            for account, csv in [
                ("RES_A", DECK_RES_A),
                ("CUST_A1", DECK_CUST_A1),
                ("CARRIER_X", DECK_CARRIER),
            ]:
                decks.upload_deck("acme", account, csv.encode(), source="seed.csv")
            keys, key_ids = {}, {}
            for name, (role, account) in KEYS.items():
                record, secret = apikeys.create_key("acme", role, account=account, actor=actor)
                keys[name], key_ids[name] = secret, record.key_id
            from app import app

            with Client(app) as client:
                yield World(use_gateway_responses(client.http), keys, key_ids)


def stored(account: str) -> accounts.Account:
    return accounts.get_account("acme", account)


# --- POST /v1/accounts ----------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS)
def test_who_may_create_an_account(world, key):
    name = f"NEW_{key.upper()}"
    answer = world.post(key, {"account": name, "kind": "customer"})
    if key not in WRITERS:
        assert answer.status_code == 403, answer.json_body
        assert answer.json_body["code"] == "forbidden"
        with pytest.raises(accounts.NotFoundError):
            stored(name)
        return
    assert answer.status_code == 201, answer.json_body
    assert answer.headers["Location"] == f"/v1/accounts/{name}"
    parent = KEYS[key][1]
    created = stored(name)
    assert (created.kind, created.parent, created.status) == ("customer", parent, "active")
    assert answer.json_body == world.get(f"/v1/accounts/{name}", key).json_body
    assert answer.json_body["parent"] == parent
    assert answer.json_body["credit_limit"] == "0.000000"


def test_a_new_account_exact_to_the_last_digit(world):
    body = {
        "account": "EXACT_1",
        "kind": "customer",
        "parent": "SUB_R",
        "prepaid": True,
        "credit_limit": "250.123456",
        "currency": "USD",
    }
    answer = world.post("reseller", body)
    assert answer.status_code == 201, answer.json_body
    assert answer.json_body == {
        "account": "EXACT_1",
        "kind": "customer",
        "parent": "SUB_R",
        "prepaid": True,
        "credit_limit": "250.123456",
        "currency": "USD",
        "status": "active",
    }
    created = stored("EXACT_1")
    assert (created.credit_limit_micro, created.currency, created.prepaid) == (
        250_123_456,
        "USD",
        True,
    )
    changed = world.patch("reseller", "EXACT_1", {"credit_limit": "999999999999.000001"})
    assert changed.json_body["credit_limit"] == "999999999999.000001"
    assert stored("EXACT_1").credit_limit_micro == 999_999_999_999_000_001


def test_a_sub_reseller_and_its_customer_in_the_parents_currency(world):
    made = world.post("reseller", {"account": "SUB_2", "kind": "reseller", "currency": "GBP"})
    assert made.status_code == 201 and made.json_body["currency"] == "GBP"
    under = world.post("reseller", {"account": "SUB_2_C", "kind": "customer", "parent": "SUB_2"})
    assert under.status_code == 201
    assert (under.json_body["parent"], under.json_body["currency"]) == ("SUB_2", "GBP")
    assert (
        world.post("reseller", {"account": "TOP_C", "kind": "customer"}).json_body["currency"]
        == "EUR"
    )


def test_only_the_carrier_creates_suppliers_and_top_level_accounts(world):
    for key in ("reseller", "sub"):
        answer = world.post(key, {"account": f"SUP_{key}", "kind": "supplier"})
        assert answer.status_code == 400
        assert (answer.json_body["code"], answer.json_body["field"]) == ("bad_field", "kind")
        assert "supplier" not in answer.body.decode()  # not even told that suppliers exist
    supplier = world.post("admin", {"account": "SUP_NEW", "kind": "supplier"})
    assert supplier.status_code == 201
    assert supplier.json_body["parent"] is None and supplier.json_body["status_reason"] is None
    assert (
        world.post("admin", {"account": "TOP_R", "kind": "reseller", "parent": None}).status_code
        == 201
    )
    refused = world.post("reseller", {"account": "TOP_X", "kind": "customer", "parent": None})
    assert (refused.status_code, refused.json_body["field"]) == (400, "parent")


@pytest.mark.parametrize(
    "key, parent",
    [
        ("reseller", "RES_B"),  # beside
        ("reseller", "CUST_B1"),
        ("reseller", "CARRIER_X"),  # the carrier's supplier
        ("reseller", "NOBODY"),
        ("sub", "RES_A"),  # above
        ("sub", "CUST_A1"),
        ("res_b", "RES_A"),
    ],
)
def test_a_reseller_cannot_create_above_or_beside_its_subtree(world, key, parent):
    name = f"X_{key}_{parent}"
    answer = world.post(key, {"account": name, "kind": "customer", "parent": parent})
    assert answer.status_code == 400
    assert answer.json_body == {
        "code": "bad_field",
        "message": f"no account {parent!r} to put accounts under",
        "field": "parent",
    }
    with pytest.raises(accounts.NotFoundError):
        stored(name)


def test_a_parent_must_be_a_reseller(world):
    answer = world.post("reseller", {"account": "UNDER_C", "kind": "customer", "parent": "CUST_A1"})
    assert (answer.status_code, answer.json_body["field"]) == (400, "parent")
    assert "is a customer" in answer.json_body["message"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"account": "B1", "kind": "customer", "credit_limit": 250.5}, "credit_limit"),
        ({"account": "B1", "kind": "customer", "credit_limit": 250}, "credit_limit"),
        ({"account": "B1", "kind": "customer", "credit_limit": "1.1234567"}, "credit_limit"),
        ({"account": "B1", "kind": "customer", "credit_limit": "-1.00"}, "credit_limit"),
        ({"account": "B1", "kind": "customer", "credit_limit": "1e3"}, "credit_limit"),
        ({"account": "B1", "kind": "customer", "credit_limit": "NaN"}, "credit_limit"),
        ({"account": "B1", "kind": "vendor"}, "kind"),
        ({"account": "bad id!", "kind": "customer"}, "account"),
        ({"account": "#B1", "kind": "customer"}, "account"),
        ({"account": 7, "kind": "customer"}, "account"),
        ({"account": "B1", "kind": "customer", "prepaid": "yes"}, "prepaid"),
        ({"account": "B1", "kind": "customer", "currency": "eur"}, "currency"),
        ({"account": "B1", "kind": "customer", "currency": "EURO"}, "currency"),
        ({"account": "B1", "kind": "customer", "parent": 5}, "parent"),
        ({"account": "B1", "kind": "customer", "credit_limt": "1"}, "credit_limt"),
        ({"account": "B1"}, "kind"),
        ({"kind": "customer"}, "account"),
        ([{"account": "B1"}], "body"),
        ("not json", "body"),
    ],
)
def test_a_bad_member_is_400_naming_it(world, body, field):
    raw = body if isinstance(body, str) else json.dumps(body)
    answer = world.post("reseller", raw, **{"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.json_body
    assert (answer.json_body["code"], answer.json_body["field"]) == ("bad_field", field)
    with pytest.raises(accounts.NotFoundError):
        stored("B1")


def test_the_key_then_the_role_then_the_body(world):
    raw = json.dumps({"account": "bad id!", "kind": "customer"})
    assert world.send("POST", "/v1/accounts", None, raw).status_code == 401
    assert world.post("finance", raw).json_body["code"] == "forbidden"
    assert world.patch("customer", "NOBODY", {"x": 1}).json_body["code"] == "forbidden"
    assert world.send("PATCH", "/v1/accounts/NOBODY", None, "{").status_code == 401


def test_an_existing_account_is_409(world):
    for key, name in [("admin", "CUST_B1"), ("reseller", "CUST_A1"), ("reseller", "RES_B")]:
        answer = world.post(key, {"account": name, "kind": "customer"})
        assert answer.status_code == 409, (key, name)
        assert answer.json_body["code"] == "account_exists"
    assert stored("RES_B").kind == "reseller"  # untouched


# --- PATCH /v1/accounts/{id} ----------------------------------------------------------------


_FRESH = itertools.count(1)


@pytest.fixture
def customer(world):
    """A new customer under RES_A (by the carrier) for one test to change."""
    name = f"P_{next(_FRESH)}"
    answer = world.post("admin", {"account": name, "kind": "customer", "parent": "RES_A"})
    assert answer.status_code == 201, answer.json_body
    return name


@pytest.mark.parametrize("key", KEYS)
def test_who_may_change_an_account(world, customer, key):
    answer = world.patch(key, customer, {"credit_limit": "10.500000"})
    expected = {
        "admin": 200,
        "reseller": 200,
        "sub": 404,  # beside SUB_R: not in its view
        "res_b": 404,
        "finance": 403,
        "readonly": 403,
        "readonly_res": 403,
        "customer": 403,
    }[key]
    assert answer.status_code == expected, answer.json_body
    changed = stored(customer).credit_limit_micro
    assert changed == (10_500_000 if expected == 200 else 0)
    if expected == 404:
        assert answer.json_body == {"code": "not_found", "message": f"no account {customer!r}"}


def test_a_reseller_reaches_below_never_its_own_account_above_or_beside(world):
    cases = [
        ("reseller", "RES_A", 403, "own_account"),
        ("sub", "SUB_R", 403, "own_account"),
        ("sub", "RES_A", 404, "not_found"),  # above
        ("sub", "CUST_A1", 404, "not_found"),  # beside
        ("reseller", "RES_B", 404, "not_found"),
        ("reseller", "CUST_B1", 404, "not_found"),
        ("reseller", "CARRIER_X", 404, "not_found"),
        ("reseller", "NOBODY", 404, "not_found"),
    ]
    for key, account, status, code in cases:
        before = stored(account) if account != "NOBODY" else None
        answer = world.patch(key, account, {"credit_limit": "1.00"})
        assert (answer.status_code, answer.json_body["code"]) == (status, code), (key, account)
        if before is not None:
            assert stored(account) == before
    below = world.patch("reseller", "CUST_S1", {"prepaid": True})  # two levels down
    assert below.status_code == 200 and stored("CUST_S1").prepaid is True
    sub = world.patch("reseller", "SUB_R", {"credit_limit": "75.25"})
    assert sub.status_code == 200 and stored("SUB_R").credit_limit_micro == 75_250_000


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "body"),
        ({"reason": "only a reason"}, "body"),
        ({"credit_limit": 1}, "credit_limit"),
        ({"credit_limit": "-0.000001"}, "credit_limit"),
        ({"prepaid": 1}, "prepaid"),
        ({"status": "closed", "reason": "x"}, "status"),
        ({"status": "suspended"}, "reason"),
        ({"status": "suspended", "reason": "   "}, "reason"),
        ({"status": "suspended", "reason": 5}, "reason"),
        ({"status": "suspended", "reason": "x" * 1025}, "reason"),
        ({"limit": "1"}, "limit"),
        ({"kind": "vendor"}, "kind"),
        ({"parent": "RES_B"}, "parent"),
        ({"parent": None}, "parent"),
    ],
)
def test_a_bad_patch_member_is_400_naming_it(world, body, field):
    before = stored("CUST_S1")
    answer = world.patch("reseller", "CUST_S1", body)
    assert answer.status_code == 400, answer.json_body
    assert (answer.json_body["code"], answer.json_body["field"]) == ("bad_field", field)
    assert stored("CUST_S1") == before


def test_suspend_and_resume_with_a_reason(world, customer):
    answer = world.patch("reseller", customer, {"status": "suspended", "reason": "unpaid"})
    assert answer.status_code == 200 and answer.json_body["status"] == "suspended"
    assert "status_reason" not in answer.json_body  # a reseller's view
    assert (stored(customer).status, stored(customer).status_reason) == ("suspended", "unpaid")
    again = world.patch("reseller", customer, {"status": "suspended"})  # no change: no reason
    assert again.status_code == 200
    back = world.patch("reseller", customer, {"status": "active", "reason": "paid"})
    assert back.json_body["status"] == "active"
    assert world.get(f"/v1/accounts/{customer}", "admin").json_body["status_reason"] == "paid"


def test_only_the_carrier_lifts_a_fraud_suspension(world):
    for key in ("reseller",):
        answer = world.patch(key, "FRAUDY", {"status": "active", "reason": "customer says ok"})
        assert answer.status_code == 403
        assert (answer.json_body["code"], answer.json_body["field"]) == (
            "fraud_suspension",
            "status",
        )
        assert stored("FRAUDY").status == "suspended"
    # The reseller may still change what is not the suspension.
    assert world.patch("reseller", "FRAUDY", {"credit_limit": "5"}).status_code == 200
    lifted = world.patch("admin", "FRAUDY", {"status": "active", "reason": "checked with RES_A"})
    assert lifted.status_code == 200
    assert (stored("FRAUDY").status, stored("FRAUDY").status_reason) == (
        "active",
        "checked with RES_A",
    )


def test_the_stores_refusals_are_409_with_a_code(world):
    cycle = world.patch("admin", "RES_A", {"parent": "SUB_R"})
    assert (cycle.status_code, cycle.json_body["code"]) == (409, "parent_cycle")
    assert stored("RES_A").parent is None
    has_deck = world.patch("reseller", "CUST_A1", {"currency": "USD"})
    assert (has_deck.status_code, has_deck.json_body["code"]) == (409, "change_refused")
    has_children = world.patch("admin", "SUB_R", {"kind": "customer"})
    assert (has_children.status_code, has_children.json_body["code"]) == (409, "change_refused")
    assert (stored("CUST_A1").currency, stored("SUB_R").kind) == ("EUR", "reseller")


def test_a_reseller_moves_an_account_inside_its_subtree(world, customer):
    moved = world.patch("reseller", customer, {"parent": "SUB_R"})
    assert moved.status_code == 200 and moved.json_body["parent"] == "SUB_R"
    assert world.get(f"/v1/accounts/{customer}", "sub").status_code == 200
    assert world.patch("sub", customer, {"parent": "RES_A"}).json_body["field"] == "parent"


# --- the audit log -----------------------------------------------------------------------------


def test_every_api_write_is_audited_with_its_key(world, capsys):
    made = world.post("reseller", {"account": "AUDITED", "kind": "customer", "credit_limit": "1.5"})
    assert made.status_code == 201
    world.patch("reseller", "AUDITED", {"credit_limit": "250.123456", "prepaid": True})
    world.patch("reseller", "AUDITED", {"status": "suspended", "reason": "dunning"})
    key = f"apikey:{world.key_ids['reseller']}"
    entries = accounts.list_audit("acme", "account", "AUDITED")
    assert [e.by for e in entries] == [key, key, key]
    created, limit, suspended = entries
    assert {(c.field, c.old, c.new) for c in created.changes} == {
        ("kind", None, "customer"),
        ("parent", None, "RES_A"),
        ("prepaid", None, False),
        ("credit_limit_micro", None, 1_500_000),
        ("currency", None, "EUR"),
        ("status", None, "active"),
    }
    assert [(c.field, c.old, c.new) for c in limit.changes] == [
        ("prepaid", False, True),
        ("credit_limit_micro", 1_500_000, 250_123_456),
    ]
    assert (suspended.reason, suspended.changes[0].new) == ("dunning", "suspended")
    # tollgate audit: newest first, one JSON document, the key id on each entry.
    assert tollgate(["audit", "acme", "--json", "--subject", "account"]) == 0
    listed = json.loads(capsys.readouterr().out)
    ours = [e for e in listed if e["name"] == "AUDITED"]
    assert [e["by"] for e in ours] == [key, key, key]
    assert [e["change_id"] for e in ours] == [e.change_id for e in reversed(entries)]
    assert ours[1]["changes"] == [
        {"field": "billing", "old": "postpaid", "new": "prepaid"},
        {"field": "credit_limit", "old": "1.500000", "new": "250.123456"},
    ]
    ats = [e["at"] for e in listed]
    assert ats == sorted(ats, reverse=True)
    assert {e["subject"] for e in listed} == {"account"}


def test_tollgate_audit_filters_and_exit_codes(world, capsys):
    world.patch("admin", "DIRECT", {"credit_limit": "3"})
    assert tollgate(["audit", "acme", "--json"]) == 0
    every = json.loads(capsys.readouterr().out)
    assert {"account", "apikey"} <= {e["subject"] for e in every}
    assert tollgate(["audit", "acme", "--json", "--subject", "apikey"]) == 0
    keys = json.loads(capsys.readouterr().out)
    assert keys and {e["subject"] for e in keys} == {"apikey"}
    assert tollgate(["audit", "acme", "--json", "--since", "2999-01-01"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert tollgate(["audit", "acme"]) == 0
    text = capsys.readouterr().out
    assert f"apikey:{world.key_ids['admin']}" in text and "account DIRECT" in text
    assert tollgate(["audit", "nobody", "--json"]) == 2
    assert "unknown tenant" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        tollgate(["audit", "acme", "--since", "yesterday"])
    assert bad.value.code == 2
    with pytest.raises(SystemExit) as bad:
        tollgate(["audit", "acme", "--subject", "deck"])
    assert bad.value.code == 2


# --- GET /v1/rates ---------------------------------------------------------------------------


def rates(world, key: str, query: str = "") -> list[dict]:
    answer = world.get(f"/v1/rates{query}", key)
    assert answer.status_code == 200, answer.json_body
    return answer.json_body


def test_each_key_reads_its_own_accounts_rates(world):
    mine = rates(world, "customer")
    assert (mine["account"], mine["currency"], mine["next_cursor"]) == ("CUST_A1", "EUR", None)
    assert [r["prefix"] for r in mine["items"]] == ["33", "44", "4420"]
    assert mine["items"][0] == {
        "prefix": "33",
        "origin": None,
        "destination": "France",
        "rate": "0.02000001",
        "connect_fee": "0.00000000",
        "increment": "1/1",
        "minimum_charge": "0.00000000",
        "free_seconds": 0,
        "surcharge": "0.00000000",
        "effective_from": None,
        "effective_to": None,
        "status": "open",
    }
    bought = rates(world, "reseller")  # what the carrier sells to RES_A
    assert bought["account"] == "RES_A"
    assert [
        (r["prefix"], r["rate"], r["connect_fee"], r["increment"]) for r in bought["items"]
    ] == [("44", "0.01234567", "0.05000000", "60/6")]
    sold = rates(world, "reseller", "?account=CUST_A1")
    assert sold["items"] == mine["items"]


def test_who_may_read_whose_rates(world):
    cases = {
        ("admin", "CARRIER_X"): 200,
        ("finance", "CARRIER_X"): 200,
        ("readonly", "CARRIER_X"): 404,  # suppliers: the carrier's roles alone
        ("readonly", "CUST_A1"): 200,
        ("reseller", "CARRIER_X"): 404,
        ("reseller", "RES_B"): 404,
        ("reseller", "CUST_B1"): 404,
        ("sub", "RES_A"): 404,
        ("sub", "CUST_S1"): 200,
        ("customer", "RES_A"): 404,
        ("customer", "CUST_A1"): 200,
        ("readonly_res", "CUST_A1"): 200,
    }
    for (key, account), status in cases.items():
        answer = world.get(f"/v1/rates?account={account}", key)
        assert answer.status_code == status, (key, account, answer.json_body)
    supplier = rates(world, "admin", "?account=CARRIER_X")
    assert [(r["prefix"], r["rate"]) for r in supplier["items"]] == [("44", "0.00310000")]
    no_deck = rates(world, "sub", "?account=CUST_S1")
    assert (no_deck["version"], no_deck["items"]) == (None, [])
    for key in ("admin", "finance", "readonly"):
        answer = world.get("/v1/rates", key)
        assert answer.status_code == 400
        assert (answer.json_body["code"], answer.json_body["field"]) == ("bad_parameter", "account")


def test_rates_are_paged_by_prefix(world):
    seen, cursor, pages = [], None, 0
    while True:
        query = "?account=CUST_A1&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = rates(world, "admin", query)
        seen += [r["prefix"] for r in page["items"]]
        cursor, pages = page["next_cursor"], pages + 1
        if cursor is None:
            break
    assert (seen, pages) == (["33", "44", "4420"], 2)
    bad = world.get("/v1/rates?account=CUST_A1&limit=0", "admin")
    assert (bad.status_code, bad.json_body["field"]) == (400, "limit")


# --- PUT /v1/accounts/{id}/deck ---------------------------------------------------------------


def test_a_reseller_sets_a_customers_deck_once_and_audited(world):
    made = world.post("reseller", {"account": "DECKED", "kind": "customer"})
    assert made.status_code == 201
    csv = "prefix,destination,rate,connect fee,increment\n49,Germany,0.01999999,0.01,60/60\n"
    answer = world.deck("reseller", "DECKED", csv)
    assert answer.status_code == 201, answer.json_body
    body = answer.json_body
    assert (body["account"], body["version"], body["created"], body["mode"]) == (
        "DECKED",
        1,
        True,
        "full",
    )
    assert (body["rows"], body["added"], body["currency"]) == (1, 1, "EUR")
    assert "key" not in body and "upload_key" not in body  # where the lake keeps it: not said
    again = world.deck("reseller", "DECKED", csv)
    assert (again.status_code, again.json_body["created"], again.json_body["version"]) == (
        200,
        False,
        1,
    )
    listed = rates(world, "reseller", "?account=DECKED")["items"]
    assert [(r["prefix"], r["rate"], r["connect_fee"], r["increment"]) for r in listed] == [
        ("49", "0.01999999", "0.01000000", "60/60")
    ]
    assert rates(world, "sub", "?account=CUST_S1")["items"] == []  # another account untouched
    entry = accounts.list_audit("acme", "account", "DECKED")[-1]
    assert entry.by == f"apikey:{world.key_ids['reseller']}"
    assert [(c.field, c.old, c.new) for c in entry.changes] == [("deck_version", None, 1)]
    changes = world.deck(
        "admin", "DECKED", "prefix,rate\n49,0.5\n", "?mode=changes&effective=2030-01-01"
    )
    assert changes.status_code == 201
    assert (changes.json_body["version"], changes.json_body["effective"]) == (2, "2030-01-01")
    assert rates(world, "reseller", "?account=DECKED")["items"][0]["rate"] == "0.01999999"


def test_who_may_set_which_deck(world):
    csv = "prefix,rate\n1,0.01\n"
    cases = [
        ("reseller", "RES_A", 403, "own_account"),
        ("sub", "SUB_R", 403, "own_account"),
        ("reseller", "CARRIER_X", 404, "not_found"),
        ("reseller", "RES_B", 404, "not_found"),
        ("sub", "CUST_A1", 404, "not_found"),
        ("customer", "CUST_A1", 403, "forbidden"),
        ("finance", "CUST_A1", 403, "forbidden"),
        ("readonly_res", "CUST_A1", 403, "forbidden"),
    ]
    for key, account, status, code in cases:
        before = stored(account).deck_version
        answer = world.deck(key, account, csv)
        assert (answer.status_code, answer.json_body["code"]) == (status, code), (key, account)
        assert stored(account).deck_version == before
    carrier = world.deck("admin", "CARRIER_X", "prefix,rate\n44,0.0029\n")
    assert carrier.status_code == 201
    assert rates(world, "admin", "?account=CARRIER_X")["items"][0]["rate"] == "0.00290000"


@pytest.mark.parametrize(
    "csv, line, field",
    [
        ("prefix,rate\n44,0.01\n4420,abc\n", 3, "rate"),
        ("prefix,rate\n44x,0.01\n", 2, "prefix"),
        ("prefix,rate\n44,0.123456789\n", 2, "rate"),
        ("prefix,increment,rate\n44,60/x,0.01\n", 2, "increment"),
    ],
)
def test_a_bad_deck_is_400_naming_line_and_field(world, csv, line, field):
    before = stored("CUST_S1").deck_version
    answer = world.deck("sub", "CUST_S1", csv)
    assert answer.status_code == 400, answer.json_body
    body = answer.json_body
    assert (body["code"], body["line"], body["field"]) == ("bad_deck", line, field)
    assert body["errors"][0]["line"] == line
    assert stored("CUST_S1").deck_version == before


def test_bad_deck_parameters_and_an_empty_deck(world):
    for query, field in [
        ("?mode=all", "mode"),
        ("?effective=2030-13-01", "effective"),
        ("?x=1", "x"),
    ]:
        answer = world.deck("sub", "CUST_S1", "prefix,rate\n1,0.1\n", query)
        assert (answer.status_code, answer.json_body["field"]) == (400, field)
    empty = world.deck("sub", "CUST_S1", "prefix,rate\n")
    assert (empty.status_code, empty.json_body["code"]) == (400, "bad_deck")
    assert stored("CUST_S1").deck_version is None
