-- Quarantined rows by reason and field: rows, files they came from, first and last day
-- (the day each file arrived).
SELECT
    reason,
    field,
    count(*) AS quarantined,
    count(DISTINCT file) AS files,
    min("date") AS first_day,
    max("date") AS last_day
FROM cdrs_quarantine
GROUP BY reason, field
ORDER BY quarantined DESC, reason, field
