"""API keys' pure rules: the presented form, the digest, roles and IP allow-lists."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.api import keys
from functions.api.keys import KeyFormatError


def test_a_new_key_parses_back_to_its_id_and_secret():
    key_id, secret, presented = keys.new_key()
    assert presented == f"tg_{key_id}_{secret}"
    assert re.fullmatch(r"[0-9a-f]{16}", key_id) and len(secret) == 43
    assert keys.parse(presented) == (key_id, secret)
    assert keys.digest(secret) == hashlib.sha256(secret.encode()).hexdigest()
    assert keys.matches(secret, keys.digest(secret))
    assert not keys.matches(secret[:-1] + ("A" if secret[-1] != "A" else "B"), keys.digest(secret))


def test_keys_are_never_the_same_twice():
    made = [keys.new_key() for _ in range(200)]
    assert len({k[0] for k in made}) == len({k[1] for k in made}) == 200


def test_a_secret_holding_underscores_still_parses():
    presented = "tg_0123456789abcdef_" + "_" * 43
    assert keys.parse(presented) == ("0123456789abcdef", "_" * 43)


GOOD = "tg_0123456789abcdef_" + "A" * 43


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tg_",
        GOOD.replace("tg_", "tk_", 1),  # wrong prefix
        GOOD.replace("tg_", "TG_", 1),
        "tg_0123456789ABCDEF_" + "A" * 43,  # the id is lowercase hex
        "tg_0123456789abcde_" + "A" * 44,  # a 15-digit id
        "tg_0123456789abcdeg_" + "A" * 43,  # not hex
        GOOD[:-1],  # too short a secret
        GOOD + "A",  # too long
        GOOD + "\n",
        " " + GOOD,
        GOOD[:30] + " " + GOOD[31:],
        GOOD.replace("_", "-", 2),  # separators
        GOOD[:-1] + "=",  # not URL-safe base64
        "Bearer " + GOOD,
        None,
        42,
        GOOD.encode(),
    ],
)
def test_anything_else_is_refused(text):
    with pytest.raises(KeyFormatError, match="not an API key"):
        keys.parse(text)
    assert issubclass(KeyFormatError, ValueError)


@given(st.text(max_size=80) | st.from_regex(r"tg_[0-9a-fA-F]{14,18}_[\w=-]{40,46}", fullmatch=True))
def test_parse_accepts_only_what_new_key_could_have_made(text):
    try:
        key_id, secret = keys.parse(text)
    except KeyFormatError:
        return
    # Accepted: exactly the shape new_key makes, and nothing else around it.
    assert text == f"tg_{key_id}_{secret}"
    assert re.fullmatch(r"[0-9a-f]{16}", key_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)


@pytest.mark.parametrize(
    ("role", "account", "error"),
    [
        ("tenant-admin", None, None),
        ("tenant-admin", "res", "account"),
        ("finance", None, None),
        ("finance", "res", "account"),
        ("reseller-admin", "res", None),
        ("reseller-admin", None, "account"),
        ("customer", "cust", None),
        ("customer", None, "account"),
        ("read-only", None, None),
        ("read-only", "cust", None),
        ("read-only", "bad#id", "account"),
        ("admin", None, "role"),
        ("Customer", "cust", "role"),
        (None, None, "role"),
    ],
)
def test_which_roles_take_an_account(role, account, error):
    if error is None:
        assert keys.check_role(role, account) == (role, account)
    else:
        with pytest.raises(ValueError, match=rf"^invalid {error}\b"):
            keys.check_role(role, account)


@pytest.mark.parametrize(
    ("role", "kind", "ok"),
    [
        ("reseller-admin", "reseller", True),
        ("reseller-admin", "customer", False),
        ("customer", "customer", True),
        ("customer", "reseller", False),
        ("customer", "supplier", False),
        ("read-only", "reseller", True),
        ("read-only", "customer", True),
        ("read-only", "supplier", False),
    ],
)
def test_an_account_key_acts_for_an_account_of_its_roles_kind(role, kind, ok):
    if ok:
        keys.check_account_kind(role, "a", kind)
    else:
        with pytest.raises(ValueError, match=r"^invalid account 'a'"):
            keys.check_account_kind(role, "a", kind)


@pytest.mark.parametrize(
    ("text", "network"),
    [
        ("203.0.113.7", "203.0.113.7/32"),
        ("203.0.113.7/24", "203.0.113.0/24"),
        ("10.0.0.0/255.0.0.0", "10.0.0.0/8"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("2001:DB8::1/64", "2001:db8::/64"),
        ("2001:db8:0:0:0:0:0:1", "2001:db8::1/128"),
        ("::/0", "::/0"),
    ],
)
def test_a_cidr_is_normalised(text, network):
    assert keys.check_cidr(text) == network


@pytest.mark.parametrize(
    "text", ["", "203.0.113", "203.0.113.0/33", "2001:db8::/129", "host.example", " 10.0.0.1",
             "10.0.0.1 ", "10.0.0.0/8/8", None, 167772161]
)  # fmt: skip
def test_a_malformed_cidr_names_allow_ip(text):
    with pytest.raises(ValueError, match=r"^invalid allow-ip "):
        keys.check_cidr(text)


def test_cidrs_are_deduplicated_and_bounded():
    assert keys.check_cidrs(["10.0.0.1", "10.0.0.1/32", "::1"]) == ("10.0.0.1/32", "::1/128")
    with pytest.raises(ValueError, match=r"^invalid allow-ip: at most 50"):
        keys.check_cidrs(f"10.0.{i // 256}.{i % 256}" for i in range(51))


@pytest.mark.parametrize(
    ("ip", "cidrs", "allowed"),
    [
        ("198.51.100.1", (), True),  # no list: any address
        ("not an ip", (), True),
        ("203.0.113.9", ("203.0.113.0/24",), True),
        ("203.0.114.9", ("203.0.113.0/24",), False),
        ("203.0.113.9", ("10.0.0.0/8", "203.0.113.9/32"), True),
        ("2001:db8::42", ("2001:db8::/32",), True),
        ("2001:db9::42", ("2001:db8::/32",), False),
        ("2001:db8::42", ("203.0.113.0/24",), False),  # other family: no match, no error
        ("203.0.113.9", ("2001:db8::/32",), False),
        ("::ffff:203.0.113.9", ("203.0.113.0/24",), True),  # IPv4-mapped, dual-stack
        ("::ffff:203.0.114.9", ("203.0.113.0/24",), False),
        ("203.0.113.300", ("0.0.0.0/0",), False),  # malformed: never
        ("", ("0.0.0.0/0",), False),
        (None, ("0.0.0.0/0",), False),  # no address known: fails closed
        (3405803785, ("0.0.0.0/0",), False),  # an int is not an address here
        ("203.0.113.9", ("garbage", "203.0.113.0/24"), True),  # a corrupt entry grants nothing
        ("203.0.113.9", ("garbage",), False),
    ],
)
def test_ip_allowed(ip, cidrs, allowed):
    assert keys.ip_allowed(ip, cidrs) is allowed


def test_a_label_is_trimmed_printable_text():
    assert keys.check_label("  billing robot ") == "billing robot"
    assert keys.check_label(None) is None
    for bad in ("", "   ", "a\nb", "x" * 257):
        with pytest.raises(ValueError, match=r"^invalid label"):
            keys.check_label(bad)
