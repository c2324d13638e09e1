"""A rated file's calls added up for the fraud rules: counters per account, destination group
and hour of the call, the evidence an alert shows, and what only a file's own calls can tell.

Counters are integers (calls, seconds, micro-units), so adding files in any order gives the
same totals. They are bucketed by the hour the call started (UTC), never by when the file
arrived: a file that comes a day late lands in the hours its calls were made. The work per
file is a few Arrow group-bys over its parts; the output grows with accounts x destination
groups x hours (and suppliers x groups x hours), never with calls.

- `Counter` per (party, account, group, hour): party `customer` is the account that sent the
  call, `supplier` the one that carried it (for ASR). Group `*` is every destination of the
  account; a group `range:PREFIX` counts calls to one IRSF range (functions.fraud.ranges).
- `Evidence` per (account, group) of the file: its top called numbers, sample call ids, the
  dearest rate and the hours it spans; what an alert shows besides the numbers.
- `CallBurst` per account: the most calls started in any 60 s of the file.
- `Callback` per (account, number range, hour): distinct callers to one dear range.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.fraud.destinations import DestinationGroups
from functions.fraud.ranges import RangeList
from functions.shared.money import AMOUNT_SCALE, RATE_SCALE, units_from_decimal_array

ALL = "*"  # the group of every destination
RANGE = "range:"  # prefix of a range's group
SHORT_SECONDS = 6  # an answered call this short or shorter is "short" (46labs, Telnyx)
CUSTOMER, SUPPLIER = "customer", "supplier"
FIELDS = ("calls", "answered", "seconds", "amount", "short")
TOP_NUMBERS = 5
SAMPLES = 3
_KEEP_PER_PART = 50  # numbers kept per (account, group) and part before the final top 5
_MIN_CALLERS = 10  # a callback range below this many callers is not worth keeping
# Columns of the rated table the tally reads (functions.rate.parties builds them).
COLUMNS = (
    "call_id",
    "start_time",
    "caller",
    "callee",
    "billsec",
    "status",
    "customer",
    "customer_rate",
    "customer_amount",
    "supplier",
)


@dataclass(frozen=True, slots=True)
class Counter:
    party: str
    account: str
    group: str
    hour: int  # epoch hours (UTC) of the calls' start
    calls: int = 0  # attempts
    answered: int = 0
    seconds: int = 0  # answered seconds
    amount: int = 0  # the account's charge, micro-units of its currency (customers only)
    short: int = 0  # answered calls of SHORT_SECONDS or less

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.party, self.account, self.group, self.hour)

    def values(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in FIELDS}

    def plus(self, other: Counter) -> Counter:
        return Counter(*self.key, **{n: getattr(self, n) + getattr(other, n) for n in FIELDS})


@dataclass(frozen=True, slots=True)
class TopNumber:
    number: str
    calls: int
    seconds: int
    amount: int  # micro-units

    def as_json(self) -> dict:
        return {
            "number": self.number,
            "calls": self.calls,
            "seconds": self.seconds,
            "amount": self.amount,
        }


@dataclass(frozen=True, slots=True)
class Evidence:
    account: str
    group: str
    first_hour: int
    last_hour: int
    top: tuple[TopNumber, ...]
    samples: tuple[str, ...]  # call ids
    max_rate: int  # dearest customer rate per minute, units of 10^-8

    def as_json(self) -> dict:
        return {
            "account": self.account,
            "group": self.group,
            "first_hour": self.first_hour,
            "last_hour": self.last_hour,
            "top": [t.as_json() for t in self.top],
            "samples": list(self.samples),
            "max_rate": self.max_rate,
        }

    @classmethod
    def from_json(cls, data: dict) -> Evidence:
        return cls(
            account=data["account"],
            group=data["group"],
            first_hour=int(data["first_hour"]),
            last_hour=int(data["last_hour"]),
            top=tuple(TopNumber(**t) for t in data["top"]),
            samples=tuple(data["samples"]),
            max_rate=int(data["max_rate"]),
        )


@dataclass(frozen=True, slots=True)
class CallBurst:
    account: str
    calls: int  # calls started within 60 s of the first of them
    start: int  # epoch seconds of that first call


@dataclass(frozen=True, slots=True)
class Callback:
    account: str
    number_range: str  # the callee without its last masked digits
    group: str
    hour: int
    callers: int  # distinct callers
    calls: int
    listed: bool  # on the IRSF range list


@dataclass
class FileTally:
    """Everything the rules need from one file."""

    counters: list[Counter] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    bursts: list[CallBurst] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)
    calls: int = 0

    def touched(self) -> set[tuple[str, str, str, int]]:
        return {c.key for c in self.counters}


def merge(counters: Iterable[Counter]) -> list[Counter]:
    """Counters of the same key added up (parts of a file, or files)."""
    out: dict[tuple, Counter] = {}
    for counter in counters:
        out[counter.key] = out[counter.key].plus(counter) if counter.key in out else counter
    return sorted(out.values(), key=lambda c: c.key)


def merge_evidence(items: Sequence[Evidence]) -> Evidence:
    """One account x group's evidence over several files: numbers added, the top kept."""
    numbers: dict[str, list[int]] = {}
    for item in items:
        for top in item.top:
            held = numbers.setdefault(top.number, [0, 0, 0])
            held[0] += top.calls
            held[1] += top.seconds
            held[2] += top.amount
    ranked = sorted(numbers.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    samples: list[str] = []
    for item in items:
        samples += [s for s in item.samples if s not in samples]
    return Evidence(
        account=items[0].account,
        group=items[0].group,
        first_hour=min(i.first_hour for i in items),
        last_hour=max(i.last_hour for i in items),
        top=tuple(TopNumber(n, *v) for n, v in ranked[:TOP_NUMBERS]),
        samples=tuple(samples[:SAMPLES]),
        max_rate=max(i.max_rate for i in items),
    )


class Tally:
    """Adds a file's rated parts up; `finish` gives the FileTally.

    `dear_rate` (units of 10^-8 per minute) and `masked_digits` come from the tenant's
    policy: a call at or above that rate, or to a listed range, may be a callback.
    """

    def __init__(
        self,
        groups: DestinationGroups,
        ranges: RangeList,
        *,
        dear_rate: int,
        masked_digits: int,
    ) -> None:
        self.groups = groups
        self.ranges = ranges
        self.dear_rate = dear_rate
        self.masked_digits = masked_digits
        self._sums: list[pa.Table] = []
        self._groups: list[pa.Table] = []
        self._numbers: list[pa.Table] = []
        self._samples: list[pa.Table] = []
        self._starts: list[tuple[np.ndarray, np.ndarray]] = []
        self._callers: list[pa.Table] = []
        self._accounts: dict[str, int] = {}  # account -> code, for the bursts' sort key
        self.calls = 0

    # --- per part ------------------------------------------------------------------------

    def add(self, part: pa.Table) -> None:
        if part.num_rows == 0:
            return
        self.calls += part.num_rows
        callee = _plain(part.column("callee"))
        group_code = self.groups.codes(callee)
        group = pa.array(np.asarray(self.groups.names, dtype=object)[group_code], pa.string())
        range_index, kind = self.ranges.match(callee)
        hour = np.floor_divide(
            pc.cast(part.column("start_time"), pa.int64()).to_numpy(), 3_600_000_000
        )
        billsec = part.column("billsec").to_numpy(zero_copy_only=False)
        answered = billsec > 0
        rated = pc.equal(_plain(part.column("status")), "rated")
        amount = units_from_decimal_array(part.column("customer_amount"), AMOUNT_SCALE)
        amount = np.where(pc.fill_null(rated, False).to_numpy(zero_copy_only=False), amount, 0)
        rate = units_from_decimal_array(part.column("customer_rate"), RATE_SCALE)
        rate = np.where(
            pc.is_valid(part.column("customer_rate")).to_numpy(zero_copy_only=False), rate, 0
        )
        customer = _plain(part.column("customer"))
        supplier = _plain(part.column("supplier"))
        base = {
            "hour": pa.array(hour, pa.int64()),
            "calls": pa.array(np.ones(len(hour), np.int64)),
            "answered": pa.array(answered.astype(np.int64)),
            "seconds": pa.array(np.where(answered, billsec, 0).astype(np.int64)),
            "amount": pa.array(amount.astype(np.int64)),
            "short": pa.array((answered & (billsec <= SHORT_SECONDS)).astype(np.int64)),
        }
        listed = range_index >= 0
        range_group = pa.array(
            np.where(
                listed,
                np.char.add(
                    RANGE,
                    np.asarray([r.prefix for r in self.ranges.ranges] + [""], dtype=object)[
                        range_index
                    ].astype(str),
                ),
                "",
            ),
            pa.string(),
        )
        views = [
            (CUSTOMER, customer, group, None),
            (
                CUSTOMER,
                customer,
                pa.array(np.full(len(hour), ALL, dtype=object), pa.string()),
                None,
            ),
            (CUSTOMER, customer, range_group, listed),
            (SUPPLIER, supplier, group, None),
        ]
        no_amount = pa.array(np.zeros(len(hour), np.int64))
        for party, account, groups, only in views:
            # A supplier's counters are for its ASR: the customer's charge is not its money.
            amounts = {"amount": no_amount} if party == SUPPLIER else {}
            table = pa.table({"account": account, "group": groups, **base, **amounts})
            keep = pc.is_valid(account)
            if only is not None:
                keep = pc.and_(keep, pa.array(only))
            table = table.filter(keep)
            if table.num_rows == 0:
                continue
            summed = table.group_by(["account", "group", "hour"], use_threads=False).aggregate(
                [(name, "sum") for name in FIELDS]
            )
            summed = summed.rename_columns(["account", "group", "hour", *FIELDS])
            self._sums.append(summed.append_column("party", pa.array([party] * summed.num_rows)))
        calls = pa.table(
            {
                "account": customer,
                "group": group,
                "number": callee,
                "call_id": _plain(part.column("call_id")),
                "hour": base["hour"],
                "calls": base["calls"],
                "seconds": base["seconds"],
                "amount": base["amount"],
                "rate": pa.array(rate.astype(np.int64)),
            }
        ).filter(pc.is_valid(customer))
        self._add_numbers(calls)
        if listed.any():  # the calls to IRSF ranges explain the range rules' alerts
            ranged = calls.set_column(1, "group", range_group.filter(pc.is_valid(customer)))
            self._add_numbers(ranged.filter(pc.starts_with(ranged["group"], RANGE)))
        self._add_starts(customer, part.column("start_time"))
        self._add_callers(customer, group, callee, part.column("caller"), hour, rate, kind)

    def _add_numbers(self, calls: pa.Table) -> None:
        """A part's calls per account x group: the group's span and dearest rate (over every
        call), its busiest numbers and longest calls (kept to a few per part: the top of the
        file is among the tops of its parts, give or take a number split across parts)."""
        if calls.num_rows == 0:
            return
        self._groups.append(
            calls.group_by(["account", "group"], use_threads=False).aggregate(
                [("rate", "max"), ("hour", "min"), ("hour", "max")]
            )
        )
        per_number = calls.group_by(["account", "group", "number"], use_threads=False).aggregate(
            [("calls", "sum"), ("seconds", "sum"), ("amount", "sum")]
        )
        self._numbers.append(_top_per_group(per_number, _KEEP_PER_PART))
        ids = calls.select(["account", "group", "call_id", "seconds"])
        self._samples.append(_top_rows(ids, ["account", "group"], "seconds", SAMPLES))

    def _add_starts(self, customer, start_time) -> None:
        names = pc.fill_null(customer, "")
        encoded = names.dictionary_encode()
        local = encoded.dictionary.to_pylist()
        codes = np.array(
            [self._accounts.setdefault(n, len(self._accounts)) for n in local], dtype=np.int64
        )
        seconds = np.floor_divide(pc.cast(start_time, pa.int64()).to_numpy(), 1_000_000)
        account = codes[encoded.indices.to_numpy(zero_copy_only=False)]
        valid = pc.is_valid(customer).to_numpy(zero_copy_only=False)
        self._starts.append((account[valid], seconds[valid]))

    def _add_callers(self, customer, group, callee, caller, hour, rate, kind) -> None:
        candidate = (rate >= self.dear_rate) | (kind >= 0)
        if not candidate.any():
            return
        keep = pa.array(candidate)
        cut = pc.utf8_length(callee).to_numpy(zero_copy_only=False) - self.masked_digits
        table = pa.table(
            {
                "account": customer,
                "group": group,
                "callee": callee,
                "cut": pa.array(np.maximum(cut, 1)),
                "caller": _plain(caller),
                "hour": pa.array(hour, pa.int64()),
                "listed": pa.array(kind >= 0),
            }
        ).filter(keep)
        table = table.filter(pc.and_(pc.is_valid(table["account"]), pc.is_valid(table["caller"])))
        if table.num_rows == 0:
            return
        ranges = _cut(table["callee"], table["cut"])
        table = pa.table(
            {
                "account": table["account"],
                "group": table["group"],
                "number_range": ranges,
                "hour": table["hour"],
                "caller": table["caller"],
                "listed": table["listed"],
                "calls": pa.array(np.ones(table.num_rows, np.int64)),
            }
        )
        # Distinct callers are not additive over parts: keep each (range, hour, caller) once.
        self._callers.append(
            table.group_by(
                ["account", "group", "number_range", "hour", "caller"], use_threads=False
            )
            .aggregate([("calls", "sum"), ("listed", "max")])
            .rename_columns(
                ["account", "group", "number_range", "hour", "caller", "calls", "listed"]
            )
        )

    # --- at the end ------------------------------------------------------------------------

    def finish(self) -> FileTally:
        return FileTally(
            counters=self._counters(),
            evidence=self._evidence(),
            bursts=self._bursts(),
            callbacks=self._callbacks(),
            calls=self.calls,
        )

    def _counters(self) -> list[Counter]:
        if not self._sums:
            return []
        both = pa.concat_tables(self._sums)
        summed = both.group_by(["party", "account", "group", "hour"], use_threads=False).aggregate(
            [(name, "sum") for name in FIELDS]
        )
        columns = [summed.column(i).to_pylist() for i in range(summed.num_columns)]
        return sorted((Counter(*row) for row in zip(*columns, strict=True)), key=lambda c: c.key)

    def _evidence(self) -> list[Evidence]:
        if not self._groups:
            return []
        per_group = (
            pa.concat_tables(self._groups)
            .group_by(["account", "group"], use_threads=False)
            .aggregate([("rate_max", "max"), ("hour_min", "min"), ("hour_max", "max")])
        )
        per_number = (
            pa.concat_tables(self._numbers)
            .group_by(["account", "group", "number"], use_threads=False)
            .aggregate([("calls_sum", "sum"), ("seconds_sum", "sum"), ("amount_sum", "sum")])
            .rename_columns(
                ["account", "group", "number", "calls_sum", "seconds_sum", "amount_sum"]
            )
        )
        top = _top_per_group(per_number, TOP_NUMBERS)
        samples = _top_rows(
            pa.concat_tables(self._samples), ["account", "group"], "seconds", SAMPLES
        )
        tops: dict[tuple[str, str], list[TopNumber]] = {}
        for row in top.to_pylist():
            tops.setdefault((row["account"], row["group"]), []).append(
                TopNumber(row["number"], row["calls_sum"], row["seconds_sum"], row["amount_sum"])
            )
        ids: dict[tuple[str, str], list[str]] = {}
        for row in samples.to_pylist():
            ids.setdefault((row["account"], row["group"]), []).append(row["call_id"])
        return [
            Evidence(
                account=row["account"],
                group=row["group"],
                first_hour=row["hour_min_min"],
                last_hour=row["hour_max_max"],
                top=tuple(tops.get((row["account"], row["group"]), ())),
                samples=tuple(ids.get((row["account"], row["group"]), ())),
                max_rate=row["rate_max_max"],
            )
            for row in sorted(per_group.to_pylist(), key=lambda r: (r["account"], r["group"]))
        ]

    def _bursts(self) -> list[CallBurst]:
        """Per account, the most calls started in a 60 s window (sliding, not per clock
        minute: a tumbling minute lets twice the limit through across its edge)."""
        if not self._starts:
            return []
        account = np.concatenate([a for a, _ in self._starts])
        seconds = np.concatenate([s for _, s in self._starts])
        if len(seconds) == 0:
            return []
        order = np.lexsort((seconds, account))
        account, seconds = account[order], seconds[order]
        # One sorted key per call: the account in the high bits, its start below.
        key = account * (1 << 40) + (seconds - seconds.min())
        within = np.searchsorted(key, key + 60, side="left") - np.arange(len(key))
        names = {code: name for name, code in self._accounts.items()}
        bursts = []
        boundaries = np.flatnonzero(np.diff(account)) + 1
        for chunk in np.split(np.arange(len(key)), boundaries):
            best = chunk[np.argmax(within[chunk])]
            bursts.append(
                CallBurst(names[int(account[best])], int(within[best]), int(seconds[best]))
            )
        return sorted(bursts, key=lambda b: b.account)

    def _callbacks(self) -> list[Callback]:
        if not self._callers:
            return []
        callers = pa.concat_tables(self._callers)
        per_caller = callers.group_by(
            ["account", "group", "number_range", "hour", "caller"], use_threads=False
        ).aggregate([("calls", "sum"), ("listed", "max")])
        per_range = per_caller.group_by(
            ["account", "group", "number_range", "hour"], use_threads=False
        ).aggregate([("caller", "count"), ("calls_sum", "sum"), ("listed_max", "max")])
        per_range = per_range.filter(pc.greater_equal(per_range["caller_count"], _MIN_CALLERS))
        return [
            Callback(
                account=r["account"],
                number_range=r["number_range"],
                group=r["group"],
                hour=r["hour"],
                callers=r["caller_count"],
                calls=r["calls_sum_sum"],
                listed=bool(r["listed_max_max"]),
            )
            for r in sorted(
                per_range.to_pylist(), key=lambda r: (r["account"], r["number_range"], r["hour"])
            )
        ]


def _plain(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A string column as plain strings (the lake stores some dictionary-encoded)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column


def _cut(values: pa.Array | pa.ChunkedArray, lengths: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each string's first `lengths[i]` characters. Arrow slices by one length for all
    rows, so the rows go by their length: numbers have few distinct lengths."""
    values = _plain(values)
    lengths = lengths.combine_chunks() if isinstance(lengths, pa.ChunkedArray) else lengths
    # Arrow has no per-row slice length; group rows by their cut length (few distinct ones).
    cut = lengths.to_numpy(zero_copy_only=False)
    out = np.empty(len(values), dtype=object)
    for length in np.unique(cut):
        rows = np.flatnonzero(cut == length)
        picked = pc.utf8_slice_codeunits(values.take(pa.array(rows)), 0, int(length))
        out[rows] = np.asarray(picked.to_pylist(), dtype=object)
    return pa.array(out, pa.string())


def _top_rows(table: pa.Table, keys: list[str], by: str, n: int) -> pa.Table:
    """The `n` rows with the largest `by` per key group."""
    if table.num_rows == 0:
        return table
    order = pc.sort_indices(table, [(k, "ascending") for k in keys] + [(by, "descending")])
    table = table.take(order)
    rank = _rank_within(table, keys)
    return table.filter(pa.array(rank < n))


def _top_per_group(table: pa.Table, n: int) -> pa.Table:
    """The `n` numbers per (account, group) with the most seconds (then calls)."""
    if table.num_rows == 0:
        return table
    seconds = "seconds_sum" if "seconds_sum" in table.column_names else "seconds"
    calls = "calls_sum" if "calls_sum" in table.column_names else "calls"
    order = pc.sort_indices(
        table,
        [
            ("account", "ascending"),
            ("group", "ascending"),
            (seconds, "descending"),
            (calls, "descending"),
            ("number", "ascending"),
        ],
    )
    table = table.take(order)
    return table.filter(pa.array(_rank_within(table, ["account", "group"]) < n))


def _rank_within(table: pa.Table, keys: list[str]) -> np.ndarray:
    """0, 1, 2, ... within each run of equal keys of a table sorted by them."""
    n = table.num_rows
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for key in keys:
        column = _plain(table.column(key))
        same = pc.equal(column.slice(1), column.slice(0, n - 1))
        change[1:] |= ~pc.fill_null(same, False).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(change)
    run_start = starts[np.cumsum(change) - 1]
    return np.arange(n) - run_start
