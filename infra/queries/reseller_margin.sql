-- Reseller margin per reseller and month (UTC month of the calls), from cdrs_charges:
-- revenue = what the level below paid the reseller, cost = what the reseller paid its own
-- parent, margin = revenue - cost. Rated charges only; one row per currency, so a margin is
-- only ever a difference of amounts in one currency. Money stays DECIMAL.
WITH sold AS (
    SELECT
        counterparty AS reseller,
        substr(date, 1, 7) AS period,
        currency,
        count(*) AS calls,
        sum(amount) AS revenue
    FROM cdrs_charges
    WHERE status = 'rated' AND role <> 'supplier' AND counterparty <> 'carrier'
    GROUP BY counterparty, substr(date, 1, 7), currency
),
bought AS (
    SELECT
        account AS reseller,
        substr(date, 1, 7) AS period,
        currency,
        sum(amount) AS cost
    FROM cdrs_charges
    WHERE status = 'rated' AND role = 'reseller'
    GROUP BY account, substr(date, 1, 7), currency
)
SELECT
    coalesce(sold.reseller, bought.reseller) AS reseller,
    coalesce(sold.period, bought.period) AS period,
    coalesce(sold.currency, bought.currency) AS currency,
    coalesce(sold.calls, 0) AS calls,
    coalesce(sold.revenue, 0) AS revenue,
    coalesce(bought.cost, 0) AS cost,
    coalesce(sold.revenue, 0) - coalesce(bought.cost, 0) AS margin
FROM sold
FULL OUTER JOIN bought
    ON sold.reseller = bought.reseller
    AND sold.period = bought.period
    AND sold.currency = bought.currency
ORDER BY reseller, period, currency
