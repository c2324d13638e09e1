"""The token bucket per key (functions/api/throttle.py) on a fake clock: no sleeps."""

from __future__ import annotations

import pytest

from functions.api.throttle import (
    Bucket,
    Limit,
    Limiter,
    RateLimited,
    limits_from,
    parse_limit,
    take,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def allowed(limiter: Limiter, key: str = "k1", tenant: str = "acme") -> bool:
    try:
        limiter.check(tenant, key)
        return True
    except RateLimited:
        return False


def test_a_burst_then_the_rate():
    clock = Clock()
    limiter = Limiter(Limit(20, 40), clock=clock)
    assert [allowed(limiter) for _ in range(41)] == [True] * 40 + [False]
    clock.now += 0.05  # one token back (20 a second)
    assert [allowed(limiter), allowed(limiter)] == [True, False]
    clock.now += 10  # refilled, never beyond the burst
    assert sum(allowed(limiter) for _ in range(100)) == 40


def test_each_key_has_its_own_bucket():
    limiter = Limiter(Limit(1, 2), clock=Clock())
    assert [allowed(limiter, "k1") for _ in range(3)] == [True, True, False]
    assert [allowed(limiter, "k2") for _ in range(3)] == [True, True, False]


def test_refused_says_when_to_retry_in_whole_seconds():
    clock = Clock()
    limiter = Limiter(Limit(0.25, 1), clock=clock)
    limiter.check("acme", "k1")
    with pytest.raises(RateLimited) as refused:
        limiter.check("acme", "k1")
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    assert refused.value.retry_after == 4  # one token in 4 s
    clock.now += 3.5
    with pytest.raises(RateLimited) as refused:
        limiter.check("acme", "k1")
    assert refused.value.retry_after == 1  # 0.5 s left: rounded up, never 0
    clock.now += 0.5
    assert allowed(limiter)


def test_refused_requests_take_nothing():
    clock = Clock()
    limiter = Limiter(Limit(1, 1), clock=clock)
    assert allowed(limiter)
    assert not any(allowed(limiter) for _ in range(50))  # hammering does not dig a hole
    clock.now += 1
    assert allowed(limiter)


def test_the_pure_bucket():
    limit = Limit(2, 3)
    bucket, wait = take(None, 5.0, limit)
    assert (bucket, wait) == (Bucket(2.0, 5.0), 0.0)
    assert take(Bucket(0.5, 5.0), 5.0, limit) == (Bucket(0.5, 5.0), 0.25)
    assert take(Bucket(0.5, 5.0), 5.25, limit) == (Bucket(0.0, 5.25), 0.0)
    # a clock that went back refills nothing
    assert take(Bucket(0.0, 5.0), 4.0, limit) == (Bucket(0.0, 4.0), 0.5)


def test_a_tenant_may_have_its_own_limit():
    limiter = Limiter(Limit(1, 1), {"big": Limit(1, 5)}, clock=Clock())
    assert sum(allowed(limiter, "k1", "acme") for _ in range(10)) == 1
    assert sum(allowed(limiter, "k2", "big") for _ in range(10)) == 5


def test_the_buckets_kept_are_bounded():
    clock = Clock()
    limiter = Limiter(Limit(1, 1), clock=clock, max_keys=2)
    for key in ("a", "b", "c"):
        assert allowed(limiter, key)
    assert not allowed(limiter, "c") and not allowed(limiter, "b")
    assert allowed(limiter, "a")  # the least recently used went: a fresh, full bucket


def test_limits_from_the_environment():
    assert limits_from({}) == (Limit(20, 40), {})
    env = {"TOLLGATE_API_RATE_LIMIT": "5/10", "TOLLGATE_API_RATE_LIMITS": "acme=50/100, b=0.5/1"}
    assert limits_from(env) == (Limit(5, 10), {"acme": Limit(50, 100), "b": Limit(0.5, 1)})
    assert parse_limit(" 2.5/3 ") == Limit(2.5, 3)
    for bad in ("20", "0/1", "1/0", "-1/2", "a/b", "1/2/3"):
        with pytest.raises(ValueError, match="invalid rate limit"):
            parse_limit(bad)
    with pytest.raises(ValueError, match="invalid tenant rate limit 'acme'"):
        limits_from({"TOLLGATE_API_RATE_LIMITS": "acme"})


def test_the_api_answers_429_with_retry_after_once_a_key_is_over(world, monkeypatch):
    from functions.api import handler

    clock = Clock()
    monkeypatch.setattr(handler, "LIMITER", Limiter(Limit(2, 3), clock=clock))
    statuses = [world.get("/v1/accounts/RES_A/balance", "reseller").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = world.get("/v1/me", "reseller")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json_body == {
        "code": "rate_limited",
        "message": "too many requests for this key; retry in 1 s",
    }
    # another key has its own bucket; a refused key is turned away before any bucket
    assert world.get("/v1/me", "customer").status_code == 200
    assert world.get("/v1/me", world.unknown).status_code == 401
    clock.now += 0.5  # one token back at 2 a second
    assert [world.get("/v1/me", "reseller").status_code for _ in range(2)] == [200, 429]
