"""Tollgate: serverless billing for wholesale VoIP carriers."""

import os

# Before anything of ours loads numpy: its OpenBLAS starts a thread per core that spins for a
# while after the import, waiting for work. Tollgate does no linear algebra; the spinning took
# ~0.1 s of CPU from every cold start of a handler and from `tollgate rate` on two cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
