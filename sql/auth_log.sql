-- The authorization log: every denial (and, with tenancy.log_allowed, every allowed decision),
-- written by the log writer in transactions of its own, so that a denial survives the
-- rollback of the transaction that was denied. Logged (never UNLOGGED): it survives crashes.
-- Append-only for everyone but pg_tenancy: application roles read their own tenant's rows and
-- write nothing.
CREATE TABLE @extschema@.auth_log (
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    at            timestamptz NOT NULL,
    tenant_id     uuid,
    user_id       uuid,
    token_id      uuid,
    action        text        NOT NULL,
    permission    text,
    outcome       text        NOT NULL,
    reason        text,
    request_label text,
    db_role       text,
    login_role    text,
    repeats       integer     NOT NULL DEFAULT 1,
    last_at       timestamptz,
    CONSTRAINT auth_log_pkey PRIMARY KEY (id),
    CONSTRAINT auth_log_outcome_check CHECK (outcome IN ('allow', 'deny')),
    CONSTRAINT auth_log_repeats_check CHECK (repeats >= 1)
);
COMMENT ON COLUMN @extschema@.auth_log.db_role IS
    'the role the client acted as (after SET ROLE)';
COMMENT ON COLUMN @extschema@.auth_log.login_role IS
    'the role the session logged in as (session_user)';
COMMENT ON COLUMN @extschema@.auth_log.repeats IS
    'how many identical decisions this row stands for: under load, a decision identical to one still waiting to be written (but for its time) is merged into it';
COMMENT ON COLUMN @extschema@.auth_log.last_at IS
    'when repeats > 1: the time of the last merged decision (at is the first)';
CREATE INDEX auth_log_at_idx ON @extschema@.auth_log (at);
CREATE INDEX auth_log_tenant_at_idx ON @extschema@.auth_log (tenant_id, at);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.auth_log', '');

-- Allowed and denied decisions per tenant, permission and hour.
CREATE VIEW @extschema@.auth_stats AS
SELECT pg_catalog.date_trunc('hour', l.at) AS hour,
       l.tenant_id,
       l.action,
       l.permission,
       COALESCE(pg_catalog.sum(l.repeats) FILTER (WHERE l.outcome = 'allow'), 0)::bigint AS allowed,
       COALESCE(pg_catalog.sum(l.repeats) FILTER (WHERE l.outcome = 'deny'), 0)::bigint AS denied
  FROM @extschema@.auth_log l
 GROUP BY 1, 2, 3, 4;
