//! `api_token::parse` and `hash`, and strict base64url, on arbitrary input: no panic, oversized
//! input refused first, and whatever is accepted has exactly one spelling.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenancy_tokens::{api_token, b64url_decode_strict, b64url_encode, Reason, MAX_TOKEN_LEN};

fn check(s: &str) {
    let parsed = api_token::parse(s);
    let _ = api_token::hash(s);
    if s.len() > MAX_TOKEN_LEN {
        assert_eq!(parsed, Err(Reason::TooLong));
    }
    if let Ok(id) = parsed {
        // Accepted: `tnc_` + the one spelling of (id ‖ secret).
        let body = s
            .strip_prefix(api_token::PREFIX)
            .expect("accepted tokens have the prefix");
        let raw = b64url_decode_strict(body).expect("accepted tokens decode");
        let secret: [u8; 32] = raw
            .get(16..)
            .and_then(|r| r.try_into().ok())
            .expect("48 bytes");
        assert_eq!(api_token::format(&id, &secret), s);
    }
    // Strict base64url: what decodes re-encodes to the same text.
    if let Some(bytes) = b64url_decode_strict(s) {
        assert!(s.len() <= MAX_TOKEN_LEN);
        assert_eq!(b64url_encode(&bytes), s);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        check(s);
    }
    check(&String::from_utf8_lossy(data));
    // Also as the body of a token, so that the fuzzer need not find the prefix.
    let mut prefixed = String::from(api_token::PREFIX);
    prefixed.push_str(&String::from_utf8_lossy(data));
    check(&prefixed);

    // Round trip of a token made from the input, and a one-character change of it.
    if let Some((id, rest)) = data.split_first_chunk::<16>() {
        if let Some((secret, rest)) = rest.split_first_chunk::<32>() {
            let token = api_token::format(id, secret);
            assert_eq!(token.len(), 68);
            assert_eq!(api_token::parse(&token), Ok(*id));
            if let Some((&pos, rest)) = rest.split_first() {
                let replacement = rest.first().copied().unwrap_or(b'A');
                let mut bytes = token.clone().into_bytes();
                let i = usize::from(pos) % bytes.len();
                bytes[i] = replacement;
                let mutated = String::from_utf8_lossy(&bytes);
                if mutated != token {
                    // Either refused, or another well-formed token: then its hash differs.
                    if api_token::parse(&mutated).is_ok() {
                        assert_ne!(api_token::hash(&mutated), api_token::hash(&token));
                    }
                }
            }
        }
    }
});
