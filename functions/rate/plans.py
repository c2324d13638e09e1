"""Rate plans: which of a customer's products (decks) prices each call.

A customer may buy several products from its carrier, say a premium `cli` route and an
economy `ncli` one, each its own effective-dated deck on the account. The plan of a call is
chosen per CDR, in this order:
1. the ingress trunk it came in on names a plan (`tollgate switch map ... --plan`): the
   switch already knows which product the customer sent the call to;
2. a rule on the calling number of the customer account: the longest caller prefix among the
   account's rules wins (callers from an EEA country code use `eea`);
3. otherwise `default`, the plan every account's first deck belongs to.

Column-wise: a loop over the accounts that have rules and, within one, over prefix lengths
(as functions.rate.tiers.group_of); never over calls.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.shared.prefixes import longest_prefix

DEFAULT_PLAN = "default"
# Caller prefixes are in international form (country code first), as rules are written.
_PREFIX = re.compile(r"[0-9]{1,15}")


def check_caller_prefix(text: str) -> str:
    """A caller prefix as typed ("+33", "0049", "1 242") as its digits."""
    digits = re.sub(r"^(?:\+|00)", "", re.sub(r"[\s-]", "", str(text)))
    if not _PREFIX.fullmatch(digits):
        raise ValueError(
            f"invalid caller prefix {text!r}: the 1-15 digits a calling number starts with, "
            "country code first (e.g. 33)"
        )
    return digits


def caller_digits(callers: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Calling numbers as international digits: spaces and dashes dropped, then one leading
    `+` or `00` (switches write the A-number either way)."""
    if isinstance(callers, pa.ChunkedArray):
        callers = callers.combine_chunks()
    if pa.types.is_dictionary(callers.type):
        callers = callers.cast(callers.type.value_type)
    plain = pc.replace_substring_regex(callers, r"[\s-]", "")
    return pc.replace_substring_regex(plain, r"^(?:\+|00)", "")


def choose_plans(
    customers: pa.Array | pa.ChunkedArray,
    callers: pa.Array | pa.ChunkedArray | None,
    trunk_plans: pa.Array | pa.ChunkedArray | None,
    rules: Mapping[str, Mapping[str, str]],
) -> tuple[list[str], np.ndarray]:
    """The plan of each call, as labels and a code per call (labels[0] is `default`).

    `trunk_plans` is the plan the call's ingress trunk names (null: none); `rules` maps an
    account to its caller prefixes and the plan each chooses.
    """
    labels = _Labels()
    codes = np.zeros(len(customers), dtype=np.int32)
    if rules and callers is not None and len(customers):
        digits = caller_digits(callers)
        customers = pa.chunked_array([customers]) if isinstance(customers, pa.Array) else customers
        for account, prefixes in sorted(rules.items()):
            mine = pc.fill_null(pc.equal(customers, account), False)
            rows = np.flatnonzero(mine.to_numpy(zero_copy_only=False))
            if len(rows) and prefixes:
                _apply_rules(digits.take(pa.array(rows)), prefixes, labels, codes, rows)
    if trunk_plans is not None and len(customers):
        encoded = pc.dictionary_encode(trunk_plans)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        named = encoded.dictionary.to_pylist()
        if named:
            by_trunk = np.array([labels.code(plan) for plan in named], dtype=np.int32)
            index = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
            hit = index >= 0
            codes[hit] = by_trunk[index[hit]]
    return labels.names, codes


def plans_by_caller(
    callers: pa.Array | pa.ChunkedArray, rules: Mapping[str, str], plans: list[str] | None = None
) -> tuple[list[str], np.ndarray]:
    """One account's calls by caller rule alone (what-if rating: no trunks, one customer).
    `plans` fixes the order of the labels after `default`."""
    labels = _Labels()
    for plan in plans or ():
        labels.code(plan)
    codes = np.zeros(len(callers), dtype=np.int32)
    if rules and len(callers):
        _apply_rules(caller_digits(callers), rules, labels, codes, np.arange(len(callers)))
    return labels.names, codes


class _Labels:
    """Plan names in first-seen order, `default` first; a code per name."""

    def __init__(self) -> None:
        self.names = [DEFAULT_PLAN]
        self._codes = {DEFAULT_PLAN: 0}

    def code(self, plan: str) -> int:
        if plan not in self._codes:
            self._codes[plan] = len(self.names)
            self.names.append(plan)
        return self._codes[plan]


def _apply_rules(
    digits: pa.Array, rules: Mapping[str, str], labels: _Labels, codes: np.ndarray, rows
) -> None:
    """Set codes[rows] to the plan of each caller's longest matching prefix."""
    prefixes = list(rules)
    matched = longest_prefix(digits, prefixes)
    hit = matched >= 0
    chosen = np.array([labels.code(rules[p]) for p in prefixes], dtype=np.int32)
    codes[rows[hit]] = chosen[matched[hit]]
