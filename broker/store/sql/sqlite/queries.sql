-- name: insert_job
INSERT INTO jobs (jid, tenant, job_type, priority, state, attempt, max_attempts, lease_ms,
                  created, not_before, payload, meta, due, lease_token, lease_worker,
                  lease_deadline, last_token, last_status, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: set_job_state
UPDATE jobs
   SET state = ?, attempt = ?, due = ?, lease_token = ?, lease_worker = ?, lease_deadline = ?,
       last_token = ?, last_status = ?, updated = ?
 WHERE jid = ?

-- name: append_attempt
INSERT INTO attempts (jid, token, worker, leased_at, deadline, finished, status, error, output)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: append_transition
INSERT INTO transitions (jid, at, state, reason) VALUES (?, ?, ?, ?)

-- name: live_jobs
SELECT * FROM jobs WHERE state NOT IN (3, 4, 5) ORDER BY jid

-- name: recent_keyed_jobs
SELECT * FROM jobs
 WHERE state IN (3, 4, 5) AND meta IS NOT NULL AND updated >= ?
 ORDER BY jid

-- name: max_jid
SELECT COALESCE(MAX(jid), 0) FROM jobs

-- name: read_job
SELECT * FROM jobs WHERE jid = ?

-- name: read_attempts
SELECT jid, token, worker, leased_at, deadline, finished, status, error, output
  FROM attempts WHERE jid = ? ORDER BY rowid

-- name: read_transitions
SELECT jid, at, state, reason FROM transitions WHERE jid = ? ORDER BY rowid

-- name: bump_epoch
INSERT INTO broker_meta (key, value) VALUES ('epoch', 1)
ON CONFLICT (key) DO UPDATE SET value = value + 1
RETURNING value
