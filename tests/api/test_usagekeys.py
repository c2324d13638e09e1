"""The authorizer's usage key (functions/api/usagekeys.py) and where app.py attaches it: the
key a token names follows from the token alone, a forged secret names another, a header that
is no token of ours is denied; every keyed route, and only those, has the authorizer and needs
an API key."""

from __future__ import annotations

import hashlib

import pytest
from chalice.app import AuthRequest

from functions.api import keys, signin, usagekeys
from functions.api.usagekeys import GATEWAY_RESPONSES, USAGE_KEY, decide, policy, usage_key_of

ARN = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/api/GET/v1/accounts/RES_A"
KEY_ID, SECRET = "0123456789abcdef", "A" * 43
KEY = f"tg_{KEY_ID}_{SECRET}"
SESSION = f"tgs_fedcba9876543210_{'b' * 43}"
UNKEYED = {("/v1/sessions", "POST"), ("/v1/webhooks/stripe/{tenant}", "POST")}


def test_a_key_names_its_id_and_a_hash_of_the_whole_token():
    tag = hashlib.sha256(b"tollgate usage key\x00" + KEY.encode()).hexdigest()[:32]
    assert usage_key_of(KEY) == f"tgk{KEY_ID}{tag}"
    assert USAGE_KEY.fullmatch(usage_key_of(KEY)) and 20 <= len(usage_key_of(KEY)) <= 128
    # never the secret, nor the digest the accounts table keeps of it
    assert SECRET not in usage_key_of(KEY) and keys.digest(SECRET)[:32] not in usage_key_of(KEY)
    # a forged secret names another usage key: no API Gateway key has it
    forged = KEY[:-1] + "B"
    assert usage_key_of(forged) != usage_key_of(KEY)
    assert usage_key_of(forged)[:19] == usage_key_of(KEY)[:19]


def test_a_session_token_names_its_session():
    found = usage_key_of(SESSION)
    assert found.startswith("tgsfedcba9876543210") and USAGE_KEY.fullmatch(found)
    assert found != usage_key_of(f"tgs_fedcba9876543210_{'c' * 43}")
    token = signin.new_session()[2]
    assert usage_key_of(token) == usage_key_of(token)  # the same at sign-in and per request


@pytest.mark.parametrize(
    ("header", "principal"),
    [
        (f"Bearer {KEY}", KEY_ID),
        (f"bearer   {KEY}  ", KEY_ID),  # as serve() reads it (spacing, case)
        (f"Bearer {SESSION}", "fedcba9876543210"),
    ],
)
def test_a_bearer_token_of_ours_is_allowed_with_its_usage_key(header, principal):
    decision = decide(header)
    token = header.split()[1]
    assert decision == usagekeys.Decision(principal, usage_key_of(token))
    answer = policy(decision, ARN)
    assert answer["usageIdentifierKey"] == usage_key_of(token)
    assert answer["principalId"] == principal
    (statement,) = answer["policyDocument"]["Statement"]
    # one answer, cached by token, for every route of the stage
    assert statement == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": ["arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/api/*"],
    }


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Bearer tg_not_a_key",
        f"Basic {KEY}",
        f"Bearer {KEY} extra",
        f"Bearer tg_{KEY_ID.upper()}_{SECRET}",
        f"Bearer {KEY[:-1]}",
        f"Bearer tgs_{KEY_ID}_{SECRET}!",
        None,
    ],
)
def test_anything_else_is_denied_without_a_usage_key(header):
    decision = decide(header)
    assert decision == usagekeys.Decision("anonymous", None)
    answer = policy(decision, ARN)
    assert "usageIdentifierKey" not in answer
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Deny"


def test_gateway_responses_keep_the_apis_error_shape():
    shaped = {t: (r.status, r.code, r.headers()) for t, r in GATEWAY_RESPONSES.items()}
    bearer = {"Content-Type": "application/json", "WWW-Authenticate": "Bearer"}
    retry = {"Content-Type": "application/json", "Retry-After": "1"}
    assert shaped == {
        "UNAUTHORIZED": (401, "missing_key", bearer),
        "ACCESS_DENIED": (401, "malformed_key", bearer),
        "INVALID_API_KEY": (401, "unknown_key", bearer),
        "THROTTLED": (429, "rate_limited", retry),
        "QUOTA_EXCEEDED": (429, "rate_limited", retry),
    }
    from functions.store.apikeys import UNAUTHORIZED

    for response in GATEWAY_RESPONSES.values():
        assert set(response.body()) == {"code", "message"}
        assert response.code in {*UNAUTHORIZED, "missing_key", "rate_limited"}


def test_the_authorizer_is_on_every_keyed_route_and_only_those():
    from app import KEYED, app, usage_key

    assert app.builtin_auth_handlers[0].name == "usage_key"
    assert app.builtin_auth_handlers[0].header == "Authorization"
    assert {"authorizer": usage_key, "api_key_required": True} == KEYED
    seen = set()
    for path, methods in app.routes.items():
        for method, entry in methods.items():
            seen.add((path, method))
            keyed = (path, method) not in UNKEYED
            assert (entry.authorizer is usage_key) is keyed, (path, method)
            assert bool(entry.api_key_required) is keyed, (path, method)
    assert seen >= UNKEYED


def test_the_authorizer_answers_from_the_token():
    from app import usage_key

    allowed = usage_key.func(AuthRequest("TOKEN", f"Bearer {KEY}", ARN))
    assert allowed["usageIdentifierKey"] == usage_key_of(KEY)
    event = {"type": "TOKEN", "authorizationToken": "Basic x", "methodArn": ARN}
    denied = usage_key(event, None)
    assert denied["policyDocument"]["Statement"][0]["Effect"] == "Deny"


def test_the_local_gateway_runs_the_authorizer_and_answers_as_the_stage():
    """No store here: these answers come from the gateway (no header; the authorizer's Deny),
    in GATEWAY_RESPONSES' shape, before serve() runs; Chalice's own would be
    {"message": "Unauthorized"} and a 403."""
    from chalice.test import Client

    from app import app
    from functions.local.gateway import use_gateway_responses

    with Client(app) as client:
        plain = client.http.get("/v1/me")
        assert (plain.status_code, plain.json_body) == (401, {"message": "Unauthorized"})
        http = use_gateway_responses(client.http)
        for headers, kind in (
            ({}, "UNAUTHORIZED"),
            ({"Authorization": "Basic x"}, "ACCESS_DENIED"),
        ):
            answer = http.get("/v1/accounts/RES_A/balance", headers=headers)
            wanted = GATEWAY_RESPONSES[kind]
            assert (answer.status_code, answer.json_body) == (wanted.status, wanted.body())
            assert answer.headers["WWW-Authenticate"] == "Bearer"


# --- HTTP Basic: FreeSWITCH mod_xml_curl's gateway-credentials (POST /v1/authz/freeswitch) ---
BASIC_ARN = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5/api/POST/v1/authz/freeswitch"


def basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_basic_key_counts_against_the_same_usage_key_as_its_bearer_header():
    decision = decide(basic(KEY_ID, KEY))
    assert decision.usage_key == decide(f"Bearer {KEY}").usage_key == usage_key_of(KEY)
    assert decision.principal == KEY_ID
    assert decide(f"basic   {basic(KEY_ID, KEY)[6:]} ") == decision  # as serve() reads it


def test_a_basic_key_is_allowed_on_the_basic_routes_alone_whichever_route_asked():
    """API Gateway caches the answer by token for every route: the policy itself must hold
    the route, so a Basic key first seen on GET /v1/me is still refused there and allowed on
    the xml_curl route, and the other way round."""
    for arn in (BASIC_ARN, ARN):
        answer = policy(decide(basic(KEY_ID, KEY)), arn)
        (statement,) = answer["policyDocument"]["Statement"]
        assert statement == {
            "Action": "execute-api:Invoke",
            "Effect": "Allow",
            "Resource": [BASIC_ARN],
        }
        assert answer["usageIdentifierKey"] == usage_key_of(KEY)
    from app import app

    for method, path in usagekeys.BASIC_ROUTES:  # each names a route of the app, keyed
        assert app.routes[path][method].api_key_required


@pytest.mark.parametrize(
    "header",
    [
        basic("someone", KEY),  # the user must be the key's id
        basic("", KEY),
        basic(KEY_ID, KEY[:-1]),  # no key of ours
        basic("fedcba9876543210", SESSION),  # a portal session is no switch credential
        "Basic " + KEY,  # not base64
        basic(KEY_ID, KEY) + "x",
    ],
)
def test_any_other_basic_header_is_denied(header):
    assert decide(header) == usagekeys.Decision("anonymous", None)
    with pytest.raises(ValueError):
        usagekeys.basic_key(header)
