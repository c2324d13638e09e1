"""Cold-start import cost of the Lambda handlers, each in a fresh interpreter.

For each module (app, functions.ingest.handler, functions.rate.handler) it starts N fresh
interpreters (after one discarded warm-up that fills the page cache), times the `import`
statement alone, and reports the median, min and max. Each run also reports whether pandas
or awswrangler ended up in sys.modules, and which line of ours asked for them first.
Target (issue 4): each handler imports in under 500 ms, with neither pandas nor awswrangler.

Where the imports come from:
- default: this checkout, with the given interpreter's site-packages (the dev venv);
- --hide-pandas: the same, with pandas and awswrangler made unimportable, as on Lambda,
  where neither is in the function zip nor the Arrow layer (pyarrow imports pandas
  opportunistically whenever it is installed, e.g. for `pa.array(list)`);
- --packaged DIR: what `make package` built: DIR/deployment.zip and DIR/arrow-layer.zip are
  unzipped and put on sys.path in Lambda's order (code, then the layer), and the interpreter
  runs with -S (no site-packages). Needs a Python 3.12 interpreter (the Lambda runtime).

Lambda itself only imports `app` during init: app.py imports a handler on its first event.

    .venv/bin/python bench/cold_start.py [--runs 7] [--hide-pandas] [--check] [--json]
    .venv-package/bin/python bench/cold_start.py --packaged build/package --check
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("app", "functions.ingest.handler", "functions.rate.handler", "functions.fraud.handler")
HANDLERS = ("functions.ingest.handler", "functions.rate.handler", "functions.fraud.handler")
FORBIDDEN = ("pandas", "awswrangler")
MAX_MS = 500.0

# Runs in the fresh interpreter. A meta-path finder notes who first asks for a forbidden
# module (the innermost frame under `root`) and, with `hide`, refuses it as Lambda would.
HARNESS = r"""
import importlib, importlib.abc, json, sys, time, traceback

config = json.loads(sys.argv[1])
sys.path[:0] = config["path"]
forbidden = tuple(config["forbidden"])
requested = {}


class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in forbidden:
            return None
        if top not in requested:
            ours = [
                f for f in traceback.extract_stack()[:-1]
                if f.filename.startswith(config["root"]) and "/bench/" not in f.filename
            ]
            where = ours[-1] if ours else None
            requested[top] = (
                f"{where.filename[len(config['root']):]}:{where.lineno}" if where else "?"
            )
        if config["hide"]:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Watch())
start = time.perf_counter()
importlib.import_module(config["module"])
elapsed_ms = (time.perf_counter() - start) * 1000
loaded = sorted({m.partition(".")[0] for m in sys.modules} & set(forbidden))
print(json.dumps({"ms": elapsed_ms, "loaded": loaded, "requested": requested}))
"""


def run_once(python: str, module: str, *, path: list[str], root: str, hide: bool, isolated: bool):
    config = {
        "module": module,
        "path": path,
        "root": root,
        "hide": hide,
        "forbidden": FORBIDDEN,
    }
    flags = ["-S"] if isolated else []
    result = subprocess.run(
        [python, *flags, "-c", HARNESS, json.dumps(config)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        # LAMBDA_TASK_ROOT as Lambda sets it: the X-Ray SDK then builds Lambda's local sampler,
        # not the centralized one (an xray client, ~130 ms, never made on Lambda), and
        # Powertools' Tracer is enabled and patches botocore at import, as it does there.
        env={
            "PATH": "/usr/bin:/bin",
            "AWS_DEFAULT_REGION": "us-east-1",
            "LANG": "C.UTF-8",
            "LAMBDA_TASK_ROOT": root,
        },
    )
    if result.returncode != 0:
        raise SystemExit(f"import {module} failed with {python}:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(
    python: str,
    *,
    runs: int,
    path: list[str],
    root: str,
    hide: bool,
    isolated: bool,
    modules: tuple[str, ...] = MODULES,
) -> list[dict]:
    rows = []
    for module in modules:
        run_once(python, module, path=path, root=root, hide=hide, isolated=isolated)  # warm-up
        samples = [
            run_once(python, module, path=path, root=root, hide=hide, isolated=isolated)
            for _ in range(runs)
        ]
        times = [s["ms"] for s in samples]
        loaded = sorted({m for s in samples for m in s["loaded"]})
        requested = {k: v for s in samples for k, v in s["requested"].items()}
        rows.append(
            {
                "module": module,
                "median_ms": round(statistics.median(times), 1),
                "min_ms": round(min(times), 1),
                "max_ms": round(max(times), 1),
                "runs": runs,
                "forbidden_loaded": loaded,
                "forbidden_requested_at": requested,
            }
        )
    return rows


def unpack(package_dir: Path, into: Path) -> list[str]:
    """Lambda's layout: the function's code in /var/task, each layer's python/ under /opt."""
    task, opt = into / "task", into / "opt"
    with zipfile.ZipFile(package_dir / "deployment.zip") as archive:
        archive.extractall(task)
    with zipfile.ZipFile(package_dir / "arrow-layer.zip") as archive:
        archive.extractall(opt)
    return [str(task), str(opt / "python")]


def interpreter_version(python: str) -> str:
    return subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per module")
    parser.add_argument("--python", default=sys.executable, help="interpreter to measure")
    parser.add_argument("--packaged", type=Path, help="a `make package` output directory")
    parser.add_argument("--hide-pandas", action="store_true", help="pandas/awswrangler absent")
    parser.add_argument("--check", action="store_true", help=f"exit 1 unless < {MAX_MS:.0f} ms")
    parser.add_argument("--json", action="store_true", help="print JSON rows")
    args = parser.parse_args(argv)

    version = interpreter_version(args.python)
    with tempfile.TemporaryDirectory(prefix="tollgate-cold-start-") as scratch:
        if args.packaged:
            if not version.startswith("3.12."):
                parser.error(f"--packaged needs Python 3.12 (Lambda's runtime), not {version}")
            path = unpack(args.packaged, Path(scratch))
            root, where, hide, isolated = path[0] + "/", f"unzipped {args.packaged}", False, True
        else:
            path, root = [], f"{ROOT}/"
            where = "this checkout" + (", pandas/awswrangler hidden" if args.hide_pandas else "")
            hide, isolated = args.hide_pandas, False
        rows = measure(
            args.python, runs=args.runs, path=path, root=root, hide=hide, isolated=isolated
        )

    failures = []
    for row in rows:
        if row["module"] not in HANDLERS:
            continue
        if row["median_ms"] >= MAX_MS:
            failures.append(f"{row['module']}: median {row['median_ms']} ms >= {MAX_MS:.0f} ms")
        if row["forbidden_loaded"]:
            failures.append(f"{row['module']}: imported {', '.join(row['forbidden_loaded'])}")

    if args.json:
        print(json.dumps({"python": version, "where": where, "rows": rows}, indent=2))
    else:
        print(
            f"cold start: {args.python} (Python {version}, {platform.machine()}), {where}; "
            f"import time, median of {args.runs} fresh interpreters"
        )
        print(f"  {'module':<28}{'median':>9}{'min':>9}{'max':>9}  pandas/awswrangler")
        for row in rows:
            if row["forbidden_loaded"]:
                asked = row["forbidden_requested_at"]
                seen = ", ".join(f"{m} (first asked at {asked.get(m, '?')})" for m in asked)
            else:
                tried = row["forbidden_requested_at"]
                seen = "none" + (
                    f" (looked for, absent: {', '.join(f'{m} at {w}' for m, w in tried.items())})"
                    if tried
                    else ""
                )
            print(
                f"  {row['module']:<28}{row['median_ms']:>7.1f}ms{row['min_ms']:>7.1f}ms"
                f"{row['max_ms']:>7.1f}ms  {seen}"
            )
        for failure in failures:
            print(f"  FAIL {failure}")
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
