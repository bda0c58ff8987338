-- name: schema
CREATE TABLE IF NOT EXISTS broker_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

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

-- live jobs are what a restart loads: keep them reachable without a scan
CREATE INDEX IF NOT EXISTS jobs_live ON jobs (jid) WHERE state NOT IN (3, 4, 5);

CREATE TABLE IF NOT EXISTS attempts (
    jid       INTEGER NOT NULL,
    token     INTEGER NOT NULL,
    worker    TEXT    NOT NULL,
    leased_at INTEGER NOT NULL,
    deadline  INTEGER NOT NULL,
    finished  INTEGER NOT NULL,
    status    TEXT    NOT NULL,
    error     BLOB,
    output    BLOB
);
CREATE INDEX IF NOT EXISTS attempts_job ON attempts (jid);

CREATE TABLE IF NOT EXISTS transitions (
    jid    INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    state  INTEGER NOT NULL,
    reason TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS transitions_job ON transitions (jid);
