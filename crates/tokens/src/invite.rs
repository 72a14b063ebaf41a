//! Invitation tokens.
//!
//! Payload (26 + kid_len bytes):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version, `1` |
//! | 16 | invitation id |
//! | 8 | issued_at: i64 big-endian, microseconds since the Unix epoch |
//! | 1 | kid_len, 1..=64 |
//! | kid_len | kid: ASCII `[A-Za-z0-9_-]` |
//!
//! Token = base64url(payload ‖ HMAC-SHA256(key, `"pg_tenancy invitation v1\0"` ‖ payload)), the
//! full 32-byte tag, no padding. The domain-separation prefix keeps an invitation tag from ever
//! being a valid tag of another message signed with the same key (JWTs, future formats).
//! Expiry, revocation and single use are the database's business, not this module's.

use crate::{
    b64url_decode_strict, b64url_encode, check_len, hmac_sha256, hmac_verify, valid_kid, Reason,
};

/// Version byte of the format.
const VERSION: u8 = 1;
/// Domain separation for the HMAC.
const DOMAIN: &[u8] = b"pg_tenancy invitation v1\0";
/// version + id + issued_at + kid_len.
const FIXED_LEN: usize = 1 + 16 + 8 + 1;
const TAG_LEN: usize = 32;
const MAX_KID_LEN: usize = 64;
/// The longest valid decoded token: 26 + 64 + 32 = 122 bytes.
const MAX_RAW_LEN: usize = FIXED_LEN + MAX_KID_LEN + TAG_LEN;
/// The longest valid token, in characters: base64url of 122 bytes, 163 characters.
const MAX_ENCODED_LEN: usize = (MAX_RAW_LEN * 4).div_ceil(3);

/// What an invitation token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The invitation id (a UUID's bytes).
    pub id: [u8; 16],
    /// When the token was issued, microseconds since the Unix epoch.
    pub issued_at_us: i64,
    /// Which signing key signed it.
    pub kid: String,
}

fn payload(inv: &Invitation) -> Vec<u8> {
    // A kid outside 1..=64 bytes of [A-Za-z0-9_-] is written as kid_len 0: the token is then
    // refused by `parse`, so a caller's bad kid yields a token that never verifies.
    let kid: &[u8] = if valid_kid(&inv.kid) {
        inv.kid.as_bytes()
    } else {
        &[]
    };
    let mut p = Vec::with_capacity(MAX_RAW_LEN);
    p.push(VERSION);
    p.extend_from_slice(&inv.id);
    p.extend_from_slice(&inv.issued_at_us.to_be_bytes());
    p.push(u8::try_from(kid.len()).unwrap_or(0));
    p.extend_from_slice(kid);
    p
}

/// Signs an invitation with `key`.
///
/// `inv.kid` must be 1..=64 bytes of `[A-Za-z0-9_-]`; any other kid gives a token that
/// [`parse`] and [`verify`] refuse (this function does not panic).
pub fn sign(inv: &Invitation, key: &[u8]) -> String {
    let mut bytes = payload(inv);
    let tag = hmac_sha256(key, &[DOMAIN, &bytes]).unwrap_or([0u8; TAG_LEN]);
    bytes.extend_from_slice(&tag);
    b64url_encode(&bytes)
}

/// Splits a decoded token into (payload, tag) and reads the payload. Exact structure, nothing
/// trailing.
fn split(raw: &[u8]) -> Result<(&[u8], &[u8], Invitation), Reason> {
    let (&version, rest) = raw.split_first().ok_or(Reason::Malformed)?;
    if version != VERSION {
        return Err(Reason::Malformed);
    }
    let (id, rest) = rest.split_first_chunk::<16>().ok_or(Reason::Malformed)?;
    let (issued_at, rest) = rest.split_first_chunk::<8>().ok_or(Reason::Malformed)?;
    let (&kid_len, rest) = rest.split_first().ok_or(Reason::Malformed)?;
    let kid_len = usize::from(kid_len);
    if !(1..=MAX_KID_LEN).contains(&kid_len) {
        return Err(Reason::Malformed);
    }
    let (kid, tag) = rest.split_at_checked(kid_len).ok_or(Reason::Malformed)?;
    if tag.len() != TAG_LEN {
        return Err(Reason::Malformed);
    }
    let kid = std::str::from_utf8(kid).map_err(|_| Reason::Malformed)?;
    if !valid_kid(kid) {
        return Err(Reason::Malformed);
    }
    let payload_len = FIXED_LEN.checked_add(kid_len).ok_or(Reason::Malformed)?;
    let payload = raw.get(..payload_len).ok_or(Reason::Malformed)?;
    let inv = Invitation {
        id: *id,
        issued_at_us: i64::from_be_bytes(*issued_at),
        kid: kid.to_owned(),
    };
    Ok((payload, tag, inv))
}

/// Parses a token without verifying it (to find the kid).
///
/// Order: empty / longer than [`crate::MAX_TOKEN_LEN`] (before anything else), longer than any
/// valid invitation token, strict base64url decoding, exact structure with nothing trailing.
pub fn parse(token: &str) -> Result<Invitation, Reason> {
    parse_raw(token).map(|(_, inv)| inv)
}

fn parse_raw(token: &str) -> Result<(Vec<u8>, Invitation), Reason> {
    check_len(token)?;
    if token.len() > MAX_ENCODED_LEN {
        return Err(Reason::Malformed);
    }
    let raw = b64url_decode_strict(token).ok_or(Reason::BadEncoding)?;
    let (_, _, inv) = split(&raw)?;
    Ok((raw, inv))
}

/// Full verification: [`parse`], then the key of the token's kid (`None` or an empty key:
/// [`Reason::UnknownKey`]), then the HMAC-SHA256 tag compared in constant time over its full
/// 32 bytes ([`Reason::BadSignature`]).
pub fn verify(
    token: &str,
    key_for: impl FnOnce(&str) -> Option<Vec<u8>>,
) -> Result<Invitation, Reason> {
    let (raw, inv) = parse_raw(token)?;
    let (payload, tag, _) = split(&raw)?;
    let key = key_for(&inv.kid)
        .filter(|k| !k.is_empty())
        .ok_or(Reason::UnknownKey)?;
    if !hmac_verify(&key, &[DOMAIN, payload], tag) {
        return Err(Reason::BadSignature);
    }
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_encoded_len_is_the_longest_token() {
        let inv = Invitation {
            id: [0xff; 16],
            issued_at_us: -1,
            kid: "k".repeat(64),
        };
        let t = sign(&inv, b"key");
        assert_eq!(t.len(), MAX_ENCODED_LEN);
        assert_eq!(MAX_ENCODED_LEN, 163);
        assert_eq!(verify(&t, |_| Some(b"key".to_vec())), Ok(inv));
    }

    #[test]
    fn bad_kid_signs_a_token_that_never_parses() {
        for kid in ["", "a b", "é", &"k".repeat(65), &"k".repeat(300)] {
            let inv = Invitation {
                id: [1; 16],
                issued_at_us: 0,
                kid: kid.to_owned(),
            };
            let t = sign(&inv, b"key");
            assert_eq!(parse(&t), Err(Reason::Malformed), "{kid:?}");
            assert_eq!(
                verify(&t, |_| Some(b"key".to_vec())),
                Err(Reason::Malformed)
            );
        }
    }
}
