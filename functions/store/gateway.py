"""API Gateway's API keys in the deployment's usage plan (boto3 low-level client): the per-key
request limits of functions/api/usagekeys.py.

A Tollgate key (functions.store.apikeys) gets an API Gateway key named `tollgate-key-{key_id}`
whose value is the key's usage key (usagekeys.usage_key_of: a hash of the presented key, never
its secret), in the usage plan; revoking the Tollgate key disables it. A portal session
(functions.store.users.sign_in) gets one too, `tollgate-session-{session_id}`, tagged with its
end; each sign-in deletes the session keys that ended (a session lives an hour, so they stay
few). API Gateway's authorizer answer names the usage key; the plan's throttle holds it.

Only when the deployment names a usage plan: TOLLGATE_USAGE_PLAN, the plan's name or id (the
stack sets its name, `{stack}-keys`: a Ref to the plan from the API function would be a
dependency cycle, the plan depending on the API and the API on the function). Unset (the local
stack, tests), every function here does nothing: the in-process limiter
(functions/api/throttle.py) is the local enforcement of the same numbers.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from botocore.exceptions import ClientError

from functions.api.usagekeys import USAGE_KEY
from functions.store import StoreError, client

PLAN_SETTING = "TOLLGATE_USAGE_PLAN"
KEY_NAME, SESSION_NAME = "tollgate-key-", "tollgate-session-"
_EXPIRES_TAG = "tollgate:expires"  # a session key's end, epoch seconds


def usage_plan() -> str | None:
    """The usage plan named by the deployment (read each call: the CLI and tests set it)."""
    return os.environ.get(PLAN_SETTING) or None


def _plan_id(plan: str) -> str:
    for page in client("apigateway").get_paginator("get_usage_plans").paginate():
        for found in page.get("items", []):
            if plan in (found["id"], found.get("name")):
                return found["id"]
    raise StoreError(f"no usage plan {plan!r} ({PLAN_SETTING})")


def _keys(prefix: str) -> list[dict[str, Any]]:
    keys = []
    paginator = client("apigateway").get_paginator("get_api_keys")
    for page in paginator.paginate(nameQuery=prefix, includeValues=False):
        keys += [k for k in page.get("items", []) if k.get("name", "").startswith(prefix)]
    return keys


def _add(name: str, usage_key: str, description: str, tags: dict[str, str]) -> str | None:
    plan = usage_plan()
    if plan is None:
        return None
    if not USAGE_KEY.fullmatch(usage_key):
        raise ValueError(f"not a usage key: {name}")
    apigateway = client("apigateway")
    plan_id = _plan_id(plan)
    created = apigateway.create_api_key(
        name=name, value=usage_key, enabled=True, description=description, tags=tags
    )
    try:
        apigateway.create_usage_plan_key(
            usagePlanId=plan_id, keyId=created["id"], keyType="API_KEY"
        )
    except Exception:
        apigateway.delete_api_key(apiKey=created["id"])  # no key outside the plan
        raise
    return created["id"]


def add_key(tenant: str, key_id: str, usage_key: str) -> str | None:
    """The API Gateway key of a new Tollgate key, in the plan; its id (None: no plan)."""
    return _add(f"{KEY_NAME}{key_id}", usage_key, f"Tollgate API key of {tenant}", {})


def disable_key(key_id: str) -> int:
    """Disable the API Gateway key of a revoked Tollgate key; how many were (0: no plan, or
    none made). Disabling a disabled key changes nothing."""
    if usage_plan() is None:
        return 0
    name = f"{KEY_NAME}{key_id}"
    found = [k for k in _keys(name) if k["name"] == name]
    for key in found:
        if key.get("enabled", True):
            client("apigateway").update_api_key(
                apiKey=key["id"],
                patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}],
            )
    return len(found)


def add_session_key(session_id: str, usage_key: str, expires: dt.datetime) -> str | None:
    """A session's API Gateway key, in the plan until the session ends; the ended ones go."""
    if usage_plan() is None:
        return None
    sweep_session_keys(dt.datetime.now(dt.UTC))
    tags = {_EXPIRES_TAG: str(int(expires.timestamp()))}
    return _add(f"{SESSION_NAME}{session_id}", usage_key, "Tollgate portal session", tags)


def sweep_session_keys(now: dt.datetime) -> int:
    """Delete the session keys whose session has ended; how many."""
    ended = [
        k
        for k in _keys(SESSION_NAME)
        if int(k.get("tags", {}).get(_EXPIRES_TAG, "0")) <= now.timestamp()
    ]
    for key in ended:
        try:
            client("apigateway").delete_api_key(apiKey=key["id"])
        except ClientError as error:  # another sign-in swept it first
            if error.response["Error"]["Code"] != "NotFoundException":
                raise
    return len(ended)
