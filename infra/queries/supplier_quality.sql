-- Per supplier: attempts, ASR (answered / attempts), ACD (mean answered minutes), billed
-- minutes and cost (sum of supplier_amount, DECIMAL, in the supplier's currency). Every
-- accepted call counts as an attempt, rated or not.
SELECT
    supplier,
    count(*) AS attempts,
    count(*) FILTER (WHERE billsec > 0) AS answered,
    CAST(count(*) FILTER (WHERE billsec > 0) AS DOUBLE) / count(*) AS asr,
    CAST(sum(billsec) FILTER (WHERE billsec > 0) AS DOUBLE)
        / nullif(count(*) FILTER (WHERE billsec > 0), 0) / 60 AS acd_minutes,
    CAST(CAST(sum(billed_seconds) AS DECIMAL(18, 4)) / 60 AS DECIMAL(18, 4)) AS minutes,
    sum(supplier_amount) AS cost
FROM cdrs_rated
GROUP BY supplier
ORDER BY supplier
