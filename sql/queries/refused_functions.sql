-- The functions application roles may not run (src/object_access.rs): statistics accessors,
-- notifications and large objects of pg_catalog, and pg_stat_statements wherever it is
-- installed. Runs as the bootstrap superuser: every name and operator is schema-qualified.
SELECT p.oid
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
 WHERE (n.nspname OPERATOR(pg_catalog.=) 'pg_catalog'
        AND (pg_catalog.starts_with(p.proname::pg_catalog.text, 'pg_stat_get_')
             OR pg_catalog.starts_with(p.proname::pg_catalog.text, 'lo_')
             OR p.proname OPERATOR(pg_catalog.=) ANY (ARRAY['pg_notify', 'loread', 'lowrite']::pg_catalog.name[])))
    OR p.proname OPERATOR(pg_catalog.=) ANY (ARRAY['pg_stat_statements', 'pg_stat_statements_info']::pg_catalog.name[])
