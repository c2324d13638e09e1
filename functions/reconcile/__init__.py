"""Reconciliation with partners: their CDRs against ours for the same period (pure).

result.py holds what a reconciliation is (the classified rows and the class totals), which
the matcher produces and the dispute pack and `tollgate reconcile` read.
"""
