"""Sign-in's pure rules (functions/api/signin.py): RFC 6238's test vectors, replays, scrypt."""

from __future__ import annotations

import base64
import hashlib
import urllib.parse

import pytest

from functions.api import signin

# RFC 6238 appendix B: the SHA-1 seed "12345678901234567890", 8 digits.
RFC_SEED = b"12345678901234567890"
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("at", "code"), RFC_VECTORS)
def test_totp_matches_rfc_6238_vectors(at, code):
    secret = base64.b32encode(RFC_SEED).decode()
    assert signin.totp(secret, at, digits=8) == code
    assert signin.hotp(RFC_SEED, at // 30, digits=8) == code


def test_hotp_matches_rfc_4226_vectors():
    expected = ["755224", "287082", "359152", "969429", "338314"]
    expected += ["254676", "287922", "162583", "399871", "520489"]
    assert [signin.hotp(RFC_SEED, c) for c in range(10)] == expected


def test_a_code_is_taken_once_within_its_window():
    secret = signin.new_totp_secret()
    at = 1_700_000_000.0
    now = signin.totp_step(at)
    code = signin.totp(secret, at)
    assert signin.verify_totp(secret, code, at, None) == now
    assert signin.verify_totp(secret, code, at, now) is None  # replayed
    assert signin.verify_totp(secret, code, at + 10, now) is None  # still refused
    # one step of drift either way; not two
    assert signin.verify_totp(secret, signin.totp(secret, at - 30), at, None) == now - 1
    assert signin.verify_totp(secret, signin.totp(secret, at + 30), at, None) == now + 1
    assert signin.verify_totp(secret, signin.totp(secret, at - 60), at, None) is None
    # a code older than the last one used is refused too
    assert signin.verify_totp(secret, signin.totp(secret, at - 30), at, now) is None
    for bad in ("12345", "1234567", "abcdef", 123456, None):
        assert signin.verify_totp(secret, bad, at, None) is None


def test_passwords_are_salted_scrypt():
    stored = signin.hash_password("correct horse battery")
    scheme, n, r, p, salt, derived = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    expected = hashlib.scrypt(
        b"correct horse battery", salt=base64.b64decode(salt), n=16384, r=8, p=1, dklen=32
    )
    assert base64.b64decode(derived) == expected
    assert signin.hash_password("correct horse battery") != stored  # a fresh salt each time
    assert signin.password_matches("correct horse battery", stored)
    assert not signin.password_matches("correct horse batterY", stored)
    assert not signin.password_matches(None, stored)
    assert not signin.password_matches("x", "md5$abc")
    assert not signin.password_matches("x", "scrypt$a$b$c$d$e")


def test_names_passwords_and_tokens():
    assert signin.check_user("ops.res-a_1") == "ops.res-a_1"
    for bad in ("", "Alice", "a b", "-a", "a@b", "a" * 65, None):
        with pytest.raises(ValueError, match="invalid user"):
            signin.check_user(bad)
    assert signin.check_password("x" * 12)
    for bad in ("x" * 11, "x" * 257, None):
        with pytest.raises(ValueError, match="invalid password"):
            signin.check_password(bad)
    session_id, secret, token = signin.new_session()
    assert signin.parse_session(token) == (session_id, secret)
    assert signin.is_session_token(token) and not signin.is_session_token("tg_x")
    for bad in ("tgs_x", token + "A", None, token.replace("tgs_", "tg_")):
        with pytest.raises(signin.TokenFormatError):
            signin.parse_session(bad)


def test_the_otpauth_uri():
    uri = signin.otpauth_uri("JBSWY3DPEHPK3PXP", "ops@res-a.example", "acme")
    parsed = urllib.parse.urlsplit(uri)
    assert (parsed.scheme, parsed.netloc) == ("otpauth", "totp")
    assert urllib.parse.unquote(parsed.path) == "/Tollgate acme:ops@res-a.example"
    assert dict(urllib.parse.parse_qsl(parsed.query)) == {
        "secret": "JBSWY3DPEHPK3PXP",
        "issuer": "Tollgate",
        "algorithm": "SHA1",
        "digits": "6",
        "period": "30",
    }
