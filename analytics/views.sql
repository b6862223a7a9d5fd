-- reelflow's analytics: views over the ledger (one row per billable or timed event).
-- `ledger` is a table that analytics/db.py keeps up to date from the part files, one row per
-- event id, and `clip_rollup` its per-clip roll-up, kept up to date with it; everything below
-- is plain SQL on them.

-- an instant's wall time in UTC: its microseconds since the epoch read as a plain TIMESTAMP, so
-- a day or an hour of 10 M rows is integer arithmetic, not a time-zone conversion per row
-- (3x faster), and the same whatever the connection's TimeZone
CREATE OR REPLACE MACRO utc_wall(instant) AS make_timestamp(epoch_us(instant));

-- spend by day (UTC), provider, model, tier and mode
CREATE OR REPLACE VIEW spend_by_day AS
SELECT CAST(utc_wall(event_time) AS DATE) AS day, provider, model, tier, mode,
       sum(cost_usd) AS cost_usd,
       count(*) FILTER (WHERE cost_usd > 0) AS charges
FROM ledger GROUP BY ALL ORDER BY day, provider, model, tier, mode;

-- the per-clip roll-up of `ledger`: every aggregate one that merges (a max, a min, a sum), so
-- analytics/db.py keeps the table `clip_rollup` up to date by merging in the roll-up of the
-- rows that arrive (the clips whose rows a later copy replaced are computed again from theirs);
-- a report over a period makes a temporary one from the period's rows (analytics/report.py)
CREATE OR REPLACE MACRO clip_rollup_of() AS TABLE
SELECT clip_id, any_value(provider) AS provider, any_value(model) AS model,
       any_value(tier) AS tier, any_value(mode) AS mode,
       max(seconds_delivered) FILTER (WHERE event_kind = 'inspection') AS seconds_delivered,
       max(seconds_asked) AS seconds_asked,
       max(resolution_asked) AS resolution_asked,
       max(resolution_actual) FILTER (WHERE event_kind = 'inspection') AS resolution_actual,
       max(inspection_outcome) FILTER (WHERE event_kind = 'rejection') AS rejection_outcome,
       max(inspection_outcome) FILTER (WHERE event_kind = 'inspection') AS inspection_outcome,
       bool_or(event_kind = 'inspection') AS delivered,
       sum(cost_usd) AS cost_usd,
       min(event_time) AS first_event
FROM ledger GROUP BY clip_id;
CREATE TABLE IF NOT EXISTS clip_rollup (
    clip_id VARCHAR USING COMPRESSION uncompressed,  -- nearly all distinct (analytics/db.py)
    provider VARCHAR, model VARCHAR, tier VARCHAR, mode VARCHAR, seconds_delivered DOUBLE,
    seconds_asked DOUBLE, resolution_asked VARCHAR, resolution_actual VARCHAR,
    rejection_outcome VARCHAR, inspection_outcome VARCHAR, delivered BOOLEAN,
    cost_usd DECIMAL(38, 6), first_event TIMESTAMPTZ);

-- clips that reached inspection (accepted unless a later take replaced them)
CREATE OR REPLACE VIEW clips AS
SELECT clip_id, provider, model, tier, mode, seconds_delivered, seconds_asked, resolution_asked,
       resolution_actual, coalesce(rejection_outcome, inspection_outcome) AS outcome, delivered,
       cost_usd, first_event
FROM clip_rollup;

-- cost per delivered second and per accepted clip, failures and re-queues folded in
CREATE OR REPLACE VIEW unit_costs AS
SELECT provider, model, tier,
       sum(cost_usd) AS cost_usd,
       count(*) FILTER (WHERE delivered AND coalesce(outcome, '') NOT LIKE '%rejected%')
           AS accepted_clips,
       sum(seconds_delivered) FILTER (WHERE delivered) AS delivered_seconds,
       sum(cost_usd) / nullif(sum(seconds_delivered) FILTER (WHERE delivered), 0)
           AS cost_per_delivered_second,
       sum(cost_usd) / nullif(count(*) FILTER (WHERE delivered AND coalesce(outcome, '')
           NOT LIKE '%rejected%'), 0) AS cost_per_accepted_clip
FROM clips GROUP BY ALL ORDER BY provider, model, tier;

-- the hidden costs the seed warns about
CREATE OR REPLACE VIEW hidden_costs AS
SELECT provider, model, tier,
       sum(cost_usd) FILTER (WHERE charge_kind = 'failed_generation') AS failed_generations_usd,
       sum(cost_usd) FILTER (WHERE charge_kind = 'requeue') AS requeues_usd,
       sum(cost_usd) FILTER (WHERE charge_kind = 'storage') AS storage_usd,
       sum(cost_usd) FILTER (WHERE charge_kind = 'generation' AND clip_id IN (
           SELECT clip_id FROM clips WHERE outcome LIKE '%rejected%')) AS rejected_clips_usd,
       sum(cost_usd * (seconds_billed - seconds_asked) / seconds_billed) FILTER (
           WHERE charge_kind = 'generation' AND seconds_billed > seconds_asked
           AND mode <> 'extend') AS snapped_seconds_usd
FROM ledger GROUP BY ALL ORDER BY provider, model, tier;

-- latency of finished jobs by model, duration, resolution and hour of day (UTC)
CREATE OR REPLACE VIEW latency AS
SELECT model, seconds_billed AS seconds, resolution_asked AS resolution,
       hour(utc_wall(event_time)) AS hour_utc,
       count(*) AS jobs,
       quantile_cont(queued_s + running_s, 0.50) AS p50_s,
       quantile_cont(queued_s + running_s, 0.95) AS p95_s,
       quantile_cont(queued_s + running_s, 0.99) AS p99_s
FROM ledger WHERE event_kind = 'complete' AND running_s IS NOT NULL
GROUP BY ALL ORDER BY model, seconds, resolution, hour_utc;

-- success, downgrade and flash-frame rates
CREATE OR REPLACE VIEW quality_rates AS
SELECT l.model,
       count(*) FILTER (WHERE event_kind = 'complete') AS completed,
       count(*) FILTER (WHERE event_kind = 'fail') AS failed,
       count(*) FILTER (WHERE event_kind = 'complete')::DOUBLE
           / nullif(count(*) FILTER (WHERE event_kind IN ('complete', 'fail')), 0)
           AS success_rate,
       count(*) FILTER (WHERE event_kind = 'inspection'
                        AND inspection_outcome LIKE '%downgraded%')::DOUBLE
           / nullif(count(*) FILTER (WHERE event_kind = 'inspection'), 0) AS downgrade_rate,
       count(*) FILTER (WHERE event_kind = 'inspection'
                        AND inspection_outcome LIKE '%flash_frame%')::DOUBLE
           / nullif(count(*) FILTER (WHERE event_kind = 'inspection'), 0) AS flash_frame_rate
FROM ledger l GROUP BY l.model ORDER BY l.model;

-- what extensions and storyboards saved against generating the whole clip again
CREATE OR REPLACE VIEW continuation_savings AS
SELECT model, mode,
       sum(cost_usd) AS paid_usd,
       sum(cost_usd / nullif(seconds_billed, 0) * total_seconds) AS from_scratch_usd,
       sum(cost_usd / nullif(seconds_billed, 0) * total_seconds) - sum(cost_usd) AS saved_usd
FROM (
    SELECT l.*, coalesce(c.seconds_delivered, l.seconds_billed) AS total_seconds
    FROM ledger l LEFT JOIN clips c USING (clip_id)
    WHERE l.charge_kind = 'generation' AND l.mode IN ('extend', 'storyboard')
) GROUP BY ALL ORDER BY model, mode;

-- what the catalog's prices estimated against what the provider billed, per model and tier:
-- every ledger charge is priced from the catalog except `reconciled` rows, which are what the
-- provider's own bill shows beyond them (tasks/reconciling.py)
CREATE OR REPLACE VIEW price_drift AS
SELECT provider, model, tier,
       sum(cost_usd) FILTER (WHERE charge_kind <> 'reconciled') AS estimated_usd,
       sum(cost_usd) AS billed_usd,
       sum(cost_usd) / nullif(sum(cost_usd) FILTER (WHERE charge_kind <> 'reconciled'), 0) - 1
           AS drift
FROM ledger WHERE charge_kind <> 'none'
GROUP BY ALL HAVING sum(cost_usd) > 0 ORDER BY provider, model, tier;

-- the label keys the ledger's rows carry (a request's accounting labels, e.g. customer=acme)
CREATE OR REPLACE VIEW label_keys AS
SELECT key AS label, count(*) AS rows
FROM (SELECT unnest(map_keys(labels)) AS key FROM ledger WHERE labels IS NOT NULL)
GROUP BY key ORDER BY key;

-- spend, clips delivered, delivered seconds and cost per delivered second by the value of one
-- label (`SELECT * FROM spend_by_label(?)`, the key bound). Each row counts under its own
-- labels (a rerun with other labels is attributed as it was asked); a row without the label,
-- or from a part older than the column, under NULL. A clip counts as in `clips`: delivered
-- when inspected, its seconds its longest inspection.
CREATE OR REPLACE MACRO spend_by_label(label_key) AS TABLE
SELECT label_value,
       sum(cost_usd) AS cost_usd,
       count(*) FILTER (WHERE delivered) AS clips_delivered,
       coalesce(sum(seconds_delivered) FILTER (WHERE delivered), 0) AS delivered_seconds,
       sum(cost_usd) / nullif(sum(seconds_delivered) FILTER (WHERE delivered), 0)
           AS cost_per_delivered_second
FROM (
    SELECT labels[label_key] AS label_value, clip_id,
           sum(cost_usd) AS cost_usd,
           max(seconds_delivered) FILTER (WHERE event_kind = 'inspection') AS seconds_delivered,
           bool_or(event_kind = 'inspection') AS delivered
    FROM ledger GROUP BY ALL
) GROUP BY label_value ORDER BY label_value IS NULL, cost_usd DESC, label_value;
