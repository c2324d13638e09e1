"""Benchmark `tollgate rate` against a plain pyarrow CSV→Parquet conversion of the same file.

Generates 1,000,000 `generic` CDRs and a 50,000-prefix deck with effective-dated versions,
then reports, in one run:
  (a) plain pyarrow CSV-to-Parquet conversion of the file (a whole process, like b),
  (b) `tollgate rate` end to end (a whole process: interpreter, imports, parse, validate,
      rate customer and supplier side, write Parquet and the quarantine file),
  (c) the ratio b/a, (d) CDRs per second end to end, (e) peak RSS of each process.
Targets (issue 9 §7): ratio <= 1.5, peak RSS <= 1 GB; goal 1,000,000 CDRs/s on two cores.

    .venv/bin/python bench/rate_bench.py [--rows N] [--prefixes N] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Both sides write zstd Parquet: `tollgate rate` writes zstd (functions.cli.rate), so the
# baseline does too; everything else in the baseline is pyarrow's defaults. It reads the same
# file (skipping the malformed rows it cannot parse), with nothing validated, rated or
# accounted for.
COMPRESSION = "zstd"
TARGET_RATIO = 1.5
PLAIN_CONVERSION = f"""
import sys, pyarrow.csv as csv, pyarrow.parquet as pq
skip = csv.ParseOptions(invalid_row_handler=lambda row: "skip")
table = csv.read_csv(sys.argv[1], parse_options=skip)
pq.write_table(table, sys.argv[2], compression="{COMPRESSION}")
"""

# Generating a million CDRs takes over a gigabyte. It runs in its own process: Linux reports a
# child's ru_maxrss including the RSS it inherited at fork, so a big bench parent would show
# up as every child's peak.
GENERATE = """
import sys
from pathlib import Path
from functions.ingest.samples import generate_generic_csv
from functions.rate.samples import generate_deck_csv
work, rows, prefixes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
(work / "cdrs.csv").write_bytes(generate_generic_csv(rows, seed=1, bad_fraction=0.001))
(work / "sell.csv").write_bytes(generate_deck_csv(prefixes, seed=2, india_mobile_rate="0.008"))
(work / "buy.csv").write_bytes(
    generate_deck_csv(prefixes, seed=2, india_mobile_rate="0.0065", rate_percent=80)
)
"""


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in bytes (this child alone, via wait4), and stdout."""
    began = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - began
        out.seek(0)
        text = out.read().decode()
    if child.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed ({child.returncode}):\n{text}")
    return wall, usage.ru_maxrss * 1024, text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--prefixes", type=int, default=50_000)
    # Five: on a virtual machine a run now and then pays several times the usual cost of
    # fresh memory (both sides do), and a median of five keeps one such run out of the figure.
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    env = dict(os.environ, TOLLGATE_CACHE_DIR=str(work / "cache"))
    # Both sides run from compiled bytecode, as an installed package does (pip compiles it; a
    # Lambda package can ship it): where PYTHONDONTWRITEBYTECODE is set, every process would
    # otherwise compile Tollgate's modules afresh. The first (cold) run writes the cache.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    python = sys.executable
    tollgate = [python, "-m", "functions.cli"]
    try:
        began = time.perf_counter()
        generate = [python, "-c", GENERATE, str(work), str(args.rows), str(args.prefixes)]
        subprocess.run(generate, check=True, env=env, cwd=ROOT)
        cdrs, sell, buy = work / "cdrs.csv", work / "sell.csv", work / "buy.csv"
        size_mb = cdrs.stat().st_size / 1e6
        print(
            f"generated {args.rows:,} CDRs ({size_mb:.0f} MB) and two {args.prefixes:,}-prefix "
            f"decks in {time.perf_counter() - began:.1f} s"
        )

        rate_argv = [
            *tollgate,
            "rate",
            str(cdrs),
            "--format",
            "generic",
            "--customer-deck",
            str(sell),
            "--supplier-deck",
            str(buy),
            "--out",
            str(work / "rated.parquet"),
        ]
        cold_wall, cold_rss, _ = run_measured(rate_argv, env)  # compiles and caches the decks

        plain, rated, output = [], [], ""
        for _ in range(args.runs):
            plain.append(
                run_measured(
                    [python, "-c", PLAIN_CONVERSION, str(cdrs), str(work / "plain.parquet")], env
                )
            )
            rated.append(run_measured(rate_argv, env))
            output = rated[-1][2]
        a = statistics.median(w for w, _, _ in plain)
        b = statistics.median(w for w, _, _ in rated)
        rss_a = max(r for _, r, _ in plain)
        rss_b = max(r for _, r, _ in rated)

        print("\n`tollgate rate` output (last run):")
        print("  " + output.strip().replace("\n", "\n  "))
        print(
            f"\nresults (median of {args.runs} runs, whole processes, {os.cpu_count()} cores; "
            f"both write {COMPRESSION} Parquet)"
        )
        print(
            f"  (a) plain pyarrow CSV->Parquet      {a:8.2f} s   peak RSS {rss_a / 2**20:7.0f} MiB"
        )
        print(
            f"  (b) tollgate rate, end to end       {b:8.2f} s   peak RSS {rss_b / 2**20:7.0f} MiB"
        )
        print(
            f"      first run (decks, bytecode)    {cold_wall:8.2f} s   "
            f"peak RSS {cold_rss / 2**20:7.0f} MiB"
        )
        ratio = b / a
        print(
            f"  (c) ratio b/a                       {ratio:8.2f}     target <= {TARGET_RATIO}  "
            f"{'MET' if ratio <= TARGET_RATIO else 'NOT MET'}"
        )
        best_a, best_b = min(w for w, _, _ in plain), min(w for w, _, _ in rated)
        print(
            f"      fastest run of each: (a) {best_a:.2f} s, (b) {best_b:.2f} s, "
            f"ratio {best_b / best_a:.2f}"
        )
        print(f"  (d) CDRs per second, end to end     {args.rows / b:12,.0f} goal 1,000,000/s")
        peak = max(rss_b, cold_rss)
        print(
            f"  (e) peak RSS of tollgate rate       {peak / 2**20:8.0f} MiB target <= 1024 MiB "
            f"{'MET' if peak <= 2**30 else 'NOT MET'}"
        )
    finally:
        if args.keep:
            print(f"files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
