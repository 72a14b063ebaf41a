#![cfg(feature = "client-tests")]
//! RBAC through a client: the checks an application makes (`has_*` / `require_*`) and the
//! member changes it offers, answered from the membership tables for the context's user, as a
//! login role in `tenancy_app` on its own connection. The superuser only creates users,
//! memberships and app-defined permissions, and reads the tables back afterwards.

mod common;

use common::*;
use postgres::error::SqlState;
use postgres::{Client, Transaction};
use uuid::Uuid;

const ROLES: [(&str, i32); 5] = [
    ("owner", 100),
    ("admin", 80),
    ("manager", 60),
    ("staff", 40),
    ("viewer", 20),
];

struct Org {
    db: TestDb,
    app: String,
    t: Tenants,
    /// Members of tenant A by role name (the owner is `t.owner_a`).
    admin: Uuid,
    manager: Uuid,
    staff: Uuid,
    viewer: Uuid,
}

impl Org {
    fn member(&self, role: &str) -> Uuid {
        match role {
            "owner" => self.t.owner_a,
            "admin" => self.admin,
            "manager" => self.manager,
            "staff" => self.staff,
            "viewer" => self.viewer,
            other => panic!("no member with role {other}"),
        }
    }
}

fn org(label: &str) -> Org {
    let mut db = TestDb::new(label);
    let app = db.login_role("app", "tenancy_app");
    let mut su = db.admin();
    let t = two_tenants(&mut su);
    let admin = add_member(&mut su, t.a, "ada@store-a.example", "admin");
    let manager = add_member(&mut su, t.a, "max@store-a.example", "manager");
    let staff = add_member(&mut su, t.a, "sam@store-a.example", "staff");
    let viewer = add_member(&mut su, t.a, "vic@store-a.example", "viewer");
    Org {
        db,
        app,
        t,
        admin,
        manager,
        staff,
        viewer,
    }
}

/// Runs `f` in a transaction whose context is (`tenant`, `user`); commits when `f` succeeds.
fn as_user<T>(
    c: &mut Client,
    tenant: Uuid,
    user: Option<Uuid>,
    f: impl FnOnce(&mut Transaction) -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    let mut tx = begin_as(c, tenant, user);
    let out = f(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

fn ask(
    c: &mut Client,
    tenant: Uuid,
    user: Option<Uuid>,
    sql: &str,
    arg: &str,
) -> Result<bool, postgres::Error> {
    as_user(c, tenant, user, |tx| {
        tx.query_one(sql, &[&arg]).map(|r| r.get(0))
    })
}

fn require(
    c: &mut Client,
    tenant: Uuid,
    user: Option<Uuid>,
    sql: &str,
    arg: &str,
) -> Result<(), postgres::Error> {
    as_user(c, tenant, user, |tx| tx.execute(sql, &[&arg]).map(|_| ()))
}

/// The memberships of `tenant` as (user, role), read by the superuser.
fn memberships(su: &mut Client, tenant: Uuid) -> Vec<(Uuid, String)> {
    su.query(
        "SELECT user_id, role FROM tenancy.memberships WHERE tenant_id = $1 ORDER BY user_id",
        &[&tenant],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[test]
fn has_role_and_require_role_compare_ranks() {
    let o = org("rbacrank");
    let mut c = o.db.connect(&o.app);
    for (role, rank) in ROLES {
        let user = Some(o.member(role));
        for (min_role, min_rank) in ROLES {
            let expected = rank >= min_rank;
            let got = ask(&mut c, o.t.a, user, "SELECT tenancy.has_role($1)", min_role).unwrap();
            assert_eq!(got, expected, "{role} has_role({min_role})");
            let r = require(
                &mut c,
                o.t.a,
                user,
                "SELECT tenancy.require_role($1)",
                min_role,
            );
            if expected {
                r.unwrap_or_else(|e| panic!("{role} require_role({min_role}): {e}"));
            } else {
                let got = sqlstate(r);
                assert_eq!(
                    got,
                    SqlState::INSUFFICIENT_PRIVILEGE,
                    "{role} require_role({min_role}): got {}",
                    got.code()
                );
            }
        }
    }
    // An app-defined role slots in by rank.
    o.db.admin()
        .batch_execute("INSERT INTO tenancy.roles (name, rank, description) VALUES ('supervisor', 50, 'between staff and manager')")
        .unwrap();
    for (role, expected) in [("manager", true), ("staff", false)] {
        assert_eq!(
            ask(
                &mut c,
                o.t.a,
                Some(o.member(role)),
                "SELECT tenancy.has_role($1)",
                "supervisor"
            )
            .unwrap(),
            expected,
            "{role}"
        );
    }
    // The same user has no rank in a tenant it does not belong to: a tenant-only context, or
    // another tenant, has no actor.
    assert!(!ask(&mut c, o.t.a, None, "SELECT tenancy.has_role($1)", "viewer").unwrap());
    assert_sqlstate(
        require(
            &mut c,
            o.t.a,
            None,
            "SELECT tenancy.require_role($1)",
            "viewer",
        ),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
}

#[test]
fn exact_resource_wildcard_and_star_grants() {
    let o = org("rbacgrants");
    let mut su = o.db.admin();
    su.batch_execute(
        "INSERT INTO tenancy.permissions (name, description) VALUES
             ('orders:refund', 'refund an order'), ('reports:export', 'export reports');",
    )
    .unwrap();
    let mut c = o.db.connect(&o.app);

    // The seeded matrix, as the contract states it.
    #[rustfmt::skip]
    let matrix: [(&str, [bool; 5]); 13] = [
        //                  owner  admin  manager staff  viewer
        ("products:read",   [true, true,  true,  true,  true ]),
        ("products:write",  [true, true,  true,  false, false]),
        ("orders:read",     [true, true,  true,  true,  true ]),
        ("orders:write",    [true, true,  true,  true,  false]),
        ("inventory:write", [true, true,  true,  true,  false]),
        ("billing:read",    [true, true,  false, false, true ]),
        ("billing:write",   [true, false, false, false, false]),
        ("tenant:delete",   [true, false, false, false, false]),
        ("tenant:export",   [true, false, false, false, false]),
        ("members:write",   [true, true,  true,  false, false]),
        ("tokens:write",    [true, true,  false, false, false]),
        ("analytics:read",  [true, true,  true,  false, true ]),
        ("webhooks:write",  [true, true,  false, false, false]),
    ];
    let check = |c: &mut Client, role: &str, permission: &str, expected: bool| {
        let user = Some(o.member(role));
        let got = ask(
            c,
            o.t.a,
            user,
            "SELECT tenancy.has_permission($1)",
            permission,
        )
        .unwrap();
        assert_eq!(got, expected, "{role} has_permission({permission})");
        let r = require(
            c,
            o.t.a,
            user,
            "SELECT tenancy.require_permission($1)",
            permission,
        );
        if expected {
            r.unwrap_or_else(|e| panic!("{role} require_permission({permission}): {e}"));
        } else {
            let got = sqlstate(r);
            assert_eq!(
                got,
                SqlState::INSUFFICIENT_PRIVILEGE,
                "{role} require_permission({permission}): got {}",
                got.code()
            );
        }
    };
    for (permission, row) in matrix {
        for (i, (role, _)) in ROLES.iter().enumerate() {
            check(&mut c, role, permission, row[i]);
        }
    }

    // A permission the app adds later is covered by `orders:*` (manager, staff) and `*` (owner),
    // not by a grant of other exact names (viewer).
    for (role, expected) in [
        ("owner", true),
        ("manager", true),
        ("staff", true),
        ("viewer", false),
    ] {
        check(&mut c, role, "orders:refund", expected);
    }
    // A new resource: only `*` covers it, until the app grants `reports:*` to viewers.
    for (role, _) in ROLES {
        check(&mut c, role, "reports:export", role == "owner");
    }
    su.batch_execute(
        "INSERT INTO tenancy.role_permissions (role, permission) VALUES ('viewer', 'reports:*')",
    )
    .unwrap();
    check(&mut c, "viewer", "reports:export", true);
    check(&mut c, "viewer", "orders:refund", false);
    check(&mut c, "staff", "reports:export", false);

    // A tenant-only context has no actor: every permission is refused.
    assert!(!ask(
        &mut c,
        o.t.a,
        None,
        "SELECT tenancy.has_permission($1)",
        "products:read"
    )
    .unwrap());
    assert_sqlstate(
        require(
            &mut c,
            o.t.a,
            None,
            "SELECT tenancy.require_permission($1)",
            "products:read",
        ),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
}

#[test]
fn members_of_one_tenant_have_no_rights_in_another() {
    let o = org("rbacother");
    let mut c = o.db.connect(&o.app);
    // A's owner is no member of B: cannot enter B as itself.
    let mut tx = c.transaction().unwrap();
    assert_sqlstate(
        tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&o.t.b, &o.t.owner_a]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    drop(tx);
    assert_sqlstate(
        current_tenant(&mut c),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
}

#[test]
fn platform_admin_enters_any_tenant_and_passes_every_check() {
    let o = org("rbacplatform");
    let mut su = o.db.admin();
    su.batch_execute("INSERT INTO tenancy.permissions (name) VALUES ('reports:export')")
        .unwrap();
    let root = su
        .query_one("SELECT tenancy.create_user('root@platform.example')", &[])
        .unwrap()
        .get::<_, Uuid>(0);
    let mut c = o.db.connect(&o.app);

    // Not a member of B and not (yet) a platform admin: refused.
    {
        let mut tx = c.transaction().unwrap();
        assert_sqlstate(
            tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&o.t.b, &root]),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }

    su.execute(
        "UPDATE tenancy.users SET platform_admin = true WHERE id = $1",
        &[&root],
    )
    .unwrap();
    {
        let mut tx = begin_as(&mut c, o.t.b, Some(root));
        for permission in [
            "tenant:delete",
            "billing:write",
            "members:write",
            "reports:export",
        ] {
            let has: bool = tx
                .query_one("SELECT tenancy.has_permission($1)", &[&permission])
                .unwrap()
                .get(0);
            assert!(has, "{permission}");
            tx.execute("SELECT tenancy.require_permission($1)", &[&permission])
                .unwrap();
        }
        let owner: bool = tx
            .query_one("SELECT tenancy.has_role('owner')", &[])
            .unwrap()
            .get(0);
        assert!(owner);
        tx.execute("SELECT tenancy.require_role('owner')", &[])
            .unwrap();
        let user: Option<Uuid> = tx
            .query_one("SELECT tenancy.current_user_id()", &[])
            .unwrap()
            .get(0);
        assert_eq!(user, Some(root));
        // Still one tenant: B's memberships, none of A's.
        let seen: Vec<Uuid> = tx
            .query("SELECT tenant_id FROM tenancy.memberships", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(seen, vec![o.t.b]);
        tx.commit().unwrap();
    }

    // Revoked: an open transaction loses it at its next statement, a new one cannot enter.
    let mut tx = begin_as(&mut c, o.t.b, Some(root));
    tx.execute("SELECT tenancy.require_permission('tenant:delete')", &[])
        .unwrap();
    su.execute(
        "UPDATE tenancy.users SET platform_admin = false WHERE id = $1",
        &[&root],
    )
    .unwrap();
    let has: bool = tx
        .query_one("SELECT tenancy.has_permission('tenant:delete')", &[])
        .unwrap()
        .get(0);
    assert!(!has, "revocation is seen at the next statement");
    assert_sqlstate(
        tx.execute("SELECT tenancy.require_permission('tenant:delete')", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    drop(tx);
    let mut tx = c.transaction().unwrap();
    assert_sqlstate(
        tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&o.t.b, &root]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
}

#[test]
fn downgrade_is_seen_by_an_open_session_at_its_next_statement() {
    let o = org("rbacdowngrade");
    let mut observer = o.db.connect(&o.app);
    let mut changer = o.db.connect(&o.app);

    // The observer's transaction stays open across the change.
    let mut tx = begin_as(&mut observer, o.t.a, Some(o.manager));
    tx.execute("SELECT tenancy.require_permission('products:write')", &[])
        .unwrap();
    let role: serde_json::Value = tx
        .query_one("SELECT tenancy.context() -> 'role'", &[])
        .unwrap()
        .get(0);
    assert_eq!(role, "manager");

    as_user(&mut changer, o.t.a, Some(o.t.owner_a), |t| {
        t.execute(
            "SELECT tenancy.set_member_role($1, 'viewer')",
            &[&o.manager],
        )
    })
    .unwrap();

    let role: serde_json::Value = tx
        .query_one("SELECT tenancy.context() -> 'role'", &[])
        .unwrap()
        .get(0);
    assert_eq!(role, "viewer");
    let has: bool = tx
        .query_one("SELECT tenancy.has_permission('products:write')", &[])
        .unwrap()
        .get(0);
    assert!(!has);
    let manager: bool = tx
        .query_one("SELECT tenancy.has_role('manager')", &[])
        .unwrap()
        .get(0);
    assert!(!manager);
    tx.execute("SELECT tenancy.require_permission('products:read')", &[])
        .unwrap();
    assert_sqlstate(
        tx.execute("SELECT tenancy.require_permission('products:write')", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    drop(tx);

    // Removal, seen by an idle open connection at its next transaction and mid-transaction.
    let mut tx = begin_as(&mut observer, o.t.a, Some(o.staff));
    tx.execute("SELECT tenancy.require_permission('orders:write')", &[])
        .unwrap();
    as_user(&mut changer, o.t.a, Some(o.t.owner_a), |t| {
        t.execute("SELECT tenancy.remove_member($1)", &[&o.staff])
    })
    .unwrap();
    assert_sqlstate(
        tx.execute("SELECT tenancy.require_permission('orders:write')", &[]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    drop(tx);
    let mut tx = observer.transaction().unwrap();
    assert_sqlstate(
        tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&o.t.a, &o.staff]),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
}

#[test]
fn no_granting_above_own_rank_nor_changing_a_higher_member() {
    let o = org("rbacabove");
    let mut su = o.db.admin();
    let mut c = o.db.connect(&o.app);
    let before = memberships(&mut su, o.t.a);

    let set_role = |c: &mut Client, caller: Uuid, member: Uuid, role: &str| {
        as_user(c, o.t.a, Some(caller), |t| {
            t.execute("SELECT tenancy.set_member_role($1, $2)", &[&member, &role])
        })
    };
    // A manager may not grant admin or owner, nor touch the admin.
    for role in ["admin", "owner"] {
        assert_sqlstate(
            set_role(&mut c, o.manager, o.staff, role),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }
    assert_sqlstate(
        set_role(&mut c, o.manager, o.admin, "viewer"),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    assert_sqlstate(
        as_user(&mut c, o.t.a, Some(o.manager), |t| {
            t.execute("SELECT tenancy.remove_member($1)", &[&o.admin])
        }),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    // An admin may not make anyone owner, nor demote the owner.
    assert_sqlstate(
        set_role(&mut c, o.admin, o.viewer, "owner"),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    assert_sqlstate(
        set_role(&mut c, o.admin, o.t.owner_a, "viewer"),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    // Staff and viewers lack members:write altogether.
    assert_sqlstate(
        set_role(&mut c, o.staff, o.viewer, "staff"),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    assert_sqlstate(
        set_role(&mut c, o.viewer, o.viewer, "owner"),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    assert_sqlstate(
        as_user(&mut c, o.t.a, Some(o.viewer), |t| {
            t.execute("SELECT tenancy.remove_member($1)", &[&o.staff])
        }),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    // B's owner cannot change A's members (not a member of A; and in B, A's staff is unknown).
    {
        let mut tx = c.transaction().unwrap();
        assert_sqlstate(
            tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&o.t.a, &o.t.owner_b]),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }
    assert_sqlstate(
        as_user(&mut c, o.t.b, Some(o.t.owner_b), |t| {
            t.execute("SELECT tenancy.set_member_role($1, 'viewer')", &[&o.staff])
        }),
        &SqlState::INVALID_PARAMETER_VALUE,
    );
    assert_eq!(
        memberships(&mut su, o.t.a),
        before,
        "no denied change was applied"
    );

    // Up to one's own rank is allowed: the manager makes staff a manager and the viewer staff.
    set_role(&mut c, o.manager, o.staff, "manager").unwrap();
    set_role(&mut c, o.manager, o.viewer, "staff").unwrap();
    let roles: Vec<(Uuid, String)> = memberships(&mut su, o.t.a);
    assert!(
        roles.contains(&(o.staff, "manager".to_string()))
            && roles.contains(&(o.viewer, "staff".to_string())),
        "{roles:?}"
    );
}

#[test]
fn last_owner_cannot_be_removed_or_demoted() {
    let o = org("rbaclastowner");
    let mut su = o.db.admin();
    let mut c = o.db.connect(&o.app);
    let owner = o.t.owner_a;
    let call = |c: &mut Client, caller: Uuid, sql: &str, member: Uuid, role: Option<&str>| {
        as_user(c, o.t.a, Some(caller), |t| match role {
            Some(role) => t.execute(sql, &[&member, &role]),
            None => t.execute(sql, &[&member]),
        })
    };
    let set_role = "SELECT tenancy.set_member_role($1, $2)";
    let remove = "SELECT tenancy.remove_member($1)";

    for role in ["admin", "viewer"] {
        assert_sqlstate(
            call(&mut c, owner, set_role, owner, Some(role)),
            &SqlState::INSUFFICIENT_PRIVILEGE,
        );
    }
    assert_sqlstate(
        call(&mut c, owner, remove, owner, None),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    // Setting the owner's own role again is no demotion.
    call(&mut c, owner, set_role, owner, Some("owner")).unwrap();

    // With a second owner, the first may step down; then the second is the last one.
    call(&mut c, owner, set_role, o.admin, Some("owner")).unwrap();
    call(&mut c, owner, set_role, owner, Some("admin")).unwrap();
    assert_sqlstate(
        call(&mut c, o.admin, remove, o.admin, None),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );
    assert_sqlstate(
        call(&mut c, o.admin, set_role, o.admin, Some("manager")),
        &SqlState::INSUFFICIENT_PRIVILEGE,
    );

    let owners: Vec<Uuid> = memberships(&mut su, o.t.a)
        .into_iter()
        .filter(|(_, r)| r == "owner")
        .map(|(u, _)| u)
        .collect();
    assert_eq!(owners, vec![o.admin]);
    let former: Vec<String> = memberships(&mut su, o.t.a)
        .into_iter()
        .filter(|(u, _)| *u == owner)
        .map(|(_, r)| r)
        .collect();
    assert_eq!(former, vec!["admin".to_string()]);
}

#[test]
fn unknown_role_or_permission_names_give_22023() {
    let o = org("rbacunknown");
    let mut c = o.db.connect(&o.app);
    let owner = Some(o.t.owner_a);
    for name in [
        "nope:read",
        "products:delete",
        "products",
        "PRODUCTS:READ",
        "*",
        "products:*",
        "",
        &"x".repeat(300),
    ] {
        for sql in [
            "SELECT tenancy.has_permission($1)::text",
            "SELECT tenancy.require_permission($1)::text",
        ] {
            let got = sqlstate(as_user(&mut c, o.t.a, owner, |t| {
                t.query_one(sql, &[&name])
                    .map(|r| r.get::<_, Option<String>>(0))
            }));
            assert_eq!(
                got,
                SqlState::INVALID_PARAMETER_VALUE,
                "{sql} with {name:?}: got {}",
                got.code()
            );
        }
    }
    for name in ["emperor", "Owner", "", &"y".repeat(300)] {
        for sql in [
            "SELECT tenancy.has_role($1)::text",
            "SELECT tenancy.require_role($1)::text",
        ] {
            let got = sqlstate(as_user(&mut c, o.t.a, owner, |t| {
                t.query_one(sql, &[&name])
                    .map(|r| r.get::<_, Option<String>>(0))
            }));
            assert_eq!(
                got,
                SqlState::INVALID_PARAMETER_VALUE,
                "{sql} with {name:?}: got {}",
                got.code()
            );
        }
        let got = sqlstate(as_user(&mut c, o.t.a, owner, |t| {
            t.execute("SELECT tenancy.set_member_role($1, $2)", &[&o.staff, &name])
        }));
        assert_eq!(
            got,
            SqlState::INVALID_PARAMETER_VALUE,
            "set_member_role to {name:?}: got {}",
            got.code()
        );
    }
    // Unknown names are refused even without a context (bad input is bad input).
    assert_sqlstate(
        c.query_one("SELECT tenancy.has_permission('nope:read')", &[]),
        &SqlState::INVALID_PARAMETER_VALUE,
    );
    assert_sqlstate(
        c.query_one("SELECT tenancy.has_role('emperor')", &[]),
        &SqlState::INVALID_PARAMETER_VALUE,
    );
}

#[test]
fn null_given_to_require_functions_raises_22023() {
    let o = org("rbacnull");
    let mut c = o.db.connect(&o.app);
    let owner = Some(o.t.owner_a);
    let none: Option<&str> = None;
    for sql in [
        "SELECT tenancy.require_permission(NULL)::text",
        "SELECT tenancy.require_role(NULL)::text",
        "SELECT tenancy.has_permission(NULL)::text",
        "SELECT tenancy.has_role(NULL)::text",
    ] {
        // The owner would pass any check: a NULL must not.
        let got = sqlstate(as_user(&mut c, o.t.a, owner, |t| {
            t.query_one(sql, &[]).map(|r| r.get::<_, Option<String>>(0))
        }));
        assert_eq!(
            got,
            SqlState::INVALID_PARAMETER_VALUE,
            "{sql}: got {}",
            got.code()
        );
    }
    for sql in [
        "SELECT tenancy.require_permission($1)::text",
        "SELECT tenancy.require_role($1)::text",
    ] {
        let got = sqlstate(as_user(&mut c, o.t.a, owner, |t| {
            t.query_one(sql, &[&none])
                .map(|r| r.get::<_, Option<String>>(0))
        }));
        assert_eq!(
            got,
            SqlState::INVALID_PARAMETER_VALUE,
            "{sql} with a NULL parameter: got {}",
            got.code()
        );
    }
    // In a WHERE clause, a NULL check must not silently pass rows either.
    let got = sqlstate(as_user(&mut c, o.t.a, owner, |t| {
        t.query(
            "SELECT 1 FROM generate_series(1, 3) WHERE tenancy.has_permission(NULL)",
            &[],
        )
    }));
    assert_eq!(got, SqlState::INVALID_PARAMETER_VALUE);
    for (sql, member) in [
        ("SELECT tenancy.set_member_role($1, NULL)", Some(o.staff)),
        ("SELECT tenancy.set_member_role($1, 'viewer')", None),
    ] {
        let got = sqlstate(as_user(&mut c, o.t.a, owner, |t| {
            t.execute(sql, &[&member])
        }));
        assert_eq!(
            got,
            SqlState::INVALID_PARAMETER_VALUE,
            "{sql} with {member:?}: got {}",
            got.code()
        );
    }
    let none_uuid: Option<Uuid> = None;
    assert_sqlstate(
        as_user(&mut c, o.t.a, owner, |t| {
            t.execute("SELECT tenancy.remove_member($1)", &[&none_uuid])
        }),
        &SqlState::INVALID_PARAMETER_VALUE,
    );
}

#[test]
fn checks_without_context_fail_closed() {
    let o = org("rbacnoctx");
    let mut c = o.db.connect(&o.app);
    for (sql, arg) in [
        ("SELECT tenancy.require_permission($1)", "products:read"),
        ("SELECT tenancy.require_role($1)", "viewer"),
    ] {
        assert_sqlstate(
            c.execute(sql, &[&arg]),
            &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        );
    }
    for (sql, arg) in [
        ("SELECT tenancy.has_permission($1)", "products:read"),
        ("SELECT tenancy.has_role($1)", "viewer"),
    ] {
        let got: bool = c.query_one(sql, &[&arg]).unwrap().get(0);
        assert!(!got, "{sql} without context is false");
    }
    assert_sqlstate(
        c.execute("SELECT tenancy.set_member_role($1, 'viewer')", &[&o.staff]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    assert_sqlstate(
        c.execute("SELECT tenancy.remove_member($1)", &[&o.staff]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
}

#[test]
fn unknown_and_suspended_tenants_cannot_be_entered() {
    let o = org("rbacsuspended");
    let mut c = o.db.connect(&o.app);
    let unknown = Uuid::new_v4();
    let mut tx = c.transaction().unwrap();
    assert_sqlstate(
        tx.execute("SELECT tenancy.set_tenant($1)", &[&unknown]),
        &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    );
    drop(tx);
    let none: Option<Uuid> = None;
    let mut tx = c.transaction().unwrap();
    assert_sqlstate(
        tx.execute("SELECT tenancy.set_tenant($1)", &[&none]),
        &SqlState::INVALID_PARAMETER_VALUE,
    );
    drop(tx);

    o.db.admin()
        .execute(
            "UPDATE tenancy.tenants SET status = 'suspended' WHERE id = $1",
            &[&o.t.b],
        )
        .unwrap();
    for user in [None, Some(o.t.owner_b)] {
        let mut tx = c.transaction().unwrap();
        assert_sqlstate(
            tx.execute("SELECT tenancy.set_tenant($1, $2)", &[&o.t.b, &user]),
            &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        );
    }
    // A is still active.
    let mut tx = begin_as(&mut c, o.t.a, None);
    assert_eq!(current_tenant(&mut tx).unwrap(), o.t.a);
}

#[test]
fn app_roles_read_their_own_tenant_and_cannot_write_rbac_tables() {
    let o = org("rbacdirect");
    let mut su = o.db.admin();
    let before_a = memberships(&mut su, o.t.a);
    let mut c = o.db.connect(&o.app);

    let mut tx = begin_as(&mut c, o.t.a, Some(o.viewer));
    // Reads: own tenant only.
    let tenants: Vec<Uuid> = tx
        .query("SELECT id FROM tenancy.tenants", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tenants, vec![o.t.a]);
    let mut seen: Vec<(Uuid, String)> = tx
        .query("SELECT user_id, role FROM tenancy.memberships", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    seen.sort();
    assert_eq!(seen, before_a);
    let mut emails: Vec<String> = tx
        .query("SELECT email FROM tenancy.members", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    emails.sort();
    assert_eq!(
        emails,
        vec![
            "ada@store-a.example",
            "max@store-a.example",
            "owner-a@example.com",
            "sam@store-a.example",
            "vic@store-a.example"
        ]
    );
    tx.commit().unwrap();

    // Writes: none, whatever the actor's rank; and users is not readable at all.
    for sql in [
        "SELECT email FROM tenancy.users".to_string(),
        format!("UPDATE tenancy.users SET platform_admin = true WHERE id = '{}'", o.viewer),
        format!("INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES ('{}', '{}', 'owner')", o.t.b, o.viewer),
        format!("UPDATE tenancy.memberships SET role = 'owner' WHERE user_id = '{}'", o.viewer),
        format!("DELETE FROM tenancy.memberships WHERE user_id = '{}'", o.t.owner_a),
        "INSERT INTO tenancy.role_permissions (role, permission) VALUES ('viewer', '*')".to_string(),
        "UPDATE tenancy.roles SET rank = 1000 WHERE name = 'viewer'".to_string(),
        "INSERT INTO tenancy.permissions (name) VALUES ('evil:do')".to_string(),
        format!("UPDATE tenancy.tenants SET status = 'suspended' WHERE id = '{}'", o.t.b),
    ] {
        for user in [o.viewer, o.t.owner_a] {
            let got = sqlstate(as_user(&mut c, o.t.a, Some(user), |t| t.batch_execute(&sql)));
            assert_eq!(got, SqlState::INSUFFICIENT_PRIVILEGE, "{sql}: got {}", got.code());
        }
    }
    assert_eq!(memberships(&mut su, o.t.a), before_a);
    let admins: i64 = su
        .query_one(
            "SELECT count(*) FROM tenancy.users WHERE platform_admin",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(admins, 0);
}

/// current_permissions() lists exactly what has_permission() grants the actor: the seeded
/// matrix for a staff member and a viewer, nothing for a tenant-only context.
#[test]
fn current_permissions_lists_what_the_actor_may_do() {
    let o = org("curperms");
    let mut c = o.db.connect(&o.app);
    let list = |c: &mut Client, user: Option<Uuid>| -> Vec<String> {
        as_user(c, o.t.a, user, |tx| {
            Ok(tx
                .query("SELECT * FROM tenancy.current_permissions()", &[])?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
        .unwrap()
    };
    assert_eq!(
        list(&mut c, Some(o.staff)),
        vec![
            "inventory:read",
            "inventory:write",
            "orders:read",
            "orders:write",
            "products:read"
        ]
    );
    let viewer = list(&mut c, Some(o.viewer));
    assert!(!viewer.is_empty() && viewer.iter().all(|p| p.ends_with(":read")));
    assert!(list(&mut c, None).is_empty());
}

/// `create_tenant()` without a slug, called at the same moment for the same name from several
/// trusted-backend connections: every call succeeds, each tenant with a slug of its own (a slug
/// derived from the name and taken by a concurrent call between the check and the insert is
/// derived again). A slug the caller chose is still refused when it is taken.
#[test]
fn concurrent_tenants_of_one_name_get_slugs_of_their_own() {
    const CONNECTIONS: usize = 6;
    const ROUNDS: usize = 5;
    let mut db = TestDb::new("slug_race");
    let app = db.login_role("app", "tenancy_app");
    let owner: Uuid = db
        .admin()
        .query_one("SELECT tenancy.create_user('race@example.com')", &[])
        .unwrap()
        .get(0);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(CONNECTIONS));
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let mut c = db.connect(&app);
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                (0..ROUNDS)
                    .map(|round| {
                        barrier.wait();
                        c.query_one(
                            "SELECT tenancy.create_tenant($1, $2)",
                            &[&format!("Race {round}"), &owner],
                        )
                        .map(|row| row.get::<_, Uuid>(0))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for created in t.join().unwrap() {
            created.expect("create_tenant() with a derived slug must not fail on a race");
        }
    }
    let mut su = db.admin();
    let row = su
        .query_one(
            "SELECT count(*), count(DISTINCT slug),
                    count(*) FILTER (WHERE slug ~ '^race-[0-9]$'),
                    count(*) FILTER (WHERE slug ~ '^race-[0-9]-[0-9a-f]{8}$')
               FROM tenancy.tenants WHERE name LIKE 'Race %'",
            &[],
        )
        .unwrap();
    let n = (CONNECTIONS * ROUNDS) as i64;
    assert_eq!(row.get::<_, i64>(0), n);
    assert_eq!(
        row.get::<_, i64>(1),
        n,
        "every tenant has a slug of its own"
    );
    assert_eq!(
        row.get::<_, i64>(2),
        ROUNDS as i64,
        "one tenant per name has the plain slug"
    );
    assert_eq!(row.get::<_, i64>(3), n - ROUNDS as i64);
    let mut app_conn = db.connect(&app);
    assert_sqlstate(
        app_conn.query_one(
            "SELECT tenancy.create_tenant('Mine', $1, 'race-0')",
            &[&owner],
        ),
        &SqlState::INVALID_PARAMETER_VALUE,
    );
}
