"""The API's routes on moto through Chalice's test client: every role over every account,
refused keys, hidden accounts, bad parameters and paging (the `world` fixture, conftest)."""

from __future__ import annotations

import pytest

from tests.api.conftest import ALL, KEYS

ROUTES = ["/v1/me", "/v1/accounts", "/v1/accounts/RES_A", "/v1/accounts/RES_A/balance"]
TENANT_LEVEL = {"admin", "finance", "readonly"}


def walk(world, key: str, limit: int) -> tuple[list[dict], int]:
    """Every page of GET /v1/accounts: (the items, how many pages)."""
    items, cursor, pages = [], None, 0
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        answer = world.get(f"/v1/accounts{query}", key)
        assert answer.status_code == 200, answer.json_body
        items += answer.json_body["items"]
        cursor, pages = answer.json_body["next_cursor"], pages + 1
        if cursor is None:
            return items, pages


@pytest.mark.parametrize("name", KEYS)
def test_each_role_sees_exactly_its_accounts_on_every_route(world, name):
    role, account, allow_ips, expected = KEYS[name]
    me = world.get("/v1/me", name)
    assert me.status_code == 200
    assert me.json_body == {
        "key_id": world.keys[name][3:19],
        "tenant": "acme",
        "role": role,
        "account": account,
        "allow_ips": [f"{ip}/32" for ip in allow_ips],
    }
    listed = world.get("/v1/accounts", name)
    assert listed.status_code == 200 and listed.json_body["next_cursor"] is None
    assert [a["account"] for a in listed.json_body["items"]] == expected
    for target in [*ALL, "NOBODY"]:
        one = world.get(f"/v1/accounts/{target}", name)
        balance = world.get(f"/v1/accounts/{target}/balance", name)
        if target in expected:
            assert (one.status_code, balance.status_code) == (200, 200), target
            assert one.json_body == next(
                a for a in listed.json_body["items"] if a["account"] == target
            )
        else:  # hidden or missing: the same answer, so nobody learns which
            for answer in (one, balance):
                assert answer.status_code == 404, target
                assert answer.json_body == {
                    "code": "not_found",
                    "message": f"no account {target!r}",
                }
    if name not in TENANT_LEVEL or name == "readonly":
        answers = [world.get(path, name).body for path in ROUTES]
        # (asking for CARRIER_X by name gets the name echoed in the 404: those are left out)
        answers += [world.get(f"/v1/accounts/{a}", name).body for a in expected]
        answers += [world.get(f"/v1/accounts/{a}/balance", name).body for a in expected]
        assert not any(b"CARRIER_X" in body or b"supplier" in body for body in answers)


def test_what_a_reseller_and_the_carrier_see_of_the_same_accounts(world):
    as_carrier = world.get("/v1/accounts/CUST_A1", "admin").json_body
    assert as_carrier == {
        "account": "CUST_A1",
        "kind": "customer",
        "parent": "RES_A",
        "prepaid": True,
        "credit_limit": "0.000000",
        "currency": "EUR",
        "status": "active",
        "status_reason": None,
    }
    as_reseller = world.get("/v1/accounts/CUST_A1", "reseller").json_body
    assert as_reseller == {k: v for k, v in as_carrier.items() if k != "status_reason"}
    own = world.get("/v1/accounts/RES_A", "reseller").json_body
    assert (own["parent"], own["credit_limit"], own["prepaid"]) == (None, "500.000000", False)
    assert world.get("/v1/accounts/CUST_A1", "customer").json_body["parent"] is None


def test_balances_are_exact_decimal_strings(world):
    for key in ("admin", "finance", "readonly", "reseller", "readonly_res"):
        answer = world.get("/v1/accounts/RES_A/balance", key)
        assert answer.json_body == {
            "account": "RES_A",
            "currency": "EUR",
            "balance": "123.456789",
            "reserved": "0.000000",
        }
    never_posted = world.get("/v1/accounts/CUST_A1/balance", "customer").json_body
    assert (never_posted["balance"], never_posted["reserved"]) == ("0.000000", "0.000000")


@pytest.mark.parametrize("path", ROUTES)
def test_refused_keys_get_401_with_their_code(world, path):
    cases = {
        "missing_key": world.get(path),
        "malformed_key": world.get(path, "tg_not_a_key"),
        "unknown_key": world.get(path, world.unknown),
        "revoked_key": world.get(path, world.revoked),
        "ip_not_allowed": world.get(path, world.wrong_ip),
    }
    cases["malformed_key (not bearer)"] = world.get(
        path, Authorization=f"Basic {world.keys['admin']}"
    )
    for code, answer in cases.items():
        assert answer.status_code == 401, code
        assert answer.json_body["code"] == code.split(" ")[0]
        assert set(answer.json_body) == {"code", "message"}
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert world.get(path, f"  {world.keys['admin']}").status_code == 200  # spacing tolerated


@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("limit=5&limit=6", "limit"),
        ("cursor=%21%21", "cursor"),
        ("cursor=UkVTX0E", "cursor"),
        ("page=2", "page"),
    ],
)
def test_a_bad_query_parameter_is_400_naming_it(world, query, field):
    answer = world.get(f"/v1/accounts?{query}", "admin")
    assert answer.status_code == 400
    assert answer.json_body["code"] == "bad_parameter" and answer.json_body["field"] == field
    assert world.get(f"/v1/accounts?{query}").status_code == 401  # the key is checked first


def test_other_routes_take_no_query_parameters(world):
    for path in ("/v1/me", "/v1/accounts/RES_A", "/v1/accounts/RES_A/balance"):
        answer = world.get(f"{path}?limit=5", "admin")
        assert (answer.status_code, answer.json_body["field"]) == (400, "limit")


@pytest.mark.parametrize(
    "key, limit, pages", [("admin", 1, 4), ("admin", 3, 2), ("readonly", 2, 2)]
)
def test_paging_walks_every_account_exactly_once(world, key, limit, pages):
    items, walked = walk(world, key, limit)
    assert [a["account"] for a in items] == KEYS[key][3]
    assert walked == pages
