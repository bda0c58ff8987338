-- Operators' limits (quotas, sources, fairness weights), as JSON.
CREATE TABLE IF NOT EXISTS limits (
    kind    text   NOT NULL,
    tenant  text   NOT NULL,
    name    text   NOT NULL,
    config  bytea  NOT NULL,
    updated bigint NOT NULL,
    PRIMARY KEY (kind, tenant, name)
);
