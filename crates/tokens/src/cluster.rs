//! The signed context a Citus coordinator hands to its workers: `v1.` + base64url(payload) +
//! `.` + base64url(HMAC-SHA256(secret, "pg_tenancy cluster context v1" ‖ payload)).
//!
//! The payload is opaque here (the extension writes and reads it); this module only seals it
//! with the nodes' shared secret and opens it again, strictly: one payload has one spelling,
//! a tag is compared in constant time, and several secrets may verify (rotation), while only
//! one signs.

use crate::{b64url_decode_strict, b64url_encode, hmac_sha256, hmac_verify, Reason};

const PREFIX: &str = "v1.";
/// Longest sealed value accepted, in bytes: a context carries its actor's grants, which can be
/// longer than a token.
pub const MAX_SEALED_LEN: usize = 32 * 1024;
/// Binds tags to this use of the secret, so that no other HMAC made with it verifies here.
const DOMAIN: &[u8] = b"pg_tenancy cluster context v1";

/// Seals `payload` with `secret`. `None` for an empty secret or payload.
pub fn seal(payload: &[u8], secret: &[u8]) -> Option<String> {
    if secret.is_empty() || payload.is_empty() {
        return None;
    }
    let tag = hmac_sha256(secret, &[DOMAIN, payload])?;
    Some(format!(
        "{PREFIX}{}.{}",
        b64url_encode(payload),
        b64url_encode(&tag)
    ))
}

/// Opens a sealed value with the first of `secrets` that verifies it, returning the payload.
pub fn open<'a>(
    sealed: &str,
    secrets: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, Reason> {
    if sealed.is_empty() {
        return Err(Reason::Empty);
    }
    if sealed.len() > MAX_SEALED_LEN {
        return Err(Reason::TooLong);
    }
    let rest = sealed.strip_prefix(PREFIX).ok_or(Reason::Malformed)?;
    let (payload, tag) = rest.split_once('.').ok_or(Reason::Malformed)?;
    if payload.is_empty() || tag.contains('.') {
        return Err(Reason::Malformed);
    }
    let payload = crate::b64url_decode_unbounded(payload).ok_or(Reason::BadEncoding)?;
    let tag = b64url_decode_strict(tag).ok_or(Reason::BadEncoding)?;
    let mut any_secret = false;
    for secret in secrets {
        any_secret |= !secret.is_empty();
        if hmac_verify(secret, &[DOMAIN, &payload], &tag) {
            return Ok(payload);
        }
    }
    if any_secret {
        Err(Reason::BadSignature)
    } else {
        Err(Reason::UnknownKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rotation() {
        let sealed = seal(b"t=1;s=set_tenant", b"new secret").unwrap();
        assert!(sealed.starts_with("v1."));
        assert_eq!(
            open(&sealed, [&b"new secret"[..]]).unwrap(),
            b"t=1;s=set_tenant"
        );
        // Verified by any of the secrets given, in any position.
        assert_eq!(
            open(&sealed, [&b"old secret"[..], &b"new secret"[..]]).unwrap(),
            b"t=1;s=set_tenant"
        );
        assert_eq!(
            open(&sealed, [&b"old secret"[..]]),
            Err(Reason::BadSignature)
        );
        assert_eq!(open(&sealed, [&b""[..]]), Err(Reason::UnknownKey));
        assert_eq!(seal(b"x", b""), None);
    }

    #[test]
    fn tampering_and_respelling_are_refused() {
        let secret: &[u8] = b"s3cret";
        let sealed = seal(b"t=1;s=set_tenant", secret).unwrap();
        let (payload, tag) = sealed[3..].split_once('.').unwrap();
        // Another payload under the same tag.
        let other = format!("v1.{}.{tag}", b64url_encode(b"t=2;s=set_tenant"));
        assert_eq!(open(&other, [secret]), Err(Reason::BadSignature));
        // Every single-character change.
        for i in 0..sealed.len() {
            let mut bytes = sealed.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            if changed != sealed {
                assert!(open(&changed, [secret]).is_err(), "{changed}");
            }
        }
        for bad in [
            "".to_string(),
            "v1.".to_string(),
            format!("v2.{payload}.{tag}"),
            format!("v1.{payload}"),
            format!("v1.{payload}.{tag}.x"),
            format!("v1..{tag}"),
            format!("v1.{payload}={tag}"),
            format!("v1.{payload}.{tag}="),
            format!(" v1.{payload}.{tag}"),
            "v1.".to_string() + &"A".repeat(MAX_SEALED_LEN),
        ] {
            assert!(open(&bad, [secret]).is_err(), "{bad}");
        }
        // An HMAC made with the secret for another purpose does not verify.
        let plain = crate::hmac_sha256(secret, &[payload.as_bytes()]).unwrap();
        let foreign = format!("v1.{payload}.{}", b64url_encode(&plain));
        assert_eq!(open(&foreign, [secret]), Err(Reason::BadSignature));
    }
}
