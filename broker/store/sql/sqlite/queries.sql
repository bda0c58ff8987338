-- name: insert_job
INSERT INTO jobs (jid, tenant, job_type, priority, state, attempt, max_attempts, lease_ms,
                  created, not_before, payload, meta, due, lease_token, lease_worker,
                  lease_deadline, last_token, last_status, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: append_history
INSERT INTO history (jid, at, state, attempt, due, lease_token, lease_worker, lease_deadline,
                     last_token, last_status, token, worker, leased_at, deadline, finished,
                     status, error, output, reason)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: folded_upto
SELECT COALESCE((SELECT value FROM broker_meta WHERE key = 'folded'), 0)

-- name: last_seq
SELECT COALESCE(MAX(seq), 0) FROM history

-- name: fold_range
-- the newest history row of each job in (from, to] becomes its jobs row state
UPDATE jobs
   SET state = h.state, attempt = h.attempt, due = h.due, lease_token = h.lease_token,
       lease_worker = h.lease_worker, lease_deadline = h.lease_deadline,
       last_token = h.last_token, last_status = h.last_status, updated = h.at
  FROM (SELECT jid, MAX(seq) AS seq FROM history WHERE seq > ?1 AND seq <= ?2 GROUP BY jid) AS m
  JOIN history AS h ON h.seq = m.seq
 WHERE jobs.jid = m.jid

-- name: set_folded
INSERT INTO broker_meta (key, value) VALUES ('folded', ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value

-- name: live_jobs
SELECT * FROM jobs WHERE state NOT IN (3, 4, 5) ORDER BY jid

-- name: recent_keyed_jobs
SELECT * FROM jobs
 WHERE state IN (3, 4, 5) AND meta IS NOT NULL AND updated >= ?
 ORDER BY jid

-- name: max_jid
-- above every job stored, and every job purged (job numbers are never reused)
SELECT MAX(COALESCE((SELECT MAX(jid) FROM jobs), 0),
           COALESCE((SELECT value FROM broker_meta WHERE key = 'purged_jid'), 0))

-- name: keep_max_jid
INSERT INTO broker_meta (key, value) SELECT 'purged_jid', COALESCE(MAX(jid), 0) FROM jobs WHERE true
ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)

-- name: read_job
SELECT * FROM jobs WHERE jid = ?

-- name: read_history
SELECT jid, at, state, attempt, due, lease_token, lease_worker, lease_deadline, last_token,
       last_status, token, worker, leased_at, deadline, finished, status, error, output, reason
  FROM history WHERE jid = ? ORDER BY seq

-- name: bump_epoch
INSERT INTO broker_meta (key, value) VALUES ('epoch', 1)
ON CONFLICT (key) DO UPDATE SET value = value + 1
RETURNING value

-- name: upsert_run
INSERT INTO runs (run_id, tenant, token, created, status, updated) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, updated = excluded.updated

-- name: insert_member
INSERT INTO run_jobs (run_id, jid) VALUES (?, ?)

-- name: append_audit
INSERT INTO audit (at, tenant, actor, action, target, reason, ticket) VALUES (?, ?, ?, ?, ?, ?, ?)

-- name: live_runs
-- runs with a live job, and recent runs whose token must keep deduping
SELECT * FROM runs
 WHERE run_id IN (SELECT rj.run_id FROM run_jobs AS rj JOIN jobs AS j ON j.jid = rj.jid
                   WHERE j.state NOT IN (3, 4, 5))
    OR (token IS NOT NULL AND created >= ?)

-- name: live_run_members
-- the finished jobs of runs that still have live ones (their DAG is rebuilt whole)
SELECT j.* FROM run_jobs AS rj JOIN jobs AS j ON j.jid = rj.jid
 WHERE j.state IN (3, 4, 5)
   AND rj.run_id IN (SELECT r2.run_id FROM run_jobs AS r2 JOIN jobs AS j2 ON j2.jid = r2.jid
                      WHERE j2.state NOT IN (3, 4, 5))
 ORDER BY j.jid

-- name: read_run
SELECT * FROM runs WHERE run_id = ?

-- name: read_run_jobs
SELECT j.* FROM run_jobs AS rj JOIN jobs AS j ON j.jid = rj.jid WHERE rj.run_id = ? ORDER BY j.jid

-- name: read_run_history
SELECT h.jid, h.at, h.state, h.attempt, h.due, h.lease_token, h.lease_worker, h.lease_deadline,
       h.last_token, h.last_status, h.token, h.worker, h.leased_at, h.deadline, h.finished,
       h.status, h.error, h.output, h.reason
  FROM run_jobs AS rj JOIN history AS h ON h.jid = rj.jid
 WHERE rj.run_id = ? ORDER BY h.jid, h.seq

-- name: list_runs
-- newest first; ?3/?4 is the cursor (created, run_id) of the previous page's last run
SELECT * FROM runs
 WHERE tenant = ?1 AND (?2 IS NULL OR status = ?2)
   AND (created < ?3 OR (created = ?3 AND run_id < ?4))
 ORDER BY created DESC, run_id DESC
 LIMIT ?5

-- name: read_audit
SELECT at, tenant, actor, action, target, reason, ticket FROM audit
 WHERE tenant = ? ORDER BY seq DESC LIMIT ?

-- name: upsert_limit
INSERT INTO limits (kind, tenant, name, config, updated) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (kind, tenant, name) DO UPDATE SET config = excluded.config, updated = excluded.updated

-- name: delete_limit
DELETE FROM limits WHERE kind = ? AND tenant = ? AND name = ?

-- name: all_limits
SELECT kind, tenant, name, config, updated FROM limits ORDER BY kind, tenant, name

-- name: doomed_jobs
-- finished jobs last changed before ?1, fully folded (no history past the watermark ?3);
-- never the owner of the newest history row: SQLite numbers a new row max(seq) + 1, so
-- deleting the newest would hand its number out again, under the fold's watermark
SELECT j.jid FROM jobs AS j
 WHERE j.state IN (3, 4, 5) AND j.updated < ?1
   AND NOT EXISTS (SELECT 1 FROM history AS h WHERE h.jid = j.jid AND h.seq > ?3)
   AND j.jid IS NOT (SELECT jid FROM history ORDER BY seq DESC LIMIT 1)
 ORDER BY j.updated
 LIMIT ?2

-- name: delete_job_history
DELETE FROM history WHERE jid = ?

-- name: delete_job_membership
DELETE FROM run_jobs WHERE jid = ?

-- name: delete_job
DELETE FROM jobs WHERE jid = ?

-- name: freelist
PRAGMA freelist_count
