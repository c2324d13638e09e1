-- Top destinations by margin loss: destinations where calls were sold below their cost.
-- margin_loss = sum of the negative margins (a negative DECIMAL: the worst comes first);
-- net_margin = sum of all margins of the destination. Top 50.
SELECT
    destination,
    count(*) FILTER (WHERE margin < 0) AS loss_calls,
    CAST(CAST(sum(billed_seconds) FILTER (WHERE margin < 0) AS DECIMAL(18, 4)) / 60
        AS DECIMAL(18, 4)) AS loss_minutes,
    sum(margin) FILTER (WHERE margin < 0) AS margin_loss,
    sum(margin) AS net_margin,
    sum(customer_amount + coalesce(customer_surcharge, 0)) AS revenue,
    sum(supplier_amount) AS cost
FROM cdrs_rated
WHERE status = 'rated'
GROUP BY destination
HAVING count(*) FILTER (WHERE margin < 0) > 0
ORDER BY margin_loss, destination
LIMIT 50
