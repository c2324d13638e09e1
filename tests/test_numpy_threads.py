"""Importing Tollgate starts no OpenBLAS worker threads.

numpy's OpenBLAS starts a thread per core, which spins for a while after the import waiting
for work that Tollgate (no linear algebra) never gives it: ~0.1 s of CPU taken from a handler's
cold start (measured with perf on `import functions.ingest.handler`, 2 cores).
"""

from __future__ import annotations

import os
import subprocess
import sys

COUNT_THREADS = "import functions.ingest.handler, os; print(len(os.listdir('/proc/self/task')))"


def _threads_after_import(**env: str) -> int:
    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | env
    done = subprocess.run(
        [sys.executable, "-c", COUNT_THREADS], env=environ, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_a_handler_import_leaves_numpy_with_one_blas_thread():
    # As with the variable set by hand; an operator's own setting is left as it is.
    assert _threads_after_import() == _threads_after_import(OPENBLAS_NUM_THREADS="1")
    if (os.cpu_count() or 1) > 1:
        assert _threads_after_import(OPENBLAS_NUM_THREADS="2") > _threads_after_import()
