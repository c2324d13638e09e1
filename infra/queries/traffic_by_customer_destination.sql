-- Traffic by customer x destination: attempts, answered, minutes, ASR, ACD, the rates
-- charged, revenue, cost and margin. Money stays DECIMAL end to end (sums of decimal(18,6)).
-- Runs unchanged on Athena (table cdrs_rated) and on DuckDB (a view of the same Parquet).
SELECT
    customer,
    destination,
    count(*) AS attempts,
    count(*) FILTER (WHERE billsec > 0) AS answered,
    CAST(sum(billed_seconds) AS DECIMAL(18, 2)) / 60 AS minutes,
    CAST(count(*) FILTER (WHERE billsec > 0) AS DOUBLE) / count(*) AS asr,
    CAST(sum(billsec) FILTER (WHERE billsec > 0) AS DOUBLE)
        / nullif(count(*) FILTER (WHERE billsec > 0), 0) / 60 AS acd_minutes,
    min(customer_rate) AS min_rate,
    max(customer_rate) AS max_rate,
    sum(customer_amount) AS revenue,
    sum(supplier_amount) AS cost,
    sum(margin) AS margin
FROM cdrs_rated
WHERE status = 'rated'
GROUP BY customer, destination
ORDER BY revenue DESC, customer, destination
