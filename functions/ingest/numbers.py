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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_SEPARATORS = b" -"  # dropped wherever they stand
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
    `callee is dialled`. Separators and international prefixes are dropped from the column's
    bytes with NumPy (one scan, one compaction each): the same rule as `normalise_number`,
    at a fraction of what a kernel per step costs on the half of a column that needs them.
    """
    plan = plan or DEFAULT_PLAN
    if isinstance(dialled, pa.ChunkedArray):
        dialled = dialled.combine_chunks()
    digits = _strip_tech_prefix(dialled, plan) if plan.strip else dialled
    text = _Bytes.of(digits)
    separators = np.zeros(len(text.values), bool)
    for byte in _SEPARATORS:
        separators |= text.values == byte
    text.drop(separators)
    # All masks come from the same text, so "+00…" loses only its "+": ONE prefix per number,
    # and a number that had an international prefix is never read as national.
    plus = text.starts_with(b"+")
    intl = text.starts_with(plan.international_prefix.encode()) & ~plus
    national = None
    if plan.national_prefix:
        width = len(plan.national_prefix)
        national = text.starts_with(plan.national_prefix.encode()) & ~plus & ~intl
        national &= text.lengths() > width
    text.drop_leading(plus + intl * len(plan.international_prefix))
    digits = text.array(digits)
    if national is not None and national.any():
        rows = pa.array(national)
        rest = pc.utf8_slice_codeunits(digits.filter(rows), len(plan.national_prefix))
        country = pa.scalar(plan.country_code, digits.type)  # (a large_string column too)
        international = pc.binary_join_element_wise(country, rest, pa.scalar("", digits.type))
        digits = pc.replace_with_mask(digits, rows, international)
    # ascii_is_decimal is false for "" too, which covers "+" or "00" dialled alone.
    return _null_unless_digits(digits)


def _strip_tech_prefix(dialled: pa.Array, plan: NumberingPlan) -> pa.Array:
    """ONE tech prefix off the rows that start with one (the longest that matches)."""
    pattern = _starts_with_any(plan.strip)
    rows = pc.fill_null(pc.match_substring_regex(dialled, pattern), False)
    if not pc.any(rows).as_py():
        return dialled
    stripped = pc.replace_substring_regex(dialled.filter(rows), pattern, "", max_replacements=1)
    return pc.replace_with_mask(dialled, rows, stripped)


def _starts_with_any(prefixes) -> str:
    """An RE2 pattern matching the longest of `prefixes` at the start (alternatives are tried
    in order, so the longest goes first)."""
    ordered = sorted(prefixes, key=len, reverse=True)
    return "^(?:" + "|".join(re.escape(p) for p in ordered) + ")"


class _Bytes:
    """A string column's bytes and offsets as NumPy arrays, for dropping bytes in place of
    kernels that each copy the column. Only ASCII bytes are ever dropped, so the text stays
    UTF-8; nulls keep whatever bytes their slots have, and stay null."""

    def __init__(self, values: np.ndarray, offsets: np.ndarray) -> None:
        self.values, self.offsets = values, offsets  # offsets from 0, one more than rows
        self.changed = False

    @classmethod
    def of(cls, text: pa.Array) -> _Bytes:
        wide = pa.types.is_large_string(text.type)
        offsets = np.zeros(len(text) + 1, np.int64)
        if len(text):
            stored = np.frombuffer(text.buffers()[1], np.int64 if wide else np.int32)
            offsets = stored[text.offset : text.offset + len(text) + 1].astype(np.int64)
        first, size = int(offsets[0]), int(offsets[-1] - offsets[0])
        data = text.buffers()[2] if len(text) else None
        values = np.frombuffer(data, np.uint8, size, first) if size else np.zeros(0, np.uint8)
        return cls(values, offsets - first)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def starts_with(self, prefix: bytes) -> np.ndarray:
        """Rows whose text starts with `prefix`."""
        rows = self.lengths() >= len(prefix)
        if not len(self.values):
            return rows
        for k, byte in enumerate(prefix):
            rows &= np.take(self.values, self.offsets[:-1] + k, mode="clip") == byte
        return rows

    def drop(self, dropped: np.ndarray) -> None:
        """Drop the bytes `dropped` marks (a mask over all of them)."""
        if not dropped.any():
            return
        # Dropped bytes before each position; 32-bit counts sum five times faster.
        width = np.int32 if len(dropped) < 1 << 31 else np.int64
        before = np.zeros(len(dropped) + 1, width)
        np.cumsum(dropped, out=before[1:])
        self.offsets = self.offsets - before[self.offsets]
        self.values = self.values[~dropped]
        self.changed = True

    def drop_leading(self, widths: np.ndarray) -> None:
        """Drop the first `widths[i]` bytes of each row i."""
        if not widths.any():
            return
        dropped = np.zeros(len(self.values), bool)
        for k in range(int(widths.max())):
            dropped[self.offsets[:-1][widths > k] + k] = True
        self.values = self.values[~dropped]
        self.offsets = self.offsets - np.concatenate([[0], np.cumsum(widths)])
        self.changed = True

    def array(self, original: pa.Array) -> pa.Array:
        """The text as an array like `original` (with its nulls); `original` itself when
        nothing was dropped."""
        if not self.changed:
            return original
        wide = pa.types.is_large_string(original.type)
        offsets = self.offsets.astype(np.int64 if wide else np.int32)
        validity = None
        if original.null_count:
            # A boolean array's values are a bitmap in the validity-bitmap layout.
            validity = pc.is_valid(original).buffers()[1]
        buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(self.values)]
        return pa.Array.from_buffers(original.type, len(original), buffers)


def _null_unless_digits(digits: pa.Array) -> pa.Array:
    """`digits` with nulls where not all digits (or too many), reusing the string buffers."""
    dialable = pc.and_(
        pc.ascii_is_decimal(digits), pc.less_equal(pc.binary_length(digits), MAX_DIGITS)
    )
    if dialable.null_count == 0 and pc.all(dialable).as_py():
        return digits
    keep = pc.fill_null(dialable, False)
    if digits.offset or keep.offset:
        return pc.if_else(keep, digits, pa.scalar(None, digits.type))
    # A boolean array's values are a bitmap in the validity-bitmap layout, so the mask can
    # become the validity of the same offsets and characters.
    validity = keep.buffers()[1]
    return pa.Array.from_buffers(digits.type, len(digits), [validity, *digits.buffers()[1:]])


def normalise_number(dialled: str, plan: NumberingPlan | None = None) -> str | None:
    """The scalar form of `normalise_numbers`, for tests and one-off lookups."""
    plan = plan or DEFAULT_PLAN
    digits = dialled
    for prefix in sorted(plan.strip, key=len, reverse=True):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
            break
    for separator in _SEPARATORS.decode():
        digits = digits.replace(separator, "")
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
