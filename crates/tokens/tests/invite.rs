//! Invitation tokens: HMAC-SHA256 over (version, id, issued_at, kid).

mod common;

use std::cell::Cell;

use common::{hmac, noncanonical_tails, respellings, substitutions, XorShift, KEY, OTHER_KEY};
use tenancy_tokens::invite::{parse, sign, verify, Invitation};
use tenancy_tokens::{b64url_decode_strict, b64url_encode, Reason};

const DOMAIN: &[u8] = b"pg_tenancy invitation v1\0";

fn inv(seed: u64, kid: &str) -> Invitation {
    let mut rng = XorShift::new(seed);
    Invitation {
        id: rng.bytes::<16>(),
        issued_at_us: rng.next_u64() as i64 >> 8,
        kid: kid.to_owned(),
    }
}

fn key(kid: &str) -> Option<Vec<u8>> {
    (kid == "kid-1" || kid == "kid-2").then(|| KEY.to_vec())
}

fn v(token: &str) -> Result<Invitation, Reason> {
    verify(token, key)
}

/// The payload as the SPEC describes it, built here independently.
fn payload(version: u8, id: &[u8; 16], issued_at_us: i64, kid: &[u8], kid_len: u8) -> Vec<u8> {
    let mut p = vec![version];
    p.extend_from_slice(id);
    p.extend_from_slice(&issued_at_us.to_be_bytes());
    p.push(kid_len);
    p.extend_from_slice(kid);
    p
}

/// A token with a valid tag over an arbitrary payload.
fn signed(payload: &[u8], key: &[u8]) -> String {
    let mut data = DOMAIN.to_vec();
    data.extend_from_slice(payload);
    let mut raw = payload.to_vec();
    raw.extend_from_slice(&hmac(key, &data));
    b64url_encode(&raw)
}

#[test]
fn round_trip() {
    for (seed, kid) in [
        (1, "kid-1"),
        (2, "k"),
        (3, "A"),
        (4, "abcdefghijkl"),
        (5, &"z".repeat(64)[..]),
    ] {
        for issued_at_us in [0, 1, -1, i64::MIN, i64::MAX, 1_700_000_000_000_000] {
            let i = Invitation {
                issued_at_us,
                ..inv(seed, kid)
            };
            let t = sign(&i, KEY);
            assert_eq!(parse(&t), Ok(i.clone()));
            assert_eq!(
                verify(&t, |k| (k == kid).then(|| KEY.to_vec())),
                Ok(i.clone())
            );
            assert_eq!(
                t,
                signed(
                    &payload(1, &i.id, i.issued_at_us, kid.as_bytes(), kid.len() as u8),
                    KEY
                )
            );
        }
    }
}

#[test]
fn key_lookup_gets_the_kid_and_unknown_keys_are_refused() {
    let i = inv(1, "kid-1");
    let t = sign(&i, KEY);
    let asked = Cell::new(None::<String>);
    assert!(verify(&t, |k| {
        asked.set(Some(k.to_owned()));
        Some(KEY.to_vec())
    })
    .is_ok());
    assert_eq!(asked.take().as_deref(), Some("kid-1"));
    assert_eq!(verify(&t, |_| None), Err(Reason::UnknownKey));
    assert_eq!(verify(&t, |_| Some(Vec::new())), Err(Reason::UnknownKey));
    // A token signed with the empty key verifies with nothing.
    assert_eq!(
        verify(&sign(&i, b""), |_| Some(Vec::new())),
        Err(Reason::UnknownKey)
    );
    // A retired key: the lookup answers None.
    assert_eq!(
        verify(&sign(&inv(1, "old"), KEY), key),
        Err(Reason::UnknownKey)
    );
}

#[test]
fn every_character_substituted_is_refused() {
    let t = sign(&inv(7, "kid-1"), KEY);
    let subs = substitutions(&t);
    assert!(subs.len() > t.len() * 63);
    for s in subs {
        assert!(v(&s).is_err(), "{s:?}");
    }
}

#[test]
fn every_bit_flipped_is_refused() {
    let i = inv(8, "kid-1");
    let raw = b64url_decode_strict(&sign(&i, KEY)).unwrap();
    for byte in 0..raw.len() {
        for bit in 0..8 {
            let mut r = raw.clone();
            r[byte] ^= 1 << bit;
            let res = v(&b64url_encode(&r));
            assert!(res.is_err(), "byte {byte} bit {bit}");
        }
    }
}

#[test]
fn swapped_truncated_and_foreign_tags_are_refused() {
    let a = sign(&inv(9, "kid-1"), KEY);
    let b = sign(&inv(10, "kid-1"), KEY);
    let (ra, rb) = (
        b64url_decode_strict(&a).unwrap(),
        b64url_decode_strict(&b).unwrap(),
    );
    let (pa, ta) = ra.split_at(ra.len() - 32);
    let (_, tb) = rb.split_at(rb.len() - 32);
    // Tags swapped.
    let mut swapped = pa.to_vec();
    swapped.extend_from_slice(tb);
    assert_eq!(v(&b64url_encode(&swapped)), Err(Reason::BadSignature));
    // Truncated tags.
    for n in [0usize, 1, 16, 31] {
        let mut t = pa.to_vec();
        t.extend_from_slice(&ta[..n]);
        assert_eq!(v(&b64url_encode(&t)), Err(Reason::Malformed), "{n}");
    }
    // One byte too many.
    let mut long = ra.clone();
    long.push(0);
    assert_eq!(v(&b64url_encode(&long)), Err(Reason::Malformed));
    // A tag made with another key, and with another key plus no domain separation.
    assert_eq!(
        v(&sign(&inv(9, "kid-1"), OTHER_KEY)),
        Err(Reason::BadSignature)
    );
    let mut no_domain = pa.to_vec();
    no_domain.extend_from_slice(&hmac(KEY, pa));
    assert_eq!(v(&b64url_encode(&no_domain)), Err(Reason::BadSignature));
    // The same invitation under another kid of the same key: a different token, both valid;
    // but the kid cannot be swapped under a tag.
    let other_kid = sign(&inv(9, "kid-2"), KEY);
    assert_ne!(other_kid, a);
    assert!(v(&other_kid).is_ok());
    let ro = b64url_decode_strict(&other_kid).unwrap();
    let mut kid_swapped = ro[..ro.len() - 32].to_vec();
    kid_swapped.extend_from_slice(ta);
    assert_eq!(v(&b64url_encode(&kid_swapped)), Err(Reason::BadSignature));
}

#[test]
fn other_spellings_are_refused() {
    // Find invitations whose tokens contain '-' and '_' and end in a character with unused bits.
    let mut tested_tails = 0;
    let mut tested_alphabet = 0;
    for seed in 1..500 {
        // 26 + 6 + 32 = 64 bytes: 86 characters, the last with 4 unused bits.
        let t = sign(&inv(seed, "kid-1x"), KEY);
        assert_eq!(t.len() % 4, 2);
        let v = |s: &str| verify(s, |_| Some(KEY.to_vec()));
        assert!(v(&t).is_ok());
        for s in respellings(&t) {
            assert!(v(&s).is_err(), "{s:?}");
            assert!(parse(&s).is_err(), "{s:?}");
        }
        for s in noncanonical_tails(&t) {
            assert_eq!(v(&s), Err(Reason::BadEncoding), "{s}");
            tested_tails += 1;
        }
        if t.contains('-') && t.contains('_') {
            tested_alphabet += 1;
        }
    }
    assert!(tested_tails >= 15 * 499);
    assert!(tested_alphabet > 0);
}

#[test]
fn structure_is_exact() {
    let i = inv(11, "kid-1");
    let good = payload(1, &i.id, i.issued_at_us, b"kid-1", 5);
    assert!(v(&signed(&good, KEY)).is_ok());
    // Correctly signed, but wrong structure: refused before the key is even looked up.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (payload(0, &i.id, i.issued_at_us, b"kid-1", 5), "version 0"),
        (payload(2, &i.id, i.issued_at_us, b"kid-1", 5), "version 2"),
        (payload(1, &i.id, i.issued_at_us, b"", 0), "kid_len 0"),
        (
            payload(1, &i.id, i.issued_at_us, b"kid-1", 4),
            "kid_len short",
        ),
        (
            payload(1, &i.id, i.issued_at_us, b"kid-1", 6),
            "kid_len long",
        ),
        (
            payload(1, &i.id, i.issued_at_us, b"kid-1", 255),
            "kid_len 255",
        ),
        (
            payload(1, &i.id, i.issued_at_us, &[b'k'; 65], 65),
            "kid 65 bytes",
        ),
        (
            payload(1, &i.id, i.issued_at_us, b"kid.1", 5),
            "kid with a dot",
        ),
        (
            payload(1, &i.id, i.issued_at_us, b"kid 1", 5),
            "kid with a space",
        ),
        (
            payload(1, &i.id, i.issued_at_us, b"kid\x001", 5),
            "kid with NUL",
        ),
        (
            payload(1, &i.id, i.issued_at_us, "kíd".as_bytes(), 4),
            "kid not ASCII",
        ),
        (
            payload(1, &i.id, i.issued_at_us, b"\xff\xfe", 2),
            "kid not UTF-8",
        ),
        (
            [payload(1, &i.id, i.issued_at_us, b"kid-1", 5), vec![0]].concat(),
            "trailing byte",
        ),
        (vec![1], "version only"),
        (Vec::new(), "nothing"),
    ];
    for (p, what) in cases {
        let t = signed(&p, KEY);
        let called = Cell::new(false);
        let res = verify(&t, |_| {
            called.set(true);
            Some(KEY.to_vec())
        });
        assert_eq!(res, Err(Reason::Malformed), "{what}");
        assert!(!called.get(), "{what}: key looked up");
    }
}

#[test]
fn reasons() {
    assert_eq!(v(""), Err(Reason::Empty));
    assert_eq!(v("A"), Err(Reason::BadEncoding));
    assert_eq!(v("AA"), Err(Reason::Malformed));
    assert_eq!(v(&"A".repeat(163)), Err(Reason::Malformed));
    assert_eq!(v(&"A".repeat(164)), Err(Reason::Malformed));
    assert_eq!(v(&"A".repeat(4097)), Err(Reason::TooLong));
    assert_eq!(v("tnc_AAAA"), Err(Reason::Malformed));
    assert_eq!(v("tnc.AAAA"), Err(Reason::BadEncoding));
    assert_eq!(v("eyJhbGciOiJIUzI1NiJ9.e30.AAAA"), Err(Reason::BadEncoding));
    for r in [
        Reason::TooLong,
        Reason::BadSignature,
        Reason::IssuedInFuture,
    ] {
        assert!(r
            .as_str()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_'));
        assert_eq!(r.to_string(), r.as_str());
    }
}
