-- Margin by supplier (rated calls): what the calls it carried earned the carrier.
-- One row per supplier x supplier_currency x currency (the customers' currency):
-- revenue = sum(customer_amount + customer_surcharge) in `currency`, cost = sum(supplier_amount) in
-- supplier_currency, margin = the carrier's margin; calls_without_margin counts rated
-- calls with no margin (no supplier cost, or currencies differ). Money stays DECIMAL.
SELECT
    supplier,
    supplier_currency,
    currency,
    count(*) AS calls,
    count(*) FILTER (WHERE billsec > 0) AS answered,
    CAST(CAST(sum(billed_seconds) AS DECIMAL(18, 4)) / 60 AS DECIMAL(18, 4)) AS minutes,
    sum(customer_amount + coalesce(customer_surcharge, 0)) AS revenue,
    sum(supplier_amount) AS cost,
    sum(margin) AS margin,
    sum(margin) FILTER (WHERE margin < 0) AS margin_loss,
    count(*) FILTER (WHERE margin IS NULL) AS calls_without_margin
FROM cdrs_rated
WHERE status = 'rated'
GROUP BY supplier, supplier_currency, currency
ORDER BY margin, supplier, supplier_currency, currency
