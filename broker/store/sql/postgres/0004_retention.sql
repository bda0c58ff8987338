-- Retention: finished jobs are purged oldest first (broker/service/flusher.py), found
-- through this index instead of a scan.
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (updated) WHERE state IN (3, 4, 5);

-- Churn without bloat: the fold's UPDATEs stay HOT (fillfactor 80 on jobs, see 0001),
-- and the purge's DELETEs leave dead tuples that autovacuum must take back while they
-- are few, not at the default 20 % of a large table.
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE history SET (autovacuum_vacuum_scale_factor = 0.02,
                         autovacuum_vacuum_insert_scale_factor = 0.05);
ALTER TABLE run_jobs SET (autovacuum_vacuum_scale_factor = 0.05);
