-- Relations for SQL readers (operators, exports, ad-hoc queries), computed from the rows the
-- broker writes, so that none of them costs a write on the hot path: a job's current state
-- is its newest history row (0006); idempotency keys and DAG edges are written once with the
-- job (its meta); artifacts with the attempt that reported them (its history row's output);
-- quotas and sources are the operator limits.

-- every job in its current state: its newest history row, else its job row
CREATE OR REPLACE VIEW jobs_now AS
SELECT j.jid, j.tenant, j.job_type, j.priority,
       COALESCE(h.state, j.state) AS state,
       COALESCE(h.attempt, j.attempt) AS attempt,
       j.max_attempts, j.lease_ms, j.created, j.not_before, j.payload, j.meta,
       CASE WHEN h.seq IS NULL THEN j.due ELSE COALESCE(h.due, 0) END AS due,
       CASE WHEN h.seq IS NULL THEN j.lease_token ELSE COALESCE(h.lease_token, 0) END
           AS lease_token,
       CASE WHEN h.seq IS NULL THEN j.lease_worker ELSE h.lease_worker END AS lease_worker,
       CASE WHEN h.seq IS NULL THEN j.lease_deadline ELSE COALESCE(h.lease_deadline, 0) END
           AS lease_deadline,
       CASE WHEN h.seq IS NULL THEN j.last_token ELSE h.last_token END AS last_token,
       CASE WHEN h.seq IS NULL THEN j.last_status ELSE h.last_status END AS last_status,
       COALESCE(h.at, j.updated) AS updated
  FROM jobs AS j
  LEFT JOIN LATERAL (
       SELECT * FROM history WHERE history.jid = j.jid ORDER BY seq DESC LIMIT 1
  ) AS h ON true;

-- the job each (tenant, idempotency key) created
CREATE OR REPLACE VIEW idempotency_keys AS
SELECT tenant, convert_from(meta, 'UTF8')::jsonb ->> 'idempotencyKey' AS idempotency_key,
       jid, created
  FROM jobs
 WHERE meta IS NOT NULL AND convert_from(meta, 'UTF8')::jsonb ? 'idempotencyKey';

-- parent -> child inside a run
CREATE OR REPLACE VIEW dag_edges AS
SELECT parent.value::bigint AS parent, j.jid AS child
  FROM jobs AS j,
       jsonb_array_elements_text(convert_from(j.meta, 'UTF8')::jsonb -> 'parents') AS parent
 WHERE j.meta IS NOT NULL;

-- the artifacts each attempt reported with its result
CREATE OR REPLACE VIEW artifacts AS
SELECT h.jid, h.token, h.finished, a ->> 'uri' AS uri, a ->> 'digest' AS digest,
       a ->> 'mime' AS mime
  FROM history AS h,
       jsonb_array_elements(convert_from(h.output, 'UTF8')::jsonb -> 'artifacts') AS a
 WHERE h.output IS NOT NULL;

CREATE OR REPLACE VIEW quotas AS
SELECT tenant, name AS job_type, convert_from(config, 'UTF8')::jsonb AS config, updated
  FROM limits WHERE kind = 'quota';

CREATE OR REPLACE VIEW sources AS
SELECT tenant, name AS host, convert_from(config, 'UTF8')::jsonb AS config, updated
  FROM limits WHERE kind = 'source';
