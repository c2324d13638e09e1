"""Exact money: integer units of a fixed scale, one named rounding rule, Arrow decimal128 out.

Rates and connect fees are held as integers of 10^-8 (a deck may quote 8 decimal places).
Amounts are integers of 10^-d, d being the rounding's decimals (6 by default). Arithmetic on
these is exact integer arithmetic; the only inexact step is `Rounding.apply`, and the rating
contract calls it once per amount.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pyarrow as pa

RATE_SCALE = 8  # decimal places of a rate or connect fee as stored (units of 10^-8)
RATE_UNIT = 10**RATE_SCALE
# Amounts, balances, payments and credit limits: integers of micro-units (10^-6), whatever
# an account rounds its charges to.
AMOUNT_SCALE = 6
INT64_MAX = np.iinfo(np.int64).max


class RoundingMethod(enum.StrEnum):
    """How an exact amount becomes a payable one. Names follow the carriers' own terms."""

    HALF_UP = "half_up"  # nearest; exact halves away from zero (Decimal ROUND_HALF_UP)
    UP = "up"  # away from zero: never undercharges (Decimal ROUND_UP)
    DOWN = "down"  # toward zero: never overcharges (Decimal ROUND_DOWN)


@dataclass(frozen=True, slots=True)
class Rounding:
    decimals: int = 6
    method: RoundingMethod = RoundingMethod.HALF_UP

    def __post_init__(self) -> None:
        if not 0 <= self.decimals <= RATE_SCALE:
            raise ValueError(f"rounding decimals must be 0..{RATE_SCALE}, got {self.decimals}")
        object.__setattr__(self, "method", RoundingMethod(self.method))

    def divide(self, numerator: np.ndarray, divisor: int | np.ndarray) -> np.ndarray:
        """Round numerator/divisor to an integer by this rule, element-wise and exactly.

        `numerator` is int64 or, where int64 could overflow, an object array of Python ints;
        `divisor` is a positive integer or an array of them.
        """
        if np.any(np.asarray(divisor) <= 0):
            raise ValueError("divisor must be positive")
        negative = numerator < 0
        magnitude = np.where(negative, -numerator, numerator)
        if self.method is RoundingMethod.HALF_UP:
            # divisor may be odd: compare twice the remainder with the divisor.
            quotient, remainder = magnitude // divisor, magnitude % divisor
            quotient = quotient + (remainder * 2 >= divisor)
        elif self.method is RoundingMethod.UP:
            quotient = -((-magnitude) // divisor)
        else:
            quotient = magnitude // divisor
        return np.where(negative, -quotient, quotient)

    def quantize(self, value: Decimal) -> Decimal:
        """The same rule on one Decimal, for reference checks and single amounts."""
        from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP

        mode = {
            RoundingMethod.HALF_UP: ROUND_HALF_UP,
            RoundingMethod.UP: ROUND_UP,
            RoundingMethod.DOWN: ROUND_DOWN,
        }[self.method]
        return value.quantize(Decimal(1).scaleb(-self.decimals), rounding=mode)


def to_units(text: str, scale: int) -> int:
    """Parse a plain decimal string into integer units of 10^-scale; reject more digits."""
    value = Decimal(text)
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    scaled = value.scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{text!r} has more than {scale} decimal places")
    return int(scaled)


def units_to_str(units: int, scale: int) -> str:
    """Integer units of 10^-scale as a plain decimal string with exactly `scale` places."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(int(units)), 10**scale)
    return f"{sign}{whole}.{frac:0{scale}d}" if scale else f"{sign}{whole}"


def units_to_decimal(units: int, scale: int) -> Decimal:
    return Decimal(int(units)).scaleb(-scale)


def decimal_array(units: np.ndarray, scale: int, mask: np.ndarray | None = None) -> pa.Array:
    """Integer units (int64 or object ints) as an Arrow decimal128(18 or 38, scale) array.

    Builds the 16-byte little-endian two's-complement values directly from the integers, so
    no value ever passes through a float or a string.
    """
    if units.dtype == object:
        if len(units) and max(abs(int(u)) for u in (units.min(), units.max())) > INT64_MAX:
            raise OverflowError("amount exceeds int64 units")
        units = units.astype(np.int64)
    units = np.ascontiguousarray(units, dtype=np.int64)
    words = np.empty((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = units >> 63  # sign extension into the high word
    validity = None
    null_count = 0
    if mask is not None and mask.any():
        validity = pa.array(~mask, type=pa.bool_()).buffers()[1]
        null_count = int(mask.sum())
    precision = 18
    return pa.Array.from_buffers(
        pa.decimal128(precision, scale),
        len(units),
        [validity, pa.py_buffer(words.tobytes())],
        null_count=null_count,
    )


def units_from_decimal_array(array: pa.Array | pa.ChunkedArray, scale: int) -> np.ndarray:
    """Arrow decimal128 array → int64 units of 10^-scale (rescaled exactly or an error)."""
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    target = pa.decimal128(18, scale)
    if array.type != target:
        array = pc.cast(array, target)  # safe cast: fails rather than drop digits
    array = array.fill_null(Decimal(0))
    words = np.frombuffer(array.buffers()[1], dtype=np.int64)
    return words.reshape(-1, 2)[array.offset : array.offset + len(array), 0].copy()
