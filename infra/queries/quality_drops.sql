-- Quality drops: each supplier x destination x day (grain 'day') and x UTC hour (grain 'hour')
-- whose ASR, ACD or MOS falls far below its own recent baseline: the same supplier and
-- destination over the baseline_days days before (for an hour, the same UTC hour of those
-- days), counting only baseline periods with enough calls of their own. A metric is flagged
-- when the period has enough calls for it, the baseline has at least min_baseline periods, and
--   z = (value - baseline mean) / sigma <= -z_limit, or
--   drop = (baseline mean - value) / baseline mean >= the metric's *_drop_limit,
-- sigma being the larger of the baseline periods' standard deviation and the sampling error
-- the period's value would have if nothing had changed (ASR: sqrt(p (1 - p) / attempts) at
-- the baseline's p; ACD and MOS: the baseline's per-call standard deviation / sqrt(the
-- period's calls)), so a thin period does not flag on noise alone.
-- Enough calls: attempts >= min_attempts for ASR, answered >= min_answered for ACD,
-- mos_calls >= min_answered for MOS. One row per flagged period; `drops` lists the metrics
-- flagged (asr, acd, mos). Definitions of ASR, ACD and MOS as in
-- quality_by_supplier_destination_day. `tollgate report quality --drops` sets the thresholds
-- below and narrows the days read.
WITH params AS (
    SELECT
        20 AS min_attempts,
        10 AS min_answered,
        3 AS min_baseline,
        7 AS baseline_days,
        3.0E0 AS z_limit,
        5.0E-1 AS asr_drop_limit,
        5.0E-1 AS acd_drop_limit,
        2.0E-1 AS mos_drop_limit
),
calls AS (
    SELECT
        supplier,
        destination,
        "date" AS day,
        hour(start_time) AS utc_hour,
        billsec,
        CAST(mos AS DOUBLE) AS mos
    FROM cdrs_rated
    WHERE "date" BETWEEN '0001-01-01' AND '9999-12-31'
),
periods AS (
    SELECT
        CASE WHEN utc_hour IS NULL THEN 'day' ELSE 'hour' END AS grain,
        supplier,
        destination,
        day,
        utc_hour,
        count(*) AS attempts,
        count(*) FILTER (WHERE billsec > 0) AS answered,
        CAST(count(*) FILTER (WHERE billsec > 0) AS DOUBLE) / count(*) AS asr,
        CAST(sum(billsec) FILTER (WHERE billsec > 0) AS DOUBLE)
            / nullif(count(*) FILTER (WHERE billsec > 0), 0) / 60 AS acd_minutes,
        stddev_samp(CAST(billsec AS DOUBLE)) FILTER (WHERE billsec > 0) / 60 AS acd_spread,
        count(mos) AS mos_calls,
        avg(mos) AS mos_avg,
        stddev_samp(mos) AS mos_spread
    FROM calls
    GROUP BY GROUPING SETS ((supplier, destination, day), (supplier, destination, day, utc_hour))
),
baselines AS (
    SELECT
        p.grain,
        p.supplier,
        p.destination,
        p.day,
        p.utc_hour,
        max(p.attempts) AS attempts,
        max(p.answered) AS answered,
        max(p.asr) AS asr,
        max(p.acd_minutes) AS acd_minutes,
        max(p.mos_calls) AS mos_calls,
        max(p.mos_avg) AS mos_avg,
        count(b.asr) FILTER (WHERE b.attempts >= x.min_attempts) AS asr_periods,
        avg(b.asr) FILTER (WHERE b.attempts >= x.min_attempts) AS asr_baseline,
        stddev_samp(b.asr) FILTER (WHERE b.attempts >= x.min_attempts) AS asr_sd,
        count(b.acd_minutes) FILTER (WHERE b.answered >= x.min_answered) AS acd_periods,
        avg(b.acd_minutes) FILTER (WHERE b.answered >= x.min_answered) AS acd_baseline,
        stddev_samp(b.acd_minutes) FILTER (WHERE b.answered >= x.min_answered) AS acd_sd,
        avg(b.acd_spread) FILTER (WHERE b.answered >= x.min_answered) AS acd_call_sd,
        count(b.mos_avg) FILTER (WHERE b.mos_calls >= x.min_answered) AS mos_periods,
        avg(b.mos_avg) FILTER (WHERE b.mos_calls >= x.min_answered) AS mos_baseline,
        stddev_samp(b.mos_avg) FILTER (WHERE b.mos_calls >= x.min_answered) AS mos_sd,
        avg(b.mos_spread) FILTER (WHERE b.mos_calls >= x.min_answered) AS mos_call_sd
    FROM periods p
    CROSS JOIN params x
    LEFT JOIN periods b
        ON b.grain = p.grain
        AND coalesce(b.supplier, '') = coalesce(p.supplier, '')
        AND coalesce(b.destination, '') = coalesce(p.destination, '')
        AND coalesce(b.utc_hour, -1) = coalesce(p.utc_hour, -1)
        AND date_diff('day', CAST(b.day AS DATE), CAST(p.day AS DATE))
            BETWEEN 1 AND x.baseline_days
    GROUP BY p.grain, p.supplier, p.destination, p.day, p.utc_hour
),
scored AS (
    SELECT
        s.*,
        (s.asr - s.asr_baseline) / nullif(
            greatest(
                coalesce(s.asr_sd, 0E0),
                coalesce(sqrt(s.asr_baseline * (1 - s.asr_baseline) / s.attempts), 0E0)
            ),
            0
        ) AS asr_z,
        (s.asr_baseline - s.asr) / nullif(s.asr_baseline, 0) AS asr_drop,
        (s.acd_minutes - s.acd_baseline) / nullif(
            greatest(
                coalesce(s.acd_sd, 0E0),
                coalesce(s.acd_call_sd / sqrt(nullif(s.answered, 0)), 0E0)
            ),
            0
        ) AS acd_z,
        (s.acd_baseline - s.acd_minutes) / nullif(s.acd_baseline, 0) AS acd_drop,
        (s.mos_avg - s.mos_baseline) / nullif(
            greatest(
                coalesce(s.mos_sd, 0E0),
                coalesce(s.mos_call_sd / sqrt(nullif(s.mos_calls, 0)), 0E0)
            ),
            0
        ) AS mos_z,
        (s.mos_baseline - s.mos_avg) / nullif(s.mos_baseline, 0) AS mos_drop
    FROM baselines s
),
flagged AS (
    SELECT
        s.*,
        coalesce(
            s.attempts >= x.min_attempts
            AND s.asr_periods >= x.min_baseline
            AND (s.asr_z <= -x.z_limit OR s.asr_drop >= x.asr_drop_limit),
            FALSE
        ) AS asr_flag,
        coalesce(
            s.answered >= x.min_answered
            AND s.acd_periods >= x.min_baseline
            AND (s.acd_z <= -x.z_limit OR s.acd_drop >= x.acd_drop_limit),
            FALSE
        ) AS acd_flag,
        coalesce(
            s.mos_calls >= x.min_answered
            AND s.mos_periods >= x.min_baseline
            AND (s.mos_z <= -x.z_limit OR s.mos_drop >= x.mos_drop_limit),
            FALSE
        ) AS mos_flag
    FROM scored s
    CROSS JOIN params x
)
SELECT
    grain,
    day,
    utc_hour,
    supplier,
    destination,
    concat_ws(
        ',',
        CASE WHEN asr_flag THEN 'asr' END,
        CASE WHEN acd_flag THEN 'acd' END,
        CASE WHEN mos_flag THEN 'mos' END
    ) AS drops,
    attempts,
    answered,
    asr,
    asr_baseline,
    asr_sd,
    asr_periods,
    asr_z,
    asr_drop,
    acd_minutes,
    acd_baseline,
    acd_sd,
    acd_periods,
    acd_z,
    acd_drop,
    mos_calls,
    mos_avg,
    mos_baseline,
    mos_sd,
    mos_periods,
    mos_z,
    mos_drop
FROM flagged
WHERE asr_flag OR acd_flag OR mos_flag
ORDER BY grain, day, utc_hour, supplier, destination
