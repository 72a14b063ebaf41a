//! `jwt::verify` on arbitrary input, on correctly signed tokens whose header and payload come
//! from the input, and on tokens `jwt::sign` makes from JSON in the input: no panic, oversized
//! input refused before the key lookup, claims agree with an ordinary JSON parser, every
//! accepted segment has one spelling, re-signing the claims round-trips, and a changed token
//! does not verify.
#![no_main]

use std::cell::Cell;

use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use sha2::Sha256;
use tenancy_tokens::jwt::{sign, verify, Claims};
use tenancy_tokens::{b64url_decode_strict, b64url_encode, Reason, MAX_TOKEN_LEN};

const KEY: &[u8] = b"pg_tenancy fuzz key 0123456789abc";
/// 2023-11-14T22:13:20Z.
const NOW: i64 = 1_700_000_000_000_000;
const KNOWN_CLAIMS: [&str; 6] = ["tid", "sub", "exp", "nbf", "iat", "scope"];

fn hmac(data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(KEY).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn signed_raw(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64url_encode(header), b64url_encode(payload));
    let sig = b64url_encode(&hmac(input.as_bytes()));
    format!("{input}.{sig}")
}

fn to_json(c: &Claims) -> Value {
    let mut v = json!({"tid": c.tid, "exp": c.exp});
    if let Some(sub) = &c.sub {
        v["sub"] = json!(sub);
    }
    if let Some(nbf) = c.nbf {
        v["nbf"] = json!(nbf);
    }
    if let Some(iat) = c.iat {
        v["iat"] = json!(iat);
    }
    if let Some(scope) = &c.scope {
        v["scope"] = json!(scope.join(" "));
    }
    v
}

fn check(s: &str) -> Result<Claims, Reason> {
    let looked_up = Cell::new(0);
    let result = verify(s, NOW, |_| {
        looked_up.set(looked_up.get() + 1);
        Some(KEY.to_vec())
    });
    assert!(looked_up.get() <= 1);
    if s.len() > MAX_TOKEN_LEN {
        assert_eq!(result, Err(Reason::TooLong));
        assert_eq!(looked_up.get(), 0);
    }
    if let Ok(c) = &result {
        assert_eq!(looked_up.get(), 1);
        // One spelling: three segments, each the canonical encoding of its bytes, and the
        // signature the canonical encoding of the HMAC of the first two as received.
        let segs: Vec<&str> = s.split('.').collect();
        assert_eq!(segs.len(), 3);
        let decoded: Vec<Vec<u8>> = segs
            .iter()
            .map(|p| b64url_decode_strict(p).expect("accepted segments decode"))
            .collect();
        for (seg, bytes) in segs.iter().zip(&decoded) {
            assert_eq!(&b64url_encode(bytes), seg);
        }
        let input_len = segs[0].len() + 1 + segs[1].len();
        assert_eq!(decoded[2], hmac(&s.as_bytes()[..input_len]));
        // An ordinary JSON parser agrees on what the claims and header say.
        let header: Value = serde_json::from_slice(&decoded[0]).expect("header is JSON");
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["kid"].as_str(), Some(c.kid.as_str()));
        let payload: Value = serde_json::from_slice(&decoded[1]).expect("payload is JSON");
        assert_eq!(payload["tid"].as_str(), Some(c.tid.as_str()));
        assert_eq!(payload["exp"].as_i64(), Some(c.exp));
        assert_eq!(payload.get("sub").and_then(Value::as_str), c.sub.as_deref());
        assert_eq!(payload.get("nbf").and_then(Value::as_i64), c.nbf);
        assert_eq!(payload.get("iat").and_then(Value::as_i64), c.iat);
        assert_eq!(
            payload
                .get("scope")
                .and_then(Value::as_str)
                .map(|s| s.split(' ').map(str::to_owned).collect::<Vec<_>>()),
            c.scope
        );
        // Times hold.
        assert!(NOW < c.exp * 1_000_000);
        assert!(c.nbf.is_none_or(|nbf| NOW >= nbf * 1_000_000));
        assert!(c.iat.is_none_or(|iat| iat * 1_000_000 <= NOW + 60_000_000));
        // Re-signing the claims gives a token that verifies to the same claims.
        let again = sign(&to_json(c), &c.kid, KEY);
        assert_eq!(verify(&again, NOW, |_| Some(KEY.to_vec())).as_ref(), Ok(c));
    }
    result
}

/// Applies (position, byte) edits to `token`; returns the changed string.
fn edit(token: &str, edits: &[u8]) -> String {
    let mut bytes = token.as_bytes().to_vec();
    for pair in edits.chunks(2).take(4) {
        let pos = usize::from(pair[0]) | usize::from(pair.get(1).copied().unwrap_or(0) & 0xf0) << 4;
        let b = pair.get(1).copied().unwrap_or(b'.');
        match b % 3 {
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
    String::from_utf8_lossy(&bytes).into_owned()
}

fn changed_is_refused(token: &str, edits: &[u8]) {
    let mutated = edit(token, edits);
    let result = check(&mutated);
    if mutated != token {
        assert!(result.is_err(), "a changed token verified");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = check(s);
    }
    let _ = check(&String::from_utf8_lossy(data));

    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Edits come from the last bytes, the rest from the front.
    let n_edits = usize::from(mode >> 4).min(rest.len());
    let (body, edits) = rest.split_at(rest.len() - n_edits);
    match mode % 3 {
        // A fixed valid header, the payload from the input.
        0 => {
            let token = signed_raw(br#"{"alg":"HS256","typ":"JWT","kid":"fuzz-1"}"#, body);
            let _ = check(&token);
            changed_is_refused(&token, edits);
        }
        // Header and payload from the input, split at the first newline.
        1 => {
            let split = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
            let (header, payload) = body.split_at(split);
            let token = signed_raw(header, payload.get(1..).unwrap_or(&[]));
            let _ = check(&token);
            changed_is_refused(&token, edits);
        }
        // JSON from the input, minted by `sign`: when it holds only the known claims, a
        // successful verify and re-sign gives back exactly the same token.
        _ => {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return;
            };
            let token = sign(&v, "fuzz-1", KEY);
            if let Ok(c) = check(&token) {
                let only_known = v
                    .as_object()
                    .is_some_and(|o| o.keys().all(|k| KNOWN_CLAIMS.contains(&k.as_str())));
                if only_known {
                    assert_eq!(sign(&to_json(&c), &c.kid, KEY), token, "one spelling");
                }
            }
            changed_is_refused(&token, edits);
        }
    }
});
