"""One moto account per API test module (provisioning costs a second): the tenant acme
with a reseller, its customer, a direct customer and a supplier, a key of every role, and
Chalice's test client over app.py. The routes only read, so the tests share it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from chalice.test import Client

from functions.api import handler
from functions.api.throttle import Limit, Limiter
from functions.local.gateway import use_gateway_responses
from functions.store import accounts, apikeys, ledger
from functions.store import client as aws_client
from tests.conftest import FAKE_ENVIRONMENT, moto_account

ALL = ["CARRIER_X", "CUST_A1", "DIRECT", "RES_A"]
# key name: (role, account, allow_ips, the accounts it sees)
KEYS = {
    "admin": ("tenant-admin", None, (), ALL),
    "finance": ("finance", None, (), ALL),
    "readonly": ("read-only", None, (), ["CUST_A1", "DIRECT", "RES_A"]),
    "reseller": ("reseller-admin", "RES_A", (), ["CUST_A1", "RES_A"]),
    "readonly_res": ("read-only", "RES_A", (), ["CUST_A1", "RES_A"]),
    "customer": ("customer", "CUST_A1", (), ["CUST_A1"]),
    "direct": ("customer", "DIRECT", ("127.0.0.1",), ["DIRECT"]),  # the test client's address
}
PAID_RES_A = 123_456_789  # micro-units: 123.456789 EUR
WEBHOOK_SECRET = "whsec_acme_api_test"


@dataclass
class World:
    http: object  # chalice.test's HTTP client
    keys: dict[str, str]  # name: presented key
    revoked: str
    wrong_ip: str
    unknown: str  # a well-formed key of an existing id with another secret

    def get(self, path: str, key: str | None = None, **headers: str):
        if key is not None:
            headers["Authorization"] = f"Bearer {self.keys.get(key, key)}"
        return self.http.get(path, headers=headers)


# Module scope: tests/api is not a Python package, so a "package" fixture would live for the
# whole session, its moto account open under every later test of the worker.
@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        # Tests ask far faster than any client may: rate limits have their own (test_throttle).
        patch.setattr(handler, "LIMITER", Limiter(Limit(1e6, 10**6), clock=lambda: 0.0))
        with moto_account():
            accounts.create_tenant("acme", currency="EUR")
            accounts.create_account(
                "acme", "RES_A", kind="reseller", credit_limit_micro=500_000_000
            )
            accounts.create_account(
                "acme", "CUST_A1", kind="customer", parent="RES_A", prepaid=True
            )
            accounts.create_account("acme", "DIRECT", kind="customer")
            accounts.create_account("acme", "CARRIER_X", kind="supplier")
            ledger.record_payment(
                "acme", "RES_A", PAID_RES_A, reference="SEPA-1", account_kind="reseller"
            )
            aws_client("secretsmanager").create_secret(
                Name="tollgate/acme/stripe-webhook-secret", SecretString=WEBHOOK_SECRET
            )
            actor = accounts.caller(by="test")

            def make(role, account=None, allow_ips=()):
                return apikeys.create_key(
                    "acme", role, account=account, allow_ips=allow_ips, actor=actor
                )

            keys = {name: make(r, a, ips)[1] for name, (r, a, ips, _) in KEYS.items()}
            revoked_key, revoked = make("reseller-admin", "RES_A")
            apikeys.revoke_key("acme", revoked_key.key_id, actor=actor)
            wrong_ip = make("customer", "DIRECT", ("203.0.113.0/24",))[1]
            admin = keys["admin"]
            unknown = admin[:-1] + ("A" if admin[-1] != "A" else "B")
            from app import app

            with Client(app) as client:
                # API Gateway's own refusals (no header, the authorizer's Deny) as deployed
                http = use_gateway_responses(client.http)
                yield World(http, keys, revoked, wrong_ip, unknown)
