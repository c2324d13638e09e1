-- Balance check: what the lake's charges moved each account's balance by.
-- One row per account x currency. A customer or reseller is charged (its balance falls), a
-- supplier is owed (its balance, what the carrier owes it, rises); only rated charges move
-- money. An account's balance equals balance_effect plus its payments and adjustments
-- (tollgate statement lists those). Money stays DECIMAL.
SELECT
    account,
    currency,
    count(*) AS charges,
    sum(CASE WHEN role = 'supplier' THEN amount ELSE -amount END) AS balance_effect
FROM cdrs_charges
WHERE status = 'rated' AND account IS NOT NULL
GROUP BY account, currency
ORDER BY account, currency
