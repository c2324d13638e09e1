-- Traffic by customer x destination x day (the partition day: the call's UTC day), rated
-- calls only: attempts, answered, answered and billed seconds, billed minutes, ASR, ACD,
-- the rates charged, revenue (customer_amount + customer_surcharge, in `currency`), cost (supplier_amount, in
-- the supplier's currency) and the carrier's margin. Money stays DECIMAL. `tollgate report`
-- sums these rows over a range of days.
SELECT
    "date" AS day,
    customer,
    destination,
    currency,
    count(*) AS attempts,
    count(*) FILTER (WHERE billsec > 0) AS answered,
    sum(billsec) AS answered_seconds,
    sum(billed_seconds) AS billed_seconds,
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
GROUP BY "date", customer, destination, currency
ORDER BY day, customer, destination, currency
