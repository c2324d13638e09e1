"""`tollgate demo`: what `make demo` runs.

`--offline` generates a sell deck, a buy deck and a day of CDRs and rates them with
`tollgate rate` (the offline what-if path).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from functions.cli import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the demonstration (what `make demo` does)")
    parser.add_argument("--workdir", type=Path, default=Path("demo-output"))
    parser.add_argument("--cdrs", type=int, default=200_000, help="CDRs to generate")
    parser.add_argument("--offline", action="store_true", help="only the offline rating demo")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.cdrs < 1:
        raise CliError("--cdrs must be positive")
    return offline_demo(args.workdir, args.cdrs)


def offline_demo(workdir: Path, n_cdrs: int) -> int:
    from functions.cli import main
    from functions.ingest.samples import generate_generic_csv
    from functions.rate.samples import generate_deck_csv

    workdir.mkdir(parents=True, exist_ok=True)
    sell, buy, cdrs = workdir / "sell-deck.csv", workdir / "buy-deck.csv", workdir / "cdrs.csv"
    sell.write_bytes(generate_deck_csv(20_000, seed=7, india_mobile_rate="0.008"))
    buy.write_bytes(generate_deck_csv(20_000, seed=7, india_mobile_rate="0.0065", rate_percent=80))
    cdrs.write_bytes(generate_generic_csv(n_cdrs, seed=11, bad_fraction=0.002))
    print(f"generated {sell}, {buy} (20,000 prefixes each) and {cdrs} ({n_cdrs:,} CDRs)\n")
    print(
        f"$ tollgate rate {cdrs} --format generic --customer-deck {sell} "
        f"--supplier-deck {buy} --out {workdir / 'rated.parquet'}"
    )
    return main(
        [
            "rate",
            str(cdrs),
            "--format",
            "generic",
            "--customer-deck",
            str(sell),
            "--supplier-deck",
            str(buy),
            "--out",
            str(workdir / "rated.parquet"),
            "--quarantine",
            str(workdir / "quarantine.csv"),
        ]
    )
