//! One tenant, one shard: on a Citus coordinator, a query in a tenant context that reads or
//! writes distributed isolated tables is routed to the tenant's shard.
//!
//! Citus prunes shards only on `distribution_column = constant` in the query itself, never on
//! a policy or a STABLE function, so without help every query of a tenant asks every shard
//! (the policy then filters on each). Before Citus plans, this planner hook adds
//! `tenant_column = '<the context's tenant>'` to each distributed isolated table the query
//! names: to the WHERE clause when the query's FROM list is a plain list (so that Citus's
//! fast path takes it), else beside the table's row-level security quals (applied at the scan,
//! whatever the joins). It changes nothing the policy does not already guarantee.
//!
//! A plan that holds a tenant must never run in another tenant's transaction: each such plan
//! names an invalidation item (a syscache entry of `tenancy.current_tenant()`), and every
//! change of the context's tenant fires it in this backend, so PostgreSQL's plan cache plans
//! again (prepared statements, PL/pgSQL, generic plans); the workers' policies would return
//! nothing of another tenant even if it did not.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use foldhash::fast::RandomState;

use pgrx::pg_sys;

use crate::{citus, context, privileged, statement};

const DISTRIBUTED_TENANT_COLUMN_SQL: &str =
    include_str!("../sql/queries/distributed_tenant_column.sql");

/// `=` for uuid (pg_operator.dat: oid 2972, stable across majors).
const UUID_EQ_OPERATOR: u32 = 2972;

static mut PREV_PLANNER: pg_sys::planner_hook_type = None;

thread_local! {
    /// Per table: the tenant column's number when it is a distributed isolated table whose
    /// distribution column is the tenant column; `None` otherwise.
    static TABLES: RefCell<HashMap<pg_sys::Oid, Option<i16>, RandomState>> = RefCell::new(HashMap::default());
    /// Set while this hook looks tables up (its queries are planned too).
    static LOOKING_UP: Cell<bool> = const { Cell::new(false) };
}

pub fn init() {
    // SAFETY: called once from _PG_init; the callback lives as long as the library.
    unsafe {
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner);
        pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache), pg_sys::Datum::from(0));
    }
}

unsafe extern "C-unwind" fn on_relcache(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    TABLES.with(|t| {
        if let Ok(mut t) = t.try_borrow_mut() {
            if relid == pg_sys::InvalidOid {
                t.clear();
            } else {
                t.remove(&relid);
            }
        }
    });
}

// A plain frame: the rewrite runs inside a pgrx guard, and errors of the next planner go
// straight back to PostgreSQL.
unsafe extern "C-unwind" fn planner(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: std::ffi::c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: the query is the one being planned; the previous hook and the standard planner
    // have exactly this signature.
    unsafe {
        let routed = route_guarded(parse);
        let planned = match PREV_PLANNER {
            Some(prev) => prev(parse, query_string, cursor_options, bound_params),
            None => {
                statement::raw_standard_planner(parse, query_string, cursor_options, bound_params)
            }
        };
        if routed && !planned.is_null() {
            add_invalidation(planned);
        }
        planned
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn route_guarded(parse: *mut pg_sys::Query) -> bool {
    if LOOKING_UP.with(|l| l.get()) || privileged::own_query_running() || !citus::active() {
        return false;
    }
    let Some(ctx) = context::local() else {
        return false;
    };
    // SAFETY: see `route`.
    unsafe { route(parse, *ctx.tenant.as_bytes()) }
}

/// Adds the tenant constant for every distributed isolated table of `query` (and of its
/// subqueries and CTEs). Returns whether it added any.
unsafe fn route(query: *mut pg_sys::Query, tenant: [u8; 16]) -> bool {
    // SAFETY: the query tree is valid and owned by the planner's caller, which plans a copy.
    unsafe {
        if query.is_null() {
            return false;
        }
        let mut routed = false;
        let rtable = (*query).rtable;
        let plain_from = plain_from_list(query);
        let n = if rtable.is_null() {
            0
        } else {
            (*rtable).length
        };
        for i in 0..n as usize {
            let rte = (*(*rtable).elements.add(i)).ptr_value as *mut pg_sys::RangeTblEntry;
            match (*rte).rtekind {
                pg_sys::RTEKind::RTE_SUBQUERY => routed |= route((*rte).subquery, tenant),
                pg_sys::RTEKind::RTE_RELATION => {
                    let Some(attno) = tenant_column((*rte).relid) else {
                        continue;
                    };
                    let qual = tenant_qual(i as i32 + 1, attno, tenant);
                    if plain_from && is_in_from_list(query, i as i32 + 1) {
                        let jointree = (*query).jointree;
                        (*jointree).quals = pg_sys::make_and_qual((*jointree).quals, qual);
                    } else {
                        (*rte).securityQuals = pg_sys::lappend((*rte).securityQuals, qual.cast());
                    }
                    routed = true;
                }
                _ => {}
            }
        }
        let ctes = (*query).cteList;
        let n = if ctes.is_null() { 0 } else { (*ctes).length };
        for i in 0..n as usize {
            let cte = (*(*ctes).elements.add(i)).ptr_value as *mut pg_sys::CommonTableExpr;
            let sub = (*cte).ctequery;
            if !sub.is_null() && (*sub).type_ == pg_sys::NodeTag::T_Query {
                routed |= route(sub as *mut pg_sys::Query, tenant);
            }
        }
        routed
    }
}

/// Whether the query's FROM list holds only plain table references (no JOIN … ON), so that a
/// condition in its WHERE clause filters each table as its policy does.
unsafe fn plain_from_list(query: *mut pg_sys::Query) -> bool {
    // SAFETY: the join tree of a valid query.
    unsafe {
        let jointree = (*query).jointree;
        if jointree.is_null() {
            return false;
        }
        let from = (*jointree).fromlist;
        let n = if from.is_null() { 0 } else { (*from).length };
        (0..n as usize).all(|i| {
            let node = (*(*from).elements.add(i)).ptr_value as *mut pg_sys::Node;
            (*node).type_ == pg_sys::NodeTag::T_RangeTblRef
        })
    }
}

/// Whether range-table entry `rtindex` is in the FROM list, or is the target of an UPDATE or
/// DELETE.
unsafe fn is_in_from_list(query: *mut pg_sys::Query, rtindex: i32) -> bool {
    // SAFETY: the join tree of a valid query, whose FROM list holds RangeTblRefs only.
    unsafe {
        let is_target = (*query).resultRelation == rtindex
            && matches!(
                (*query).commandType,
                pg_sys::CmdType::CMD_UPDATE | pg_sys::CmdType::CMD_DELETE
            );
        let from = (*(*query).jointree).fromlist;
        let n = if from.is_null() { 0 } else { (*from).length };
        is_target
            || (0..n as usize).any(|i| {
                let r = (*(*from).elements.add(i)).ptr_value as *mut pg_sys::RangeTblRef;
                (*r).rtindex == rtindex
            })
    }
}

/// `tenant_column = '<tenant>'::uuid` for range-table entry `rtindex`.
unsafe fn tenant_qual(rtindex: i32, attno: i16, tenant: [u8; 16]) -> *mut pg_sys::Node {
    // SAFETY: node constructors in the planner's memory context.
    unsafe {
        let var = pg_sys::makeVar(rtindex, attno, pg_sys::UUIDOID, -1, pg_sys::InvalidOid, 0);
        let bytes = pg_sys::palloc(16) as *mut u8;
        std::ptr::copy_nonoverlapping(tenant.as_ptr(), bytes, 16);
        let value = pg_sys::makeConst(
            pg_sys::UUIDOID,
            -1,
            pg_sys::InvalidOid,
            16,
            pg_sys::Datum::from(bytes),
            false,
            false,
        );
        let op = pg_sys::make_opclause(
            pg_sys::Oid::from(UUID_EQ_OPERATOR),
            pg_sys::BOOLOID,
            false,
            var.cast(),
            value.cast(),
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
        ) as *mut pg_sys::OpExpr;
        pg_sys::set_opfuncid(op);
        op.cast()
    }
}

/// The tenant column of `relid` when it is a distributed isolated table distributed by it.
fn tenant_column(relid: pg_sys::Oid) -> Option<i16> {
    if let Some(known) = TABLES.with(|t| t.borrow().get(&relid).copied()) {
        return known;
    }
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            LOOKING_UP.with(|l| l.set(false));
        }
    }
    LOOKING_UP.with(|l| l.set(true));
    let mut attno = None;
    {
        let _reset = Reset;
        privileged::query_rows(
            DISTRIBUTED_TENANT_COLUMN_SQL,
            false,
            &[pg_sys::OIDOID],
            &[relid.into()],
            |row| attno = row.get::<i16>(1),
        );
    }
    TABLES.with(|t| t.borrow_mut().insert(relid, attno));
    attno
}

/// Names, in the plan, the syscache entry whose invalidation a change of tenant fires.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn add_invalidation(planned: *mut pg_sys::PlannedStmt) {
    let Some(hash) = context::routed_plans_hash() else {
        return;
    };
    // SAFETY: a PlanInvalItem node allocated in the plan's memory context.
    unsafe {
        let item = pg_sys::palloc0(std::mem::size_of::<pg_sys::PlanInvalItem>())
            as *mut pg_sys::PlanInvalItem;
        (*item).type_ = pg_sys::NodeTag::T_PlanInvalItem;
        (*item).cacheId = pg_sys::SysCacheIdentifier::PROCOID as i32;
        (*item).hashValue = hash;
        (*planned).invalItems = pg_sys::lappend((*planned).invalItems, item.cast());
    }
}
