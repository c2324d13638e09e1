"""Callee normalisation: what a customer dialled, reduced to the E.164 digits rating matches on.

Rule (shared by the vectorised and the scalar form): drop spaces and dashes, then drop ONE
international prefix, either `+` or `00`; what remains must be a non-empty run of ASCII digits.
National formats (a leading single `0`, `011` from NANP) are kept as dialled: turning them
into E.164 needs the customer's numbering plan, which the rate deck match handles.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

_SEPARATORS = (" ", "-")
_PREFIXES = ("+", "00")


def normalise_numbers(dialled: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Normalised digits per row; null where the number is not dialable (or was null)."""
    if isinstance(dialled, pa.ChunkedArray):
        dialled = dialled.combine_chunks()
    # Bare digits without a leading "00" are already normalised.
    plain = pc.fill_null(
        pc.and_not(pc.ascii_is_decimal(dialled), pc.starts_with(dialled, "00")), False
    )
    if len(dialled) >= 1024 and not pc.all(plain).as_py():
        # Most switches send bare digits: only the other rows need the rewrite.
        others = pc.invert(plain)
        rewritten = _normalise(dialled.filter(others))
        return pc.replace_with_mask(dialled, others, rewritten)
    return _normalise(dialled)


def _normalise(dialled: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    digits = dialled
    for separator in _SEPARATORS:
        digits = pc.replace_substring(digits, separator, "")
    # Both masks come from the same text, so "+00…" loses only its "+": ONE prefix per number.
    plus = pc.starts_with(digits, "+")
    intl = pc.and_not(pc.starts_with(digits, "00"), plus)
    for mask, width in ((plus, 1), (intl, 2)):
        if pc.any(mask).as_py():
            digits = pc.if_else(mask, pc.utf8_slice_codeunits(digits, width), digits)
    # ascii_is_decimal is false for "" too, which covers "+" or "00" dialled alone.
    if isinstance(digits, pa.ChunkedArray):
        return pa.chunked_array([_null_unless_digits(c) for c in digits.chunks], type=pa.string())
    return _null_unless_digits(digits)


def _null_unless_digits(digits: pa.Array) -> pa.Array:
    """`digits` with nulls where not all digits, reusing the string buffers (no copy)."""
    dialable = pc.ascii_is_decimal(digits)
    if dialable.null_count == 0 and pc.all(dialable).as_py():
        return digits
    keep = pc.fill_null(dialable, False)
    if digits.offset or keep.offset:
        return pc.if_else(keep, digits, pa.scalar(None, pa.string()))
    # A boolean array's values are a bitmap in the validity-bitmap layout, so the mask can
    # become the validity of the same offsets and characters.
    validity = keep.buffers()[1]
    return pa.Array.from_buffers(pa.string(), len(digits), [validity, *digits.buffers()[1:]])


def normalise_number(dialled: str) -> str | None:
    """The scalar form of `normalise_numbers`, for tests and one-off lookups."""
    digits = dialled.replace(" ", "").replace("-", "")
    for prefix in _PREFIXES:
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
            break
    return digits if digits.isascii() and digits.isdecimal() else None
