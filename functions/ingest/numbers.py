"""Callee normalisation: what a customer dialled, reduced to the E.164 digits rating matches on.

Rule (shared by the vectorised and the scalar form), per switch `NumberingPlan`:
1. strip ONE tech prefix the switch puts before numbers (`#123`, `9999`, `*77`: routing
   digits of the customer's trunk), the longest that matches;
2. drop spaces and dashes;
3. drop ONE international prefix: `+`, or the switch's international prefix (`00` unless the
   switch dials another, e.g. `011` in North America);
4. a number that had no international prefix and starts with the national trunk prefix
   (e.g. `0`) is national: it becomes the switch's country code + the rest
   (`02071234567`, CC 44 → `442071234567`);
what remains must be a non-empty run of at most 32 (MAX_DIGITS) ASCII digits. With no plan
(no tech prefixes, `00`, no national rule) a national number is kept as dialled: turning it
into E.164 needs the switch's country, which only its plan says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

_SEPARATORS = (" ", "-")
_DIGITS = re.compile(r"[0-9]+")
_TECH_PREFIX = re.compile(r"[0-9#*+A-Za-z]{1,16}")
MAX_TECH_PREFIXES = 32
# E.164 numbers have at most 15 digits; routing digits a switch leaves on can add a few more.
# Anything longer is not a number anyone dialled (a corrupt field, a pasted id): bad_number.
MAX_DIGITS = 32


@dataclass(frozen=True, slots=True)
class NumberingPlan:
    """How one switch writes numbers; the empty plan is the rule every switch gets by default.

    Raises ValueError naming the field when a value cannot be a rule of this kind.
    """

    strip: tuple[str, ...] = ()  # tech prefixes, stripped exactly as written (one per number)
    international_prefix: str = "00"
    national_prefix: str | None = None
    country_code: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "strip", tuple(self.strip))
        if len(self.strip) > MAX_TECH_PREFIXES:
            raise ValueError(f"strip: at most {MAX_TECH_PREFIXES} tech prefixes")
        for prefix in self.strip:
            if not isinstance(prefix, str) or not _TECH_PREFIX.fullmatch(prefix):
                raise ValueError(
                    f"strip: invalid tech prefix {prefix!r}: use 1-16 digits, letters, '#', '*' "
                    "or '+'"
                )
        if len(set(self.strip)) != len(self.strip):
            raise ValueError("strip: a tech prefix is listed twice")
        _check_digits("international_prefix", self.international_prefix, 1, 4)
        if self.national_prefix is not None:
            _check_digits("national_prefix", self.national_prefix, 1, 2)
        if self.country_code is not None:
            _check_digits("country_code", self.country_code, 1, 3)
            if self.country_code.startswith("0"):
                raise ValueError(f"country_code: {self.country_code!r} cannot start with 0")
        if self.national_prefix == self.international_prefix:
            raise ValueError(
                f"national_prefix: {self.national_prefix!r} is the international prefix"
            )
        if (self.national_prefix is None) != (self.country_code is None):
            raise ValueError(
                "national_prefix and country_code go together: a national number becomes "
                "country code + number"
            )

    @property
    def is_default(self) -> bool:
        return self == NumberingPlan()


def _check_digits(field: str, value: object, shortest: int, longest: int) -> None:
    if (
        not isinstance(value, str)
        or not _DIGITS.fullmatch(value)
        or not shortest <= len(value) <= longest
    ):
        raise ValueError(f"{field}: invalid value {value!r}: use {shortest}-{longest} digits")


DEFAULT_PLAN = NumberingPlan()


def normalise_numbers(
    dialled: pa.Array | pa.ChunkedArray, plan: NumberingPlan | None = None
) -> pa.Array:
    """Normalised digits per row; null where the number is not dialable (or was null).

    When no row needs rewriting the input itself is returned (no copy), so a caller can tell
    `callee is dialled`.
    """
    plan = plan or DEFAULT_PLAN
    if isinstance(dialled, pa.ChunkedArray):
        dialled = dialled.combine_chunks()
    untouched = pc.fill_null(_untouched(dialled, plan), False)
    if len(dialled) and pc.all(untouched).as_py():
        return dialled
    if len(dialled) >= 1024:
        # Most switches send bare digits: only the other rows need the rewrite.
        others = pc.invert(untouched)
        rewritten = _normalise(dialled.filter(others), plan)
        return pc.replace_with_mask(dialled, others, rewritten)
    return _normalise(dialled, plan)


def _untouched(dialled: pa.Array, plan: NumberingPlan) -> pa.Array:
    """Rows that are already normalised: bare digits, not too many, no rule of the plan
    applies to."""
    plain = pc.and_not(
        pc.ascii_is_decimal(dialled), pc.starts_with(dialled, plan.international_prefix)
    )
    plain = pc.and_(plain, pc.less_equal(pc.binary_length(dialled), MAX_DIGITS))
    prefixes = [p for p in plan.strip if p.isdigit()]
    if plan.national_prefix:
        prefixes.append(plan.national_prefix)
    if prefixes:
        plain = pc.and_not(plain, pc.match_substring_regex(dialled, _starts_with_any(prefixes)))
    return plain


def _starts_with_any(prefixes) -> str:
    """An RE2 pattern matching the longest of `prefixes` at the start (alternatives are tried
    in order, so the longest goes first)."""
    ordered = sorted(prefixes, key=len, reverse=True)
    return "^(?:" + "|".join(re.escape(p) for p in ordered) + ")"


def _normalise(dialled: pa.Array, plan: NumberingPlan) -> pa.Array:
    digits = dialled
    if plan.strip:
        digits = pc.replace_substring_regex(
            digits, _starts_with_any(plan.strip), "", max_replacements=1
        )
    for separator in _SEPARATORS:
        digits = pc.replace_substring(digits, separator, "")
    # All masks come from the same text, so "+00…" loses only its "+": ONE prefix per number,
    # and a number that had an international prefix is never read as national.
    plus = pc.starts_with(digits, "+")
    intl = pc.and_not(pc.starts_with(digits, plan.international_prefix), plus)
    national = None
    if plan.national_prefix:
        width = len(plan.national_prefix)
        national = pc.and_(
            pc.and_not(pc.and_not(pc.starts_with(digits, plan.national_prefix), plus), intl),
            pc.greater(pc.utf8_length(digits), width),
        )
    for mask, width in ((plus, 1), (intl, len(plan.international_prefix))):
        if pc.any(mask).as_py():
            digits = pc.if_else(mask, pc.utf8_slice_codeunits(digits, width), digits)
    if national is not None and pc.any(national).as_py():
        rest = pc.utf8_slice_codeunits(digits, len(plan.national_prefix))
        international = pc.binary_join_element_wise(plan.country_code, rest, "")
        digits = pc.if_else(national, international, digits)
    # ascii_is_decimal is false for "" too, which covers "+" or "00" dialled alone.
    return _null_unless_digits(digits)


def _null_unless_digits(digits: pa.Array) -> pa.Array:
    """`digits` with nulls where not all digits (or too many), reusing the string buffers."""
    dialable = pc.and_(
        pc.ascii_is_decimal(digits), pc.less_equal(pc.binary_length(digits), MAX_DIGITS)
    )
    if dialable.null_count == 0 and pc.all(dialable).as_py():
        return digits
    keep = pc.fill_null(dialable, False)
    if digits.offset or keep.offset:
        return pc.if_else(keep, digits, pa.scalar(None, pa.string()))
    # A boolean array's values are a bitmap in the validity-bitmap layout, so the mask can
    # become the validity of the same offsets and characters.
    validity = keep.buffers()[1]
    return pa.Array.from_buffers(pa.string(), len(digits), [validity, *digits.buffers()[1:]])


def normalise_number(dialled: str, plan: NumberingPlan | None = None) -> str | None:
    """The scalar form of `normalise_numbers`, for tests and one-off lookups."""
    plan = plan or DEFAULT_PLAN
    digits = dialled
    for prefix in sorted(plan.strip, key=len, reverse=True):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
            break
    digits = digits.replace(" ", "").replace("-", "")
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith(plan.international_prefix):
        digits = digits[len(plan.international_prefix) :]
    elif (
        plan.national_prefix
        and digits.startswith(plan.national_prefix)
        and len(digits) > len(plan.national_prefix)
    ):
        digits = plan.country_code + digits[len(plan.national_prefix) :]
    dialable = digits.isascii() and digits.isdecimal() and len(digits) <= MAX_DIGITS
    return digits if dialable else None
