//! The one piece of the caches that bypasses the executor: the status of a tenant read straight
//! from the primary key index of `tenancy.tenants`. Every connection's first `set_tenant()` of a
//! tenant pays a miss, so with many tenants (each seen rarely by one connection) it is most of
//! what a miss costs, and the executor is most of that. Its unsafe code is all here.
//!
//! The table's oid, its primary key index and the column numbers are resolved from the catalogs
//! whenever the invalidation triggers are checked (after any invalidation of `tenancy.tenants`),
//! and checked again once the table is locked; when anything is not as expected the caller asks
//! with a query instead.

use std::cell::Cell;

use pgrx::prelude::*;
use uuid::Uuid;

use super::invalidation;
use crate::privileged;

const TENANTS_LAYOUT_SQL: &str = include_str!("../../sql/queries/tenants_layout.sql");

#[derive(Clone, Copy)]
struct TenantProbe {
    table: pg_sys::Oid,
    index: pg_sys::Oid,
    id_column: i16,
    status_column: i16,
}

thread_local! {
    /// How to probe `tenancy.tenants` directly; `None` when unknown (a query is used instead).
    static TENANT_PROBE: Cell<Option<TenantProbe>> = const { Cell::new(None) };
}

/// Learns how to probe the table `table` (the oid of `tenancy.tenants`), or forgets it (`None`).
pub fn resolve(table: Option<pg_sys::Oid>) {
    let mut probe = None;
    if let Some(table) = table {
        privileged::query_rows(
            TENANTS_LAYOUT_SQL,
            true,
            &[pg_sys::OIDOID],
            &[table.into()],
            |row| {
                if let (Some(index), Some(id_column), Some(status_column)) = (
                    row.get::<pg_sys::Oid>(1),
                    row.get::<i16>(2),
                    row.get::<i16>(3),
                ) {
                    probe = Some(TenantProbe {
                        table,
                        index,
                        id_column,
                        status_column,
                    });
                }
            },
        );
    }
    TENANT_PROBE.with(|p| p.set(probe));
}

/// Forgets the probe (`tenancy.tenants` was invalidated: its layout may have changed).
pub fn forget() {
    TENANT_PROBE.with(|p| p.set(None));
}

/// The tenant's status with a fresh snapshot: `Some(None)` for an unknown tenant, `None` when
/// the probe cannot be used (then the caller asks with a query). Not in parallel mode
/// (`GetLatestSnapshot` refuses it): the caller checks.
pub fn tenant_status(tenant: Uuid) -> Option<Option<bool>> {
    let probe = TENANT_PROBE.with(|p| p.get())?;
    // SAFETY: the probe was resolved from the catalogs after the last invalidation of
    // tenancy.tenants (any change to the table or its indexes clears it), and is checked
    // again against the table once it is locked.
    unsafe { probe_with(probe, tenant) }
}

/// The tenant's status read straight from the primary key index of `tenancy.tenants` with a
/// fresh snapshot: what the query in `tenant_active.sql` answers, without the executor. Every
/// connection's first `set_tenant()` of a tenant pays this, so with many tenants (each seen
/// rarely by one connection) it is most of what a cache miss costs.
///
/// `None` when the table, once locked, is not as the probe expects (DDL committed while this
/// backend waited for the lock): the caller then asks with a query.
unsafe fn probe_with(probe: TenantProbe, tenant: Uuid) -> Option<Option<bool>> {
    let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
    // SAFETY: the oids and column numbers come from the catalogs (see `resolve`); the key's
    // argument points to a palloc'd uuid that outlives the scan; every resource acquired here
    // is released here, or by the transaction's abort on error.
    unsafe {
        let before = invalidation::count();
        let rel = pg_sys::table_open(probe.table, lock);
        // Taking the lock may have processed invalidations (an ALTER TABLE that committed
        // while we waited): then the layout may have changed under the probe.
        if invalidation::count() != before
            || !column_is(rel, probe.id_column, pg_sys::UUIDOID)
            || !column_is(rel, probe.status_column, pg_sys::TEXTOID)
        {
            pg_sys::table_close(rel, lock);
            return None;
        }
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let id = pg_sys::palloc(16) as *mut u8;
        std::ptr::copy_nonoverlapping(tenant.as_bytes().as_ptr(), id, 16);
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        pg_sys::ScanKeyInit(
            &mut key,
            probe.id_column,
            pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
            pg_sys::Oid::from(pg_sys::F_UUID_EQ),
            pg_sys::Datum::from(id),
        );
        let scan = pg_sys::systable_beginscan(rel, probe.index, true, snapshot, 1, &mut key);
        let tuple = pg_sys::systable_getnext(scan);
        let status = if tuple.is_null() {
            None
        } else {
            let column = std::num::NonZeroUsize::new(probe.status_column as usize);
            Some(
                column
                    .and_then(|c| pgrx::htup::heap_getattr_raw(tuple, c, (*rel).rd_att))
                    .and_then(|d| String::from_datum(d, false))
                    .is_some_and(|s| s == "active"),
            )
        };
        pg_sys::systable_endscan(scan);
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::table_close(rel, lock);
        pg_sys::pfree(id.cast());
        Some(status)
    }
}

/// Whether column `column` of the open relation exists with type `type_oid`.
unsafe fn column_is(rel: pg_sys::Relation, column: i16, type_oid: pg_sys::Oid) -> bool {
    // SAFETY: rel is open and locked; its descriptor outlives this borrow.
    let desc = unsafe { pgrx::PgTupleDesc::from_pg_unchecked((*rel).rd_att) };
    column >= 1
        && desc
            .get(column as usize - 1)
            .is_some_and(|att| att.atttypid == type_oid && !att.attisdropped)
}
