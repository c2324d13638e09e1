"""Portal sign-in: passwords, TOTP second factors and session tokens (plain Python, stdlib).

A user signs in with its name, password and the current code of its authenticator app, and
gets a session token that the API takes as it takes an API key, with the user's role and
account, until it expires.

- Passwords: scrypt (hashlib.scrypt, RFC 7914), a random 16-byte salt per password, stored as
  `scrypt$N$r$p$salt$hash` (base64) so the cost can be raised later; compared in constant time.
- TOTP (RFC 6238 over HOTP, RFC 4226): SHA-1, 6 digits, 30-second steps, the step before and
  after accepted for clock drift. A code is used once: the step it matched is kept, and a code
  of that step or an earlier one is refused (`verify_totp`'s `last_step`).
- Session tokens: `tgs_{session id}_{secret}`, shaped like API keys (functions.api.keys); only
  the secret's SHA-256 is kept.
- Lock-out: MAX_FAILURES failed sign-ins in a row lock the user for LOCK_SECONDS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
from urllib.parse import quote, urlencode

from functions.api.keys import digest, matches

# scrypt's cost: N=2^14, r=8 (16 MiB, some 50 ms), as RFC 7914 and OWASP suggest for logins.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES = 16
_HASH_BYTES = 32
MIN_PASSWORD, MAX_PASSWORD = 12, 256  # characters; a long one costs scrypt nothing more
TOTP_STEP = 30  # seconds
TOTP_DIGITS = 6
TOTP_DRIFT = 1  # steps either side of the current one
_TOTP_SECRET_BYTES = 20  # 160 bits, RFC 4226's recommendation for SHA-1
SESSION_SECONDS = 3600  # a session token's life
MAX_FAILURES = 5  # failed sign-ins in a row before the user is locked...
LOCK_SECONDS = 900  # ...for this long
SESSION_PREFIX = "tgs_"
_SESSION = re.compile(r"tgs_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_USER = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
ISSUER = "Tollgate"


class TokenFormatError(ValueError):
    """Not a session token this platform hands out."""


# --- users and passwords -------------------------------------------------------------------


def check_user(name: object) -> str:
    """A user name: 1-64 lowercase letters, digits and . _ -, unique across tenants (the
    sign-in names no tenant)."""
    if not isinstance(name, str) or not _USER.fullmatch(name):
        raise ValueError(
            f"invalid user {name!r}: 1-64 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: object) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValueError(f"invalid password: {MIN_PASSWORD}-{MAX_PASSWORD} characters")
    return password


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash` of the password, with a fresh random salt unless given."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    derived = hashlib.scrypt(
        password.encode(),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=0x7FFFFFFF,
        dklen=_HASH_BYTES,
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(derived)}"


# Compared against when the user is unknown or locked, so those cost what a wrong password does.
DUMMY_HASH = hash_password("not anyone's password", salt=b"\0" * _SALT_BYTES)


def password_matches(password: object, stored: str) -> bool:
    """Whether the password is the one whose hash was stored (constant-time compare). A
    stored value this module cannot read matches nothing."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt" or not isinstance(password, str):
            return False
        derived = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=0x7FFFFFFF,
            dklen=len(base64.b64decode(expected)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(derived, base64.b64decode(expected))


# --- TOTP (RFC 6238) -----------------------------------------------------------------------


def new_totp_secret() -> str:
    """A fresh TOTP secret, base32 without padding (what authenticator apps take)."""
    return base64.b32encode(secrets.token_bytes(_TOTP_SECRET_BYTES)).decode().rstrip("=")


def _secret_bytes(secret: str) -> bytes:
    text = secret.upper().replace(" ", "")
    return base64.b32decode(text + "=" * (-len(text) % 8))


def hotp(key: bytes, counter: int, *, digits: int = TOTP_DIGITS, algorithm: str = "sha1") -> str:
    """RFC 4226's HOTP value of the counter, zero-padded to `digits`."""
    mac = hmac.new(key, struct.pack(">Q", counter), algorithm).digest()
    offset = mac[-1] & 0x0F
    code = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


def totp_step(at: float, step: int = TOTP_STEP) -> int:
    return int(at // step)


def totp(secret: str, at: float, *, digits: int = TOTP_DIGITS) -> str:
    """The code of a base32 secret at a Unix time."""
    return hotp(_secret_bytes(secret), totp_step(at), digits=digits)


def verify_totp(secret: str, code: object, at: float, last_step: int | None) -> int | None:
    """The step the code matches (within TOTP_DRIFT steps of `at`) and that is later than
    `last_step`, the step of the code used last; None if none does. The caller keeps the
    step returned, so the same code (or an older one) is never taken twice."""
    if not isinstance(code, str) or not re.fullmatch(rf"[0-9]{{{TOTP_DIGITS}}}", code):
        return None
    key, now = _secret_bytes(secret), totp_step(at)
    found = None
    for step in range(now - TOTP_DRIFT, now + TOTP_DRIFT + 1):
        if hmac.compare_digest(hotp(key, step), code) and (last_step is None or step > last_step):
            found = step if found is None else found
    return found


def otpauth_uri(secret: str, user: str, tenant: str) -> str:
    """The otpauth:// URI an authenticator app reads (as a QR code or pasted)."""
    label = quote(f"{ISSUER} {tenant}:{user}")
    query = urlencode(
        {
            "secret": secret,
            "issuer": ISSUER,
            "algorithm": "SHA1",
            "digits": TOTP_DIGITS,
            "period": TOTP_STEP,
        }
    )
    return f"otpauth://totp/{label}?{query}"


# --- session tokens ------------------------------------------------------------------------


def new_session() -> tuple[str, str, str]:
    """(session id, secret, token): a fresh session token from the OS's CSPRNG."""
    session_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return session_id, secret, f"{SESSION_PREFIX}{session_id}_{secret}"


def parse_session(token: object) -> tuple[str, str]:
    if not isinstance(token, str):
        raise TokenFormatError("not a session token")
    found = _SESSION.fullmatch(token)
    if found is None:
        raise TokenFormatError("not a session token: expected tgs_<16 hex digits>_<43 chars>")
    return found.group(1), found.group(2)


def is_session_token(presented: str) -> bool:
    return presented.startswith(SESSION_PREFIX)


session_digest = digest  # SHA-256: a 256-bit random secret needs no slow hash (keys.digest)
session_matches = matches
