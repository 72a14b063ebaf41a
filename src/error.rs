//! Errors of the contract: SQLSTATE, a lower-case message starting with `tenancy:`, and a HINT.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// Longest piece of a user-supplied value echoed into a message.
const ECHO_MAX: usize = 64;

/// Raises an ERROR with the given SQLSTATE, message and hint. Never returns.
#[track_caller]
pub fn raise(code: PgSqlErrorCode, message: impl Into<String>, hint: impl Into<String>) -> ! {
    ErrorReport::new(code, message.into(), "pg_tenancy")
        .set_hint(hint)
        .report(PgLogLevel::ERROR);
    unreachable!("an ERROR report returned")
}

/// `28000`: no context, or a credential that does not verify.
#[track_caller]
pub fn unauthenticated(message: impl Into<String>, hint: impl Into<String>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        message,
        hint,
    )
}

/// `42501`: authenticated but not allowed.
#[track_caller]
pub fn forbidden(message: impl Into<String>, hint: impl Into<String>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        message,
        hint,
    )
}

/// `22023`: a bad argument.
#[track_caller]
pub fn bad_argument(message: impl Into<String>, hint: impl Into<String>) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        message,
        hint,
    )
}

/// `XX000`: a path that cannot happen unless pg_tenancy itself is wrong (a fixed query that
/// does not prepare, an encoded value with a NUL byte). Never used for anything a caller's
/// input can cause: those get one of the contract's codes above.
#[track_caller]
pub fn internal(what: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("tenancy: internal error: {what}"),
        "this is a bug in pg_tenancy; please report it with the server log",
    )
}

/// The `28000` every accessor raises when the transaction has no tenant context.
#[track_caller]
pub fn no_tenant_context() -> ! {
    unauthenticated(
        "tenancy: no tenant context",
        "call tenancy.set_tenant(tenant_id) or tenancy.authenticate(token) in this transaction first",
    )
}

/// A user-supplied value made safe to echo in a message: quoted, control characters escaped,
/// cut to a readable length.
pub fn echo(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(ECHO_MAX) + 4);
    out.push('"');
    for (i, c) in value.chars().enumerate() {
        if i == ECHO_MAX {
            out.push('…');
            break;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::echo;

    #[test]
    fn echo_quotes_escapes_and_truncates() {
        assert_eq!(echo("orders:read"), "\"orders:read\"");
        assert_eq!(echo("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(echo("a\nb\0"), "\"a\\u{a}b\\u{0}\"");
        let long = "x".repeat(200);
        let e = echo(&long);
        assert_eq!(e.chars().count(), 64 + 3);
        assert!(e.ends_with("…\""));
    }
}
