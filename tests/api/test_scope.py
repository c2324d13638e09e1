"""Who sees which account, and what of it: every role over a small reseller tree."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from functions.api import paging, requests, scope
from functions.api.requests import QueryError
from functions.api.scope import Caller


@dataclass(frozen=True)
class Acct:
    account: str
    kind: str
    parent: str | None = None
    tenant: str = "acme"
    prepaid: bool = False
    credit_limit_micro: int = 0
    currency: str = "EUR"
    status: str = "active"
    status_reason: str | None = None


# acme: RES_A > (CUST_A1, RES_B > CUST_B1), DIRECT, CARRIER_X (supplier), and a supplier
# someone hung under RES_A; plus another tenant's account of the same name as one of acme's.
TREE = [
    Acct("RES_A", "reseller", credit_limit_micro=1_500_250_000, status_reason="kyc ok"),
    Acct("CUST_A1", "customer", "RES_A", prepaid=True),
    Acct("RES_B", "reseller", "RES_A"),
    Acct("CUST_B1", "customer", "RES_B", status="suspended", status_reason="fraud: IRSF"),
    Acct("DIRECT", "customer"),
    Acct("CARRIER_X", "supplier"),
    Acct("SUP_UNDER_A", "supplier", "RES_A"),
    Acct("DIRECT", "customer", tenant="other"),
    Acct("OTHER_ONLY", "reseller", tenant="other"),
]
ALL = sorted({a.account for a in TREE if a.tenant == "acme"})
NO_SUPPLIERS = ["CUST_A1", "CUST_B1", "DIRECT", "RES_A", "RES_B"]

CALLERS = {
    "tenant-admin": (Caller("acme", "k1", "tenant-admin", None), ALL),
    "finance": (Caller("acme", "k2", "finance", None), ALL),
    "read-only": (Caller("acme", "k3", "read-only", None), NO_SUPPLIERS),
    "reseller-admin RES_A": (
        Caller("acme", "k4", "reseller-admin", "RES_A"),
        ["CUST_A1", "CUST_B1", "RES_A", "RES_B"],
    ),
    "reseller-admin RES_B": (Caller("acme", "k5", "reseller-admin", "RES_B"), ["CUST_B1", "RES_B"]),
    "read-only RES_A": (
        Caller("acme", "k6", "read-only", "RES_A"),
        ["CUST_A1", "CUST_B1", "RES_A", "RES_B"],
    ),
    "read-only CUST_A1": (Caller("acme", "k7", "read-only", "CUST_A1"), ["CUST_A1"]),
    "customer CUST_B1": (Caller("acme", "k8", "customer", "CUST_B1"), ["CUST_B1"]),
    "customer DIRECT": (Caller("acme", "k9", "customer", "DIRECT"), ["DIRECT"]),
    # keys that cannot be made (keys.check_role), should one exist anyway: nothing
    "reseller-admin without account": (Caller("acme", "ka", "reseller-admin", None), []),
    "customer without account": (Caller("acme", "kb", "customer", None), []),
    "finance with account": (Caller("acme", "kc", "finance", "RES_A"), []),
    "reseller-admin on a supplier": (Caller("acme", "kd", "reseller-admin", "CARRIER_X"), []),
    "unknown role": (Caller("acme", "ke", "root", None), []),
    "other tenant's reseller": (
        Caller("other", "kf", "reseller-admin", "OTHER_ONLY"),
        ["OTHER_ONLY"],
    ),
}


@pytest.mark.parametrize("name", CALLERS)
def test_every_role_sees_exactly_its_accounts(name):
    caller, expected = CALLERS[name]
    seen = scope.visible(caller, TREE)
    assert [a.account for a in seen] == expected  # in account id order
    assert all(a.tenant == caller.tenant for a in seen)
    for account in sorted({a.account for a in TREE}):
        assert scope.can_read_account(caller, account, TREE) is (account in expected), account
    assert scope.can_read_account(caller, "NOBODY", TREE) is False


def test_a_parent_cycle_in_corrupt_data_ends():
    loop = [Acct("R1", "reseller", "R2"), Acct("R2", "reseller", "R1")]
    caller = Caller("acme", "k", "reseller-admin", "R1")
    assert [a.account for a in scope.visible(caller, loop)] == ["R1", "R2"]


def test_the_view_of_an_account_by_level():
    admin, _ = CALLERS["tenant-admin"]
    reseller, _ = CALLERS["reseller-admin RES_A"]
    customer, _ = CALLERS["customer CUST_B1"]
    res_a, cust_b1 = TREE[0], TREE[3]
    assert scope.account_view(res_a, admin) == {
        "account": "RES_A",
        "kind": "reseller",
        "parent": None,
        "prepaid": False,
        "credit_limit": "1500.250000",
        "currency": "EUR",
        "status": "active",
        "status_reason": "kyc ok",
    }
    # below tenant level: no status reason; the parent only within the caller's own subtree
    assert scope.account_view(cust_b1, reseller) == {
        "account": "CUST_B1",
        "kind": "customer",
        "parent": "RES_B",
        "prepaid": False,
        "credit_limit": "0.000000",
        "currency": "EUR",
        "status": "suspended",
    }
    assert scope.account_view(cust_b1, customer)["parent"] is None
    assert scope.account_view(TREE[2], CALLERS["reseller-admin RES_B"][0])["parent"] is None
    assert scope.account_view(TREE[2], reseller)["parent"] == "RES_A"
    assert scope.balance_view(res_a, -12_345_678_901, 1) == {
        "account": "RES_A",
        "currency": "EUR",
        "balance": "-12345.678901",
        "reserved": "0.000001",
    }


# --- paging ----------------------------------------------------------------------------------


def test_pages_walk_every_item_once_and_resume_after_the_last_id():
    names = [f"A{i:03d}" for i in range(7)]
    walked, cursor, pages = [], None, 0
    while True:
        items, cursor = paging.page(names[::-1], str, 3, cursor)
        walked += items
        pages += 1
        if cursor is None:
            break
    assert (walked, pages) == (names, 3)
    first, cursor = paging.page(names, str, 3, None)
    assert first == names[:3]
    # an item added before the cursor is not repeated, one after it is met
    more, _ = paging.page(["A0005", *names, "A004x"], str, 10, cursor)
    assert more == ["A003", "A004", "A004x", "A005", "A006"]
    assert paging.page(names, str, 7, None) == (names, None)
    assert paging.page([], str, 5, None) == ([], None)


@pytest.mark.parametrize("text", ["0", "201", "-1", "1.5", "", " 5", "abc", "99999", "１２"])
def test_a_bad_limit_names_the_field(text):
    with pytest.raises(QueryError) as refused:
        paging.parse_limit(text)
    assert refused.value.field == "limit"


def test_limits_and_cursors():
    assert (paging.parse_limit(None), paging.parse_limit("1"), paging.parse_limit("200")) == (
        50,
        1,
        200,
    )
    assert paging.decode_cursor(paging.encode_cursor("RES_A")) == "RES_A"
    for bad in ["", "!!", "UkVTX0E", "a" * 600, paging.encode_cursor("")[:-1] + "=", "YTE6"]:
        with pytest.raises(QueryError) as refused:
            paging.decode_cursor(bad)
        assert refused.value.field == "cursor"


def test_query_parameters_unknown_or_repeated_name_the_field():
    assert requests.check_params({"limit": ["5"]}, ("limit", "cursor")) == {"limit": "5"}
    for params, field in [({"limt": ["5"]}, "limt"), ({"limit": ["5", "6"]}, "limit")]:
        with pytest.raises(QueryError) as refused:
            requests.check_params(params, ("limit", "cursor"))
        assert refused.value.field == field
