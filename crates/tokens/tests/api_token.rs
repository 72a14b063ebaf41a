//! API tokens: `tnc_` + base64url(id ‖ secret).

mod common;

use common::{respellings, substitutions, XorShift};
use tenancy_tokens::api_token::{format, hash, parse, PREFIX};
use tenancy_tokens::{b64url_encode, sha256, Reason, MAX_TOKEN_LEN};

fn sample(seed: u64) -> ([u8; 16], [u8; 32], String) {
    let mut rng = XorShift::new(seed);
    let id = rng.bytes::<16>();
    let secret = rng.bytes::<32>();
    let token = format(&id, &secret);
    (id, secret, token)
}

/// What the database does: look up by id, then compare the stored hash in constant time.
fn accepted(stored_id: &[u8; 16], stored_hash: &[u8; 32], presented: &str) -> bool {
    match parse(presented) {
        Ok(id) => id == *stored_id && tenancy_tokens::ct_eq(&hash(presented), stored_hash),
        Err(_) => false,
    }
}

#[test]
fn round_trip() {
    for seed in 1..200 {
        let (id, secret, token) = sample(seed);
        assert_eq!(token.len(), 68);
        assert!(token.starts_with(PREFIX));
        let mut raw = id.to_vec();
        raw.extend_from_slice(&secret);
        assert_eq!(token, format!("tnc_{}", b64url_encode(&raw)));
        assert_eq!(parse(&token), Ok(id));
        assert_eq!(hash(&token), sha256(token.as_bytes()));
        assert!(accepted(&id, &hash(&token), &token));
    }
}

#[test]
fn every_character_substituted_is_refused() {
    let (id, _, token) = sample(7);
    let stored = hash(&token);
    let subs = substitutions(&token);
    assert!(subs.len() > 68 * 63);
    for t in subs {
        assert!(!accepted(&id, &stored, &t), "{t:?}");
        // A change in the prefix or outside the alphabet is refused by parse itself.
        if !t.starts_with(PREFIX) || !t[4..].bytes().all(|b| common::ALPHABET.contains(&b)) {
            assert!(parse(&t).is_err(), "{t:?}");
        }
    }
}

#[test]
fn every_bit_of_id_and_secret_flipped_is_refused() {
    let (id, secret, token) = sample(8);
    let stored = hash(&token);
    let mut raw = id.to_vec();
    raw.extend_from_slice(&secret);
    for i in 0..raw.len() {
        for bit in 0..8 {
            let mut r = raw.clone();
            r[i] ^= 1 << bit;
            let t = format!("tnc_{}", b64url_encode(&r));
            assert!(!accepted(&id, &stored, &t), "byte {i} bit {bit}");
            if i < 16 {
                assert_ne!(parse(&t), Ok(id));
            }
        }
    }
}

#[test]
fn secrets_swapped_or_truncated_are_refused() {
    let (id_a, _, token_a) = sample(9);
    let (_, secret_b, _) = sample(10);
    let stored_a = hash(&token_a);
    // A's id with B's secret.
    let swapped = format(&id_a, &secret_b);
    assert_eq!(parse(&swapped), Ok(id_a));
    assert!(!accepted(&id_a, &stored_a, &swapped));
    // Secret truncated to 0, 1, 16, 31 bytes; and one byte too many.
    let (_, secret_a, _) = sample(9);
    for n in [0usize, 1, 16, 31] {
        let mut raw = id_a.to_vec();
        raw.extend_from_slice(&secret_a[..n]);
        let t = format!("tnc_{}", b64url_encode(&raw));
        assert_eq!(parse(&t), Err(Reason::Malformed), "{n}");
    }
    let mut raw = id_a.to_vec();
    raw.extend_from_slice(&secret_a);
    raw.push(0);
    assert_eq!(
        parse(&format!("tnc_{}", b64url_encode(&raw))),
        Err(Reason::Malformed)
    );
    // Characters cut off the end or added.
    for cut in 1..=8 {
        assert!(parse(&token_a[..token_a.len() - cut]).is_err());
    }
}

#[test]
fn other_spellings_are_refused() {
    // A token with both '-' and '_' in it, so that '+' and '/' spellings exist.
    let (id, _, token) = (1..10_000)
        .map(sample)
        .find(|(_, _, t)| t[4..].contains('-') && t[4..].contains('_'))
        .unwrap();
    let stored = hash(&token);
    for t in respellings(&token) {
        assert!(parse(&t).is_err(), "{t:?}");
        assert!(!accepted(&id, &stored, &t));
    }
    for t in [
        token.to_uppercase(),
        token.replacen("tnc_", "TNC_", 1),
        token.replacen("tnc_", "tnc-", 1),
        token.replacen("tnc_", "", 1),
        token.replacen("tnc_", "tnc_tnc_", 1),
        format!("{token}{token}"),
    ] {
        assert!(parse(&t).is_err(), "{t:?}");
    }
}

#[test]
fn reasons() {
    let (_, _, token) = sample(11);
    assert_eq!(parse(""), Err(Reason::Empty));
    assert_eq!(parse("t"), Err(Reason::Malformed));
    assert_eq!(parse("tnc_"), Err(Reason::Malformed));
    assert_eq!(parse(&token[4..]), Err(Reason::Malformed));
    assert_eq!(
        parse(&format!("tnc_{}", "=".repeat(64))),
        Err(Reason::BadEncoding)
    );
    assert_eq!(
        parse(&format!("tnc_{}", "A".repeat(63))),
        Err(Reason::Malformed)
    );
    assert_eq!(
        parse(&format!("tnc_{}", "A".repeat(65))),
        Err(Reason::Malformed)
    );
    assert_eq!(parse(&"tnc_".repeat(1024)), Err(Reason::Malformed));
    assert_eq!(
        parse(&format!("tnc_{}", "A".repeat(MAX_TOKEN_LEN - 3))),
        Err(Reason::TooLong)
    );
    assert_eq!(
        parse(&format!("tnc_{}", "A".repeat(1 << 20))),
        Err(Reason::TooLong)
    );
}
