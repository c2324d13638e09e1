-- Call quality per supplier x destination x hour: the partition day (the call's UTC day) and
-- utc_hour, the UTC hour (0-23) the call started in. Every accepted call counts as an attempt
-- (a seizure), rated or not; `destination` is the customer deck's name for the call (null
-- where no customer rate matched).
--   asr         = answered / attempts, answered meaning billsec > 0
--   acd_minutes = answered seconds / answered calls / 60
--   ner         = (answered + BUSY + NO_ANSWER + CANCEL) / attempts: ITU-T E.411's network
--                 effectiveness, where the callee's or caller's doing (busy, no answer, the
--                 caller hanging up first) is the network's success and FAILED and CONGESTION
--                 (network failures, routing errors and the rejects a switch does not tell
--                 apart from them) count against it
--   pdd_ms_avg  = mean post-dial delay in ms over the pdd_calls whose switch wrote one, and
--   pdd_ms_p50    its median (approximate: Athena's approx_percentile)
--   mos_avg     = mean MOS over the mos_calls whose switch wrote one
-- Ratios and means are DOUBLE (statistics, not money); null where there is nothing to divide.
SELECT
    "date" AS day,
    hour(start_time) AS utc_hour,
    supplier,
    destination,
    count(*) AS attempts,
    count(*) FILTER (WHERE billsec > 0) AS answered,
    sum(billsec) AS answered_seconds,
    CAST(count(*) FILTER (WHERE billsec > 0) AS DOUBLE) / count(*) AS asr,
    CAST(sum(billsec) FILTER (WHERE billsec > 0) AS DOUBLE)
        / nullif(count(*) FILTER (WHERE billsec > 0), 0) / 60 AS acd_minutes,
    CAST(
        count(*) FILTER (
            WHERE billsec > 0 OR disposition IN ('ANSWERED', 'BUSY', 'NO_ANSWER', 'CANCEL')
        ) AS DOUBLE
    ) / count(*) AS ner,
    count(pdd_ms) AS pdd_calls,
    avg(CAST(pdd_ms AS DOUBLE)) AS pdd_ms_avg,
    approx_percentile(CAST(pdd_ms AS DOUBLE), 0.5) AS pdd_ms_p50,
    count(mos) AS mos_calls,
    avg(CAST(mos AS DOUBLE)) AS mos_avg
FROM cdrs_rated
GROUP BY "date", hour(start_time), supplier, destination
ORDER BY day, utc_hour, supplier, destination
