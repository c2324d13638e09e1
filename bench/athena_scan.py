"""Athena bytes scanned by each named query, per 1,000,000 CDRs, and what that costs.

Athena reads only the column chunks a query references, in the partitions it selects, and
bills $5 per TB scanned (10 MB minimum per query). moto cannot run Athena, so this measures
the input of that bill exactly: it rates a day of generated traffic into the lake's own
Parquet (the same writer as the rate Lambda), then sums, per named query, the compressed
sizes of the column chunks of every column the query names.

    .venv/bin/python bench/athena_scan.py [--cdrs N]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ATHENA_PER_TB = 5.00  # USD per TB scanned, us-east-1
MINIMUM_BYTES = 10 * 2**20  # Athena bills at least 10 MB per query


def rated_day(n: int):
    """One day of generic traffic, rated for every party as the rate Lambda does."""
    from functions.ingest.formats import parse_cdr_file
    from functions.ingest.samples import CUSTOMERS, SUPPLIERS, generate_generic_csv
    from functions.rate.deck import parse_deck
    from functions.rate.parties import Account, Parties, rate_parties
    from functions.rate.rating import DeckIndex
    from functions.rate.samples import generate_deck_csv

    cdrs = parse_cdr_file(generate_generic_csv(n, seed=9, bad_fraction=0.001), "generic")
    deck = DeckIndex.build(parse_deck(generate_deck_csv(20_000, seed=7)).table)
    buy = DeckIndex.build(parse_deck(generate_deck_csv(20_000, seed=7, rate_percent=80)).table)
    accounts = {c: Account(c, "customer") for c in CUSTOMERS}
    accounts |= {s: Account(s, "supplier") for s in SUPPLIERS}
    decks = {c: deck for c in CUSTOMERS} | {s: buy for s in SUPPLIERS}
    return rate_parties(cdrs.cdrs, Parties(accounts, decks)).table, cdrs.quarantine


def column_bytes(path: Path) -> dict[str, int]:
    """Compressed bytes per column over all row groups of a Parquet file."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    sizes: dict[str, int] = {}
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            name = chunk.path_in_schema.split(".")[0]
            sizes[name] = sizes.get(name, 0) + chunk.total_compressed_size
    return sizes


def referenced(sql: str, columns: list[str]) -> list[str]:
    """The table's columns a query names (word match; comments stripped)."""
    text = re.sub(r"--[^\n]*", "", sql)
    return [c for c in columns if re.search(rf"\b{re.escape(c)}\b", text)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cdrs", type=int, default=1_000_000)
    args = parser.parse_args()

    from functions.invoice.lake_sql import named_query, named_query_names
    from functions.store.lake import table_to_parquet

    began = time.perf_counter()
    rated, quarantine = rated_day(args.cdrs)
    work = Path("/tmp/tollgate-athena-scan")
    work.mkdir(exist_ok=True)
    files = {"cdrs_rated": rated, "cdrs_quarantine": quarantine}
    sizes = {}
    for table, data in files.items():
        path = work / f"{table}.parquet"
        path.write_bytes(table_to_parquet(data))  # the lake adapter's own Parquet writer
        sizes[table] = column_bytes(path)
    print(
        f"rated a day of {args.cdrs:,} CDRs in {time.perf_counter() - began:.1f} s; "
        f"cdrs_rated is {sum(sizes['cdrs_rated'].values()) / 1e6:.1f} MB in Parquet"
    )
    print(
        f"\n{'named query':<40}{'table':<17}{'columns':>8}{'MB scanned':>12}"
        f"{'USD per run':>13}{'USD per 1M CDRs':>17}"
    )
    scale = 1_000_000 / args.cdrs
    for name in named_query_names():
        sql = named_query(name)
        table = "cdrs_quarantine" if "cdrs_quarantine" in sql else "cdrs_rated"
        columns = referenced(sql, list(sizes[table]))
        scanned = sum(sizes[table][c] for c in columns) * scale
        billed = max(scanned, MINIMUM_BYTES)
        cost = billed / 1e12 * ATHENA_PER_TB
        print(
            f"{name:<40}{table:<17}{len(columns):>8}{scanned / 1e6:>12.2f}"
            f"{cost:>13.6f}{scanned / 1e12 * ATHENA_PER_TB:>17.6f}"
        )
    print(
        f"\n(Athena ${ATHENA_PER_TB:.2f}/TB, 10 MB minimum per query; partition projection on "
        "tenant and date means a query reads only the days it selects.)"
    )


if __name__ == "__main__":
    main()
