"""The dependency rule: the rating, ingest, fraud and invoice rules are plain Python.

Only Lambda entry points (`handler.py`) may reach AWS, Chalice or Powertools; adapters live in
functions/store and the local stack in functions/local. Checked on the source, so a lazy
import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE_PACKAGES = ("shared", "rate", "ingest", "fraud", "invoice", "api", "reconcile")
EDGE_MODULES = {"handler.py"}
# The API's route edges beside handler.py (Chalice and the stores, like it), by path.
EDGE_PATHS = {
    "api/sessions.py",
    "api/guards.py",
    "api/money.py",
    "api/traffic.py",
    "api/writes.py",
    "api/branding.py",
    "api/authz.py",
}
FORBIDDEN = (
    "boto3",
    "botocore",
    "chalice",
    "aws_lambda_powertools",
    "pynamodb",
    "awswrangler",
    "pyarrow.fs",
    "moto",
    "functions.store",
    "functions.local",
    "functions.cli",
)


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def pure_modules() -> list[Path]:
    return sorted(
        path
        for package in PURE_PACKAGES
        for path in (ROOT / "functions" / package).rglob("*.py")
        if path.name not in EDGE_MODULES
        and path.relative_to(ROOT / "functions").as_posix() not in EDGE_PATHS
    )


def test_the_pure_core_has_modules_to_check():
    assert any(p.name == "rating.py" for p in pure_modules())


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_core_module_imports_no_aws_framework_or_adapter(path):
    bad = {
        name
        for name in imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_contexts_do_not_import_each_other():
    contexts = ("ingest", "rate", "fraud", "invoice")
    for context in contexts:
        for path in (ROOT / "functions" / context).rglob("*.py"):
            if path.name in EDGE_MODULES or path.name == "service.py":
                continue
            others = {f"functions.{c}" for c in contexts if c != context}
            bad = {n for n in imported_modules(path) if any(n.startswith(o) for o in others)}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
