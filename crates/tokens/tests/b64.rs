//! Strict base64url, SHA-256 and constant-time equality.

mod common;

use base64::Engine as _;
use common::{noncanonical_tails, XorShift};
use tenancy_tokens::{b64url_decode_strict, b64url_encode, ct_eq, sha256, MAX_TOKEN_LEN};

#[test]
fn rfc4648_vectors() {
    // RFC 4648 §10, without padding.
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(b64url_encode(plain.as_bytes()), encoded);
        assert_eq!(
            b64url_decode_strict(encoded).as_deref(),
            Some(plain.as_bytes())
        );
    }
    // The URL-safe characters.
    assert_eq!(b64url_encode(&[0xfb, 0xff, 0xbf]), "-_-_");
    assert_eq!(b64url_decode_strict("-_-_"), Some(vec![0xfb, 0xff, 0xbf]));
}

#[test]
fn round_trip_every_length() {
    let mut rng = XorShift::new(1);
    for len in 0..=200 {
        for _ in 0..5 {
            let bytes = rng.vec(len);
            let s = b64url_encode(&bytes);
            assert!(!s.contains(['=', '+', '/']));
            assert_eq!(b64url_decode_strict(&s), Some(bytes.clone()), "len {len}");
        }
    }
}

#[test]
fn agrees_with_a_lenient_decoder_on_what_it_accepts() {
    // Whatever the strict decoder accepts, a lenient one decodes to the same bytes, and the
    // strict decoder's output re-encodes to the input (one spelling).
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let mut rng = XorShift::new(2);
    let chars = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ ";
    for _ in 0..20_000 {
        let len = rng.below(12);
        let s: String = (0..len)
            .map(|_| chars[rng.below(chars.len())] as char)
            .collect();
        if let Some(bytes) = b64url_decode_strict(&s) {
            assert_eq!(lenient.decode(&s).ok(), Some(bytes.clone()), "{s:?}");
            assert_eq!(b64url_encode(&bytes), s);
        }
    }
}

#[test]
fn refuses_other_spellings() {
    for s in [
        "Zg==", "Zg=", "Zm8=", "Zm9v=", "=", "====", // padding
        "Zh", "Zm9", "Zi", "Zm-", // non-canonical trailing bits
        "+_8", "-/8", "+/+/", // standard alphabet
        " Zm9v", "Zm9v ", "Zm9v\n", "Zm9v\r\n", "Zm 9v", "\tZm9v",
        "Zm9v\0", // whitespace, NUL
        "Z", "Zm9vY", "AAAAA", // len % 4 == 1
        "Zm9v.", "Zm9v!", "Zm9vé", "Ｚm9v", // other characters
    ] {
        assert_eq!(b64url_decode_strict(s), None, "{s:?}");
    }
}

#[test]
fn every_noncanonical_tail_refused() {
    let mut rng = XorShift::new(3);
    for len in 1..=64 {
        let s = b64url_encode(&rng.vec(len));
        let tails = noncanonical_tails(&s);
        assert_eq!(tails.is_empty(), len % 3 == 0);
        for t in tails {
            assert_eq!(b64url_decode_strict(&t), None, "{t}");
        }
    }
}

#[test]
fn refuses_longer_than_the_cap() {
    let at_cap = "A".repeat(MAX_TOKEN_LEN);
    assert_eq!(b64url_decode_strict(&at_cap).map(|v| v.len()), Some(3072));
    assert_eq!(b64url_decode_strict(&"A".repeat(MAX_TOKEN_LEN + 4)), None);
}

#[test]
fn sha256_known_answers() {
    assert_eq!(
        common::hex(&sha256(b"")),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        common::hex(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn ct_eq_semantics() {
    assert!(ct_eq(b"", b""));
    assert!(ct_eq(b"abc", b"abc"));
    assert!(!ct_eq(b"abc", b"abd"));
    assert!(!ct_eq(b"abc", b"ab"));
    assert!(!ct_eq(b"", b"a"));
    let a = [7u8; 32];
    for i in 0..32 {
        let mut b = a;
        b[i] ^= 1;
        assert!(!ct_eq(&a, &b));
        assert!(!ct_eq(&a, &a[..i]));
    }
}
