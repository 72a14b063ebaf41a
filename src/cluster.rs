//! The tenant context across the nodes of a Citus cluster.
//!
//! Row-level security on a distributed table runs on the worker that holds the shard, so the
//! worker's backend needs the context the coordinator set. Citus replays a transaction's
//! `SET LOCAL` statements on every worker connection it opens in that transaction (when
//! `citus.propagate_set_commands` is `local`), so the coordinator hands the context over as
//! `SET LOCAL tenancy.signed_context = '<value>'`, and nothing else is needed from the
//! application. The value is sealed with `tenancy.cluster_secret`, the secret every node
//! shares (`tenancy_tokens::cluster`): a worker accepts it only when the seal verifies, and
//! uses it only
//!
//! * inside the distributed transaction it was made for (the worker backend serves it: Citus's
//!   `assign_distributed_transaction_id`), and not once that transaction has ended on this
//!   node (a value copied from `pg_stat_activity` or a log opens nothing later),
//! * for the role it was made for (the role the coordinator's connections run as),
//! * until it expires (`tenancy.cluster_context_ttl`, 60 seconds by default; the coordinator
//!   makes a new one at a statement when half of it has passed).
//!
//! It carries the actor's standing as the coordinator decided it (role, rank, grants,
//! platform admin), because workers hold no membership rows; the coordinator makes a new value
//! at the next statement when that standing changed, so a role change is honoured by the
//! shards at the next statement, as on a single server. Without a secret, a worker refuses
//! every value, and isolated shards fail closed with `28000`.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_void, CStr, CString};

use pgrx::{pg_guard, pg_sys, PgSqlErrorCode};

use crate::context::{self, GrantedActor, Remote};
use crate::{citus, error, gucs, privileged, rbac, unguarded};

const SETTING_NAME: &CStr = c"tenancy.signed_context";

/// Backing storage of `tenancy.signed_context`; owned by the GUC machinery.
static mut SETTING_VALUE: *mut c_char = std::ptr::null_mut();

thread_local! {
    /// Set while pg_tenancy hands a context over (its own queries must not do it again).
    static HANDING_OVER: Cell<bool> = const { Cell::new(false) };
    /// The last value this backend sealed or verified, what it opens to, and the secrets it was
    /// checked against: the setting's check and assign hooks see every value twice, and the
    /// coordinator sets the value it has just sealed, so each is verified once.
    static OPENED: RefCell<Option<Opened>> = const { RefCell::new(None) };
}

struct Opened {
    sealed: String,
    secrets: Vec<Vec<u8>>,
    remote: Remote,
}

/// What `sealed` opened to, when it is the value last sealed or verified here and this node's
/// secrets have not changed since (the same bytes verify the same way with the same secrets).
fn opened_before(sealed: &str, secrets: &[Vec<u8>]) -> Option<Remote> {
    OPENED.with(|o| {
        o.borrow()
            .as_ref()
            .filter(|o| o.sealed == sealed && o.secrets == secrets)
            .map(|o| o.remote.clone())
    })
}

fn remember_opened(sealed: &str, secrets: Vec<Vec<u8>>, remote: &Remote) {
    OPENED.with(|o| {
        *o.borrow_mut() = Some(Opened {
            sealed: sealed.to_owned(),
            secrets,
            remote: remote.clone(),
        })
    });
}

/// Defines `tenancy.signed_context`. Called from `_PG_init` before the prefix is reserved.
pub fn init() {
    // SAFETY: called once from _PG_init; the pointers are 'static and the hooks are pg_guarded.
    unsafe {
        pg_sys::DefineCustomStringVariable(
            SETTING_NAME.as_ptr(),
            c"Tenant context handed over by a Citus coordinator (sealed with the cluster secret)."
                .as_ptr(),
            c"Set by pg_tenancy on the coordinator and replayed by Citus on its workers; a value \
              that does not verify is refused."
                .as_ptr(),
            &raw mut SETTING_VALUE,
            c"".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            (pg_sys::GUC_NO_SHOW_ALL
                | pg_sys::GUC_NOT_IN_SAMPLE
                | pg_sys::GUC_NO_RESET_ALL
                | pg_sys::GUC_DISALLOW_IN_FILE
                | pg_sys::GUC_DISALLOW_IN_AUTO_FILE) as i32,
            Some(check_signed_context),
            Some(assign_signed_context),
            None,
        );
    }
}

/// Opens a signed value with this node's secrets: the handed-over context, or why not.
fn open(sealed: &str) -> Result<Remote, &'static str> {
    let secrets = gucs::cluster_secrets();
    if secrets.is_empty() {
        return Err("no cluster secret is set on this node");
    }
    if let Some(remote) = opened_before(sealed, &secrets) {
        return Ok(remote);
    }
    let payload = tenancy_tokens::cluster::open(sealed, secrets.iter().map(|s| s.as_slice()))
        .map_err(|_| "it does not verify with this node's cluster secret")?;
    let payload = String::from_utf8(payload).map_err(|_| "it is malformed")?;
    let remote = Remote::decode(&payload).ok_or("it is malformed")?;
    remember_opened(sealed, secrets, &remote);
    Ok(remote)
}

fn now_pg_us() -> i64 {
    // SAFETY: plain read of the clock.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

/// Accepts only values pg_tenancy sealed, set with SET / SET LOCAL (never from a file, a
/// role's or database's settings, or connection options), and not expired.
#[pg_guard]
unsafe extern "C-unwind" fn check_signed_context(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to a (possibly NULL) C string.
    let value = unsafe {
        if (*newval).is_null() {
            return true;
        }
        CStr::from_ptr(*newval).to_string_lossy().into_owned()
    };
    // SAFETY: reading a PostgreSQL global.
    if value.is_empty() || unsafe { pg_sys::InitializingParallelWorker } {
        return true;
    }
    let refusal = if source != pg_sys::GucSource::PGC_S_SESSION {
        Some("it can only be set by SET within a transaction".to_owned())
    } else {
        match open(&value) {
            Ok(remote) if remote.not_after <= now_pg_us() => Some("it has expired".to_owned()),
            Ok(_) => None,
            Err(why) => Some(why.to_owned()),
        }
    };
    let Some(why) = refusal else {
        return true;
    };
    let message =
        CString::new(format!("tenancy: the signed context is refused: {why}")).unwrap_or_default();
    // SAFETY: the GUC_check_* globals are consumed by the caller right after we return false;
    // pstrdup allocates in the current memory context as PostgreSQL's own hooks do.
    unsafe {
        pg_sys::GUC_check_errcode(
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION as i32,
        );
        pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(message.as_ptr());
        pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(
            c"only pg_tenancy on a Citus coordinator sets it, sealed with tenancy.cluster_secret"
                .as_ptr(),
        );
    }
    false
}

/// Keeps the handed-over context in step with the setting (also when PostgreSQL reverts it).
/// Must not raise: a value that passed the check decodes again.
#[pg_guard]
unsafe extern "C-unwind" fn assign_signed_context(newval: *const c_char, _extra: *mut c_void) {
    let remote = if newval.is_null() {
        None
    } else {
        // SAFETY: PostgreSQL passes a valid NUL-terminated string.
        let value = unsafe { CStr::from_ptr(newval) }.to_string_lossy();
        (!value.is_empty()).then(|| open(&value).ok()).flatten()
    };
    context::install_remote(remote);
}

/// The actor's standing to hand over, as this node decides it.
fn granted_actor() -> Option<GrantedActor> {
    let actor = rbac::actor()?;
    Some(GrantedActor {
        role: actor.role.clone(),
        rank: actor.rank(),
        grants: actor.grants().to_vec(),
        platform_admin: actor.platform_admin,
    })
}

/// Whether contexts are handed over from this backend: a coordinator (or any node that starts
/// distributed transactions) with Citus in this database and a secret to sign with, in a
/// transaction block (Citus opens remote transactions, and replays SET LOCAL, only there).
fn handing_over() -> Option<Vec<u8>> {
    if HANDING_OVER.with(|h| h.get()) || !unguarded::in_transaction_block() {
        return None;
    }
    let secret = gucs::cluster_signing_secret()?;
    citus::active().then_some(secret)
}

/// Hands the transaction's context over to the workers (or withdraws it when there is none),
/// when Citus runs here. Called when the context is entered or cleared, and at every statement
/// (`refresh`).
pub fn hand_over() {
    let Some(secret) = handing_over() else {
        return;
    };
    let value = match context::local() {
        None => String::new(),
        Some(ctx) => {
            let Some(txn) = citus::start_transaction() else {
                return;
            };
            citus::serving(txn);
            let now = now_pg_us();
            let remote = Remote {
                ctx: (*ctx).clone(),
                actor: granted_actor(),
                txn: (txn.initiator, txn.number, txn.timestamp),
                role: privileged::connecting_role_name(),
                made_at: now,
                not_after: now.saturating_add(gucs::cluster_context_ttl_us()),
            };
            let payload = remote.encode();
            let Some(sealed) = tenancy_tokens::cluster::seal(payload.as_bytes(), &secret) else {
                return;
            };
            // What opening it here would give, without verifying the seal just made.
            if let Some(opened) = Remote::decode(&payload) {
                remember_opened(&sealed, gucs::cluster_secrets(), &opened);
            }
            sealed
        }
    };
    if value.is_empty() && context::remote_any().is_none() {
        return;
    }
    set_local_propagated(&value);
}

/// At a statement of a transaction with a context: hands it over again when what the workers
/// hold is not what this node decides now (another context, another standing of the actor),
/// or when half of its lifetime has passed.
pub fn refresh() {
    if handing_over().is_none() {
        return;
    }
    let Some(local) = context::local() else {
        return;
    };
    let stale = match context::remote_any() {
        None => true,
        Some(held) => {
            let half = gucs::cluster_context_ttl_us() / 2;
            held.ctx != *local
                || held.role != privileged::connecting_role_name()
                || now_pg_us() >= held.made_at.saturating_add(half)
                || held.actor != with_guard(granted_actor)
        }
    };
    if stale {
        hand_over();
    }
}

fn with_guard<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            HANDING_OVER.with(|h| h.set(false));
        }
    }
    HANDING_OVER.with(|h| h.set(true));
    let _reset = Reset;
    f()
}

/// `SET LOCAL tenancy.signed_context = value`, through the utility hooks so that Citus sends it
/// to the workers (with `citus.propagate_set_commands = local` for that statement only).
fn set_local_propagated(value: &str) {
    with_guard(|| {
        let sql = format!("SET LOCAL tenancy.signed_context = '{value}'");
        privileged::with_setting_local(c"citus.propagate_set_commands", c"local", || {
            if pgrx::Spi::run(&sql).is_err() {
                error::internal("the signed context cannot be set");
            }
        });
    });
}
