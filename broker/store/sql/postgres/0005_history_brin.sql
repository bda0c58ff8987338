-- WAL per completed job: the history table is append-only and written in seq order,
-- and its rows arrive roughly in job-number order too (jobs finish about as they were
-- submitted). Two B-tree entries per row (the seq primary key and (jid, seq)) were
-- about 150 of the ~290 WAL bytes each completion wrote; block-range indexes cost
-- nothing per row (a new range is summarised later, by vacuum or on demand) and still
-- serve what reads history: a seq range (the fold), one job (reads, the purge).
-- The newest seq is read from the identity sequence (queries.sql: last_seq), not MAX(seq).
ALTER TABLE history DROP CONSTRAINT IF EXISTS history_pkey;
DROP INDEX IF EXISTS history_job;
CREATE INDEX IF NOT EXISTS history_seq_range ON history USING brin (seq)
    WITH (pages_per_range = 16, autosummarize = on);
CREATE INDEX IF NOT EXISTS history_jid_range ON history USING brin (jid)
    WITH (pages_per_range = 16, autosummarize = on);
