"""The reseller and customer API: who a key is, what its role may see and do (plain Python)."""
