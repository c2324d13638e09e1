-- Traffic by customer x destination over everything in scope (one tenant): attempts,
-- answered, billed minutes, ASR, ACD, the rates charged, revenue, cost and margin.
-- revenue = sum(customer_amount + customer_surcharge), in `currency`; cost = sum(supplier_amount), in the
-- supplier's currency; margin = the carrier's margin (see docs/lake.md). Money stays
-- DECIMAL end to end (sums of decimal(18,6)). Runs unchanged on Athena and on DuckDB.
SELECT
    customer,
    destination,
    currency,
    count(*) AS attempts,
    count(*) FILTER (WHERE billsec > 0) AS answered,
    CAST(CAST(sum(billed_seconds) AS DECIMAL(18, 4)) / 60 AS DECIMAL(18, 4)) AS minutes,
    CAST(count(*) FILTER (WHERE billsec > 0) AS DOUBLE) / count(*) AS asr,
    CAST(sum(billsec) FILTER (WHERE billsec > 0) AS DOUBLE)
        / nullif(count(*) FILTER (WHERE billsec > 0), 0) / 60 AS acd_minutes,
    min(customer_rate) AS min_rate,
    max(customer_rate) AS max_rate,
    sum(customer_amount + coalesce(customer_surcharge, 0)) AS revenue,
    sum(supplier_amount) AS cost,
    sum(margin) AS margin
FROM cdrs_rated
WHERE status = 'rated'
GROUP BY customer, destination, currency
ORDER BY revenue DESC, customer, destination
