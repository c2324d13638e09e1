"""API Gateway keys in the usage plan (functions/store/gateway.py), on moto's API Gateway: a
Tollgate key created gets its usage key in the plan, revoked it is disabled; a portal session
gets one until it ends; without a plan named nothing is made."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from functions.api import signin
from functions.api.usagekeys import decide, usage_key_of
from functions.store import accounts, apikeys, gateway, users
from functions.store import client as aws_client
from tests.conftest import FAKE_ENVIRONMENT, moto_account

ALICE = accounts.Actor(by="alice", principal="arn:aws:iam::123456789012:user/alice")
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def moto():
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        patch.delenv(gateway.PLAN_SETTING, raising=False)
        with moto_account():
            apigateway = aws_client("apigateway")
            api = apigateway.create_rest_api(name="tollgate")
            root = apigateway.get_resources(restApiId=api["id"])["items"][0]["id"]
            apigateway.put_method(
                restApiId=api["id"], resourceId=root, httpMethod="GET", authorizationType="NONE"
            )
            apigateway.put_integration(
                restApiId=api["id"], resourceId=root, httpMethod="GET", type="MOCK"
            )
            apigateway.create_deployment(restApiId=api["id"], stageName="api")
            plan = apigateway.create_usage_plan(
                name="tollgate-keys",
                apiStages=[{"apiId": api["id"], "stage": "api"}],
                throttle={"rateLimit": 20.0, "burstLimit": 40},
            )
            apigateway.create_usage_plan(name="another-plan")
            yield {"plan": plan["id"], "tenants": itertools.count(1)}


@pytest.fixture
def acme(moto):
    tenant = f"acme{next(moto['tenants'])}"
    accounts.create_tenant(tenant)
    accounts.create_account(tenant, "cust", kind="customer")
    return tenant


def plan_keys(plan_id: str) -> dict[str, dict]:
    """The plan's keys by name: value and enabled state as API Gateway holds them."""
    apigateway = aws_client("apigateway")
    found = {}
    for item in apigateway.get_usage_plan_keys(usagePlanId=plan_id)["items"]:
        key = apigateway.get_api_key(apiKey=item["id"], includeValue=True)
        found[key["name"]] = {"value": key["value"], "enabled": key["enabled"]}
    return found


def test_without_a_plan_named_no_gateway_key_is_made(moto, acme):
    record = apikeys.create_key(acme, "customer", account="cust", actor=ALICE)[0]
    apikeys.revoke_key(acme, record.key_id, actor=ALICE)
    assert aws_client("apigateway").get_api_keys()["items"] == []
    assert gateway.disable_key(record.key_id) == 0


def test_a_key_gets_its_usage_key_in_the_plan_and_loses_it_revoked(moto, acme, monkeypatch):
    monkeypatch.setenv(gateway.PLAN_SETTING, "tollgate-keys")  # by name, as the stack sets it
    record, presented = apikeys.create_key(acme, "customer", account="cust", actor=ALICE)
    other, other_presented = apikeys.create_key(acme, "tenant-admin", actor=ALICE)
    name = f"tollgate-key-{record.key_id}"
    keys = plan_keys(moto["plan"])
    # the value is what the authorizer names for the presented key, never its secret
    assert keys[name] == {"value": usage_key_of(presented), "enabled": True}
    assert keys[name]["value"] == decide(f"Bearer {presented}").usage_key
    assert presented.split("_", 2)[2] not in keys[name]["value"]
    assert keys[f"tollgate-key-{other.key_id}"]["value"] == usage_key_of(other_presented)

    apikeys.revoke_key(acme, record.key_id, actor=ALICE)
    keys = plan_keys(moto["plan"])
    assert keys[name]["enabled"] is False
    assert keys[f"tollgate-key-{other.key_id}"]["enabled"] is True
    # revoking again disables again (a revocation API Gateway missed): still one key, off
    apikeys.revoke_key(acme, record.key_id, actor=ALICE)
    assert plan_keys(moto["plan"])[name]["enabled"] is False
    another_plan = [
        p["id"]
        for p in aws_client("apigateway").get_usage_plans()["items"]
        if p["name"] == "another-plan"
    ]
    assert plan_keys(another_plan[0]) == {}


def test_the_plan_may_be_named_by_its_id(moto, acme, monkeypatch):
    monkeypatch.setenv(gateway.PLAN_SETTING, moto["plan"])
    record, presented = apikeys.create_key(acme, "finance", actor=ALICE)
    assert plan_keys(moto["plan"])[f"tollgate-key-{record.key_id}"]["value"] == (
        usage_key_of(presented)
    )


def test_a_plan_that_does_not_exist_leaves_no_usable_key(moto, acme, monkeypatch):
    monkeypatch.setenv(gateway.PLAN_SETTING, "no-such-plan")
    with pytest.raises(Exception, match="no usage plan 'no-such-plan'"):
        apikeys.create_key(acme, "finance", actor=ALICE)
    (made,) = apikeys.list_keys(acme)
    assert made.revoked and made.revoked_by == "alice"


def test_a_session_gets_a_usage_key_until_it_ends(moto, acme, monkeypatch):
    monkeypatch.setenv(gateway.PLAN_SETTING, "tollgate-keys")
    _, secret = users.create_user(acme, f"user.{acme}", PASSWORD, "customer", account="cust",
                                  actor=ALICE)  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    session, token = users.sign_in(
        f"user.{acme}", PASSWORD, signin.totp(secret, now.timestamp()), now=now
    )
    name = f"tollgate-session-{session.session_id}"
    assert plan_keys(moto["plan"])[name] == {"value": usage_key_of(token), "enabled": True}
    assert decide(f"Bearer {token}").usage_key == usage_key_of(token)
    # sweeping before the session ends keeps it, after removes it
    assert gateway.sweep_session_keys(now) == 0
    assert gateway.sweep_session_keys(session.expires_at) == 1
    # a key another sign-in deleted meanwhile is no error
    made = aws_client("apigateway").create_api_key(
        name="tollgate-session-0000000000000000", tags={"tollgate:expires": "1"}
    )
    aws_client("apigateway").delete_api_key(apiKey=made["id"])
    monkeypatch.setattr(gateway, "_keys", lambda prefix: [made])
    assert gateway.sweep_session_keys(now) == 1
    # deleted (API Gateway drops a deleted key from its plans; moto keeps the plan's entry)
    names = [k["name"] for k in aws_client("apigateway").get_api_keys()["items"]]
    assert name not in names and all(n.startswith("tollgate-key-") for n in names)
