-- name: create_versions
CREATE TABLE IF NOT EXISTS schema_version (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: lock_migrations
SELECT pg_advisory_xact_lock(7301944)

-- name: applied_versions
SELECT version FROM schema_version ORDER BY version

-- name: record_version
INSERT INTO schema_version (version) VALUES ($1)

-- name: folded_upto
SELECT COALESCE((SELECT value FROM broker_meta WHERE key = 'folded'), 0)

-- name: last_seq
-- the identity sequence's last value (0 before the first row): history has no B-tree on
-- seq (0005), and one writer (the flusher) appends in commit order
SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('history', 'seq')::regclass), 0)

-- name: set_folded
INSERT INTO broker_meta (key, value) VALUES ('folded', $1)
ON CONFLICT (key) DO UPDATE SET value = excluded.value

-- name: jobs_from
-- every job from the live floor on, in job-number order (a cursor: read in chunks)
SELECT jid, tenant, job_type, priority, state, attempt, max_attempts, lease_ms, created,
       not_before, payload, meta, due, lease_token, lease_worker, lease_deadline, last_token,
       last_status, updated
  FROM jobs WHERE jid >= $1 ORDER BY jid

-- name: newest_history_from
-- the newest history row of every job from the live floor on, in job-number order
SELECT DISTINCT ON (jid) jid, at, state, attempt, COALESCE(due, 0), COALESCE(lease_token, 0), lease_worker,
       COALESCE(lease_deadline, 0), last_token, last_status, token, worker, leased_at, deadline,
       finished, status, error, output, reason
  FROM history WHERE jid >= $1 ORDER BY jid, seq DESC

-- name: straggler_jobs
SELECT j.jid, j.tenant, j.job_type, j.priority, j.state, j.attempt, j.max_attempts, j.lease_ms,
       j.created, j.not_before, j.payload, j.meta, j.due, j.lease_token, j.lease_worker,
       j.lease_deadline, j.last_token, j.last_status, j.updated
  FROM live_stragglers AS s JOIN jobs AS j ON j.jid = s.jid ORDER BY j.jid

-- name: newest_history_of
-- the newest history row of each of the jobs $1 (job numbers between $2 and $3: the bounds
-- let the block-range index on jid skip the rest of the table)
SELECT DISTINCT ON (jid) jid, at, state, attempt, COALESCE(due, 0), COALESCE(lease_token, 0), lease_worker,
       COALESCE(lease_deadline, 0), last_token, last_status, token, worker, leased_at, deadline,
       finished, status, error, output, reason
  FROM history WHERE jid = ANY($1::bigint[]) AND jid BETWEEN $2 AND $3
 ORDER BY jid, seq DESC

-- name: recent_keyed_jobs
-- jobs with meta that changed at or after $1, with their newest history row (folded and
-- filtered to finished ones by the caller)
SELECT j.jid, j.tenant, j.job_type, j.priority, j.state, j.attempt, j.max_attempts, j.lease_ms,
       j.created, j.not_before, j.payload, j.meta, j.due, j.lease_token, j.lease_worker,
       j.lease_deadline, j.last_token, j.last_status, j.updated,
       h.jid, h.at, h.state, h.attempt, COALESCE(h.due, 0), COALESCE(h.lease_token, 0),
       h.lease_worker, COALESCE(h.lease_deadline, 0), h.last_token, h.last_status, h.token,
       h.worker, h.leased_at, h.deadline, h.finished, h.status, h.error, h.output, h.reason
  FROM (SELECT DISTINCT ON (jid) * FROM history WHERE at >= $1 ORDER BY jid, seq DESC) AS h
  JOIN jobs AS j ON j.jid = h.jid
 WHERE j.meta IS NOT NULL
 ORDER BY j.jid

-- name: get_floor
SELECT COALESCE((SELECT value FROM broker_meta WHERE key = 'live_floor'), 0)

-- name: set_floor
INSERT INTO broker_meta (key, value) VALUES ('live_floor', $1)
ON CONFLICT (key) DO UPDATE SET value = excluded.value

-- name: floor_window
-- the state now of the first $2 jobs from job number $1 on, in job-number order
WITH j AS (SELECT jid, state FROM jobs WHERE jid >= $1 ORDER BY jid LIMIT $2)
SELECT j.jid, COALESCE(h.state, j.state)
  FROM j LEFT JOIN (
       SELECT DISTINCT ON (jid) jid, state FROM history
        WHERE jid >= $1 AND jid <= (SELECT max(jid) FROM j)
        ORDER BY jid, seq DESC) AS h ON h.jid = j.jid
 ORDER BY j.jid

-- name: straggler_states
SELECT s.jid, COALESCE(h.state, j.state)
  FROM live_stragglers AS s
  LEFT JOIN jobs AS j ON j.jid = s.jid
  LEFT JOIN LATERAL (SELECT state FROM history WHERE jid = s.jid ORDER BY seq DESC LIMIT 1) AS h
    ON true

-- name: add_stragglers
INSERT INTO live_stragglers (jid) SELECT unnest($1::bigint[]) ON CONFLICT DO NOTHING

-- name: drop_stragglers
DELETE FROM live_stragglers WHERE jid = ANY($1::bigint[])

-- name: max_jid
-- above every job stored, and every job purged (job numbers are never reused)
SELECT GREATEST(COALESCE((SELECT MAX(jid) FROM jobs), 0),
                COALESCE((SELECT value FROM broker_meta WHERE key = 'purged_jid'), 0))

-- name: keep_max_jid
INSERT INTO broker_meta (key, value) SELECT 'purged_jid', COALESCE(MAX(jid), 0) FROM jobs
ON CONFLICT (key) DO UPDATE SET value = GREATEST(broker_meta.value, excluded.value)

-- name: read_job
SELECT jid, tenant, job_type, priority, state, attempt, max_attempts, lease_ms, created,
       not_before, payload, meta, due, lease_token, lease_worker, lease_deadline, last_token,
       last_status, updated
  FROM jobs WHERE jid = $1

-- name: read_history
SELECT jid, at, state, attempt, COALESCE(due, 0), COALESCE(lease_token, 0), lease_worker,
       COALESCE(lease_deadline, 0), last_token, last_status, token, worker, leased_at, deadline,
       finished, status, error, output, reason
  FROM history WHERE jid = $1 ORDER BY seq

-- name: bump_epoch
INSERT INTO broker_meta (key, value) VALUES ('epoch', 1)
ON CONFLICT (key) DO UPDATE SET value = broker_meta.value + 1
RETURNING value

-- name: upsert_run
INSERT INTO runs (run_id, tenant, token, created, status, updated)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, updated = excluded.updated

-- name: append_audit
INSERT INTO audit (at, tenant, actor, action, target, reason, ticket)
VALUES ($1, $2, $3, $4, $5, $6, $7)

-- name: runs_of_jobs
SELECT DISTINCT run_id FROM run_jobs WHERE jid = ANY($1::bigint[])

-- name: live_runs
-- runs with a live job ($1), and recent runs whose token must keep deduping
SELECT run_id, tenant, token, created, status, updated FROM runs
 WHERE run_id = ANY($1::text[]) OR (token IS NOT NULL AND created >= $2)

-- name: live_run_members
-- every job of the runs $1 (the caller keeps the finished ones, in their current state)
SELECT j.jid, j.tenant, j.job_type, j.priority, j.state, j.attempt, j.max_attempts, j.lease_ms,
       j.created, j.not_before, j.payload, j.meta, j.due, j.lease_token, j.lease_worker,
       j.lease_deadline, j.last_token, j.last_status, j.updated
  FROM run_jobs AS rj JOIN jobs AS j ON j.jid = rj.jid
 WHERE rj.run_id = ANY($1::text[])
 ORDER BY j.jid

-- name: read_run
SELECT run_id, tenant, token, created, status, updated FROM runs WHERE run_id = $1

-- name: read_run_jobs
SELECT j.jid, j.tenant, j.job_type, j.priority, j.state, j.attempt, j.max_attempts, j.lease_ms,
       j.created, j.not_before, j.payload, j.meta, j.due, j.lease_token, j.lease_worker,
       j.lease_deadline, j.last_token, j.last_status, j.updated
  FROM run_jobs AS rj JOIN jobs AS j ON j.jid = rj.jid WHERE rj.run_id = $1 ORDER BY j.jid

-- name: read_run_history
SELECT h.jid, h.at, h.state, h.attempt, COALESCE(h.due, 0), COALESCE(h.lease_token, 0),
       h.lease_worker, COALESCE(h.lease_deadline, 0), h.last_token, h.last_status, h.token,
       h.worker, h.leased_at, h.deadline, h.finished, h.status, h.error, h.output, h.reason
  FROM run_jobs AS rj JOIN history AS h ON h.jid = rj.jid
 WHERE rj.run_id = $1
   AND h.jid BETWEEN (SELECT min(jid) FROM run_jobs WHERE run_id = $1)
                 AND (SELECT max(jid) FROM run_jobs WHERE run_id = $1)
 ORDER BY h.jid, h.seq

-- name: list_runs
-- newest first; $3/$4 is the cursor (created, run_id) of the previous page's last run
SELECT run_id, tenant, token, created, status, updated FROM runs
 WHERE tenant = $1 AND ($2::text IS NULL OR status = $2)
   AND (created < $3 OR (created = $3 AND run_id < $4))
 ORDER BY created DESC, run_id DESC
 LIMIT $5

-- name: read_audit
SELECT at, tenant, actor, action, target, reason, ticket FROM audit
 WHERE tenant = $1 ORDER BY seq DESC LIMIT $2

-- name: upsert_limit
INSERT INTO limits (kind, tenant, name, config, updated) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (kind, tenant, name) DO UPDATE SET config = excluded.config, updated = excluded.updated

-- name: delete_limit
DELETE FROM limits WHERE kind = $1 AND tenant = $2 AND name = $3

-- name: all_limits
SELECT kind, tenant, name, config, updated FROM limits ORDER BY kind, tenant, name

-- name: purge_window
-- the next $2 jobs from job number $1 on: each one's state and last change now, and when
-- it was created
WITH j AS (SELECT jid, state, updated, created FROM jobs WHERE jid >= $1 ORDER BY jid LIMIT $2)
SELECT j.jid, COALESCE(h.state, j.state), COALESCE(h.at, j.updated), j.created
  FROM j LEFT JOIN (
       SELECT DISTINCT ON (jid) jid, state, at FROM history
        WHERE jid >= $1 AND jid <= (SELECT max(jid) FROM j)
        ORDER BY jid, seq DESC) AS h ON h.jid = j.jid
 ORDER BY j.jid

-- name: purge_jobs
-- the jobs $1 (job numbers between $2 and $3), with their history and run membership
WITH gone_history AS (
    DELETE FROM history WHERE jid = ANY($1::bigint[]) AND jid BETWEEN $2 AND $3
), gone_members AS (
    DELETE FROM run_jobs WHERE jid = ANY($1::bigint[])
), gone_stragglers AS (
    DELETE FROM live_stragglers WHERE jid = ANY($1::bigint[])
)
DELETE FROM jobs WHERE jid = ANY($1::bigint[])

-- name: table_stats
SELECT relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables
 WHERE relname IN ('jobs', 'history', 'run_jobs', 'runs', 'audit', 'live_stragglers')
   AND schemaname = current_schema()
 ORDER BY relname
