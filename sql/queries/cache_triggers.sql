-- pg_tenancy's cached tables ($1: their names), each with whether its cache invalidation
-- triggers are in place (sql/cache.sql): tenancy.cache_invalidate() AFTER INSERT, UPDATE,
-- DELETE and TRUNCATE FOR EACH STATEMENT enabled ALWAYS, and AFTER INSERT, UPDATE and DELETE
-- FOR EACH ROW enabled REPLICA (or ALWAYS). Runs as the bootstrap superuser: every name and
-- operator is schema-qualified.
SELECT c.relname::pg_catalog.text,
       c.oid,
       EXISTS (SELECT
                 FROM pg_catalog.pg_trigger t
                WHERE t.tgrelid OPERATOR(pg_catalog.=) c.oid
                  AND t.tgfoid OPERATOR(pg_catalog.=)
                      pg_catalog.to_regprocedure('tenancy.cache_invalidate()')
                  AND t.tgenabled OPERATOR(pg_catalog.=) 'A'
                  AND (t.tgtype OPERATOR(pg_catalog.&) 127::pg_catalog.int2)
                      OPERATOR(pg_catalog.=) 60::pg_catalog.int2)
       AND EXISTS (SELECT
                     FROM pg_catalog.pg_trigger t
                    WHERE t.tgrelid OPERATOR(pg_catalog.=) c.oid
                      AND t.tgfoid OPERATOR(pg_catalog.=)
                          pg_catalog.to_regprocedure('tenancy.cache_invalidate()')
                      AND t.tgenabled OPERATOR(pg_catalog.=) ANY ('{R,A}'::pg_catalog."char"[])
                      AND (t.tgtype OPERATOR(pg_catalog.&) 127::pg_catalog.int2)
                          OPERATOR(pg_catalog.=) 29::pg_catalog.int2)
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace OPERATOR(pg_catalog.=) pg_catalog.to_regnamespace('tenancy')
   AND c.relkind OPERATOR(pg_catalog.=) 'r'
   AND c.relname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.name[])
-- tgtype bits: 1 row, 2 before, 4 insert, 8 delete, 16 update, 32 truncate, 64 instead.
