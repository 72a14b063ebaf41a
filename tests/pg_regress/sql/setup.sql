CREATE EXTENSION pg_tenancy;

-- Helpers for the other tests (every test runs after this file, in the same database).
--
-- regress_ids maps the uuids a test created to readable labels, so that outputs never
-- contain a uuid: regress_mask() replaces every uuid in a text by its label (or <uuid>).
CREATE TABLE public.regress_ids (id uuid PRIMARY KEY, label text NOT NULL);
GRANT SELECT, INSERT ON public.regress_ids TO PUBLIC;

CREATE FUNCTION public.regress_mask(t text) RETURNS text
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    m text;
    l text;
BEGIN
    FOR m IN SELECT DISTINCT x[1] FROM regexp_matches(t,
        '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', 'g') AS x
    LOOP
        SELECT r.label INTO l FROM public.regress_ids r WHERE r.id = m::uuid;
        t := replace(t, m, '<' || coalesce(l, 'uuid') || '>');
    END LOOP;
    RETURN t;
END
$fn$;

-- Runs one statement and returns 'ok', or the error as 'SQLSTATE: message / HINT: hint'
-- (uuids masked). It shows neither CONTEXT nor DETAIL, so outputs do not depend on line
-- numbers or on the server's environment. The statement runs in a subtransaction: an error
-- rolls back what it did, a success keeps it.
CREATE FUNCTION public.regress_try(sql text) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    st  text;
    msg text;
    hnt text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hnt = PG_EXCEPTION_HINT;
    RETURN st || ': ' || public.regress_mask(msg)
        || coalesce(' / HINT: ' || public.regress_mask(nullif(hnt, '')), ' / (no hint)');
END
$fn$;
