-- pg_tenancy 0.1.0 → 0.2.0. Frozen once 0.2.0 is released.
\echo Use "ALTER EXTENSION pg_tenancy UPDATE" to load this file. \quit

-- The permissions the context's actor may use now (after a token's or a JWT's scopes).
CREATE FUNCTION @extschema@.current_permissions()
RETURNS SETOF text
LANGUAGE sql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $fn$
SELECT p.name
  FROM @extschema@.permissions p
 WHERE @extschema@.has_permission(p.name)
 ORDER BY p.name
$fn$;
REVOKE ALL ON FUNCTION @extschema@.current_permissions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.current_permissions() TO PUBLIC;
