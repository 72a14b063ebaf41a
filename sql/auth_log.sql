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
    CONSTRAINT auth_log_pkey PRIMARY KEY (id),
    CONSTRAINT auth_log_outcome_check CHECK (outcome IN ('allow', 'deny'))
);
CREATE INDEX auth_log_at_idx ON @extschema@.auth_log (at);
CREATE INDEX auth_log_tenant_at_idx ON @extschema@.auth_log (tenant_id, at);
SELECT pg_catalog.pg_extension_config_dump('@extschema@.auth_log', '');

-- Allowed and denied decisions per tenant, permission and hour.
CREATE VIEW @extschema@.auth_stats AS
SELECT pg_catalog.date_trunc('hour', l.at) AS hour,
       l.tenant_id,
       l.action,
       l.permission,
       pg_catalog.count(*) FILTER (WHERE l.outcome = 'allow') AS allowed,
       pg_catalog.count(*) FILTER (WHERE l.outcome = 'deny') AS denied
  FROM @extschema@.auth_log l
 GROUP BY 1, 2, 3, 4;
