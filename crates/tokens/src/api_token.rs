//! API tokens: `tnc_` + base64url(id (16 bytes) ‖ secret (32 bytes)), 68 characters.
//!
//! The fixed prefix lets secret scanners spot leaked tokens. The id (a UUID) is what the
//! database looks the token up by; the database stores only [`hash`] of the whole token and
//! compares it in constant time. The 256-bit secret comes from the caller's strong random
//! source.

use crate::{b64url_decode_strict, b64url_encode, check_len, sha256, Reason};

/// The prefix of every API token.
pub const PREFIX: &str = "tnc_";

/// Bytes of the id.
const ID_LEN: usize = 16;
/// Bytes of the secret.
const SECRET_LEN: usize = 32;
/// Characters after the prefix: base64url of 48 bytes, no padding needed.
const BODY_LEN: usize = 64;
/// Characters of a token.
const TOKEN_LEN: usize = 68;

/// `tnc_` + b64url(id ‖ secret): 68 characters. The caller supplies the random bytes.
pub fn format(id: &[u8; 16], secret: &[u8; 32]) -> String {
    let mut raw = [0u8; ID_LEN + SECRET_LEN];
    let (id_part, secret_part) = raw.split_at_mut(ID_LEN);
    id_part.copy_from_slice(id);
    secret_part.copy_from_slice(secret);
    let mut token = String::with_capacity(TOKEN_LEN);
    token.push_str(PREFIX);
    token.push_str(&b64url_encode(&raw));
    token
}

/// Checks the shape of a token and returns the id to look it up by.
///
/// Order: empty / longer than [`crate::MAX_TOKEN_LEN`] (before anything else), the `tnc_`
/// prefix, the exact length of the rest (64 characters), strict base64url decoding. The secret
/// is not checked here: the caller compares [`hash`] with the stored hash.
pub fn parse(token: &str) -> Result<[u8; 16], Reason> {
    check_len(token)?;
    let body = token.strip_prefix(PREFIX).ok_or(Reason::Malformed)?;
    if body.len() != BODY_LEN {
        return Err(Reason::Malformed);
    }
    let raw = b64url_decode_strict(body).ok_or(Reason::BadEncoding)?;
    let id: &[u8; ID_LEN] = raw.first_chunk().ok_or(Reason::Malformed)?;
    if raw.len() != ID_LEN + SECRET_LEN {
        return Err(Reason::Malformed);
    }
    Ok(*id)
}

/// What the database stores: SHA-256 of the whole token string (prefix included).
pub fn hash(token: &str) -> [u8; 32] {
    sha256(token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let t = format(&[0u8; 16], &[0u8; 32]);
        assert_eq!(t.len(), TOKEN_LEN);
        assert_eq!(PREFIX.len() + BODY_LEN, TOKEN_LEN);
        assert_eq!(t, format!("tnc_{}", "A".repeat(64)));
        assert_eq!(parse(&t), Ok([0u8; 16]));
    }
}
