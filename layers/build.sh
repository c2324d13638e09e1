#!/usr/bin/env bash
# Build the Arrow Lambda layer: pyarrow + numpy for Lambda's python3.12 on x86_64.
#
#   layers/build.sh [PYTHON]      (`make layers` runs it with the packaging venv's Python)
#
# PYTHON is any Python with pip: it only downloads wheels for the Lambda platform
# (manylinux2014 / manylinux_2_28 x86_64, CPython 3.12, binary only). When PYTHON is itself
# 3.12, the layer is also byte-compiled with it (Lambda cannot write __pycache__ under /opt,
# so uncompiled modules are compiled again on every cold start) and import-checked.
# Output: build/layers/arrow/python/ and build/layers/arrow.zip (gitignored, never committed).
# Parts the functions never load are left out so function + layer stay well under Lambda's
# 250 MB unzipped limit: Arrow Flight (29 MB), tests, C/Cython sources and headers, numpy's
# tests and scripts. pandas is not in the layer: the ingest and rate functions do not use it.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${1:-${PYTHON:-python3}}
OUT=${LAYERS_OUT:-build/layers}
OUT=${OUT%/}
# Within pyproject.toml's ranges (tests/infra/test_package.py checks); the versions tested.
PYARROW_VERSION=25.0.1
NUMPY_VERSION=2.4.6

LAYER=$OUT/arrow
SITE=$LAYER/python
rm -rf "$LAYER" "$OUT/arrow.zip"
mkdir -p "$SITE"

"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile --no-deps \
    --only-binary=:all: --implementation cp --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    --target "$SITE" "pyarrow==$PYARROW_VERSION" "numpy==$NUMPY_VERSION"

# --- trim -------------------------------------------------------------------------------
rm -rf "$SITE/bin" "$SITE/pyarrow/tests" "$SITE/pyarrow/include" "$SITE/pyarrow/src" \
    "$SITE/pyarrow/includes" "$SITE/numpy/_core/include" "$SITE/numpy/_pyinstaller"
find "$SITE/numpy" -type d -name tests -prune -exec rm -rf {} +
find "$SITE/pyarrow" \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' \
    -o -name '*.cc' -o -name '*.cpp' -o -name '*.cmake' \) -delete
# Arrow Flight (RPC) and the C++ test module: never imported by Tollgate.
rm -f "$SITE"/pyarrow/libarrow_flight.so* "$SITE"/pyarrow/libarrow_python_flight.so* \
    "$SITE"/pyarrow/_flight.cpython-*.so "$SITE"/pyarrow/_pyarrow_cpp_tests.cpython-*.so
# The wheel carries each of its own libraries three times (libX.so, libX.so.N, libX.so.N.M.P):
# the extension modules load libX.so.N only (their ELF NEEDED entries).
for lib in "$SITE"/pyarrow/libarrow_python*.so; do
    rm -f "$lib" "$lib".*.*.*
done

# --- compile and check with a 3.12 interpreter, if that is what we were given ------------
if "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
    "$PYTHON" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$SITE" >/dev/null
    # -S: no site-packages, so only the layer can answer these imports.
    "$PYTHON" -S - "$SITE" <<'PY'
import os
import sys

site = os.path.abspath(sys.argv[1])
sys.path.insert(0, site)
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv
import pyarrow.dataset
import pyarrow.parquet as pq

assert pa.__file__.startswith(site) and np.__file__.startswith(site), pa.__file__
table = pa.table({"k": ["a", "b", "a"], "v": np.array([1, 2, 3])})
grouped = table.group_by("k").aggregate([("v", "sum")])
assert sorted(grouped.to_pylist(), key=lambda r: r["k"]) == [
    {"k": "a", "v_sum": 4},
    {"k": "b", "v_sum": 2},
]
sink = pa.BufferOutputStream()
pq.write_table(table, sink, compression="zstd")
assert pq.read_table(pa.BufferReader(sink.getvalue())).equals(table)
assert pc.sum(table["v"]).as_py() == 6
print(f"layer imports: pyarrow {pa.__version__}, numpy {np.__version__}")
PY
else
    echo "layers/build.sh: $PYTHON is not Python 3.12: layer not byte-compiled nor import-checked" >&2
fi

# --- zip (deterministic order and timestamps; keeps the .so permissions) ----------------
"$PYTHON" - "$LAYER" "$OUT/arrow.zip" <<'PY'
import os
import sys
import zipfile

root, target = sys.argv[1], sys.argv[2]
paths = sorted(
    os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names
)
unzipped = 0
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
    for path in paths:
        info = zipfile.ZipInfo(os.path.relpath(path, root), date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = (os.stat(path).st_mode & 0o777 | 0o100000) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as source:
            data = source.read()
        archive.writestr(info, data)
        unzipped += len(data)
print(
    f"{target}: {os.path.getsize(target) / 1e6:.1f} MB zipped, "
    f"{unzipped / 1e6:.1f} MB unzipped, {len(paths)} files"
)
PY
