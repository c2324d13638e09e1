"""DynamoDB calls per request of the read routes (the issue: a balance in one or two), for
every key of the world: counted on every botocore client, boto3's and PynamoDB's alike."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from contextlib import contextmanager

import botocore.client
import pytest

from tests.api.conftest import KEYS


@contextmanager
def counting() -> Iterator[collections.Counter]:
    counts: collections.Counter[str] = collections.Counter()
    original = botocore.client.BaseClient._make_api_call

    def counted(client, operation, params):
        counts[f"{client.meta.service_model.service_name}:{operation}"] += 1
        return original(client, operation, params)

    botocore.client.BaseClient._make_api_call = counted
    try:
        yield counts
    finally:
        botocore.client.BaseClient._make_api_call = original


# (route, the calls it makes): the key's GetItem, then one read of what the route shows.
EXPECTED = {
    "/v1/me": {"dynamodb:GetItem": 1},
    "/v1/accounts": {"dynamodb:GetItem": 1, "dynamodb:Query": 1},
    "/v1/accounts/{a}": {"dynamodb:GetItem": 1, "dynamodb:BatchGetItem": 1},
    "/v1/accounts/{a}/balance": {"dynamodb:GetItem": 1, "dynamodb:BatchGetItem": 1},
}


@pytest.mark.parametrize("name", KEYS)
def test_each_read_route_makes_two_dynamodb_calls_at_most(world, name):
    sees = KEYS[name][3]
    for route, expected in EXPECTED.items():
        for target in sorted({*sees, "NOBODY", "CARRIER_X"}) if "{a}" in route else [None]:
            with counting() as counts:
                answer = world.get(route.replace("{a}", target or ""), name)
            assert answer.status_code == (200 if target in (*sees, None) else 404)
            if route == "/v1/accounts" and KEYS[name][0] == "customer":
                expected = EXPECTED["/v1/accounts/{a}"]  # its own account, read alone
            assert dict(counts) == expected, (route, target)


def test_a_session_costs_what_a_key_does(world):
    from functions.api import signin
    from functions.store import accounts, users

    _, secret = users.create_user(
        "acme", "calls.user", "a long enough password", "customer", account="CUST_A1",
        actor=accounts.caller(by="test"),
    )  # fmt: skip
    _, token = users.sign_in(
        "calls.user", "a long enough password", signin.totp(secret, time.time())
    )
    with counting() as counts:
        assert world.get("/v1/accounts/CUST_A1/balance", token).status_code == 200
    assert dict(counts) == EXPECTED["/v1/accounts/{a}/balance"]
