-- Where tenancy.tenants ($1) keeps what set_tenant() checks, for a direct probe of its primary
-- key: the index (on id alone), the id column (uuid) and the status column (text). No row when
-- the table is not shaped like that (the probe is then not used). Runs as the bootstrap
-- superuser: every name and operator is schema-qualified.
SELECT i.indexrelid,
       a.attnum,
       s.attnum
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_attribute a
    ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid
   AND a.attname OPERATOR(pg_catalog.=) 'id'
   AND a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype
  JOIN pg_catalog.pg_attribute s
    ON s.attrelid OPERATOR(pg_catalog.=) i.indrelid
   AND s.attname OPERATOR(pg_catalog.=) 'status'
   AND s.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.text'::pg_catalog.regtype
   AND NOT s.attisdropped
 WHERE i.indrelid OPERATOR(pg_catalog.=) $1
   AND i.indisprimary AND i.indisvalid AND i.indisready
   AND i.indnatts OPERATOR(pg_catalog.=) 1
   AND i.indkey[0] OPERATOR(pg_catalog.=) a.attnum
