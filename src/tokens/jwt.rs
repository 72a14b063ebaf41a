//! HS256 JWTs minted by the application with a secret from `create_signing_key()`.
//!
//! Header `alg` exactly `HS256` and a known, active `kid`; claims `tid` (tenant, required),
//! `sub` (user, optional, must be a member), `exp` (required), `nbf` and `iat` honoured,
//! `scope` (space-separated) narrows the user's permissions.

use std::rc::Rc;

use tenancy_tokens::jwt;
use uuid::Uuid;

use super::{check_standing, keys, verified};
use crate::clock::now_unix_us;
use crate::context::{Context, Source};

/// Verifies a JWT and returns the context it opens, or why not.
pub fn verify(token: &str) -> Result<Context, (Option<Uuid>, &'static str)> {
    let now = now_unix_us();
    // A token this connection verified before skips the decoding, the parsing and the HMAC,
    // as long as its key is still active with the same secret; its times are checked again
    // (see `verified.rs`).
    let kept = verified::jwt(token).filter(|(key, claims)| {
        keys::active_secret(&claims.kid).is_some_and(|active| tenancy_tokens::ct_eq(&active, key))
    });
    let claims = match kept {
        Some((_, claims)) => {
            jwt::check_times(&claims, now).map_err(|r| (None, r.as_str()))?;
            (*claims).clone()
        }
        None => {
            let mut used_key = None;
            let claims = jwt::verify(token, now, |kid| {
                let key = keys::active_secret(kid);
                used_key.clone_from(&key);
                key
            })
            .map_err(|r| (None, r.as_str()))?;
            if let Some(key) = used_key {
                verified::remember_jwt(token, (Rc::new(key), Rc::new(claims.clone())));
            }
            claims
        }
    };
    let tenant = Uuid::try_parse(&claims.tid).map_err(|_| (None, "bad_tid"))?;
    let user = match &claims.sub {
        Some(sub) => Some(Uuid::try_parse(sub).map_err(|_| (Some(tenant), "bad_sub"))?),
        None => None,
    };
    if let Some(scopes) = &claims.scope {
        if !scopes.iter().all(|s| is_scope(s)) {
            return Err((Some(tenant), "bad_scope"));
        }
    }
    let ctx = Context {
        tenant,
        user,
        token: None,
        actor: user,
        source: Source::Jwt,
        scopes: claims.scope,
        kid: Some(claims.kid),
        exp: Some(claims.exp),
    };
    check_standing(&ctx).map_err(|reason| (Some(tenant), reason))?;
    Ok(ctx)
}

/// A scope is a permission name (`resource:action`), `resource:*`, or `*`.
fn is_scope(scope: &str) -> bool {
    fn is_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }
    if scope == "*" {
        return true;
    }
    match scope.split_once(':') {
        Some((resource, action)) => is_name(resource) && (action == "*" || is_name(action)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_scope;

    #[test]
    fn scopes_are_permission_names() {
        for ok in ["*", "orders:read", "orders:*", "a1_b:c_2"] {
            assert!(is_scope(ok), "{ok}");
        }
        for bad in [
            "",
            "orders",
            "orders:",
            ":read",
            "Orders:read",
            "orders:read;a=x",
            "a=b",
            "orders:re ad",
            "*:read",
        ] {
            assert!(!is_scope(bad), "{bad}");
        }
    }
}
