"""What a supplier's proposed deck would do to the calls it carried: `tollgate deck impact`.

The calls. Every rated call of the window [since, until) whose supplier leg the supplier
carried (the rated table's `supplier`), as the lake holds it (each file's rated table holds the
calls it claimed: duplicates are not counted twice).

The proposed deck. Priced as it will stand once in force: per code, the entry in force at
`as_of` (its latest effective_from, or now if later), applied to every call of the window
whatever its date (a what-if: the deck's dates do not leave past calls unpriced). A closed code
leaves its calls unrated, as the rating engine would.

Re-pricing. The supplier leg alone, by the rating engine (`price_numbers`, `surcharges`): the
same lookup (longest prefix, origin), increments, connect fee, minimum, free seconds and the
supplier's own rounding, each charge rounded once; column-wise, no loop per call. A supplier's
volume tiers or bundles (contracts) are not applied to the proposed deck.

The money, per call, in integer micro-units:
* old cost: the supplier's rated charges of the call (usage and surcharge) as stored;
* new cost: usage plus surcharge by the proposed deck (0 where it has no rate: unrated);
* revenue: what the carrier is paid for the call, the rated charges whose counterparty is the
  carrier (the customer's, or the top reseller's), in the supplier's currency (a call whose
  revenue is in another currency counts no revenue and is reported).

Summed per destination of the proposed deck (name, and each matched prefix: the routes), with
the margins old and new; a destination or route loses money when its new cost exceeds its
revenue. Calls the proposed deck leaves unrated are summed apart, by the destination their
current rate priced them as, with their old cost and revenue only (no new cost: nothing would
be booked); the total is that of the calls the proposed deck prices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.rate.parties import CARRIER
from functions.rate.rated import start_seconds
from functions.rate.rating import (
    CallerNumbers,
    DeckIndex,
    DialledNumbers,
    price_numbers,
    surcharges,
    with_entry_defaults,
)
from functions.rate.timeline import in_force
from functions.shared.money import AMOUNT_SCALE, Rounding, units_from_decimal_array, units_to_str

RATED_COLUMNS = ("line", "start_time", "caller", "callee", "billsec", "supplier")
CHARGES_COLUMNS = ("line", "account", "role", "counterparty", "status", "amount", "currency")
CHARGES_DESTINATION = ("destination", "prefix")
_OPEN_FROM = -(1 << 62)
_OPEN_TO = 1 << 62
_SUMS = ("calls", "answered", "seconds", "old", "new", "revenue", "losing_calls")


def proposed_index(deck: pa.Table, currency: str, now: int) -> tuple[DeckIndex, int]:
    """The proposed deck's entries in force once it stands, open over all time, indexed; and
    the moment they were taken at (`as_of`)."""
    starts = pc.cast(deck.column("effective_from"), pa.int64()).to_numpy()
    dated = starts[starts > _OPEN_FROM]
    as_of = max(now, int(dated.max())) if len(dated) else now
    live = in_force(with_entry_defaults(deck), as_of)
    n = live.num_rows
    live = live.set_column(
        live.column_names.index("effective_from"),
        "effective_from",
        pa.array(np.full(n, _OPEN_FROM, np.int64)),
    ).set_column(
        live.column_names.index("effective_to"),
        "effective_to",
        pa.array(np.full(n, _OPEN_TO, np.int64)),
    )
    return DeckIndex.build(live, currency), as_of


def _plain(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column


def _per_line(lines: pa.Array, keys: pa.Array, values: np.ndarray) -> np.ndarray:
    """Sum of `values` per line of `keys`, for each of `lines` (0 where none)."""
    out = np.zeros(len(lines), np.int64)
    if len(keys) == 0:
        return out
    where = pc.fill_null(pc.index_in(keys, value_set=lines), -1).to_numpy().astype(np.int64)
    hit = where >= 0
    np.add.at(out, where[hit], values[hit])
    return out


def _first_per_line(lines: pa.Array, keys: pa.Array, values: pa.Array) -> pa.Array:
    """For each of `lines`, the value of its first row in `keys` (null where none)."""
    where = pc.index_in(lines, value_set=keys)
    return values.take(where)


def file_impact(
    rated: pa.Table,
    charges: pa.Table,
    *,
    supplier: str,
    currency: str,
    index: DeckIndex,
    rounding: Rounding,
    since: int,
    until: int,
) -> tuple[pa.Table, int]:
    """One file's calls of the window carried by `supplier`, re-priced: sums per (destination,
    prefix) of the proposed deck (null destination and prefix: unrated by it, with `old_name`
    the destination the current rate named); and how many calls had revenue in another
    currency."""
    if rated.num_rows == 0:
        return _empty(), 0
    micros = pc.cast(rated.column("start_time"), pa.int64())
    keep = pc.and_(
        pc.fill_null(pc.equal(_plain(rated.column("supplier")), supplier), False),
        pc.and_(pc.greater_equal(micros, since * 1_000_000), pc.less(micros, until * 1_000_000)),
    )
    calls = rated.filter(keep)
    n = calls.num_rows
    if n == 0:
        return _empty(), 0
    answered = np.asarray(pc.fill_null(calls.column("billsec"), 0).to_numpy(), np.int64)
    callers = CallerNumbers.of(calls.column("caller")) if index.has_origin else None
    pricing = price_numbers(
        index,
        DialledNumbers.of(calls.column("callee")),
        start_seconds(calls),
        answered,
        rounding,
        callers,
    )
    _, extra = surcharges(index, pricing, rounding)
    scale = 10 ** (AMOUNT_SCALE - rounding.decimals)
    new = (pricing.amount.astype(np.int64) + extra) * scale
    row = pricing.row
    unrated = ~pricing.rated
    taken = pa.array(np.maximum(row, 0), mask=unrated)
    deck = index.deck
    if len(deck):
        prefix = deck.column("prefix").combine_chunks().take(taken)
        destination = deck.column("destination").combine_chunks().take(taken)
    else:
        prefix = destination = pa.nulls(n, pa.string())

    lines = _plain(calls.column("line"))
    role = _plain(charges.column("role"))
    rated_charge = pc.equal(_plain(charges.column("status")), "rated")
    amount = units_from_decimal_array(charges.column("amount"), AMOUNT_SCALE)
    charge_lines = _plain(charges.column("line"))
    mine = pc.and_(
        pc.equal(role, "supplier"), pc.equal(_plain(charges.column("account")), supplier)
    )
    paid = pc.fill_null(pc.and_(mine, rated_charge), False).to_numpy(zero_copy_only=False)
    old = _per_line(lines, charge_lines.filter(paid), amount[paid])
    sold = pc.and_(
        pc.not_equal(role, "supplier"),
        pc.equal(_plain(charges.column("counterparty")), CARRIER),
    )
    sold = pc.fill_null(pc.and_(sold, rated_charge), False)
    same = pc.fill_null(pc.equal(_plain(charges.column("currency")), currency), False)
    income = pc.and_(sold, same).to_numpy(zero_copy_only=False)
    revenue = _per_line(lines, charge_lines.filter(income), amount[income])
    foreign = pc.and_(sold, pc.invert(same)).to_numpy(zero_copy_only=False)
    other = np.zeros(n, bool)
    if foreign.any():
        other = _per_line(lines, charge_lines.filter(foreign), np.ones(foreign.sum(), np.int64)) > 0
    if "destination" in charges.column_names:
        supplier_rows = charges.filter(pc.fill_null(mine, False))
        old_name = _first_per_line(
            lines,
            _plain(supplier_rows.column("line")),
            _plain(supplier_rows.column("destination")),
        )
    else:
        old_name = pa.nulls(n, pa.string())
    per_call = pa.table(
        {
            "destination": destination,
            "prefix": prefix,
            "old_name": pc.if_else(pa.array(unrated), old_name, pa.scalar(None, pa.string())),
            "calls": pa.array(np.ones(n, np.int64)),
            "answered": pa.array((answered > 0).astype(np.int64)),
            "seconds": pa.array(np.maximum(answered, 0)),
            "old": pa.array(old),
            "new": pa.array(new),
            "revenue": pa.array(revenue),
            "losing_calls": pa.array((new > revenue).astype(np.int64)),
        }
    )
    return _grouped(per_call), int(other.sum())


def _empty() -> pa.Table:
    fields = [pa.field(k, pa.string()) for k in ("destination", "prefix", "old_name")]
    fields += [pa.field(k, pa.int64()) for k in _SUMS]
    return pa.schema(fields).empty_table()


def _grouped(table: pa.Table) -> pa.Table:
    keys = ["destination", "prefix", "old_name"]
    summed = table.group_by(keys, use_threads=False).aggregate([(k, "sum") for k in _SUMS])
    summed = summed.rename_columns([c.removesuffix("_sum") for c in summed.column_names])
    return summed.select([*keys, *_SUMS]).cast(_empty().schema)


@dataclass
class Figures:
    """Sums of a group of calls, money in micro-units."""

    calls: int = 0
    answered: int = 0
    seconds: int = 0
    old: int = 0
    new: int = 0
    revenue: int = 0
    losing_calls: int = 0

    def add(self, other: Figures) -> None:
        for name in _SUMS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def loses(self) -> bool:
        return self.new > self.revenue

    def as_json(self) -> dict:
        minutes = (Decimal(self.seconds) / 60).quantize(Decimal("0.01"), ROUND_HALF_UP)
        return {
            "calls": self.calls,
            "answered": self.answered,
            "minutes": str(minutes),
            "old_cost": money(self.old),
            "new_cost": money(self.new),
            "difference": money(self.new - self.old),
            "revenue": money(self.revenue),
            "old_margin": money(self.revenue - self.old),
            "new_margin": money(self.revenue - self.new),
            "loses_money": self.loses,
            "losing_calls": self.losing_calls,
        }


def money(units: int) -> str:
    return units_to_str(units, AMOUNT_SCALE)


@dataclass
class Destination:
    name: str
    figures: Figures = field(default_factory=Figures)
    routes: dict[str, Figures] = field(default_factory=dict)  # by matched prefix


@dataclass
class Impact:
    destinations: dict[str, Destination] = field(default_factory=dict)
    unrated: dict[str, Figures] = field(default_factory=dict)  # by current destination name
    total: Figures = field(default_factory=Figures)
    other_currency_calls: int = 0


NO_DESTINATION = "(unnamed)"
# Calls the proposed deck leaves unrated have no new cost (nothing would be booked), not 0.
_UNPRICED = {
    "new_cost": None,
    "difference": None,
    "new_margin": None,
    "loses_money": False,
    "losing_calls": 0,
}


def summarise(parts: list[tuple[pa.Table, int]]) -> Impact:
    """The per-file sums of `file_impact` as one report (a row per group, not per call)."""
    impact = Impact()
    tables = [table for table, _ in parts if table.num_rows]
    impact.other_currency_calls = sum(other for _, other in parts)
    if not tables:
        return impact
    rows = _grouped(pa.concat_tables(tables)).to_pylist()
    for row in rows:
        figures = Figures(**{k: int(row[k]) for k in _SUMS})
        if row["prefix"] is None:
            name = row["old_name"] or NO_DESTINATION
            impact.unrated.setdefault(name, Figures()).add(figures)
            continue
        impact.total.add(figures)
        name = row["destination"] or NO_DESTINATION
        destination = impact.destinations.setdefault(name, Destination(name))
        destination.figures.add(figures)
        destination.routes.setdefault(row["prefix"], Figures()).add(figures)
    impact.destinations = dict(sorted(impact.destinations.items()))
    impact.unrated = dict(sorted(impact.unrated.items()))
    return impact


def impact_json(impact: Impact) -> dict:
    """Destinations (with their routes), the unrated calls and the totals; money as strings."""
    destinations = [
        {
            "destination": d.name,
            **d.figures.as_json(),
            "routes": [
                {"prefix": prefix, **figures.as_json()}
                for prefix, figures in sorted(d.routes.items())
            ],
        }
        for d in impact.destinations.values()
    ]
    unrated = [
        {"destination": name, **figures.as_json(), **_UNPRICED}
        for name, figures in impact.unrated.items()
    ]
    losing = [d["destination"] for d in destinations if d["loses_money"]]
    losing_routes = [
        f"{d['destination']} {r['prefix']}"
        for d in destinations
        for r in d["routes"]
        if r["loses_money"]
    ]
    return {
        "destinations": destinations,
        "losing_destinations": losing,
        "losing_routes": losing_routes,
        "unrated": {
            "calls": sum(f.calls for f in impact.unrated.values()),
            "destinations": unrated,
        },
        "other_currency_calls": impact.other_currency_calls,
        "total": impact.total.as_json(),
    }


__all__ = [
    "CHARGES_COLUMNS",
    "RATED_COLUMNS",
    "Impact",
    "file_impact",
    "impact_json",
    "proposed_index",
    "summarise",
]
