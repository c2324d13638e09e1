"""What a pricing run adds up to, kept as its parts are priced: balance deltas, counts, and
minutes per destination. Integers only (micro-units, seconds, calls), so adding the parts up
is exact and the totals survive a JSON round trip unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.rate.parties import charge_deltas

MAX_DESTINATIONS = 400  # the FileRated event lists at most this many (EventBridge: 256 KB)
_GROUP = ["customer", "destination"]


@dataclass
class RunTotals:
    """Sums over a run's `rated` and `charges` tables, added a part at a time."""

    deltas: dict[str, int] = field(default_factory=dict)  # micro-units per account
    rated: int = 0  # calls whose customer charge is rated
    unrated: int = 0
    # Calls some party of which no account could be found for: distinct lines of the file.
    _unknown: list[np.ndarray] = field(default_factory=list, init=False, repr=False)
    unknown_account: int | None = None  # once `finish`ed (or read back)
    _by_destination: pa.Table | None = field(default=None, init=False, repr=False)
    destinations: list[dict] | None = None  # once `finish`ed: the busiest first
    # Per day of the file: each tier and bundle counter's seconds when the run first used it
    # that day (functions.rate.contracts.RunCounters.marks), so re-rating a day prices its
    # calls from the same point.
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    # What the run adds to those counters, committed with it (not stored: the counters are).
    moves: list = field(default_factory=list, repr=False)

    def add_rated(self, rated: pa.Table) -> None:
        """Count a part's calls and add its answered minutes per customer and destination."""
        status = rated.column("status")
        n_rated = int(pc.sum(pc.equal(status, "rated")).as_py() or 0)
        self.rated += n_rated
        self.unrated += rated.num_rows - n_rated
        if n_rated == 0:
            return
        # Only the columns the event needs: filtering the whole part would copy every column.
        columns = rated.select(["status", *_GROUP, "billed_seconds"])
        answered = columns.filter(pc.equal(columns.column("status"), "rated"))
        # One thread: the groups are few (customers x destinations), a Lambda's CPU is scarce.
        grouped = answered.group_by(_GROUP, use_threads=False).aggregate(
            [("billed_seconds", "sum"), ("billed_seconds", "count")]
        )
        self._merge(grouped.rename_columns([*_GROUP, "billed_seconds", "calls"]))

    def add_charges(self, charges: pa.Table) -> None:
        """Add a part's balance deltas and note its calls with an unknown party."""
        for account, delta in charge_deltas(charges).items():
            self.deltas[account] = self.deltas.get(account, 0) + delta
        if charges.num_rows == 0:
            return
        reason = charges.column("reason").cast(pa.string())
        hit = pc.fill_null(pc.equal(reason, "unknown_account"), False)
        if pc.any(hit).as_py():
            lines = charges.column("line").filter(hit)
            self._unknown.append(np.unique(lines.to_numpy()))

    def _merge(self, grouped: pa.Table) -> None:
        if self._by_destination is not None:
            both = pa.concat_tables([self._by_destination, grouped])
            grouped = (
                both.group_by(_GROUP, use_threads=False)
                .aggregate([("billed_seconds", "sum"), ("calls", "sum")])
                .rename_columns([*_GROUP, "billed_seconds", "calls"])
            )
        self._by_destination = grouped

    def finish(self) -> RunTotals:
        """Settle the totals that need every part: distinct unknown calls, top destinations."""
        lines = np.concatenate(self._unknown) if self._unknown else np.zeros(0, np.int64)
        self.unknown_account = len(np.unique(lines))
        self._unknown.clear()
        self.destinations = []
        if self._by_destination is not None:
            order = [("billed_seconds", "descending"), *((name, "ascending") for name in _GROUP)]
            busiest = self._by_destination.sort_by(order)
            self.destinations = busiest.slice(0, MAX_DESTINATIONS).to_pylist()
        return self

    def to_dict(self) -> dict:
        if self.unknown_account is None or self.destinations is None:
            raise ValueError("the totals of a run are stored once finished")
        return {
            "deltas": dict(sorted(self.deltas.items())),
            "rated": self.rated,
            "unrated": self.unrated,
            "unknown_account": self.unknown_account,
            "destinations": self.destinations,
            "counters": self.counters,
        }

    @classmethod
    def from_dict(cls, stored: dict) -> RunTotals:
        ints = {k: stored[k] for k in ("rated", "unrated", "unknown_account")}
        if not all(type(v) is int for v in ints.values()) or not all(
            type(v) is int for v in stored["deltas"].values()
        ):
            raise ValueError("a run's totals are integers")
        return cls(
            deltas=dict(stored["deltas"]),
            destinations=list(stored["destinations"]),
            counters={
                day: {key: int(seconds) for key, seconds in marks.items()}
                for day, marks in stored.get("counters", {}).items()
            },
            **ints,
        )
