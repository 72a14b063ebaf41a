-- The tenant lifecycle: user_tenants(), suspend_tenant(), resume_tenant(), transfer_ownership(),
-- export_tenant(), delete_tenant(), purge_tenant(), and the linter check lint_delete_blocked().
--
-- Runs as application roles made here (regress_life_app IN ROLE tenancy_app,
-- regress_life_client IN ROLE tenancy_client) through SET ROLE; the superuser sets up and
-- reads back. The client tests cover real connections, JWTs, warm caches and concurrency.
-- Other tests leave isolated tables in this database: results are limited to schema life and
-- to pg_tenancy's own tables.
\set VERBOSITY default
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_life_app;
DROP ROLE IF EXISTS regress_life_client;
RESET client_min_messages;
CREATE ROLE regress_life_app LOGIN IN ROLE tenancy_app;
CREATE ROLE regress_life_client LOGIN IN ROLE tenancy_client;

-- Olga owns North, South and West and is admin of East, which Piet owns; Piet is staff of North.
-- Root is a platform admin and a member of nothing; Nora belongs to no tenant.
SELECT tenancy.create_user('life-olga@example.com') AS olga \gset
SELECT tenancy.create_user('life-piet@example.com') AS piet \gset
SELECT tenancy.create_user('life-root@example.com') AS root \gset
SELECT tenancy.create_user('life-nora@example.com') AS nora \gset
UPDATE tenancy.users SET platform_admin = true WHERE id = :'root';
SELECT tenancy.create_tenant('Life North', :'olga', 'life-north') AS north \gset
SELECT tenancy.create_tenant('Life South', :'olga', 'life-south') AS south \gset
SELECT tenancy.create_tenant('Life East', :'piet', 'life-east') AS east \gset
SELECT tenancy.create_tenant('Life West', :'olga', 'life-west') AS west \gset
INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES
    (:'east', :'olga', 'admin'), (:'north', :'piet', 'staff');
INSERT INTO regress_ids (id, label) VALUES
    (:'olga', 'olga'), (:'piet', 'piet'), (:'root', 'root'), (:'nora', 'nora'),
    (:'north', 'north'), (:'south', 'south'), (:'east', 'east'), (:'west', 'west'),
    ('00000000-0000-4000-8000-00000000f00d', 'nobody');

------------------------------------------------------------------------------------------
-- user_tenants(): tenancy_app asks for any user, without a context.
------------------------------------------------------------------------------------------
SET ROLE regress_life_app;
SELECT regress_mask(tenant_id::text) AS tenant, name, slug, role, status
  FROM tenancy.user_tenants(:'olga');
SELECT regress_mask(tenant_id::text) AS tenant, name, slug, role, status
  FROM tenancy.user_tenants(:'piet');
SELECT count(*) AS nora_tenants FROM tenancy.user_tenants(:'nora');
-- NULL means the context's user.
BEGIN;
SELECT tenancy.set_tenant(:'north', :'piet');
SELECT name, role FROM tenancy.user_tenants();
ROLLBACK;
SELECT regress_try('SELECT * FROM tenancy.user_tenants()') AS no_user;
BEGIN;
SELECT tenancy.set_tenant(:'north');
SELECT regress_try('SELECT * FROM tenancy.user_tenants()') AS tenant_only_context;
ROLLBACK;
SELECT regress_try($$SELECT * FROM tenancy.user_tenants('00000000-0000-4000-8000-00000000f00d')$$) AS unknown_user;
-- An API token of Olga's in North, for the client below.
BEGIN;
SELECT tenancy.set_tenant(:'north', :'olga');
SELECT token AS north_token FROM tenancy.create_api_token('life', ARRAY['orders:read', 'tenant:delete']) \gset
COMMIT;
RESET ROLE;

-- tenancy_client: only its own user, and only in a context that a token set.
SET ROLE regress_life_client;
SELECT regress_try('SELECT * FROM tenancy.user_tenants()') AS client_without_context;
SELECT regress_try(format('SELECT * FROM tenancy.user_tenants(%L)', :'olga')) AS client_asks_for_olga;
SELECT regress_try(format('SELECT * FROM tenancy.user_tenants_any(%L)', :'olga')) AS client_calls_any;
BEGIN;
SELECT tenancy.authenticate(:'north_token');
-- An API token acts for its tenant, not for a user (current_user_id() is NULL).
SELECT regress_try('SELECT * FROM tenancy.user_tenants()') AS api_token_context;
ROLLBACK;
RESET ROLE;

------------------------------------------------------------------------------------------
-- suspend_tenant() / resume_tenant(): platform admins; superusers without a context.
------------------------------------------------------------------------------------------
SET ROLE regress_life_app;
SELECT regress_try(format('SELECT tenancy.suspend_tenant(%L, %L)', :'south', 'unpaid')) AS without_context;
BEGIN;
SELECT tenancy.set_tenant(:'south', :'olga');
SELECT regress_try(format('SELECT tenancy.suspend_tenant(%L, %L)', :'south', 'unpaid')) AS owner_suspends;
SELECT regress_try(format('SELECT tenancy.resume_tenant(%L)', :'south')) AS owner_resumes;
SELECT regress_try(format('SELECT tenancy.tenant_status_checked(%L, %L, %L)', :'south', 'suspended', 'x')) AS owner_calls_checked;
SELECT regress_try(format('SELECT tenancy.tenant_status_write(%L, %L, %L, %L)', :'south', 'suspended', 'x', 'me')) AS owner_calls_write;
ROLLBACK;
-- Root enters any tenant (logged) and suspends another one.
BEGIN;
SELECT tenancy.set_tenant(:'north', :'root');
SELECT regress_try(format('SELECT tenancy.suspend_tenant(%L, NULL)', :'south')) AS null_reason;
SELECT regress_try(format('SELECT tenancy.suspend_tenant(%L, %L)', :'south', '   ')) AS blank_reason;
SELECT regress_try(format('SELECT tenancy.suspend_tenant(%L, %L)', :'south', repeat('x', 1001))) AS long_reason;
SELECT regress_try($$SELECT tenancy.suspend_tenant('00000000-0000-4000-8000-00000000f00d', 'x')$$) AS unknown_tenant;
SELECT regress_try($$SELECT tenancy.suspend_tenant(NULL, 'x')$$) AS null_tenant;
SELECT regress_try(format('SELECT tenancy.tenant_status_checked(%L, %L, NULL)', :'south', 'deleted')) AS bad_status;
SELECT tenancy.suspend_tenant(:'south', 'invoice 17 unpaid');
COMMIT;
-- Refused from the next statement on; listed with its status.
SELECT regress_try(format('SELECT tenancy.set_tenant(%L, %L)', :'south', :'olga')) AS enter_suspended;
SELECT name, role, status FROM tenancy.user_tenants(:'olga');
-- Suspending again changes nothing; resuming admits the tenant again.
BEGIN;
SELECT tenancy.set_tenant(:'north', :'root');
SELECT tenancy.suspend_tenant(:'south', 'still unpaid');
SELECT tenancy.resume_tenant(:'south');
SELECT tenancy.resume_tenant(:'south');
COMMIT;
SELECT regress_try(format('SELECT tenancy.set_tenant(%L, %L)', :'south', :'olga')) AS enter_resumed;
-- An API token is never a platform admin (JWTs: see the client tests).
RESET ROLE;
SET ROLE regress_life_client;
BEGIN;
SELECT tenancy.authenticate(:'north_token');
SELECT regress_try(format('SELECT tenancy.suspend_tenant(%L, %L)', :'south', 'x')) AS token_suspends;
ROLLBACK;
RESET ROLE;
-- A superuser without a context may (a DBA's maintenance); with a context it is the context's
-- user who must be a platform admin.
SELECT tenancy.suspend_tenant(:'south', 'maintenance window');
SELECT tenancy.resume_tenant(:'south');
BEGIN;
SELECT tenancy.set_tenant(:'north', :'olga');
SELECT regress_try(format('SELECT tenancy.suspend_tenant(%L, %L)', :'south', 'x')) AS superuser_in_context;
ROLLBACK;
-- The record: who, when (in order), why.
SELECT regress_mask(tenant_id::text) AS tenant, status, reason,
       regress_mask(user_id::text) AS by_user, db_role
  FROM tenancy.tenant_status_history
 WHERE tenant_id = :'south'
 ORDER BY at, status DESC;
-- Application roles read their own tenant's history only, and no tombstones.
SET ROLE regress_life_app;
SELECT regress_try('SELECT count(*) FROM tenancy.tenant_status_history') AS history_without_context;
BEGIN;
SELECT tenancy.set_tenant(:'south', :'olga');
SELECT count(*) AS own_history FROM tenancy.tenant_status_history;
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'north', :'olga');
SELECT count(*) AS other_history FROM tenancy.tenant_status_history;
SELECT regress_try('SELECT count(*) FROM tenancy.deleted_tenants') AS tombstones;
ROLLBACK;
RESET ROLE;

------------------------------------------------------------------------------------------
-- transfer_ownership(): the owner hands East to a member and becomes admin.
------------------------------------------------------------------------------------------
SET ROLE regress_life_app;
SELECT regress_try(format('SELECT tenancy.transfer_ownership(%L)', :'olga')) AS without_context;
BEGIN;
SELECT tenancy.set_tenant(:'east', :'olga');
SELECT regress_try(format('SELECT tenancy.transfer_ownership(%L)', :'olga')) AS admin_transfers;
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'east', :'root');
SELECT regress_try(format('SELECT tenancy.transfer_ownership(%L)', :'olga')) AS platform_admin_transfers;
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'east', :'piet');
SELECT regress_try('SELECT tenancy.transfer_ownership(NULL)') AS null_owner;
SELECT regress_try(format('SELECT tenancy.transfer_ownership(%L)', :'piet')) AS to_self;
SELECT regress_try(format('SELECT tenancy.transfer_ownership(%L)', :'nora')) AS to_non_member;
SELECT tenancy.transfer_ownership(:'olga');
SELECT regress_mask(user_id::text) AS member, role FROM tenancy.members ORDER BY 1;
COMMIT;
-- Piet is admin now: he has nothing left to hand over.
BEGIN;
SELECT tenancy.set_tenant(:'east', :'piet');
SELECT regress_try(format('SELECT tenancy.transfer_ownership(%L)', :'olga')) AS former_owner;
ROLLBACK;
RESET ROLE;
-- An API token never transfers ownership, even one an owner made.
SET ROLE regress_life_client;
BEGIN;
SELECT tenancy.authenticate(:'north_token');
SELECT regress_try(format('SELECT tenancy.transfer_ownership(%L)', :'piet')) AS token_transfers;
ROLLBACK;
RESET ROLE;

------------------------------------------------------------------------------------------
-- The application's tables: customers, their orders (a composite foreign key, CASCADE), order
-- lines (NO ACTION), events (partitioned), notes (read permission), and a cycle of two tables.
------------------------------------------------------------------------------------------
CREATE SCHEMA life;
GRANT USAGE ON SCHEMA life TO regress_life_app, regress_life_client;
-- An export reads every isolated table of the database, also those other tests left behind:
-- the exporting role needs their schemas.
DO $do$
DECLARE s name;
BEGIN
    FOR s IN SELECT DISTINCT c.relnamespace::regnamespace::name
               FROM tenancy.isolation_registry r JOIN pg_class c ON c.oid = r.relid
    LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO regress_life_app', s);
    END LOOP;
END
$do$;
CREATE TABLE life.customers (tenant_id uuid NOT NULL, id int NOT NULL, name text,
                             PRIMARY KEY (tenant_id, id));
CREATE TABLE life.orders (tenant_id uuid NOT NULL, id int NOT NULL, customer int NOT NULL,
                          PRIMARY KEY (tenant_id, id),
                          FOREIGN KEY (tenant_id, customer) REFERENCES life.customers (tenant_id, id) ON DELETE CASCADE);
CREATE TABLE life.lines (tenant_id uuid NOT NULL, order_id int NOT NULL, n int NOT NULL,
                         PRIMARY KEY (tenant_id, order_id, n),
                         FOREIGN KEY (tenant_id, order_id) REFERENCES life.orders (tenant_id, id));
CREATE TABLE life.events (tenant_id uuid NOT NULL, at int NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE life.events_early PARTITION OF life.events FOR VALUES FROM (0) TO (100);
CREATE TABLE life.events_late PARTITION OF life.events FOR VALUES FROM (100) TO (1000);
CREATE TABLE life.notes (tenant_id uuid NOT NULL, body text);
CREATE TABLE life.left_side (tenant_id uuid NOT NULL, id int NOT NULL, right_id int,
                             PRIMARY KEY (tenant_id, id));
CREATE TABLE life.right_side (tenant_id uuid NOT NULL, id int NOT NULL, left_id int,
                              PRIMARY KEY (tenant_id, id),
                              FOREIGN KEY (tenant_id, left_id) REFERENCES life.left_side (tenant_id, id));
ALTER TABLE life.left_side ADD FOREIGN KEY (tenant_id, right_id) REFERENCES life.right_side (tenant_id, id);
SELECT tenancy.isolate(t) FROM unnest(ARRAY['life.customers', 'life.orders', 'life.lines', 'life.events',
                                             'life.left_side', 'life.right_side']::regclass[]) AS t;
SELECT tenancy.isolate('life.notes', read_permission => 'orders:read');
INSERT INTO life.customers SELECT t, c, 'c' || c FROM unnest(ARRAY[:'north', :'south', :'east']::uuid[]) t, generate_series(1, 3) c;
INSERT INTO life.orders SELECT t, o, 1 + o % 3 FROM unnest(ARRAY[:'north', :'south', :'east']::uuid[]) t, generate_series(1, 4) o;
INSERT INTO life.lines SELECT t, o, n FROM unnest(ARRAY[:'north', :'south', :'east']::uuid[]) t, generate_series(1, 4) o, generate_series(1, 2) n;
INSERT INTO life.events SELECT t, a, 'e' FROM unnest(ARRAY[:'north', :'south', :'east']::uuid[]) t, generate_series(90, 110, 5) a;
INSERT INTO life.notes SELECT t, 'note' FROM unnest(ARRAY[:'north', :'south', :'east']::uuid[]) t;
INSERT INTO life.left_side SELECT t, 1, NULL FROM unnest(ARRAY[:'north', :'south', :'east']::uuid[]) t;
INSERT INTO life.right_side SELECT t, 1, 1 FROM unnest(ARRAY[:'north', :'south', :'east']::uuid[]) t;
UPDATE life.left_side SET right_id = 1;

-- The order of deletion: referencing tables first, the cycle in one step.
SELECT p.step - min(p.step) OVER () + 1 AS step, p.table_name
  FROM tenancy.delete_plan() p
 WHERE p.table_name::text LIKE 'life.%'
 ORDER BY p.step, p.table_name::text;

------------------------------------------------------------------------------------------
-- export_tenant(): tenant:export (owner), with the caller's rights, in a context.
------------------------------------------------------------------------------------------
SET ROLE regress_life_app;
SELECT regress_try('SELECT * FROM tenancy.export_tenant()') AS without_context;
BEGIN;
SELECT tenancy.set_tenant(:'north', :'piet');
SELECT regress_try('SELECT * FROM tenancy.export_tenant()') AS staff_exports;
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'north', :'olga');
SELECT e.table_name, count(*) AS rows,
       bool_and(e."row" ->> 'tenant_id' = :'north') AS all_north
  FROM tenancy.export_tenant() e
 WHERE e.table_name::text LIKE 'life.%'
 GROUP BY e.table_name
 ORDER BY min(e.table_name::text);
SELECT regress_mask(e."row"::text) AS customer
  FROM tenancy.export_tenant() e
 WHERE e.table_name = 'life.customers'::regclass
 ORDER BY 1;
ROLLBACK;
RESET ROLE;
-- The same counts as the superuser reads them.
SELECT 'life.customers' AS t, count(*) FROM life.customers WHERE tenant_id = :'north'
UNION ALL SELECT 'life.events', count(*) FROM life.events WHERE tenant_id = :'north'
UNION ALL SELECT 'life.left_side', count(*) FROM life.left_side WHERE tenant_id = :'north'
UNION ALL SELECT 'life.lines', count(*) FROM life.lines WHERE tenant_id = :'north'
UNION ALL SELECT 'life.notes', count(*) FROM life.notes WHERE tenant_id = :'north'
UNION ALL SELECT 'life.orders', count(*) FROM life.orders WHERE tenant_id = :'north'
UNION ALL SELECT 'life.right_side', count(*) FROM life.right_side WHERE tenant_id = :'north';
-- A role that may export but not read a table's protected rows gets an error, never a partial
-- export.
INSERT INTO tenancy.roles (name, rank, description) VALUES ('lifeexporter', 30, 'exports only');
INSERT INTO tenancy.role_permissions (role, permission) VALUES ('lifeexporter', 'tenant:export');
UPDATE tenancy.memberships SET role = 'lifeexporter' WHERE tenant_id = :'north' AND user_id = :'piet';
SET ROLE regress_life_app;
BEGIN;
SELECT tenancy.set_tenant(:'north', :'piet');
SELECT regress_try('SELECT * FROM tenancy.export_tenant()') AS exporter_without_orders_read;
ROLLBACK;
RESET ROLE;
UPDATE tenancy.memberships SET role = 'staff' WHERE tenant_id = :'north' AND user_id = :'piet';
DELETE FROM tenancy.roles WHERE name = 'lifeexporter';
-- Likewise a table the exporting role cannot reach (no USAGE on its schema).
CREATE SCHEMA life_hidden;
CREATE TABLE life_hidden.secrets (tenant_id uuid NOT NULL, body text);
SELECT tenancy.isolate('life_hidden.secrets');
SET ROLE regress_life_app;
BEGIN;
SELECT tenancy.set_tenant(:'north', :'olga');
SELECT regress_try('SELECT * FROM tenancy.export_tenant()') AS unreachable_table;
ROLLBACK;
RESET ROLE;
DROP SCHEMA life_hidden CASCADE;

------------------------------------------------------------------------------------------
-- lint_delete_blocked(): what makes delete_tenant() fail (tenancy.audit() includes it).
------------------------------------------------------------------------------------------
CREATE TABLE life.shipments (id int PRIMARY KEY, tenant uuid REFERENCES tenancy.tenants (id),
                             order_tenant uuid, order_id int,
                             FOREIGN KEY (order_tenant, order_id) REFERENCES life.orders (tenant_id, id) ON DELETE RESTRICT);
CREATE TABLE life.invoices (id int PRIMARY KEY, c_tenant uuid NOT NULL, c_id int,
                            FOREIGN KEY (c_tenant, c_id) REFERENCES life.customers (tenant_id, id)
                                MATCH FULL ON UPDATE CASCADE ON DELETE SET NULL DEFERRABLE);
CREATE TABLE life.audit_trail (id int PRIMARY KEY, c_tenant uuid, c_id int,
                               FOREIGN KEY (c_tenant, c_id) REFERENCES life.customers (tenant_id, id) ON DELETE SET NULL);
CREATE TABLE life.soft (tenant_id uuid NOT NULL, id int, deleted boolean NOT NULL DEFAULT false);
SELECT tenancy.isolate('life.soft');
CREATE RULE soft_delete AS ON DELETE TO life.soft DO INSTEAD
    UPDATE life.soft SET deleted = true WHERE id = OLD.id AND tenant_id = OLD.tenant_id;
SELECT severity, code, object, message, fix
  FROM tenancy.lint_delete_blocked()
 WHERE object LIKE 'life.%';
-- Not for application roles.
SET ROLE regress_life_app;
SELECT regress_try('SELECT * FROM tenancy.lint_delete_blocked()') AS app_lints;
SELECT regress_try('SELECT * FROM tenancy.delete_plan()') AS app_plans;
RESET ROLE;
-- The fixes remove the findings.
DO $do$
DECLARE f record;
BEGIN
    FOR f IN SELECT l.fix FROM tenancy.lint_delete_blocked() l WHERE l.object LIKE 'life.%' LOOP
        EXECUTE f.fix;
    END LOOP;
END
$do$;
SELECT count(*) AS findings_after_fix FROM tenancy.lint_delete_blocked() WHERE object LIKE 'life.%';
SELECT conrelid::regclass AS "table", pg_get_constraintdef(oid) AS definition
  FROM pg_constraint
 WHERE conrelid IN ('life.shipments'::regclass, 'life.invoices'::regclass) AND contype = 'f'
 ORDER BY 1, 2;
DROP TABLE life.invoices, life.audit_trail;

------------------------------------------------------------------------------------------
-- delete_tenant(): needs tenant:delete in the tenant (owner) or a platform admin; the slug
-- repeated; all of the tenant's rows, or nothing.
------------------------------------------------------------------------------------------
SET ROLE regress_life_app;
SELECT regress_try(format('SELECT * FROM tenancy.delete_tenant(%L, %L)', :'north', 'life-north')) AS without_context;
BEGIN;
SELECT tenancy.set_tenant(:'north', :'piet');
SELECT regress_try(format('SELECT * FROM tenancy.delete_tenant(%L, %L)', :'north', 'life-north')) AS staff_deletes;
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'east', :'olga');
SELECT regress_try(format('SELECT * FROM tenancy.delete_tenant(%L, %L)', :'north', 'life-north')) AS owner_of_north_in_east;
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'north', :'olga');
SELECT regress_try(format('SELECT * FROM tenancy.delete_tenant(%L, %L)', :'north', 'Life-North')) AS wrong_slug;
SELECT regress_try(format('SELECT * FROM tenancy.delete_tenant(%L, NULL)', :'north')) AS null_slug;
SELECT regress_try(format('SELECT * FROM tenancy.delete_tenant_write(%L, %L, %L)', :'north', 'life-north', 'me')) AS app_calls_write;
ROLLBACK;
RESET ROLE;

-- A row the delete cannot remove fails the whole call, naming the table: here a shipment
-- (not isolated, ON DELETE RESTRICT made CASCADE above, so it is made RESTRICT again).
ALTER TABLE life.shipments DROP CONSTRAINT shipments_order_tenant_order_id_fkey,
    ADD FOREIGN KEY (order_tenant, order_id) REFERENCES life.orders (tenant_id, id) ON DELETE RESTRICT;
INSERT INTO life.shipments VALUES (1, NULL, :'north', 2);
SELECT count(*) AS north_rows_before FROM life.customers WHERE tenant_id = :'north';
SET ROLE regress_life_app;
BEGIN;
SELECT tenancy.set_tenant(:'north', :'olga');
SELECT regress_try(format('SELECT * FROM tenancy.delete_tenant(%L, %L)', :'north', 'life-north')) AS blocked_by_shipment;
ROLLBACK;
RESET ROLE;
SELECT count(*) AS north_rows_after FROM life.customers WHERE tenant_id = :'north';
DELETE FROM life.shipments;
-- A trigger that skips the delete leaves rows: the call fails rather than report success.
CREATE FUNCTION life.keep() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN RETURN NULL; END $fn$;
CREATE TRIGGER keep BEFORE DELETE ON life.notes FOR EACH ROW EXECUTE FUNCTION life.keep();
SELECT regress_try(format('SELECT * FROM tenancy.delete_tenant(%L, %L)', :'north', 'life-north')) AS skipped_by_trigger;
DROP TRIGGER keep ON life.notes;
-- A foreign key that leaves out the tenant column, with an ON DELETE action, from another
-- tenant's rows: deleting would change that tenant's rows, so nothing is deleted.
CREATE TABLE life.tags (tenant_id uuid NOT NULL, id int PRIMARY KEY);
CREATE TABLE life.tagged (tenant_id uuid NOT NULL, tag int REFERENCES life.tags (id) ON DELETE CASCADE);
SELECT tenancy.isolate('life.tags'), tenancy.isolate('life.tagged');
INSERT INTO life.tags VALUES (:'north', 1);
INSERT INTO life.tagged VALUES (:'east', 1);
SELECT regress_try(format('SELECT * FROM tenancy.delete_tenant(%L, %L)', :'north', 'life-north')) AS cross_tenant_cascade;
DROP TABLE life.tagged, life.tags;

-- Counts of every tenant before.
SELECT regress_mask(tenant_id::text) AS tenant, count(*) AS customers FROM life.customers GROUP BY 1 ORDER BY 1;
-- Olga, owner of North, deletes it in its context.
SET ROLE regress_life_app;
BEGIN;
SELECT tenancy.set_tenant(:'north', :'olga');
SELECT table_name, rows_deleted
  FROM tenancy.delete_tenant(:'north', 'life-north')
 WHERE table_name::text LIKE 'life.%' OR table_name::text LIKE 'tenancy.%';
COMMIT;
SELECT regress_try(format('SELECT tenancy.set_tenant(%L)', :'north')) AS enter_deleted;
SELECT name, role FROM tenancy.user_tenants(:'olga');
RESET ROLE;
-- Nothing of North is left anywhere; the other tenants' rows are all there.
SELECT t AS "table", regress_mask(tenant::text) AS tenant, n
  FROM (SELECT 'customers' AS t, tenant_id AS tenant, count(*) AS n FROM life.customers GROUP BY 2
        UNION ALL SELECT 'orders', tenant_id, count(*) FROM life.orders GROUP BY 2
        UNION ALL SELECT 'lines', tenant_id, count(*) FROM life.lines GROUP BY 2
        UNION ALL SELECT 'events', tenant_id, count(*) FROM life.events GROUP BY 2
        UNION ALL SELECT 'events_early', tenant_id, count(*) FROM life.events_early GROUP BY 2
        UNION ALL SELECT 'notes', tenant_id, count(*) FROM life.notes GROUP BY 2
        UNION ALL SELECT 'left_side', tenant_id, count(*) FROM life.left_side GROUP BY 2
        UNION ALL SELECT 'right_side', tenant_id, count(*) FROM life.right_side GROUP BY 2
        UNION ALL SELECT 'memberships', tenant_id, count(*) FROM tenancy.memberships GROUP BY 2
        UNION ALL SELECT 'api_tokens', tenant_id, count(*) FROM tenancy.api_tokens GROUP BY 2) x
 WHERE tenant IN (:'north', :'south', :'east')
 ORDER BY 1, 2;
SELECT count(*) AS north_tenant_rows FROM tenancy.tenants WHERE id = :'north';
-- The tombstone keeps the id from being used again; the status history and auth_log keep their rows.
SELECT regress_mask(id::text) AS tenant, slug, regress_mask(deleted_by::text) AS deleted_by, db_role,
       rows_deleted -> 'life.customers' AS customers, rows_deleted -> 'tenancy.tenants' AS tenants
  FROM tenancy.deleted_tenants WHERE id = :'north';
SELECT status, regress_mask(user_id::text) AS by_user FROM tenancy.tenant_status_history WHERE tenant_id = :'north';
SELECT regress_try(format($$INSERT INTO tenancy.tenants (id, name, slug) VALUES (%L, 'Reborn', 'life-reborn')$$, :'north')) AS reuse_id;
SELECT regress_try(format($$UPDATE tenancy.tenants SET id = %L WHERE id = %L$$, :'north', :'south')) AS move_to_id;
-- Deleting again (a superuser without a context) finds nothing new.
SELECT table_name, rows_deleted
  FROM tenancy.delete_tenant(:'north', 'life-north')
 WHERE table_name::text LIKE 'life.%' OR table_name::text LIKE 'tenancy.%';
SELECT regress_try(format('SELECT * FROM tenancy.delete_tenant(%L, %L)', :'north', 'wrong')) AS deleted_wrong_slug;
SELECT regress_try($$SELECT * FROM tenancy.delete_tenant('00000000-0000-4000-8000-00000000f00d', 'x')$$) AS unknown_tenant;
SELECT regress_try('SELECT * FROM tenancy.delete_tenant(NULL, NULL)') AS null_tenant;

-- A platform admin deletes East from another tenant's context.
SET ROLE regress_life_app;
BEGIN;
SELECT tenancy.set_tenant(:'south', :'root');
SELECT sum(rows_deleted) > 0 AS deleted FROM tenancy.delete_tenant(:'east', 'life-east');
COMMIT;
RESET ROLE;

------------------------------------------------------------------------------------------
-- purge_tenant(): in batches, for a suspended tenant; delete_tenant() finishes.
------------------------------------------------------------------------------------------
SELECT regress_try(format('SELECT * FROM tenancy.purge_tenant(%L, %L, 5)', :'south', 'life-south')) AS active_tenant;
SELECT tenancy.suspend_tenant(:'south', 'closing the account');
SELECT regress_try(format('SELECT * FROM tenancy.purge_tenant(%L, %L, 0)', :'south', 'life-south')) AS zero_batch;
SELECT regress_try(format('SELECT * FROM tenancy.purge_tenant(%L, %L, 5)', :'south', 'south')) AS wrong_slug;
SET ROLE regress_life_app;
BEGIN;
SELECT tenancy.set_tenant(:'west', :'olga');
SELECT regress_try(format('SELECT * FROM tenancy.purge_tenant(%L, %L, 5)', :'south', 'life-south')) AS owner_from_another_tenant;
ROLLBACK;
RESET ROLE;
SELECT 1 AS batch, table_name, rows_deleted FROM tenancy.purge_tenant(:'south', 'life-south', 5);
SELECT 2 AS batch, table_name, rows_deleted FROM tenancy.purge_tenant(:'south', 'life-south', 5);
SELECT 3 AS batch, table_name, rows_deleted FROM tenancy.purge_tenant(:'south', 'life-south', 5);
SELECT 4 AS batch, table_name, rows_deleted FROM tenancy.purge_tenant(:'south', 'life-south', 5);
SELECT 5 AS batch, table_name, rows_deleted FROM tenancy.purge_tenant(:'south', 'life-south', 5);
SELECT 6 AS batch, table_name, rows_deleted FROM tenancy.purge_tenant(:'south', 'life-south', 5);
SELECT table_name, rows_deleted
  FROM tenancy.delete_tenant(:'south', 'life-south')
 WHERE table_name::text LIKE 'life.%' OR table_name::text LIKE 'tenancy.%';
SELECT count(*) AS life_rows_left
  FROM (SELECT tenant_id FROM life.customers UNION ALL SELECT tenant_id FROM life.orders
        UNION ALL SELECT tenant_id FROM life.lines UNION ALL SELECT tenant_id FROM life.events
        UNION ALL SELECT tenant_id FROM life.notes UNION ALL SELECT tenant_id FROM life.left_side
        UNION ALL SELECT tenant_id FROM life.right_side) x
 WHERE tenant_id IN (:'north', :'south', :'east');

DROP SCHEMA life CASCADE;
DROP OWNED BY regress_life_app;
DROP ROLE regress_life_app;
DROP ROLE regress_life_client;
