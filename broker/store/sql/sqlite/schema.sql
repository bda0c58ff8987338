-- name: schema
CREATE TABLE IF NOT EXISTS broker_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

-- Jobs as inserted, and as folded from history by compaction.
CREATE TABLE IF NOT EXISTS jobs (
    jid            INTEGER PRIMARY KEY,
    tenant         TEXT    NOT NULL,
    job_type       TEXT    NOT NULL,
    priority       INTEGER NOT NULL,
    state          INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    max_attempts   INTEGER NOT NULL,
    lease_ms       INTEGER NOT NULL,
    created        INTEGER NOT NULL,
    not_before     INTEGER NOT NULL,
    payload        BLOB    NOT NULL,
    meta           BLOB,
    due            INTEGER NOT NULL,
    lease_token    INTEGER NOT NULL,
    lease_worker   TEXT,
    lease_deadline INTEGER NOT NULL,
    last_token     INTEGER NOT NULL,
    last_status    TEXT,
    updated        INTEGER NOT NULL
);

-- Live jobs are what a restart loads: keep them reachable without a scan.
CREATE INDEX IF NOT EXISTS jobs_live ON jobs (jid) WHERE state NOT IN (3, 4, 5);

-- Every change, append-only; seq orders them. The newest row of a job holds
-- its current state (see broker/store/rows.py).
CREATE TABLE IF NOT EXISTS history (
    seq            INTEGER PRIMARY KEY,
    jid            INTEGER NOT NULL,
    at             INTEGER NOT NULL,
    state          INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    due            INTEGER NOT NULL,
    lease_token    INTEGER NOT NULL,
    lease_worker   TEXT,
    lease_deadline INTEGER NOT NULL,
    last_token     INTEGER NOT NULL,
    last_status    TEXT,
    token          INTEGER NOT NULL,
    worker         TEXT,
    leased_at      INTEGER NOT NULL,
    deadline       INTEGER NOT NULL,
    finished       INTEGER NOT NULL,
    status         TEXT,
    error          BLOB,
    output         BLOB,
    reason         TEXT
);
CREATE INDEX IF NOT EXISTS history_job ON history (jid, seq);

-- DAG runs: created once, status upserted when it changes.
CREATE TABLE IF NOT EXISTS runs (
    run_id  TEXT    PRIMARY KEY,
    tenant  TEXT    NOT NULL,
    token   TEXT,
    created INTEGER NOT NULL,
    status  TEXT    NOT NULL,
    updated INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_token ON runs (tenant, token) WHERE token IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_listing ON runs (tenant, created, run_id);

-- Which jobs belong to which run (the edges themselves are in each job's meta).
CREATE TABLE IF NOT EXISTS run_jobs (
    run_id TEXT    NOT NULL,
    jid    INTEGER NOT NULL,
    PRIMARY KEY (run_id, jid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS run_jobs_jid ON run_jobs (jid);

-- Operator actions with who asked and why.
CREATE TABLE IF NOT EXISTS audit (
    seq    INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    tenant TEXT    NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    reason TEXT,
    ticket TEXT
);
CREATE INDEX IF NOT EXISTS audit_tenant ON audit (tenant, seq);

-- Operators' limits (quotas, sources, fairness weights), as JSON.
CREATE TABLE IF NOT EXISTS limits (
    kind    TEXT    NOT NULL,
    tenant  TEXT    NOT NULL,
    name    TEXT    NOT NULL,
    config  BLOB    NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (kind, tenant, name)
);

-- Retention: finished jobs are purged oldest first, found through this index.
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (updated) WHERE state IN (3, 4, 5);
