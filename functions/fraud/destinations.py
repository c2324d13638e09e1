"""The destination group (country or international network) of each callee, column-wise.

The table is countries.csv beside this module (`prefix,group`): every ITU-T E.164 assigned
country code, the NANP split by area code (+1 is the United States unless the area code belongs
to Canada or a Caribbean/Pacific member), +7 split between Russia and Kazakhstan (76, 77), and
the satellite and international networks (881 6/7 Iridium, 882 16 Thuraya). Its header says
where the data comes from. The fraud rules count minutes per group, so a number's group is the
longest prefix it matches; one that matches none is "Unknown".
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from functions.shared.prefixes import longest_prefix

COUNTRIES = Path(__file__).with_name("countries.csv")
UNKNOWN = "Unknown"


def read_rows(path: Path = COUNTRIES) -> tuple[tuple[str, str], ...]:
    """The (prefix, group) rows of a groups CSV: '#' lines are notes, then the header."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    reader = csv.reader(lines)
    header = next(reader)
    if header != ["prefix", "group"]:
        raise ValueError(f"{path.name}: the header must be prefix,group, not {','.join(header)}")
    rows = []
    for number, row in enumerate(reader, start=2):
        if len(row) != 2:
            raise ValueError(f"{path.name} row {number}: expected prefix,group, got {row}")
        rows.append((row[0], row[1]))
    return tuple(rows)


class DestinationGroups:
    """Group names (sorted, "Unknown" last) and the prefix table that assigns them."""

    def __init__(self, rows: Iterable[tuple[str, str]]) -> None:
        owner: dict[str, str] = {}
        for prefix, group in rows:
            if not (prefix.isascii() and prefix.isdigit() and len(prefix) <= 15):
                raise ValueError(f"prefix {prefix!r} is not 1-15 digits")
            if not group or group != group.strip() or group == UNKNOWN:
                raise ValueError(f"prefix {prefix}: group {group!r} is not a group name")
            if prefix in owner:
                raise ValueError(f"prefix {prefix} is in {owner[prefix]} and {group}")
            owner[prefix] = group
        self.names: tuple[str, ...] = (*sorted(set(owner.values())), UNKNOWN)
        self.unknown = len(self.names) - 1
        self._prefixes = list(owner)
        self._index = {prefix: i for i, prefix in enumerate(self._prefixes)}
        code = {name: index for index, name in enumerate(self.names)}
        # One entry per prefix, then Unknown: longest_prefix's -1 (no match) takes the last.
        self._group_of = np.array(
            [code[owner[p]] for p in self._prefixes] + [self.unknown], dtype=np.int32
        )

    def name_of(self, number: str) -> str:
        """One number's group, in plain Python: for a handful of numbers (the seeded ranges'
        labels at import, where building an Arrow array would make pyarrow probe for pandas
        on every cold start)."""
        for length in range(min(len(number), 15), 0, -1):
            index = self._index.get(number[:length])
            if index is not None:
                return self.names[self._group_of[index]]
        return UNKNOWN

    def codes(self, callees: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Index into `names` of each callee's group (int32; a null callee is Unknown)."""
        return self._group_of[longest_prefix(callees, self._prefixes)]


@functools.cache
def default_groups() -> DestinationGroups:
    """The groups of countries.csv, read once per process."""
    return DestinationGroups(read_rows())
