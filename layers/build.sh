#!/usr/bin/env bash
# Build the Lambda layers for python3.12 on x86_64:
#   arrow      pyarrow + numpy, for every function (the rating core);
#   documents  reportlab + what it requires (Pillow, charset-normalizer), for the functions
#              that render an invoice's PDF only (infra/package.yaml: InvoiceRender, InvoiceSend).
#
#   layers/build.sh [PYTHON [LAYER...]]     LAYER: arrow, documents (default: both)
#   (`make layers` runs it with the packaging venv's Python, one layer at a time)
#
# PYTHON is any Python with pip: it only downloads wheels for the Lambda platform
# (manylinux2014 / manylinux_2_28 x86_64, CPython 3.12, binary only). When PYTHON is itself
# 3.12, each layer is also byte-compiled with it (Lambda cannot write __pycache__ under /opt,
# so uncompiled modules are compiled again on every cold start) and import-checked.
# Output: build/layers/LAYER/python/ and build/layers/LAYER.zip (gitignored, never committed).
# Parts the functions never load are left out so function + layers stay well under Lambda's
# 250 MB unzipped limit: Arrow Flight (29 MB), tests, C/Cython sources and headers, numpy's
# tests and scripts. pandas is not in the layer: the ingest and rate functions do not use it.
# Neither reportlab nor Pillow is in requirements.txt: in the one deployment.zip they would
# weigh on every function; in their own layer they count only where it is attached.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${1:-${PYTHON:-python3}}
if [ $# -gt 1 ]; then
    LAYERS=("${@:2}")
else
    LAYERS=(arrow documents)
fi
OUT=${LAYERS_OUT:-build/layers}
OUT=${OUT%/}
# Within pyproject.toml's ranges (tests/infra/test_package.py checks); the versions tested.
PYARROW_VERSION=25.0.1
NUMPY_VERSION=2.4.6
# reportlab: the version the PDF tests render with (a PDF's bytes are one version's);
# Pillow and charset-normalizer: versions that satisfy reportlab's requirements (tested too).
REPORTLAB_VERSION=5.1.0
PILLOW_VERSION=13.0.0
CHARSET_NORMALIZER_VERSION=3.5.3

is_312() {
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'
}

# download SITE REQUIREMENT...: the wheels for Lambda's platform, unpacked into SITE
download() {
    local site=$1
    shift
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile --no-deps \
        --only-binary=:all: --implementation cp --python-version 3.12 \
        --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
        --target "$site" "$@"
}

build_arrow() {
    local SITE=$1
    download "$SITE" "pyarrow==$PYARROW_VERSION" "numpy==$NUMPY_VERSION"

    # --- trim -----------------------------------------------------------------------------
    rm -rf "$SITE/bin" "$SITE/pyarrow/tests" "$SITE/pyarrow/include" "$SITE/pyarrow/src" \
        "$SITE/pyarrow/includes" "$SITE/numpy/_core/include" "$SITE/numpy/_pyinstaller"
    find "$SITE/numpy" -type d -name tests -prune -exec rm -rf {} +
    find "$SITE/pyarrow" \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' \
        -o -name '*.cc' -o -name '*.cpp' -o -name '*.cmake' \) -delete
    # Arrow Flight (RPC) and the C++ test module: never imported by Tollgate.
    rm -f "$SITE"/pyarrow/libarrow_flight.so* "$SITE"/pyarrow/libarrow_python_flight.so* \
        "$SITE"/pyarrow/_flight.cpython-*.so "$SITE"/pyarrow/_pyarrow_cpp_tests.cpython-*.so
    # The wheel carries each of its own libraries three times (libX.so, libX.so.N,
    # libX.so.N.M.P): the extension modules load libX.so.N only (their ELF NEEDED entries).
    for lib in "$SITE"/pyarrow/libarrow_python*.so; do
        rm -f "$lib" "$lib".*.*.*
    done

    is_312 || return 0
    # -S: no site-packages, so only the layer can answer these imports.
    "$PYTHON" -S - "$SITE" <<'CHECK'
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
print(f"arrow layer imports: pyarrow {pa.__version__}, numpy {np.__version__}")
CHECK
}

build_documents() {
    local SITE=$1
    download "$SITE" "reportlab==$REPORTLAB_VERSION" "pillow==$PILLOW_VERSION" \
        "charset-normalizer==$CHARSET_NORMALIZER_VERSION"
    # Console scripts only: reportlab's fonts are what functions/invoice/pdf.py embeds.
    rm -rf "$SITE/bin"

    is_312 || return 0
    "$PYTHON" -S - "$SITE" <<'CHECK'
import io
import os
import sys

site = os.path.abspath(sys.argv[1])
sys.path.insert(0, site)
import charset_normalizer
import PIL
import reportlab
from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate

for module in (reportlab, PIL, charset_normalizer):
    assert module.__file__.startswith(site), module.__file__
# As functions/invoice/pdf.py renders: the Vera font reportlab ships, embedded; and Pillow's
# C core, which reportlab imports, loads.
fonts = os.path.join(os.path.dirname(reportlab.__file__), "fonts")
pdfmetrics.registerFont(TTFont("Vera", os.path.join(fonts, "Vera.ttf")))
assert Image.new("RGB", (2, 2)).tobytes() == bytes(12)
out = io.BytesIO()
SimpleDocTemplate(out, pagesize=A4, invariant=1).build(
    [Paragraph("Invoice 1: 12.50 \u20ac", ParagraphStyle("p", fontName="Vera"))]
)
assert out.getvalue().startswith(b"%PDF-"), out.getvalue()[:8]
print(f"documents layer imports: reportlab {reportlab.Version}, Pillow {PIL.__version__}")
CHECK
}

for name in "${LAYERS[@]}"; do
    case "$name" in
        arrow | documents) ;;
        *) echo "layers/build.sh: unknown layer $name (use arrow, documents)" >&2; exit 2 ;;
    esac
    LAYER=$OUT/$name
    rm -rf "$LAYER" "$OUT/$name.zip"
    mkdir -p "$LAYER/python"
    "build_$name" "$LAYER/python"
    if is_312; then
        "$PYTHON" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$LAYER/python" >/dev/null
    else
        echo "layers/build.sh: $PYTHON is not Python 3.12: the $name layer is neither" \
            "byte-compiled nor import-checked" >&2
    fi

    # --- zip (deterministic order and timestamps; keeps the .so permissions) ------------
    "$PYTHON" - "$LAYER" "$OUT/$name.zip" <<'ZIP'
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
ZIP
done
