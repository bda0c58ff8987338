-- DAG runs, run membership and the audit log (see broker/store/rows.py).

CREATE TABLE IF NOT EXISTS runs (
    run_id  text   PRIMARY KEY,
    tenant  text   NOT NULL,
    token   text,
    created bigint NOT NULL,
    status  text   NOT NULL,
    updated bigint NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_token ON runs (tenant, token) WHERE token IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_listing ON runs (tenant, created, run_id);

-- which jobs belong to which run (the edges themselves are in each job's meta)
CREATE TABLE IF NOT EXISTS run_jobs (
    run_id text   NOT NULL,
    jid    bigint NOT NULL,
    PRIMARY KEY (run_id, jid)
);
CREATE INDEX IF NOT EXISTS run_jobs_jid ON run_jobs (jid);

CREATE TABLE IF NOT EXISTS audit (
    seq    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     bigint NOT NULL,
    tenant text   NOT NULL,
    actor  text   NOT NULL,
    action text   NOT NULL,
    target text   NOT NULL,
    reason text,
    ticket text
);
CREATE INDEX IF NOT EXISTS audit_tenant ON audit (tenant, seq);
