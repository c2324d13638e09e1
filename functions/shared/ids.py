"""The ids that become part of a store key, an S3 prefix or an IAM ARN, and their one rule.

An id can never hold a key separator (`#`, `/`, `=`), a wildcard (`*`, `?`) or a policy
variable (`${`), so no id can be crafted to reach outside its tenant's keys, prefixes or grants.
"""

from __future__ import annotations

import re

# tenant, switch and account ids: what an operator types; no key separators.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# file ids, posting ids, payment ids: opaque tokens (hashes, references); no separators.
_TOKEN = re.compile(r"[A-Za-z0-9_.:+@-]{1,128}")


def check_name(kind: str, value: str) -> str:
    """A tenant, switch or account id, or ValueError naming what is wrong."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(
            f"invalid {kind} id {value!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_token(kind: str, value: str) -> str:
    """A file, posting or payment id, or ValueError naming what is wrong."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ValueError(
            f"invalid {kind} {value!r}: use 1-128 letters, digits or '_.:+@-' characters"
        )
    return value
