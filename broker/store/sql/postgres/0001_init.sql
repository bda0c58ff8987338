-- The same shape as the SQLite ledger: jobs inserted once, every change appended to
-- history, history folded into jobs off the hot path (see broker/store/rows.py).

CREATE TABLE IF NOT EXISTS broker_meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);

-- fillfactor leaves room on each page so the fold's UPDATEs stay HOT (no index churn)
CREATE TABLE IF NOT EXISTS jobs (
    jid            bigint   PRIMARY KEY,
    tenant         text     NOT NULL,
    job_type       text     NOT NULL,
    priority       smallint NOT NULL,
    state          smallint NOT NULL,
    attempt        integer  NOT NULL,
    max_attempts   integer  NOT NULL,
    lease_ms       integer  NOT NULL,
    created        bigint   NOT NULL,
    not_before     bigint   NOT NULL,
    payload        bytea    NOT NULL,
    meta           bytea,
    due            bigint   NOT NULL,
    lease_token    bigint   NOT NULL,
    lease_worker   text,
    lease_deadline bigint   NOT NULL,
    last_token     bigint   NOT NULL,
    last_status    text,
    updated        bigint   NOT NULL
) WITH (fillfactor = 80);

CREATE INDEX IF NOT EXISTS jobs_live ON jobs (jid) WHERE state NOT IN (3, 4, 5);

CREATE TABLE IF NOT EXISTS history (
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    jid            bigint   NOT NULL,
    at             bigint   NOT NULL,
    state          smallint NOT NULL,
    attempt        integer  NOT NULL,
    due            bigint   NOT NULL,
    lease_token    bigint   NOT NULL,
    lease_worker   text,
    lease_deadline bigint   NOT NULL,
    last_token     bigint   NOT NULL,
    last_status    text,
    token          bigint   NOT NULL,
    worker         text,
    leased_at      bigint   NOT NULL,
    deadline       bigint   NOT NULL,
    finished       bigint   NOT NULL,
    status         text,
    error          bytea,
    output         bytea,
    reason         text
);

CREATE INDEX IF NOT EXISTS history_job ON history (jid, seq);
