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

-- name: fold_range
-- the newest history row of each job in (from, to] becomes its jobs row state
UPDATE jobs AS j
   SET state = h.state, attempt = h.attempt, due = h.due, lease_token = h.lease_token,
       lease_worker = h.lease_worker, lease_deadline = h.lease_deadline,
       last_token = h.last_token, last_status = h.last_status, updated = h.at
  FROM (SELECT DISTINCT ON (jid) * FROM history WHERE seq > $1 AND seq <= $2
         ORDER BY jid, seq DESC) AS h
 WHERE j.jid = h.jid

-- name: set_folded
INSERT INTO broker_meta (key, value) VALUES ('folded', $1)
ON CONFLICT (key) DO UPDATE SET value = excluded.value

-- name: live_jobs
SELECT jid, tenant, job_type, priority, state, attempt, max_attempts, lease_ms, created,
       not_before, payload, meta, due, lease_token, lease_worker, lease_deadline, last_token,
       last_status, updated
  FROM jobs WHERE state NOT IN (3, 4, 5) ORDER BY jid

-- name: recent_keyed_jobs
SELECT jid, tenant, job_type, priority, state, attempt, max_attempts, lease_ms, created,
       not_before, payload, meta, due, lease_token, lease_worker, lease_deadline, last_token,
       last_status, updated
  FROM jobs WHERE state IN (3, 4, 5) AND meta IS NOT NULL AND updated >= $1 ORDER BY jid

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
SELECT jid, at, state, attempt, due, lease_token, lease_worker, lease_deadline, last_token,
       last_status, token, worker, leased_at, deadline, finished, status, error, output, reason
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

-- name: live_runs
-- runs with a live job, and recent runs whose token must keep deduping
SELECT run_id, tenant, token, created, status, updated FROM runs
 WHERE run_id IN (SELECT rj.run_id FROM run_jobs AS rj JOIN jobs AS j ON j.jid = rj.jid
                   WHERE j.state NOT IN (3, 4, 5))
    OR (token IS NOT NULL AND created >= $1)

-- name: live_run_members
-- the finished jobs of runs that still have live ones (their DAG is rebuilt whole)
SELECT j.jid, j.tenant, j.job_type, j.priority, j.state, j.attempt, j.max_attempts, j.lease_ms,
       j.created, j.not_before, j.payload, j.meta, j.due, j.lease_token, j.lease_worker,
       j.lease_deadline, j.last_token, j.last_status, j.updated
  FROM run_jobs AS rj JOIN jobs AS j ON j.jid = rj.jid
 WHERE j.state IN (3, 4, 5)
   AND rj.run_id IN (SELECT r2.run_id FROM run_jobs AS r2 JOIN jobs AS j2 ON j2.jid = r2.jid
                      WHERE j2.state NOT IN (3, 4, 5))
 ORDER BY j.jid

-- name: read_run
SELECT run_id, tenant, token, created, status, updated FROM runs WHERE run_id = $1

-- name: read_run_jobs
SELECT j.jid, j.tenant, j.job_type, j.priority, j.state, j.attempt, j.max_attempts, j.lease_ms,
       j.created, j.not_before, j.payload, j.meta, j.due, j.lease_token, j.lease_worker,
       j.lease_deadline, j.last_token, j.last_status, j.updated
  FROM run_jobs AS rj JOIN jobs AS j ON j.jid = rj.jid WHERE rj.run_id = $1 ORDER BY j.jid

-- name: read_run_history
SELECT h.jid, h.at, h.state, h.attempt, h.due, h.lease_token, h.lease_worker, h.lease_deadline,
       h.last_token, h.last_status, h.token, h.worker, h.leased_at, h.deadline, h.finished,
       h.status, h.error, h.output, h.reason
  FROM run_jobs AS rj JOIN history AS h ON h.jid = rj.jid
 WHERE rj.run_id = $1 ORDER BY h.jid, h.seq

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

-- name: purge_finished
-- finished jobs last changed before $1, fully folded (no history past the watermark $3),
-- oldest first, at most $2 of them: with their history and run membership
WITH doomed AS (
    SELECT j.jid FROM jobs AS j
     WHERE j.state IN (3, 4, 5) AND j.updated < $1
       AND NOT EXISTS (SELECT 1 FROM history AS h WHERE h.jid = j.jid AND h.seq > $3)
     ORDER BY j.updated
     LIMIT $2
), gone_history AS (
    DELETE FROM history WHERE jid IN (SELECT jid FROM doomed)
), gone_members AS (
    DELETE FROM run_jobs WHERE jid IN (SELECT jid FROM doomed)
)
DELETE FROM jobs WHERE jid IN (SELECT jid FROM doomed)

-- name: table_stats
SELECT relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables
 WHERE relname IN ('jobs', 'history', 'run_jobs', 'runs', 'audit')
   AND schemaname = current_schema()
 ORDER BY relname
