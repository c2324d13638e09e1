"""Longest-prefix matching of digit strings, column-wise: rating, plans and fraud share it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def longest_prefix(values: pa.Array | pa.ChunkedArray, prefixes: Sequence[str]) -> np.ndarray:
    """Index into `prefixes` of each value's longest matching prefix, or -1 (int32 per value).

    One pass per prefix length over all values, shorter first, so a longer match overwrites
    a shorter one (as functions.rate.rating._parents does for a deck).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    index = {prefix: i for i, prefix in enumerate(prefixes)}
    result = np.full(len(values), -1, dtype=np.int32)
    for length in sorted({len(p) for p in prefixes}):
        of_length = [p for p in prefixes if len(p) == length]
        head = pc.utf8_slice_codeunits(values, 0, length)
        found = pc.index_in(head, value_set=pa.array(of_length, pa.string()))
        found = pc.fill_null(found, -1).to_numpy(zero_copy_only=False)
        hit = found >= 0
        result[hit] = np.array([index[p] for p in of_length], dtype=np.int32)[found[hit]]
    return result
