//! HS256 JWTs (RFC 7519 / RFC 7515 compact serialization), verified strictly.
//!
//! Header: `alg` exactly `"HS256"`, `kid` 1..=64 bytes of `[A-Za-z0-9_-]`, optional `typ`
//! exactly `"JWT"`, no other field (no `crit`, `jku`, `jwk`, `x5u`, ...). Claims: `tid` (string,
//! required), `exp` (integer seconds, required), `sub` (string), `nbf` and `iat` (integer
//! seconds), `scope` (space-separated string); other claims are ignored. Duplicate JSON keys
//! anywhere are refused.

use serde_json::Value;

use crate::json::{parse_object, Object, Val};
use crate::{
    b64url_decode_strict, b64url_encode, check_len, hmac_sha256, hmac_verify, valid_kid, Reason,
};

/// How far in the future `iat` may be (clock skew), in microseconds.
const IAT_LEEWAY_US: i64 = 60_000_000;
const US_PER_S: i64 = 1_000_000;

/// Verified claims of an HS256 JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Tenant (a UUID in text form; its syntax is the caller's to check).
    pub tid: String,
    /// User (a UUID in text form; its syntax is the caller's to check).
    pub sub: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Not before, seconds since the Unix epoch.
    pub nbf: Option<i64>,
    /// Issued at, seconds since the Unix epoch.
    pub iat: Option<i64>,
    /// The scopes, in token order.
    pub scope: Option<Vec<String>>,
    /// The key id of the header.
    pub kid: String,
}

/// Splits `token` into exactly three non-empty dot-separated segments.
fn segments(token: &str) -> Result<(&str, &str, &str), Reason> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reason::Malformed);
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(Reason::Malformed);
    }
    Ok((h, p, s))
}

/// Checks the header and returns its kid.
fn check_header(header: &Object) -> Result<String, Reason> {
    match header.get("alg") {
        Some(Val::Str(alg)) if alg == "HS256" => {}
        _ => return Err(Reason::BadAlgorithm),
    }
    if header.keys().any(|k| !matches!(k, "alg" | "kid" | "typ")) {
        return Err(Reason::Malformed);
    }
    match header.get("typ") {
        None => {}
        Some(Val::Str(typ)) if typ == "JWT" => {}
        Some(_) => return Err(Reason::BadClaim),
    }
    match header.get("kid") {
        None => Err(Reason::MissingClaim),
        Some(Val::Str(kid)) if valid_kid(kid) => Ok(kid.clone()),
        Some(_) => Err(Reason::BadClaim),
    }
}

fn opt_int(claims: &Object, name: &str) -> Result<Option<i64>, Reason> {
    match claims.get(name) {
        None => Ok(None),
        Some(Val::Int(v)) => Ok(Some(*v)),
        Some(_) => Err(Reason::BadClaim),
    }
}

fn opt_str(claims: &Object, name: &str) -> Result<Option<String>, Reason> {
    match claims.get(name) {
        None => Ok(None),
        Some(Val::Str(v)) => Ok(Some(v.clone())),
        Some(_) => Err(Reason::BadClaim),
    }
}

/// `scope`: entries separated by single spaces; empty entries (leading, trailing or doubled
/// spaces, the empty string) and entries with control characters are refused.
fn scopes(s: &str) -> Result<Vec<String>, Reason> {
    s.split(' ')
        .map(|entry| {
            if entry.is_empty() || entry.chars().any(char::is_control) {
                Err(Reason::BadClaim)
            } else {
                Ok(entry.to_owned())
            }
        })
        .collect()
}

/// Seconds to microseconds; out of range: [`Reason::BadClaim`].
fn to_us(seconds: i64) -> Result<i64, Reason> {
    seconds.checked_mul(US_PER_S).ok_or(Reason::BadClaim)
}

/// Verifies an HS256 JWT at `now_us` (microseconds since the Unix epoch, the database's
/// `clock_timestamp()`).
///
/// Order of checks:
/// 1. empty ([`Reason::Empty`]) / longer than [`crate::MAX_TOKEN_LEN`] ([`Reason::TooLong`]);
/// 2. exactly three non-empty dot-separated segments ([`Reason::Malformed`]);
/// 3. strict base64url of the header ([`Reason::BadEncoding`]); a JSON object without duplicate
///    keys ([`Reason::Malformed`]); `alg` exactly `"HS256"` ([`Reason::BadAlgorithm`]); no field
///    but `alg`, `kid`, `typ` ([`Reason::Malformed`]); `typ`, if present, exactly `"JWT"`
///    ([`Reason::BadClaim`]); `kid` present ([`Reason::MissingClaim`]) and 1..=64 bytes of
///    `[A-Za-z0-9_-]` ([`Reason::BadClaim`]);
/// 4. strict base64url of the signature ([`Reason::BadEncoding`]), exactly 32 bytes
///    ([`Reason::BadSignature`]) — before the key lookup, so that garbage costs no lookup;
/// 5. `key_for(kid)`: `None` or an empty key gives [`Reason::UnknownKey`];
/// 6. HMAC-SHA256 of the ASCII `header.payload`, compared in constant time
///    ([`Reason::BadSignature`]);
/// 7. strict base64url of the payload ([`Reason::BadEncoding`]), a JSON object without
///    duplicate keys at any depth ([`Reason::Malformed`]); `tid` and `exp` present
///    ([`Reason::MissingClaim`]); `tid`/`sub` strings, `exp`/`nbf`/`iat` integers that fit in
///    i64 microseconds, `scope` a space-separated string ([`Reason::BadClaim`]);
/// 8. `now_us >= exp` ([`Reason::Expired`]), `now_us < nbf` ([`Reason::NotYetValid`]),
///    `iat > now_us + 60 s` ([`Reason::IssuedInFuture`]).
pub fn verify(
    token: &str,
    now_us: i64,
    key_for: impl FnOnce(&str) -> Option<Vec<u8>>,
) -> Result<Claims, Reason> {
    check_len(token)?;
    let (h64, p64, s64) = segments(token)?;

    let header_bytes = b64url_decode_strict(h64).ok_or(Reason::BadEncoding)?;
    let header = parse_object(&header_bytes).ok_or(Reason::Malformed)?;
    let kid = check_header(&header)?;

    let signature = b64url_decode_strict(s64).ok_or(Reason::BadEncoding)?;
    if signature.len() != 32 {
        return Err(Reason::BadSignature);
    }
    let key = key_for(&kid)
        .filter(|k| !k.is_empty())
        .ok_or(Reason::UnknownKey)?;
    // The signing input is the ASCII "header.payload" exactly as received.
    if !hmac_verify(&key, &[h64.as_bytes(), b".", p64.as_bytes()], &signature) {
        return Err(Reason::BadSignature);
    }

    let payload_bytes = b64url_decode_strict(p64).ok_or(Reason::BadEncoding)?;
    let payload = parse_object(&payload_bytes).ok_or(Reason::Malformed)?;
    let tid = opt_str(&payload, "tid")?.ok_or(Reason::MissingClaim)?;
    let exp = opt_int(&payload, "exp")?.ok_or(Reason::MissingClaim)?;
    let sub = opt_str(&payload, "sub")?;
    let nbf = opt_int(&payload, "nbf")?;
    let iat = opt_int(&payload, "iat")?;
    let scope = opt_str(&payload, "scope")?
        .map(|s| scopes(&s))
        .transpose()?;
    let claims = Claims {
        tid,
        sub,
        exp,
        nbf,
        iat,
        scope,
        kid,
    };
    check_times(&claims, now_us)?;
    Ok(claims)
}

/// Step 8 of [`verify`] on its own: the claims' times at `now_us` (a caller that kept the
/// claims of a token it verified earlier checks them again with this).
pub fn check_times(claims: &Claims, now_us: i64) -> Result<(), Reason> {
    let exp_us = to_us(claims.exp)?;
    let nbf_us = claims.nbf.map(to_us).transpose()?;
    let iat_us = claims.iat.map(to_us).transpose()?;
    if now_us >= exp_us {
        return Err(Reason::Expired);
    }
    if nbf_us.is_some_and(|nbf_us| now_us < nbf_us) {
        return Err(Reason::NotYetValid);
    }
    if iat_us.is_some_and(|iat_us| iat_us > now_us.saturating_add(IAT_LEEWAY_US)) {
        return Err(Reason::IssuedInFuture);
    }
    Ok(())
}

/// Writes `v` as compact JSON with object keys sorted, whatever serde_json's features.
fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Mints a token, for tests and examples: header `{"alg":"HS256","typ":"JWT","kid":kid}`,
/// payload `claims_json` as compact JSON with object keys sorted, signature HMAC-SHA256 with
/// `key`. Deterministic: the same input gives the same token.
pub fn sign(claims_json: &Value, kid: &str, key: &[u8]) -> String {
    let header = format!(
        r#"{{"alg":"HS256","typ":"JWT","kid":{}}}"#,
        Value::String(kid.to_owned())
    );
    let mut payload = String::new();
    canonical_json(claims_json, &mut payload);
    let mut token = b64url_encode(header.as_bytes());
    token.push('.');
    token.push_str(&b64url_encode(payload.as_bytes()));
    let tag = hmac_sha256(key, &[token.as_bytes()]).unwrap_or([0u8; 32]);
    token.push('.');
    token.push_str(&b64url_encode(&tag));
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v = serde_json::json!({"b": 1, "a": {"d": [1, {"z": null, "y": "é\"\n"}], "c": true}});
        let mut s = String::new();
        canonical_json(&v, &mut s);
        assert_eq!(
            s,
            r#"{"a":{"c":true,"d":[1,{"y":"é\"\n","z":null}]},"b":1}"#
        );
    }

    #[test]
    fn scope_splitting() {
        assert_eq!(scopes("a"), Ok(vec!["a".to_owned()]));
        assert_eq!(scopes("a b:c"), Ok(vec!["a".to_owned(), "b:c".to_owned()]));
        for bad in ["", " ", "a ", " a", "a  b", "a\tb", "a\nb", "a\0"] {
            assert_eq!(scopes(bad), Err(Reason::BadClaim), "{bad:?}");
        }
    }

    #[test]
    fn segment_count() {
        assert!(segments("a.b.c").is_ok());
        for bad in [
            "", "a", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.", "...", "a.b.c.",
        ] {
            assert_eq!(segments(bad), Err(Reason::Malformed), "{bad:?}");
        }
    }
}
