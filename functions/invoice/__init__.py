"""Invoice cycles and finance aggregates: SQL over the lake, report shaping (pure)."""
