//! Hostile input: every parser refuses it with a reason, without panicking, and refuses
//! oversized input before looking at it.

mod common;

use std::cell::Cell;

use common::{raw_jwt, XorShift, ALPHABET, KEY};
use serde_json::json;
use tenancy_tokens::{
    api_token, b64url_decode_strict, b64url_encode, invite, jwt, Reason, MAX_TOKEN_LEN,
};

const NOW: i64 = 1_700_000_000_000_000;

/// Runs every parser on `s`; returns their results, and asserts the key lookup happened only
/// for inputs that got that far.
fn all(s: &str) -> [Option<Reason>; 4] {
    let called = Cell::new(0);
    let key = |_: &str| {
        called.set(called.get() + 1);
        Some(KEY.to_vec())
    };
    let a = api_token::parse(s).err();
    let _ = api_token::hash(s);
    let p = invite::parse(s).err();
    let i = invite::verify(s, key).err();
    let j = jwt::verify(s, NOW, key).err();
    let _ = b64url_decode_strict(s);
    assert!(called.get() <= 2);
    if s.len() > MAX_TOKEN_LEN {
        assert_eq!(called.get(), 0, "key looked up for oversized input");
    }
    [a, p, i, j]
}

/// Every parser refuses `s`, except that `api_token::parse` may accept a well-formed API token
/// (exactly the spelling `format` gives; the database then compares the hash).
fn refused_unless_api_shaped(s: &str) {
    let [a, p, i, j] = all(s);
    assert!(p.is_some() && i.is_some() && j.is_some(), "accepted: {s:?}");
    if a.is_none() {
        let raw = b64url_decode_strict(&s[4..]).unwrap();
        let secret: [u8; 32] = raw[16..].try_into().unwrap();
        assert_eq!(api_token::format(&api_token::parse(s).unwrap(), &secret), s);
    }
}

fn all_refused(s: &str) -> [Reason; 4] {
    all(s).map(|r| r.unwrap_or_else(|| panic!("accepted: {s:?}")))
}

#[test]
fn empty_and_one_byte() {
    assert_eq!(all_refused(""), [Reason::Empty; 4]);
    for b in 0..=255u8 {
        all_refused(&String::from_utf8_lossy(&[b]));
        if b.is_ascii() {
            all_refused(&(b as char).to_string());
        }
    }
    for c in ['\u{0}', '\u{feff}', '\u{2028}', 'é', '𝕏', '\u{fffd}'] {
        all_refused(&c.to_string());
    }
}

#[test]
fn oversized_input_is_refused_first() {
    let valid_jwt = jwt::sign(&json!({"tid": "t", "exp": 2_000_000_000}), "kid-1", KEY);
    for len in [MAX_TOKEN_LEN + 1, MAX_TOKEN_LEN + 4, 65_536, 1 << 20] {
        for fill in ["A", "\0", ".", "tnc_", "é"] {
            let s = fill.repeat(len / fill.len() + 1);
            assert!(s.len() > MAX_TOKEN_LEN);
            assert_eq!(all_refused(&s), [Reason::TooLong; 4], "{len} {fill:?}");
        }
        // A valid token padded with JSON whitespace inside would be long; so is a valid
        // token followed by garbage.
        let s = format!("{valid_jwt}{}", "A".repeat(len));
        assert_eq!(all_refused(&s), [Reason::TooLong; 4]);
        let s = format!("tnc_{}", "A".repeat(len));
        assert_eq!(all_refused(&s), [Reason::TooLong; 4]);
    }
    // Exactly at the cap: refused for another reason.
    let at_cap = "A".repeat(MAX_TOKEN_LEN);
    assert!(all_refused(&at_cap).iter().all(|r| *r != Reason::TooLong));
    // A JWT of exactly 4096 bytes verifies; one byte more does not.
    let mut pad = String::new();
    let token = loop {
        let t = jwt::sign(
            &json!({"tid": "t", "exp": 2_000_000_000, "pad": pad}),
            "kid-1",
            KEY,
        );
        if t.len() >= MAX_TOKEN_LEN {
            break t;
        }
        pad.push('x');
    };
    assert_eq!(
        token.len(),
        MAX_TOKEN_LEN,
        "b64 of one more byte adds 1 or 2 characters"
    );
    assert!(jwt::verify(&token, NOW, |_| Some(KEY.to_vec())).is_ok());
    pad.push('x');
    let over = jwt::sign(
        &json!({"tid": "t", "exp": 2_000_000_000, "pad": pad}),
        "kid-1",
        KEY,
    );
    assert_eq!(
        jwt::verify(&over, NOW, |_| Some(KEY.to_vec())),
        Err(Reason::TooLong)
    );
}

#[test]
fn nul_bytes() {
    for n in [1, 2, 3, 4, 68, 100, 4096] {
        all_refused(&"\0".repeat(n));
    }
    let api = api_token::format(&[1; 16], &[2; 32]);
    let inv = invite::sign(
        &invite::Invitation {
            id: [3; 16],
            issued_at_us: 0,
            kid: "kid-1".into(),
        },
        KEY,
    );
    let jwt = jwt::sign(&json!({"tid": "t", "exp": 2_000_000_000}), "kid-1", KEY);
    for t in [&api, &inv, &jwt] {
        assert!(
            all(t).iter().any(Option::is_none),
            "the untouched token is valid somewhere"
        );
        for i in 0..=t.len() {
            let mut s = t.clone();
            s.insert(i, '\0');
            all_refused(&s);
            let mut s = t.clone();
            s.replace_range(i.min(t.len() - 1)..i.min(t.len() - 1) + 1, "\0");
            all_refused(&s);
        }
    }
    // NUL inside JSON strings of a correctly signed JWT: refused where it matters (kid), and a
    // NUL in an unknown claim or tid is just text (the caller checks tid's UUID syntax).
    let h = r#"{"alg":"HS256","kid":"kid-1\u0000"}"#;
    assert_eq!(
        jwt::verify(
            &raw_jwt(h, r#"{"tid":"t","exp":2000000000}"#, KEY),
            NOW,
            |_| Some(KEY.to_vec())
        ),
        Err(Reason::BadClaim)
    );
    let p = r#"{"tid":"t\u0000","exp":2000000000}"#;
    let c = jwt::verify(
        &raw_jwt(r#"{"alg":"HS256","kid":"kid-1"}"#, p, KEY),
        NOW,
        |_| Some(KEY.to_vec()),
    );
    assert_eq!(c.map(|c| c.tid), Ok("t\0".to_owned()));
}

#[test]
fn random_bytes() {
    let mut rng = XorShift::new(0x5eed);
    for _ in 0..20_000 {
        let len = rng.below(300);
        let bytes = rng.vec(len);
        all_refused(&String::from_utf8_lossy(&bytes));
        if let Ok(s) = std::str::from_utf8(&bytes) {
            all_refused(s);
        }
    }
}

#[test]
fn random_alphabet_strings() {
    // Closer to the real thing: base64url characters, dots, the prefix.
    let mut rng = XorShift::new(42);
    for _ in 0..20_000 {
        let len = rng.below(200);
        let mut s: String = (0..len)
            .map(|_| match rng.below(40) {
                0 => '.',
                _ => ALPHABET[rng.below(64)] as char,
            })
            .collect();
        if rng.below(4) == 0 {
            s.insert_str(0, "tnc_");
        }
        refused_unless_api_shaped(&s);
        // base64url of random bytes of the lengths of real tokens.
        let lens = [48, 63, 70, 122, rng.below(130)];
        let len = lens[rng.below(lens.len())];
        let raw = rng.vec(len);
        all_refused(&b64url_encode(&raw));
        let api = format!("tnc_{}", b64url_encode(&raw));
        refused_unless_api_shaped(&api);
        assert_eq!(api_token::parse(&api).is_ok(), len == 48);
    }
}

#[test]
fn random_signed_json() {
    // Correctly signed JWTs whose header and payload are random mutations of valid JSON: the
    // parser reaches the claim checks; whatever it answers, it does not panic, and it accepts
    // only what a JSON parser sees as an object with a string tid and an integer exp.
    let mut rng = XorShift::new(7);
    let header = br#"{"alg":"HS256","typ":"JWT","kid":"kid-1"}"#;
    let payload = br#"{"tid":"2f1e0d3c","sub":"s","exp":2000000000,"nbf":1,"iat":1,"scope":"a b","x":[1,{"y":null}]}"#;
    let noise = b"{}[]\",:0123456789.eE+-tfnul\\ \x00a";
    let mut accepted = 0;
    for _ in 0..20_000 {
        let mut h = header.to_vec();
        let mut p = payload.to_vec();
        for buf in [&mut h, &mut p] {
            for _ in 0..rng.below(3) {
                let i = rng.below(buf.len() + 1);
                match rng.below(3) {
                    0 if i < buf.len() => buf[i] = noise[rng.below(noise.len())],
                    1 => buf.insert(i, noise[rng.below(noise.len())]),
                    _ if i < buf.len() => {
                        buf.remove(i);
                    }
                    _ => {}
                }
            }
        }
        let input = format!("{}.{}", b64url_encode(&h), b64url_encode(&p));
        let t = format!(
            "{input}.{}",
            b64url_encode(&common::hmac(KEY, input.as_bytes()))
        );
        if let Ok(c) = jwt::verify(&t, NOW, |_| Some(KEY.to_vec())) {
            accepted += 1;
            let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
            assert_eq!(v["tid"].as_str(), Some(c.tid.as_str()));
            assert_eq!(v["exp"].as_i64(), Some(c.exp));
            let hv: serde_json::Value = serde_json::from_slice(&h).unwrap();
            assert_eq!(hv["alg"], "HS256");
        }
    }
    assert!(accepted > 1000, "{accepted}");
}
