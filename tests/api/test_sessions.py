"""Portal sign-in on moto: POST /v1/sessions with user, password and TOTP code, the session
token used as a key, replays, lock-out, expiry and disabling (functions/store/users.py)."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from functions.api import signin
from functions.shared.settings import settings
from functions.store import accounts, users
from functions.store import client as aws_client

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def reseller(world):
    """A reseller-admin user of RES_A: (name, TOTP secret)."""
    actor = accounts.caller(by="test")
    _, secret = users.create_user(
        "acme", "ops.res-a", PASSWORD, "reseller-admin", account="RES_A", actor=actor
    )
    return "ops.res-a", secret


def make_user(name: str, role: str = "customer", account: str | None = "CUST_A1") -> str:
    actor = accounts.caller(by="test")
    return users.create_user("acme", name, PASSWORD, role, account=account, actor=actor)[1]


def post(world, body, **headers):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **headers}
    return world.http.post("/v1/sessions", headers=headers, body=raw)


def code(secret: str, shift: int = 0) -> str:
    return signin.totp(secret, time.time() + shift)


def test_sign_in_gives_a_token_the_api_takes_as_the_users_key(world, reseller):
    name, secret = reseller
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    answer = post(world, {"user": name, "password": PASSWORD, "totp": code(secret)})
    assert answer.status_code == 201, answer.body
    assert answer.headers["Cache-Control"] == "no-store"
    token = answer.json_body["token"]
    expires = dt.datetime.fromisoformat(answer.json_body["expires_at"].replace("Z", "+00:00"))
    assert before + dt.timedelta(hours=1) <= expires <= before + dt.timedelta(hours=1, seconds=2)
    me = world.get("/v1/me", token)
    assert me.status_code == 200
    assert me.json_body == {
        "key_id": signin.parse_session(token)[0],
        "tenant": "acme",
        "role": "reseller-admin",
        "account": "RES_A",
        "allow_ips": [],
    }
    listed = world.get("/v1/accounts", token).json_body["items"]
    assert [a["account"] for a in listed] == ["CUST_A1", "RES_A"]
    assert world.get("/v1/accounts/CARRIER_X", token).status_code == 404
    balance = world.get("/v1/accounts/RES_A/balance", token).json_body
    assert balance["balance"] == "123.456789"
    # the token is kept hashed: its secret is nowhere in the table
    items = aws_client("dynamodb").scan(TableName=settings().accounts_table)["Items"]
    assert signin.parse_session(token)[1] not in json.dumps(items)
    assert PASSWORD not in json.dumps(items)


def test_a_code_is_taken_once(world):
    secret = make_user("replay.user")
    body = {"user": "replay.user", "password": PASSWORD, "totp": code(secret, 30)}
    assert post(world, body).status_code == 201
    replayed = post(world, body)
    assert (replayed.status_code, replayed.json_body["code"]) == (401, "bad_credentials")
    # an older code of the window is refused as well
    older = post(world, {**body, "totp": code(secret)})
    assert older.status_code == 401


def test_every_refusal_is_the_same_answer(world):
    secret = make_user("same.answer")
    good = {"user": "same.answer", "password": PASSWORD, "totp": code(secret)}
    refusals = [
        {**good, "password": PASSWORD + "!"},
        {**good, "totp": "000000" if good["totp"] != "000000" else "111111"},
        {**good, "user": "nobody.here"},
        {**good, "user": "Not A Name"},
    ]
    answers = [post(world, body) for body in refusals]
    assert {(a.status_code, a.body) for a in answers} == {
        (401, b'{"code":"bad_credentials","message":"wrong user, password or code"}')
    }
    assert answers[0].headers["WWW-Authenticate"] == "Bearer"
    # an unknown user's attempt leaves nothing behind
    unknown = users._signin_key("nobody.here")
    table = settings().accounts_table
    assert "Item" not in aws_client("dynamodb").get_item(TableName=table, Key=unknown)


def test_failures_in_a_row_lock_the_user(world):
    secret = make_user("locked.user")
    wrong = {"user": "locked.user", "password": "not the password", "totp": code(secret)}
    for _ in range(signin.MAX_FAILURES):
        assert post(world, wrong).status_code == 401
    right = {**wrong, "password": PASSWORD}
    assert post(world, right).status_code == 401  # locked: the right password too
    locked = users.get_user("acme", "locked.user").locked_until
    for _ in range(signin.MAX_FAILURES):  # attempts while locked do not extend the lock
        assert post(world, wrong).status_code == 401
    assert users.get_user("acme", "locked.user").locked_until == locked
    now = dt.datetime.now(dt.UTC)
    assert now < locked <= now + dt.timedelta(seconds=signin.LOCK_SECONDS)
    later = locked + dt.timedelta(seconds=1)
    step_code = signin.totp(secret, later.timestamp())
    session, _ = users.sign_in("locked.user", PASSWORD, step_code, now=later)
    assert session.user == "locked.user"


def test_a_success_clears_the_failures(world):
    secret = make_user("forgetful.user")
    at = dt.datetime.now(dt.UTC)
    for _ in range(signin.MAX_FAILURES - 1):
        with pytest.raises(users.BadCredentials):
            users.sign_in("forgetful.user", "wrong password!", signin.totp(secret, 0), now=at)
    users.sign_in("forgetful.user", PASSWORD, signin.totp(secret, at.timestamp()), now=at)
    with pytest.raises(users.BadCredentials):
        users.sign_in("forgetful.user", "wrong password!", "000000", now=at)
    assert users.get_user("acme", "forgetful.user").locked_until is None


def test_an_expired_session_is_refused(world):
    secret = make_user("late.user")
    then = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=signin.SESSION_SECONDS + 60)
    _, token = users.sign_in("late.user", PASSWORD, signin.totp(secret, then.timestamp()), now=then)
    answer = world.get("/v1/me", token)
    assert answer.status_code == 401
    assert answer.json_body == {
        "code": "expired_session",
        "message": "session expired: sign in again",
    }
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert world.get("/v1/me", forged).json_body["code"] == "unknown_key"
    assert world.get("/v1/me", "tgs_" + "0" * 16 + "_x").json_body["code"] == "malformed_key"


def test_disabling_a_user_ends_its_sessions(world):
    secret = make_user("leaver.user", "read-only", None)
    _, token = users.sign_in("leaver.user", PASSWORD, code(secret))
    assert world.get("/v1/accounts", token).status_code == 200
    disabled = users.disable_user("acme", "leaver.user", actor=accounts.caller(by="boss"))
    assert disabled.disabled and disabled.disabled_by == "boss"
    assert world.get("/v1/accounts", token).json_body["code"] == "unknown_key"
    again = {"user": "leaver.user", "password": PASSWORD, "totp": code(secret, 30)}
    assert post(world, again).status_code == 401
    assert users.disable_user("acme", "leaver.user", actor=accounts.caller(by="x")) == disabled
    entries = accounts.list_audit("acme", "user", "leaver.user")
    assert [(e.by, [c.field for c in e.changes]) for e in entries] == [
        ("test", ["role", "account"]),
        ("boss", ["disabled_at"]),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[1]", "body"),
        ({"user": "a", "password": PASSWORD}, "totp"),
        ({"user": "a", "password": PASSWORD, "totp": 123456}, "totp"),
        ({"user": "a", "password": PASSWORD, "totp": "1", "tenant": "acme"}, "tenant"),
    ],
)
def test_bad_bodies_name_the_member(world, body, field):
    answer = post(world, body)
    assert answer.status_code == 400
    assert (answer.json_body["code"], answer.json_body["field"]) == ("bad_field", field)


def test_user_names_are_unique_across_tenants_and_roles_checked(world):
    actor = accounts.caller(by="test")
    make_user("taken.name")
    accounts.create_tenant("other", currency="EUR")
    with pytest.raises(users.ConflictError, match="exists already"):
        users.create_user(
            "other", "taken.name", PASSWORD, "tenant-admin", account=None, actor=actor
        )
    with pytest.raises(ValueError, match="invalid account"):
        users.create_user("acme", "bad.role", PASSWORD, "customer", account=None, actor=actor)
    with pytest.raises(ValueError, match="needs a customer"):
        users.create_user("acme", "bad.kind", PASSWORD, "customer", account="RES_A", actor=actor)
    with pytest.raises(ValueError, match="invalid password"):
        users.create_user("acme", "short.pw", "short", "finance", account=None, actor=actor)
    assert [u.user for u in users.list_users("other")] == []
    assert "taken.name" in [u.user for u in users.list_users("acme")]
