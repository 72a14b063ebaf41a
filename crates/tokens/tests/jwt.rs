//! HS256 JWT verification.

mod common;

use std::cell::Cell;

use common::{noncanonical_tails, raw_jwt, respellings, substitutions, XorShift, KEY, OTHER_KEY};
use serde_json::json;
use tenancy_tokens::jwt::{sign, verify, Claims};
use tenancy_tokens::{b64url_decode_strict, b64url_encode, Reason};

const TID: &str = "2f1e0d3c-5b4a-4978-8e6f-0a1b2c3d4e5f";
const SUB: &str = "8d3c1a52-4b7e-4f0a-9c2d-5e6f7a8b9c0d";
/// 2023-11-14T22:13:20Z.
const NOW_S: i64 = 1_700_000_000;
const NOW: i64 = NOW_S * 1_000_000;
const HDR: &str = r#"{"alg":"HS256","typ":"JWT","kid":"kid-1"}"#;

fn key(kid: &str) -> Option<Vec<u8>> {
    (kid == "kid-1").then(|| KEY.to_vec())
}

fn v(token: &str) -> Result<Claims, Reason> {
    verify(token, NOW, key)
}

fn v_at(token: &str, now_us: i64) -> Result<Claims, Reason> {
    verify(token, now_us, key)
}

fn basic() -> String {
    sign(
        &json!({"tid": TID, "sub": SUB, "exp": NOW_S + 3600}),
        "kid-1",
        KEY,
    )
}

fn with_header(header: &str) -> Result<Claims, Reason> {
    v(&raw_jwt(
        header,
        &format!(r#"{{"tid":"{TID}","exp":{}}}"#, NOW_S + 60),
        KEY,
    ))
}

fn with_payload(payload: &str) -> Result<Claims, Reason> {
    v(&raw_jwt(HDR, payload, KEY))
}

#[test]
fn round_trip() {
    let t = sign(
        &json!({"tid": TID, "sub": SUB, "exp": NOW_S + 3600, "nbf": NOW_S - 10, "iat": NOW_S - 10,
                "scope": "orders:read inventory:write"}),
        "kid-1",
        KEY,
    );
    assert_eq!(
        v(&t),
        Ok(Claims {
            tid: TID.into(),
            sub: Some(SUB.into()),
            exp: NOW_S + 3600,
            nbf: Some(NOW_S - 10),
            iat: Some(NOW_S - 10),
            scope: Some(vec!["orders:read".into(), "inventory:write".into()]),
            kid: "kid-1".into(),
        })
    );
    // Minimal: tid and exp only.
    let t = sign(&json!({"tid": TID, "exp": NOW_S + 1}), "kid-1", KEY);
    assert_eq!(
        v(&t),
        Ok(Claims {
            tid: TID.into(),
            sub: None,
            exp: NOW_S + 1,
            nbf: None,
            iat: None,
            scope: None,
            kid: "kid-1".into()
        })
    );
    // sign is deterministic and sorts keys whatever the insertion order.
    let a = sign(&json!({"tid": TID, "exp": NOW_S + 1}), "kid-1", KEY);
    let b = sign(&json!({"exp": NOW_S + 1, "tid": TID}), "kid-1", KEY);
    assert_eq!(a, b);
}

#[test]
fn tokens_of_other_libraries_are_accepted() {
    // Other header order, JSON whitespace, unknown claims (iss, aud, jti): the signature binds the
    // exact bytes, unknown claims are ignored.
    for (h, p) in [
        (r#"{"typ":"JWT","alg":"HS256","kid":"kid-1"}"#, format!(r#"{{"tid":"{TID}","exp":{}}}"#, NOW_S + 9)),
        (r#"{"kid":"kid-1","alg":"HS256"}"#, format!(r#"{{"exp":{},"tid":"{TID}"}}"#, NOW_S + 9)),
        (
            "{\n  \"alg\": \"HS256\",\r\n  \"kid\": \"kid-1\"\n}",
            format!(
                "{{ \"tid\" : \"{TID}\", \"exp\" : {}, \"iss\": \"app\", \"aud\": [\"a\", \"b\"], \"jti\": \"x\", \"x\": {{\"y\": null}} }}\n",
                NOW_S + 9
            ),
        ),
    ] {
        let c = v(&raw_jwt(h, &p, KEY)).unwrap_or_else(|r| panic!("{h} {p}: {r:?}"));
        assert_eq!((c.tid.as_str(), c.exp), (TID, NOW_S + 9));
    }
}

#[test]
fn algorithm_must_be_exactly_hs256() {
    for h in [
        r#"{"alg":"none","kid":"kid-1"}"#,
        r#"{"alg":"None","kid":"kid-1"}"#,
        r#"{"alg":"RS256","kid":"kid-1"}"#,
        r#"{"alg":"ES256","kid":"kid-1"}"#,
        r#"{"alg":"HS512","kid":"kid-1"}"#,
        r#"{"alg":"HS384","kid":"kid-1"}"#,
        r#"{"alg":"hs256","kid":"kid-1"}"#,
        r#"{"alg":"HS256 ","kid":"kid-1"}"#,
        r#"{"alg":"HS256\u0000","kid":"kid-1"}"#,
        r#"{"alg":"","kid":"kid-1"}"#,
        r#"{"alg":null,"kid":"kid-1"}"#,
        r#"{"alg":256,"kid":"kid-1"}"#,
        r#"{"alg":["HS256"],"kid":"kid-1"}"#,
        r#"{"kid":"kid-1"}"#,
        r#"{"ALG":"HS256","kid":"kid-1"}"#,
    ] {
        assert_eq!(with_header(h), Err(Reason::BadAlgorithm), "{h}");
    }
    // alg none with no signature at all: not three non-empty segments.
    let none = format!(
        "{}.{}.",
        b64url_encode(br#"{"alg":"none","kid":"kid-1"}"#),
        b64url_encode(format!(r#"{{"tid":"{TID}","exp":{}}}"#, NOW_S + 60).as_bytes())
    );
    assert_eq!(v(&none), Err(Reason::Malformed));
    assert_eq!(v(&format!("{none}AAAA")), Err(Reason::BadAlgorithm));
}

#[test]
fn kid_is_required_known_and_well_formed() {
    assert_eq!(with_header(r#"{"alg":"HS256"}"#), Err(Reason::MissingClaim));
    assert_eq!(
        with_header(r#"{"alg":"HS256","typ":"JWT"}"#),
        Err(Reason::MissingClaim)
    );
    for h in [
        r#"{"alg":"HS256","kid":""}"#,
        r#"{"alg":"HS256","kid":null}"#,
        r#"{"alg":"HS256","kid":1}"#,
        r#"{"alg":"HS256","kid":["kid-1"]}"#,
        r#"{"alg":"HS256","kid":"kid 1"}"#,
        r#"{"alg":"HS256","kid":"kid-1\u0000"}"#,
        r#"{"alg":"HS256","kid":"../kid-1"}"#,
        r#"{"alg":"HS256","kid":"kíd"}"#,
    ] {
        assert_eq!(with_header(h), Err(Reason::BadClaim), "{h}");
    }
    let long = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, "k".repeat(65));
    assert_eq!(with_header(&long), Err(Reason::BadClaim));
    let max = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, "k".repeat(64));
    assert_eq!(with_header(&max), Err(Reason::UnknownKey));
    assert_eq!(
        with_header(r#"{"alg":"HS256","kid":"kid-2"}"#),
        Err(Reason::UnknownKey)
    );
    // The lookup gets the kid, once.
    let asked = Cell::new(0);
    let c = verify(&basic(), NOW, |kid| {
        asked.set(asked.get() + 1);
        assert_eq!(kid, "kid-1");
        Some(KEY.to_vec())
    });
    assert_eq!(c.map(|c| c.kid), Ok("kid-1".to_owned()));
    assert_eq!(asked.get(), 1);
    // An empty key verifies nothing, even a token signed with the empty key.
    let t = sign(&json!({"tid": TID, "exp": NOW_S + 60}), "kid-1", b"");
    assert_eq!(
        verify(&t, NOW, |_| Some(Vec::new())),
        Err(Reason::UnknownKey)
    );
}

#[test]
fn header_fields_are_limited() {
    assert!(with_header(r#"{"alg":"HS256","kid":"kid-1","typ":"JWT"}"#).is_ok());
    for h in [
        r#"{"alg":"HS256","kid":"kid-1","typ":"jwt"}"#,
        r#"{"alg":"HS256","kid":"kid-1","typ":"at+jwt"}"#,
        r#"{"alg":"HS256","kid":"kid-1","typ":null}"#,
    ] {
        assert_eq!(with_header(h), Err(Reason::BadClaim), "{h}");
    }
    for field in [
        "crit", "jku", "jwk", "x5u", "x5c", "x5t", "cty", "b64", "zip", "enc", "Alg", "extra",
    ] {
        let h = format!(r#"{{"alg":"HS256","kid":"kid-1","{field}":["exp"]}}"#);
        assert_eq!(with_header(&h), Err(Reason::Malformed), "{h}");
    }
    for h in [
        "[]",
        "null",
        "\"HS256\"",
        "{",
        "",
        r#"{"alg":"HS256","kid":"kid-1"}x"#,
        "\u{feff}{}",
    ] {
        assert_eq!(with_header(h), Err(Reason::Malformed), "{h:?}");
    }
}

#[test]
fn required_claims() {
    let exp = NOW_S + 60;
    assert_eq!(
        with_payload(&format!(r#"{{"tid":"{TID}"}}"#)),
        Err(Reason::MissingClaim)
    );
    assert_eq!(
        with_payload(&format!(r#"{{"sub":"{SUB}","exp":{exp}}}"#)),
        Err(Reason::MissingClaim)
    );
    assert_eq!(with_payload("{}"), Err(Reason::MissingClaim));
    for p in [
        format!(r#"{{"tid":"{TID}","exp":"{exp}"}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp}.0}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp}.5}}"#),
        format!(r#"{{"tid":"{TID}","exp":1.7e9}}"#),
        format!(r#"{{"tid":"{TID}","exp":null}}"#),
        format!(r#"{{"tid":"{TID}","exp":true}}"#),
        format!(r#"{{"tid":"{TID}","exp":[{exp}]}}"#),
        format!(r#"{{"tid":"{TID}","exp":9223372036854775807}}"#),
        format!(r#"{{"tid":"{TID}","exp":9223372036854775808}}"#),
        format!(r#"{{"tid":"{TID}","exp":99999999999999999999999999}}"#),
        format!(r#"{{"tid":"{TID}","exp":9223372036855}}"#),
        format!(r#"{{"tid":1,"exp":{exp}}}"#),
        format!(r#"{{"tid":null,"exp":{exp}}}"#),
        format!(r#"{{"tid":["{TID}"],"exp":{exp}}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"sub":1}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"sub":null}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"nbf":"0"}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"nbf":1.5}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"iat":null}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"iat":-9223372036854775808}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"scope":["a"]}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"scope":""}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"scope":"a  b"}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"scope":" a"}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"scope":"a "}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"scope":"a\tb"}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"scope":"a\u0000"}}"#),
    ] {
        assert_eq!(with_payload(&p), Err(Reason::BadClaim), "{p}");
    }
    // The largest exp that fits in i64 microseconds is fine.
    let max = i64::MAX / 1_000_000;
    assert_eq!(
        with_payload(&format!(r#"{{"tid":"{TID}","exp":{max}}}"#)).map(|c| c.exp),
        Ok(max)
    );
    // A negative exp is simply in the past.
    assert_eq!(
        with_payload(&format!(r#"{{"tid":"{TID}","exp":-1}}"#)),
        Err(Reason::Expired)
    );
    for p in [
        "[]",
        "null",
        "1",
        "\"x\"",
        "{",
        "{}}",
        "{\"tid\":\"\u{0}\"",
        "{\"tid\":\"\\ud800\",\"exp\":1}",
    ] {
        assert_eq!(with_payload(p), Err(Reason::Malformed), "{p:?}");
    }
}

#[test]
fn expiry_boundaries() {
    let exp = NOW_S + 100;
    let t = sign(&json!({"tid": TID, "exp": exp}), "kid-1", KEY);
    let exp_us = exp * 1_000_000;
    assert_eq!(
        v_at(&t, exp_us + 1_000_000),
        Err(Reason::Expired),
        "one second past"
    );
    assert_eq!(
        v_at(&t, exp_us + 1),
        Err(Reason::Expired),
        "one microsecond past"
    );
    assert_eq!(v_at(&t, exp_us), Err(Reason::Expired), "at the boundary");
    assert!(v_at(&t, exp_us - 1).is_ok(), "one microsecond before");
    assert!(v_at(&t, exp_us - 1_000_000).is_ok(), "one second before");
    assert_eq!(v_at(&t, i64::MAX), Err(Reason::Expired));
    assert!(v_at(&t, i64::MIN).is_ok());
}

#[test]
fn not_before_and_issued_at() {
    let exp = NOW_S + 3600;
    let nbf = NOW_S + 10;
    let t = sign(&json!({"tid": TID, "exp": exp, "nbf": nbf}), "kid-1", KEY);
    assert_eq!(v_at(&t, nbf * 1_000_000 - 1), Err(Reason::NotYetValid));
    assert_eq!(v(&t), Err(Reason::NotYetValid));
    assert!(v_at(&t, nbf * 1_000_000).is_ok());
    // iat: up to 60 seconds in the future is clock skew; more is refused.
    for (iat, ok) in [
        (NOW_S - 3600, true),
        (NOW_S, true),
        (NOW_S + 60, true),
        (NOW_S + 61, false),
        (NOW_S + 3000, false),
    ] {
        let t = sign(&json!({"tid": TID, "exp": exp, "iat": iat}), "kid-1", KEY);
        let r = v(&t);
        if ok {
            assert!(r.is_ok(), "iat {iat}");
        } else {
            assert_eq!(r, Err(Reason::IssuedInFuture), "iat {iat}");
        }
    }
    // A now near i64::MAX does not overflow the leeway.
    let max = i64::MAX / 1_000_000;
    let t = sign(&json!({"tid": TID, "exp": max, "iat": max}), "kid-1", KEY);
    assert!(v_at(&t, i64::MAX - 50_000_000).is_ok());
    // Expiry is checked first.
    let t = sign(
        &json!({"tid": TID, "exp": NOW_S - 1, "nbf": NOW_S + 10, "iat": NOW_S + 1000}),
        "kid-1",
        KEY,
    );
    assert_eq!(v(&t), Err(Reason::Expired));
}

#[test]
fn duplicate_keys_are_refused() {
    let exp = NOW_S + 60;
    for p in [
        format!(r#"{{"tid":"{TID}","exp":{exp},"exp":{}}}"#, exp + 1_000_000),
        format!(r#"{{"tid":"{TID}","tid":"{SUB}","exp":{exp}}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"sub":"{SUB}","sub":"{TID}"}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"scope":"a","scope":"a b"}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"ex\u0070":{exp}}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"iss":"a","iss":"a"}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"x":{{"a":1,"a":2}}}}"#),
        format!(r#"{{"tid":"{TID}","exp":{exp},"x":[{{"a":1,"a":1}}]}}"#),
    ] {
        assert_eq!(with_payload(&p), Err(Reason::Malformed), "{p}");
    }
    for h in [
        r#"{"alg":"HS256","alg":"HS256","kid":"kid-1"}"#,
        r#"{"alg":"none","alg":"HS256","kid":"kid-1"}"#,
        r#"{"alg":"HS256","kid":"kid-2","kid":"kid-1"}"#,
        r#"{"alg":"HS256","kid":"kid-1","typ":"JWT","typ":"JWT"}"#,
    ] {
        assert_eq!(with_header(h), Err(Reason::Malformed), "{h}");
    }
}

#[test]
fn signatures() {
    let t = basic();
    assert!(v(&t).is_ok());
    let (input, sig) = t.rsplit_once('.').unwrap();
    let sig_bytes = b64url_decode_strict(sig).unwrap();
    // Wrong signature: every bit flipped in turn.
    for i in 0..32 {
        for bit in 0..8 {
            let mut s = sig_bytes.clone();
            s[i] ^= 1 << bit;
            assert_eq!(
                v(&format!("{input}.{}", b64url_encode(&s))),
                Err(Reason::BadSignature)
            );
        }
    }
    // Signed with another key.
    assert_eq!(
        v(&sign(
            &json!({"tid": TID, "sub": SUB, "exp": NOW_S + 3600}),
            "kid-1",
            OTHER_KEY
        )),
        Err(Reason::BadSignature)
    );
    // Truncated to 1, 16, 31 bytes, and 33 and 64 bytes; 0 bytes is an empty segment.
    for n in [1usize, 16, 31] {
        assert_eq!(
            v(&format!("{input}.{}", b64url_encode(&sig_bytes[..n]))),
            Err(Reason::BadSignature),
            "{n}"
        );
    }
    let mut long = sig_bytes.clone();
    long.push(0);
    assert_eq!(
        v(&format!("{input}.{}", b64url_encode(&long))),
        Err(Reason::BadSignature)
    );
    assert_eq!(
        v(&format!(
            "{input}.{}",
            b64url_encode(&[sig_bytes.clone(), sig_bytes.clone()].concat())
        )),
        Err(Reason::BadSignature)
    );
    assert_eq!(v(&format!("{input}.")), Err(Reason::Malformed));
    // Signatures swapped between two tokens.
    let other = sign(
        &json!({"tid": TID, "sub": SUB, "exp": NOW_S + 3601}),
        "kid-1",
        KEY,
    );
    let (_, other_sig) = other.rsplit_once('.').unwrap();
    assert_eq!(
        v(&format!("{input}.{other_sig}")),
        Err(Reason::BadSignature)
    );
    // An HS512 tag truncated to 32 bytes or a tag over something else.
    assert_eq!(
        v(&format!(
            "{input}.{}",
            b64url_encode(&common::hmac(KEY, b"other"))
        )),
        Err(Reason::BadSignature)
    );
    // A bad signature is refused before the key lookup when it cannot be one.
    let called = Cell::new(false);
    let r = verify(&format!("{input}.AAAA"), NOW, |_| {
        called.set(true);
        Some(KEY.to_vec())
    });
    assert_eq!(r, Err(Reason::BadSignature));
    assert!(!called.get());
}

#[test]
fn segments() {
    let t = basic();
    let mut parts = t.split('.');
    let (h, p, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    for bad in [
        format!("{t}.{s}"),
        format!("{t}."),
        format!(".{t}"),
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.{s}.{s}"),
        format!("{h}..{s}"),
        format!("{h}.{p}..{s}"),
        p.to_string(),
        "..".to_owned(),
        ".".to_owned(),
    ] {
        assert_eq!(v(&bad), Err(Reason::Malformed), "{bad}");
    }
}

#[test]
fn every_character_substituted_is_refused() {
    let t = basic();
    let mut refused = 0;
    for s in substitutions(&t) {
        assert!(v(&s).is_err(), "{s}");
        refused += 1;
    }
    assert!(refused > t.len() * 63);
}

#[test]
fn other_spellings_are_refused() {
    let mut rng = XorShift::new(5);
    let mut tails = 0;
    for i in 0..200 {
        let scope: String = (0..rng.below(5) + 1)
            .map(|j| format!("s{j}:{}", rng.next_u64()))
            .collect::<Vec<_>>()
            .join(" ");
        let t = sign(
            &json!({"tid": TID, "exp": NOW_S + 60 + i, "scope": scope}),
            "kid-1",
            KEY,
        );
        assert!(v(&t).is_ok());
        for s in respellings(&t) {
            assert!(v(&s).is_err(), "{s:?}");
        }
        // '=' padding on each segment.
        let segs: Vec<&str> = t.split('.').collect();
        for k in 0..3 {
            let mut padded: Vec<String> = segs.iter().map(|s| s.to_string()).collect();
            padded[k].push('=');
            assert!(v(&padded.join(".")).is_err());
        }
        // Non-canonical trailing bits on each segment: refused (the signature segment is 43
        // characters, 2 unused bits).
        for k in 0..3 {
            for tail in noncanonical_tails(segs[k]) {
                let mut parts: Vec<String> = segs.iter().map(|s| s.to_string()).collect();
                parts[k] = tail;
                assert!(v(&parts.join(".")).is_err());
                tails += 1;
            }
        }
    }
    assert!(tails >= 200 * 3);
}

#[test]
fn payload_encoding_is_strict_even_under_a_valid_signature() {
    // The signature is over the text as received, so a non-canonical payload spelling with a
    // valid signature over it must still be refused when decoded.
    let p = format!(r#"{{"tid":"{TID}","exp":{}}}"#, NOW_S + 60);
    let p64 = b64url_encode(p.as_bytes());
    let h64 = b64url_encode(HDR.as_bytes());
    for bad_p64 in noncanonical_tails(&p64)
        .into_iter()
        .chain([format!("{p64}="), p64.replace('-', "+")])
    {
        if bad_p64 == p64 {
            continue;
        }
        let input = format!("{h64}.{bad_p64}");
        let t = format!(
            "{input}.{}",
            b64url_encode(&common::hmac(KEY, input.as_bytes()))
        );
        assert_eq!(v(&t), Err(Reason::BadEncoding), "{bad_p64}");
    }
}
