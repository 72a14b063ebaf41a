-- One batch of decisions from the log writer, column by column.
INSERT INTO tenancy.auth_log
       (at, tenant_id, user_id, token_id, action, permission, outcome, reason, request_label,
        db_role, login_role, repeats, last_at)
SELECT 'epoch'::pg_catalog.timestamptz OPERATOR(pg_catalog.+)
           (e.at_us OPERATOR(pg_catalog.*) '1 microsecond'::pg_catalog.interval),
       e.tenant_id, e.user_id, e.token_id, e.action, e.permission, e.outcome, e.reason,
       e.request_label, e.db_role, e.login_role, e.repeats,
       'epoch'::pg_catalog.timestamptz OPERATOR(pg_catalog.+)
           (e.last_at_us OPERATOR(pg_catalog.*) '1 microsecond'::pg_catalog.interval)
  FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int8[]), pg_catalog.unnest($2::pg_catalog.uuid[]),
                  pg_catalog.unnest($3::pg_catalog.uuid[]), pg_catalog.unnest($4::pg_catalog.uuid[]),
                  pg_catalog.unnest($5::pg_catalog.text[]), pg_catalog.unnest($6::pg_catalog.text[]),
                  pg_catalog.unnest($7::pg_catalog.text[]), pg_catalog.unnest($8::pg_catalog.text[]),
                  pg_catalog.unnest($9::pg_catalog.text[]), pg_catalog.unnest($10::pg_catalog.text[]),
                  pg_catalog.unnest($11::pg_catalog.text[]), pg_catalog.unnest($12::pg_catalog.int4[]),
                  pg_catalog.unnest($13::pg_catalog.int8[]))
       AS e(at_us, tenant_id, user_id, token_id, action, permission, outcome, reason,
            request_label, db_role, login_role, repeats, last_at_us)
