-- The tenant column's number of an isolated table that Citus distributes by it (hash
-- distribution); no row for any other table. Runs as the bootstrap superuser, only where the
-- citus extension exists: every name and operator is schema-qualified.
SELECT a.attnum
  FROM tenancy.isolation_registry r
  JOIN pg_catalog.pg_attribute a
    ON a.attrelid OPERATOR(pg_catalog.=) r.relid::pg_catalog.oid
   AND a.attname OPERATOR(pg_catalog.=) r.tenant_column
  JOIN pg_catalog.pg_dist_partition p
    ON p.logicalrelid::pg_catalog.oid OPERATOR(pg_catalog.=) r.relid::pg_catalog.oid
 WHERE r.relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1
   AND p.partmethod OPERATOR(pg_catalog.=) 'h'
   AND pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) OPERATOR(pg_catalog.=)
       r.tenant_column::pg_catalog.text
