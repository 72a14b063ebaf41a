//! `invite::parse` and `invite::verify` on arbitrary input, and on tokens signed from the input
//! then changed: no panic, oversized input refused before the key lookup, and a token that
//! verifies is exactly what `sign` makes of its parsed value (one spelling); any other string
//! does not verify.
#![no_main]

use std::cell::Cell;

use libfuzzer_sys::fuzz_target;
use tenancy_tokens::invite::{parse, sign, verify, Invitation};
use tenancy_tokens::{Reason, MAX_TOKEN_LEN};

const KEY: &[u8] = b"pg_tenancy fuzz key 0123456789abc";
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn valid_kid(kid: &str) -> bool {
    (1..=64).contains(&kid.len()) && kid.bytes().all(|b| ALPHABET.contains(&b))
}

/// Verifies with a key for every kid; returns the result and checks the common properties.
fn check(s: &str) -> Result<Invitation, Reason> {
    let parsed = parse(s);
    let looked_up = Cell::new(false);
    let verified = verify(s, |kid| {
        looked_up.set(true);
        assert_eq!(Some(kid), parsed.as_ref().ok().map(|i| i.kid.as_str()));
        Some(KEY.to_vec())
    });
    if s.len() > MAX_TOKEN_LEN {
        assert_eq!(parsed, Err(Reason::TooLong));
        assert_eq!(verified, Err(Reason::TooLong));
        assert!(!looked_up.get());
    }
    match &parsed {
        Ok(inv) => {
            assert!(valid_kid(&inv.kid));
            assert!(looked_up.get());
        }
        Err(reason) => {
            assert_eq!(verified.as_ref(), Err(reason));
            assert!(!looked_up.get());
        }
    }
    if let Ok(inv) = &verified {
        assert_eq!(parsed.as_ref(), Ok(inv));
        assert_eq!(sign(inv, KEY), s, "one spelling");
    }
    verified
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = check(s);
    }
    let _ = check(&String::from_utf8_lossy(data));

    // An invitation made from the input: [kid_len][id 16][issued_at 8][kid bytes][edits...]
    let Some((&kid_len, rest)) = data.split_first() else {
        return;
    };
    let Some((id, rest)) = rest.split_first_chunk::<16>() else {
        return;
    };
    let Some((issued_at, rest)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let kid_len = usize::from(kid_len % 72).min(rest.len());
    let (kid_bytes, edits) = rest.split_at(kid_len);
    // Mostly alphabet characters; bytes >= 0xf8 give characters outside it.
    let kid: String = kid_bytes
        .iter()
        .map(|&b| {
            if b >= 0xf8 {
                ['.', ' ', '\0', '=', '+', '/', 'é', '\n'][usize::from(b - 0xf8)]
            } else {
                ALPHABET[usize::from(b) % 64] as char
            }
        })
        .collect();
    let inv = Invitation {
        id: *id,
        issued_at_us: i64::from_be_bytes(*issued_at),
        kid,
    };
    let token = sign(&inv, KEY);
    let verified = check(&token);
    if valid_kid(&inv.kid) {
        assert_eq!(verified, Ok(inv.clone()));
    } else {
        assert_eq!(verified, Err(Reason::Malformed));
    }

    // Edits: (position, byte) pairs applied in turn; any string other than the token is refused.
    let mut bytes = token.clone().into_bytes();
    for pair in edits.chunks(2) {
        let pos = usize::from(pair[0]);
        let b = pair.get(1).copied().unwrap_or(b'=');
        match b % 4 {
            0 if !bytes.is_empty() => {
                let i = pos % bytes.len();
                bytes.remove(i);
            }
            1 => bytes.insert(pos % (bytes.len() + 1), b),
            _ if !bytes.is_empty() => {
                let i = pos % bytes.len();
                bytes[i] = b;
            }
            _ => {}
        }
    }
    let mutated = String::from_utf8_lossy(&bytes);
    let result = check(&mutated);
    if mutated != token {
        assert!(result.is_err(), "a changed token verified");
    }
});
