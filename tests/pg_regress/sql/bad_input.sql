-- Bad input to every function: NULL, empty, over-long and malformed arguments.
--
-- The contract: 22023 for a bad argument, 28000 without a context, 42501 when not allowed;
-- the message is lower-case, starts with "tenancy:" and names the value; there is a HINT;
-- never XX000 (a panic) and never a silent success. Each case runs in a subtransaction and
-- is checked against that (column ok); the last query lists every case that breaks it.
--
-- Arguments of type uuid and regclass are parsed by PostgreSQL before the function runs:
-- a malformed uuid or an unknown table name is PostgreSQL's own error (expect = 'type').
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_bad_app;
RESET client_min_messages;
CREATE ROLE regress_bad_app LOGIN IN ROLE tenancy_app;

CREATE FUNCTION bad_check(call text, expect text, OUT result text, OUT ok boolean)
LANGUAGE plpgsql AS $fn$
DECLARE
    st  text;
    msg text;
    hnt text;
BEGIN
    BEGIN
        EXECUTE call;
        result := 'no error';
        ok := false;
        RETURN;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hnt = PG_EXCEPTION_HINT;
    END;
    result := st || ': ' || regress_mask(msg)
        || coalesce(' / HINT: ' || regress_mask(nullif(hnt, '')), ' / (no hint)');
    ok := CASE WHEN expect = 'type' THEN st IN ('22P02', '42602', '42P01', '3F000')
               ELSE st = expect AND msg ~ '^tenancy: [a-z]' AND coalesce(hnt, '') <> '' END;
END
$fn$;
CREATE TEMP TABLE bad_results (grp int, n int, call text, expect text, result text, ok boolean);
GRANT SELECT, INSERT ON bad_results TO PUBLIC;

-- A tenant with an owner and a staff member, and a table to isolate.
SET ROLE regress_bad_app;
SELECT tenancy.create_user('bad-owner@example.com') AS owner \gset
SELECT tenancy.create_user('bad-staff@example.com') AS staff \gset
SELECT tenancy.create_tenant('Bad Input', :'owner') AS t \gset
SELECT tenancy.create_tenant('Bad Input Other', :'owner') AS t2 \gset
INSERT INTO regress_ids (id, label) VALUES (:'owner', 'owner'), (:'staff', 'staff'),
    (:'t', 'T'), (:'t2', 'T2'), ('00000000-0000-4000-8000-00000000dead', 'unknown');
RESET ROLE;
INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES (:'t', :'staff', 'staff');
CREATE TABLE bad_tbl (id int, tenant_id uuid NOT NULL);

------------------------------------------------------------------------------------------
-- 1. An application role without a context.
------------------------------------------------------------------------------------------
SET ROLE regress_bad_app;
INSERT INTO bad_results
SELECT 1, n, call, expect, r.result, r.ok
  FROM (VALUES
    (1, 'SELECT tenancy.set_tenant(NULL)', '22023'),
    (2, 'SELECT tenancy.set_tenant(NULL, NULL)', '22023'),
    (3, format('SELECT tenancy.set_tenant(NULL, %L)', :'owner'), '22023'),
    (4, $$SELECT tenancy.set_tenant('')$$, 'type'),
    (5, $$SELECT tenancy.set_tenant('not-a-uuid')$$, 'type'),
    (6, $$SELECT tenancy.set_tenant(repeat('a', 10000)::uuid)$$, 'type'),
    (7, $$SELECT tenancy.set_tenant('00000000-0000-4000-8000-00000000dead')$$, '28000'),
    (8, format('SELECT tenancy.set_tenant(%L, %L)', :'t', '00000000-0000-4000-8000-00000000dead'), '42501'),
    (9, 'SELECT tenancy.current_tenant()', '28000'),
    (10, $$SELECT tenancy.require_permission('orders:read')$$, '28000'),
    (11, $$SELECT tenancy.require_role('viewer')$$, '28000'),
    (12, 'SELECT tenancy.has_permission(NULL)', '22023'),
    (13, 'SELECT tenancy.has_role(NULL)', '22023'),
    (14, 'SELECT tenancy.require_permission(NULL)', '22023'),
    (15, 'SELECT tenancy.require_role(NULL)', '22023'),
    (16, format('SELECT tenancy.set_member_role(%L, %L)', :'staff', 'viewer'), '28000'),
    (17, format('SELECT tenancy.remove_member(%L)', :'staff'), '28000'),
    (18, 'SELECT tenancy.remove_member(NULL)', '28000'),
    (19, 'SELECT * FROM tenancy.members', '28000')
  ) AS v(n, call, expect), LATERAL bad_check(call, expect) AS r;

------------------------------------------------------------------------------------------
-- 2. An application role in a context (the owner of T).
------------------------------------------------------------------------------------------
BEGIN;
SELECT tenancy.set_tenant(:'t', :'owner');
INSERT INTO bad_results
SELECT 2, n, call, expect, r.result, r.ok
  FROM (VALUES
    -- permission names
    (1, 'SELECT tenancy.has_permission(NULL)', '22023'),
    (2, $$SELECT tenancy.has_permission('')$$, '22023'),
    (3, $$SELECT tenancy.has_permission(repeat('p', 10000))$$, '22023'),
    (4, $$SELECT tenancy.has_permission('ORDERS:READ')$$, '22023'),
    (5, $$SELECT tenancy.has_permission(' orders:read')$$, '22023'),
    (6, $$SELECT tenancy.has_permission(E'orders:read\n')$$, '22023'),
    (7, $$SELECT tenancy.has_permission('orders:read:x')$$, '22023'),
    (8, $$SELECT tenancy.has_permission('*')$$, '22023'),
    (9, $$SELECT tenancy.has_permission('orders:*')$$, '22023'),
    (10, $$SELECT tenancy.has_permission(E'orders:read\u0001')$$, '22023'),
    (11, 'SELECT tenancy.require_permission(NULL)', '22023'),
    (12, $$SELECT tenancy.require_permission('')$$, '22023'),
    (13, $$SELECT tenancy.require_permission(repeat('p', 10000))$$, '22023'),
    -- role names
    (20, 'SELECT tenancy.has_role(NULL)', '22023'),
    (21, $$SELECT tenancy.has_role('')$$, '22023'),
    (22, $$SELECT tenancy.has_role(repeat('r', 10000))$$, '22023'),
    (23, $$SELECT tenancy.has_role('OWNER')$$, '22023'),
    (24, $$SELECT tenancy.has_role('owner ')$$, '22023'),
    (25, 'SELECT tenancy.require_role(NULL)', '22023'),
    (26, $$SELECT tenancy.require_role('')$$, '22023'),
    (27, $$SELECT tenancy.require_role(repeat('r', 10000))$$, '22023'),
    -- member changes
    (30, $$SELECT tenancy.set_member_role(NULL, 'staff')$$, '22023'),
    (31, format('SELECT tenancy.set_member_role(%L, NULL)', :'staff'), '22023'),
    (32, 'SELECT tenancy.set_member_role(NULL, NULL)', '22023'),
    (33, format('SELECT tenancy.set_member_role(%L, %L)', :'staff', ''), '22023'),
    (34, format('SELECT tenancy.set_member_role(%L, repeat(%L, 10000))', :'staff', 'r'), '22023'),
    (35, format('SELECT tenancy.set_member_role(%L, %L)', :'staff', 'OWNER'), '22023'),
    (36, $$SELECT tenancy.set_member_role('00000000-0000-4000-8000-00000000dead', 'staff')$$, '22023'),
    (37, $$SELECT tenancy.set_member_role('', 'staff')$$, 'type'),
    (38, 'SELECT tenancy.remove_member(NULL)', '22023'),
    (39, $$SELECT tenancy.remove_member('00000000-0000-4000-8000-00000000dead')$$, '22023'),
    (40, $$SELECT tenancy.remove_member('not-a-uuid')$$, 'type'),
    -- another context in the same transaction
    (45, format('SELECT tenancy.set_tenant(%L, %L)', :'t2', :'owner'), '42501'),
    -- users
    (50, 'SELECT tenancy.create_user(NULL)', '22023'),
    (51, $$SELECT tenancy.create_user('')$$, '22023'),
    (52, $$SELECT tenancy.create_user('   ')$$, '22023'),
    (53, $$SELECT tenancy.create_user(repeat('x', 10000) || '@example.com')$$, '22023'),
    (54, $$SELECT tenancy.create_user('x@' || repeat('d', 10000) || '.com')$$, '22023'),
    (55, $$SELECT tenancy.create_user('no-at-sign.example.com')$$, '22023'),
    (56, $$SELECT tenancy.create_user(E'ctl\u0001@example.com')$$, '22023'),
    (57, 'SELECT tenancy.create_user(NULL, NULL)', '22023'),
    (58, format('SELECT tenancy.create_user(%L, %L)', 'bad-owner@example.com', :'staff'), '22023'),
    (59, format('SELECT tenancy.create_user(%L, %L)', 'bad-new@example.com', :'staff'), '22023'),
    (60, $$SELECT tenancy.create_user('bad-new@example.com', 'not-a-uuid')$$, 'type'),
    -- tenants
    (70, format('SELECT tenancy.create_tenant(NULL, %L)', :'owner'), '22023'),
    (71, format('SELECT tenancy.create_tenant(%L, %L)', '', :'owner'), '22023'),
    (72, format('SELECT tenancy.create_tenant(repeat(%L, 10000), %L)', 'n', :'owner'), '22023'),
    (73, $$SELECT tenancy.create_tenant('Fine', NULL)$$, '22023'),
    (74, $$SELECT tenancy.create_tenant('Fine', '00000000-0000-4000-8000-00000000dead')$$, '22023'),
    (75, $$SELECT tenancy.create_tenant('Fine', '')$$, 'type'),
    (76, format('SELECT tenancy.create_tenant(%L, %L, %L)', 'Fine', :'owner', ''), '22023'),
    (77, format('SELECT tenancy.create_tenant(%L, %L, repeat(%L, 10000))', 'Fine', :'owner', 's'), '22023'),
    (78, format('SELECT tenancy.create_tenant(%L, %L, %L)', 'Fine', :'owner', 'Not A Slug'), '22023'),
    (79, format('SELECT tenancy.create_tenant(%L, %L, %L)', 'Fine', :'owner', 'bad-input'), '22023'),
    (80, 'SELECT tenancy.create_tenant(NULL, NULL, NULL)', '22023')
  ) AS v(n, call, expect), LATERAL bad_check(call, expect) AS r;
COMMIT;

-- A member without members:write, on bad arguments to member changes: the argument is
-- checked first or the permission first, but it is never a silent success.
BEGIN;
SELECT tenancy.set_tenant(:'t', :'staff');
INSERT INTO bad_results
SELECT 3, n, call, expect, r.result, r.ok
  FROM (VALUES
    (1, format('SELECT tenancy.set_member_role(%L, %L)', :'owner', 'viewer'), '42501'),
    (2, format('SELECT tenancy.remove_member(%L)', :'owner'), '42501'),
    (3, $$SELECT tenancy.require_permission('members:write')$$, '42501'),
    (4, $$SELECT tenancy.require_role('manager')$$, '42501')
  ) AS v(n, call, expect), LATERAL bad_check(call, expect) AS r;
COMMIT;
RESET ROLE;

------------------------------------------------------------------------------------------
-- 4. The generators (superuser), and the internal helpers.
------------------------------------------------------------------------------------------
INSERT INTO bad_results
SELECT 4, n, call, expect, r.result, r.ok
  FROM (VALUES
    (1, 'SELECT tenancy.isolate(NULL)', '22023'),
    (2, 'SELECT tenancy.isolate(NULL, NULL, NULL, NULL)', '22023'),
    (3, $$SELECT tenancy.isolate('')$$, 'type'),
    (4, $$SELECT tenancy.isolate('bad_missing')$$, 'type'),
    (5, $$SELECT tenancy.isolate(repeat('t', 10000))$$, 'type'),
    (6, $$SELECT tenancy.isolate('bad_tbl', NULL)$$, '22023'),
    (7, $$SELECT tenancy.isolate('bad_tbl', '')$$, '22023'),
    (8, $$SELECT tenancy.isolate('bad_tbl', repeat('c', 10000))$$, '22023'),
    (9, $$SELECT tenancy.isolate('bad_tbl', 'tenant_id; drop table bad_tbl')$$, '22023'),
    (10, $$SELECT tenancy.isolate('bad_tbl', 'tenant_id', '')$$, '22023'),
    (11, $$SELECT tenancy.isolate('bad_tbl', 'tenant_id', repeat('p', 10000))$$, '22023'),
    (12, $$SELECT tenancy.isolate('bad_tbl', 'tenant_id', 'Orders:Read')$$, '22023'),
    (13, $$SELECT tenancy.isolate('bad_tbl', 'tenant_id', 'orders:read''); drop table bad_tbl; --')$$, '22023'),
    (14, $$SELECT tenancy.isolate('bad_tbl', 'tenant_id', NULL, '')$$, '22023'),
    (15, $$SELECT tenancy.isolate('bad_tbl', 'tenant_id', NULL, repeat('p', 10000))$$, '22023'),
    (20, 'SELECT tenancy.unisolate(NULL)', '22023'),
    (21, $$SELECT tenancy.unisolate('')$$, 'type'),
    (22, $$SELECT tenancy.unisolate('bad_tbl')$$, '22023'),
    (23, $$SELECT tenancy.unisolate(repeat('t', 10000))$$, 'type'),
    (30, 'SELECT tenancy.auto_isolate(NULL)', '22023'),
    (31, 'SELECT tenancy.auto_isolate(NULL, NULL)', '22023'),
    (32, $$SELECT tenancy.auto_isolate('')$$, '22023'),
    (33, $$SELECT tenancy.auto_isolate(repeat('s', 10000))$$, '22023'),
    (34, $$SELECT tenancy.auto_isolate('public', NULL)$$, '22023'),
    (35, $$SELECT tenancy.auto_isolate('no_such_schema', false)$$, '22023'),
    (36, $$SELECT tenancy.auto_isolate('no_such_schema', true)$$, '22023')
  ) AS v(n, call, expect), LATERAL bad_check(call, expect) AS r;
-- Internal helpers, executable by superusers only: only whether they keep the contract is
-- shown (their messages are not part of the SQL surface).
INSERT INTO bad_results
SELECT 5, n, call, expect, r.result, r.ok
  FROM (VALUES
    (1, 'SELECT tenancy.log_denial(NULL, NULL, NULL)', '22023'),
    (2, $$SELECT tenancy.log_denial('action', NULL, NULL)$$, '22023'),
    (3, 'SELECT tenancy.check_email(NULL)', '22023'),
    (4, $$SELECT tenancy.check_email('')$$, '22023'),
    (5, 'SELECT tenancy.member_change_check(NULL, NULL)', '28000'),
    (6, 'SELECT tenancy.last_owner_check(NULL, NULL, NULL)', '28000')
  ) AS v(n, call, expect), LATERAL bad_check(call, expect) AS r;
-- None of those calls changed anything.
SELECT to_regclass('bad_tbl') IS NOT NULL AS bad_tbl_exists,
       (SELECT relrowsecurity FROM pg_class WHERE oid = 'bad_tbl'::regclass) AS bad_tbl_rls,
       (SELECT count(*) FROM tenancy.auto_isolate_schemas
         WHERE schema_name IN ('public', 'no_such_schema')) AS auto_schemas;

-- Every case, with its result (results longer than 250 characters are cut here; only
-- PostgreSQL's own type errors echo a whole over-long value).
SELECT grp, n, regress_mask(call) AS call, expect, ok,
       CASE WHEN length(result) > 250 THEN left(result, 250) || '... (' || length(result) || ' characters)'
            ELSE result END AS result
  FROM bad_results WHERE grp < 5 ORDER BY grp, n;
SELECT grp, n, call, expect, ok FROM bad_results WHERE grp = 5 ORDER BY grp, n;

-- The cases that break the contract (none).
SELECT grp, n, regress_mask(call) AS call, expect, result FROM bad_results WHERE NOT ok ORDER BY grp, n;

-- Clean up: the database as other tests expect it (the linter test expects no findings).
DROP TABLE bad_tbl;
DROP FUNCTION bad_check(text, text);
DROP ROLE regress_bad_app;
