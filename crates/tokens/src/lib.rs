//! Token formats of pg_tenancy, in pure Rust (no PostgreSQL, no pgrx): the extension calls
//! this crate, and so do the fuzz targets in `fuzz/`.
//!
//! - [`b64url_encode`] / [`b64url_decode_strict`]: base64url without padding, decoded strictly
//!   so that one token has exactly one spelling.
//! - [`api_token`]: `tnc_` + base64url(id ‖ secret); the database stores `sha256(token)`.
//! - [`invite`]: invitation tokens, HMAC-SHA256 over (version, id, issue time, kid).
//! - [`jwt`]: verification of HS256 JWTs minted by applications.
//! - [`cluster`]: the context a Citus coordinator hands to its workers, sealed with the nodes'
//!   shared secret.
//!
//! Every parser refuses input longer than [`MAX_TOKEN_LEN`] before decoding it, never panics,
//! and reports why it refused with a [`Reason`], which holds no part of the token: reasons are
//! for the server log, callers show one generic error.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub mod api_token;
pub mod cluster;
pub mod invite;
mod json;
pub mod jwt;

/// Longest token input, in bytes. Longer input is refused before it is decoded or hashed.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Why a token was refused: goes to the server log only, never to the caller.
///
/// It never contains any part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Longer than [`MAX_TOKEN_LEN`] bytes.
    TooLong,
    /// The empty string.
    Empty,
    /// Wrong structure: prefix, segment count, lengths, version, JSON syntax, duplicate keys,
    /// unknown header fields.
    Malformed,
    /// Not strict base64url (padding, `+`/`/`, whitespace, non-canonical trailing bits...).
    BadEncoding,
    /// No active key with that kid.
    UnknownKey,
    /// The HMAC tag does not match (or has the wrong length).
    BadSignature,
    /// `now >= exp`.
    Expired,
    /// `now < nbf`.
    NotYetValid,
    /// `iat` more than 60 seconds in the future.
    IssuedInFuture,
    /// JWT header `alg` is not exactly `HS256`.
    BadAlgorithm,
    /// A required claim or header field (`kid`, `tid`, `exp`) is absent.
    MissingClaim,
    /// A claim or header field has the wrong type or value.
    BadClaim,
}

impl Reason {
    /// The snake_case name of the reason, e.g. `"bad_signature"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TooLong => "too_long",
            Reason::Empty => "empty",
            Reason::Malformed => "malformed",
            Reason::BadEncoding => "bad_encoding",
            Reason::UnknownKey => "unknown_key",
            Reason::BadSignature => "bad_signature",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::IssuedInFuture => "issued_in_future",
            Reason::BadAlgorithm => "bad_algorithm",
            Reason::MissingClaim => "missing_claim",
            Reason::BadClaim => "bad_claim",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Reason {}

/// URL-safe alphabet, no padding on encode, padding refused and trailing bits required to be
/// zero on decode.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// base64url (RFC 4648 §5) without padding.
pub fn b64url_encode(bytes: &[u8]) -> String {
    B64URL.encode(bytes)
}

fn is_b64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Strict base64url decoding: one byte string has exactly one accepted spelling.
///
/// Refuses `=` padding, `+` and `/`, whitespace (also leading, trailing, newlines), any byte
/// outside `[A-Za-z0-9_-]`, non-zero trailing bits, a length with `len % 4 == 1`, and input
/// longer than [`MAX_TOKEN_LEN`]. The empty string decodes to no bytes.
pub fn b64url_decode_strict(s: &str) -> Option<Vec<u8>> {
    if s.len() > MAX_TOKEN_LEN {
        return None;
    }
    b64url_decode_unbounded(s)
}

/// [`b64url_decode_strict`] without the length limit (the caller bounds the input).
fn b64url_decode_unbounded(s: &str) -> Option<Vec<u8>> {
    if s.len() % 4 == 1 || !s.bytes().all(is_b64url_byte) {
        return None;
    }
    let bytes = B64URL.decode(s).ok()?;
    // Belt and braces: the only accepted spelling is the one the encoder produces.
    if B64URL.encode(&bytes) != s {
        return None;
    }
    Some(bytes)
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Equality in constant time for slices of equal length (via `subtle`); `false` at once for
/// slices of different lengths (lengths are not secret here).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// HMAC-SHA256 over the concatenation of `parts`. `None` only if the MAC refused the key,
/// which HMAC never does (any key length is valid).
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().into())
}

/// Verifies an HMAC-SHA256 tag over the full 32 bytes in constant time. An empty key verifies
/// nothing.
fn hmac_verify(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    if key.is_empty() {
        return false;
    }
    match hmac_sha256(key, parts) {
        Some(expected) => ct_eq(&expected, tag),
        None => false,
    }
}

/// A kid as this crate accepts it: 1..=64 bytes of `[A-Za-z0-9_-]` (the kids the extension
/// makes are base64url of 9 random bytes, 12 characters).
fn valid_kid(kid: &str) -> bool {
    (1..=64).contains(&kid.len()) && kid.bytes().all(is_b64url_byte)
}

/// Common first checks of every token: empty, then too long.
fn check_len(token: &str) -> Result<(), Reason> {
    if token.is_empty() {
        Err(Reason::Empty)
    } else if token.len() > MAX_TOKEN_LEN {
        Err(Reason::TooLong)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_rfc4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let tag = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]).unwrap();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_rfc7515_appendix_a1() {
        // RFC 7515 A.1: the HS256 JWS example (key from its JWK "k").
        let key = b64url_decode_strict(
            "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
        )
        .unwrap();
        let input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
                     eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let tag = hmac_sha256(&key, &[input.as_bytes()]).unwrap();
        assert_eq!(
            b64url_encode(&tag),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
        // The RFC's token has no kid: this crate refuses it before any key lookup.
        let token = format!("{input}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            jwt::verify(&token, 0, |_| Some(key.clone())),
            Err(Reason::MissingClaim)
        );
    }

    #[test]
    fn hmac_verify_refuses_empty_key_and_short_tags() {
        let tag = hmac_sha256(b"k", &[b"data"]).unwrap();
        assert!(hmac_verify(b"k", &[b"data"], &tag));
        assert!(!hmac_verify(
            b"",
            &[b"data"],
            &hmac_sha256(b"", &[b"data"]).unwrap()
        ));
        for n in [0, 1, 16, 31] {
            assert!(!hmac_verify(b"k", &[b"data"], &tag[..n]));
        }
    }

    #[test]
    fn kid_syntax() {
        assert!(valid_kid("a"));
        assert!(valid_kid(&"x".repeat(64)));
        assert!(valid_kid("AZaz09-_"));
        assert!(!valid_kid(""));
        assert!(!valid_kid(&"x".repeat(65)));
        for bad in ["a b", "a\0", "a.b", "a/b", "a+b", "é", "a=", "a\n"] {
            assert!(!valid_kid(bad), "{bad:?}");
        }
    }
}
