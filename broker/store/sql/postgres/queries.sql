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
SELECT COALESCE(MAX(seq), 0) FROM history

-- name: fold_range
-- the newest history row of each job in (from, to] becomes its jobs row state
UPDATE jobs AS j
   SET state = h.state, attempt = h.attempt, due = h.due, lease_token = h.lease_token,
       lease_worker = h.lease_worker, lease_deadline = h.lease_deadline,
       last_token = h.last_token, last_status = h.last_status, updated = h.at
  FROM (SELECT jid, MAX(seq) AS seq FROM history WHERE seq > $1 AND seq <= $2 GROUP BY jid) AS m
  JOIN history AS h ON h.seq = m.seq
 WHERE j.jid = m.jid

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
SELECT COALESCE(MAX(jid), 0) FROM jobs

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
