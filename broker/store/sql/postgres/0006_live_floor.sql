-- A completion writes one history row and nothing else.
--
-- The jobs table is no longer updated after a job's insert: a job's state is its newest
-- history row, else its job row (as every reader already folded it). Finding live jobs no
-- longer uses jobs.state: a "live floor" in broker_meta says below which job number every
-- job is finished, except the few listed in live_stragglers (jobs still live when the floor
-- passed them, or finished ones brought back by a replay). The indexes on jobs.state and
-- jobs.updated would only go stale, so they go.
DROP INDEX IF EXISTS jobs_live;
DROP INDEX IF EXISTS jobs_finished;

CREATE TABLE IF NOT EXISTS live_stragglers (
    jid bigint PRIMARY KEY
);

-- recently finished jobs (idempotency keys to keep deduping after a restart) by time
CREATE INDEX IF NOT EXISTS history_at_range ON history USING brin (at)
    WITH (pages_per_range = 16, autosummarize = on);

-- zeros of these are stored as NULL (read back as 0): 24 bytes less in most history rows
ALTER TABLE history ALTER COLUMN due DROP NOT NULL,
                    ALTER COLUMN lease_token DROP NOT NULL,
                    ALTER COLUMN lease_deadline DROP NOT NULL;
