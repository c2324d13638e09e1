"""The small kernel every context shares: the canonical CDR and exact money."""
