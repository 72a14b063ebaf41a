//! In-database tests of the Rust internals (`cargo pgrx test`). They run as a superuser, so
//! they test mechanics, never isolation: isolation is tested as an application role by the
//! client tests in `tests/`.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test(error = "tenancy: no tenant context")]
    fn current_tenant_without_context_raises() {
        Spi::get_one::<pgrx::Uuid>("SELECT tenancy.current_tenant()").unwrap();
    }

    #[pg_test]
    fn context_is_empty_json_without_context() {
        let v = Spi::get_one::<String>("SELECT tenancy.context()::text")
            .unwrap()
            .unwrap();
        assert_eq!(v, "{}");
    }

    #[pg_test(error = "tenancy: the tenant context cannot be set through a setting")]
    fn setting_the_context_directly_is_refused_even_for_a_superuser() {
        Spi::run(
            "SELECT set_config('tenancy.context', \
             't=00000000-0000-0000-0000-000000000001;s=set_tenant', true)",
        )
        .unwrap();
    }

    #[pg_test]
    fn set_tenant_enters_the_tenant_with_the_member_role() {
        Spi::run(
            "DO $$
             DECLARE u uuid := tenancy.create_user('pgtest-owner@example.com');
                     t uuid := tenancy.create_tenant('pgtest', u);
             BEGIN
               PERFORM tenancy.set_tenant(t, u);
               IF tenancy.current_tenant() IS DISTINCT FROM t THEN RAISE 'wrong tenant'; END IF;
               IF tenancy.current_user_id() IS DISTINCT FROM u THEN RAISE 'wrong user'; END IF;
               IF tenancy.context()->>'role' IS DISTINCT FROM 'owner' THEN RAISE 'wrong role'; END IF;
             END $$",
        )
        .unwrap();
    }
}
