//! Helpers shared by the integration tests.
#![allow(dead_code)]

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tenancy_tokens::b64url_encode;

/// The base64url alphabet.
pub const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Fixed test keys.
pub const KEY: &[u8] = b"pg_tenancy test key 0123456789ab";
pub const OTHER_KEY: &[u8] = b"pg_tenancy other key 0123456789a";

/// A deterministic xorshift64* generator (no dependency, same sequence everywhere).
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in out.iter_mut() {
            *b = self.next_u64() as u8;
        }
        out
    }

    pub fn vec(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// HMAC-SHA256, computed here independently of the crate's private helper.
pub fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// A JWT from raw header and payload text, signed with `key` (for hostile headers and claims).
pub fn raw_jwt(header: &str, payload: &str, key: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64url_encode(header.as_bytes()),
        b64url_encode(payload.as_bytes())
    );
    let sig = hmac(key, input.as_bytes());
    format!("{input}.{}", b64url_encode(&sig))
}

/// Every single-character substitution of `token`, by position, with every alphabet character
/// and a few others.
pub fn substitutions(token: &str) -> Vec<String> {
    let extra: &[u8] = b"=+/ .\0\n~";
    let mut out = Vec::new();
    for i in 0..token.len() {
        let orig = token.as_bytes()[i];
        for &c in ALPHABET.iter().chain(extra) {
            if c != orig {
                let mut b = token.as_bytes().to_vec();
                b[i] = c;
                out.push(String::from_utf8(b).unwrap());
            }
        }
    }
    out
}

/// The same bytes spelled differently: the spellings a strict decoder must refuse.
pub fn respellings(token: &str) -> Vec<String> {
    let mut out = vec![
        format!("{token}="),
        format!("{token}=="),
        format!("{token}==="),
        format!(" {token}"),
        format!("{token} "),
        format!("\t{token}"),
        format!("{token}\n"),
        format!("{token}\r\n"),
        format!("\n{token}"),
        format!("{token}\0"),
        format!("\0{token}"),
    ];
    let mid = token.len() / 2;
    out.push(format!("{} {}", &token[..mid], &token[mid..]));
    out.push(format!("{}\n{}", &token[..mid], &token[mid..]));
    out.push(token.replace('-', "+").replace('_', "/"));
    out.push(token.to_owned() + "A");
    out.retain(|s| s != token);
    out
}

/// The other spellings of the same bytes that set the unused trailing bits of the last
/// character (a lenient decoder accepts them), when the encoded length leaves some
/// (len % 4 == 2: 4 bits, len % 4 == 3: 2 bits). Empty otherwise.
pub fn noncanonical_tails(encoded: &str) -> Vec<String> {
    let unused_bits = match encoded.len() % 4 {
        2 => 4,
        3 => 2,
        _ => return Vec::new(),
    };
    let last = *encoded.as_bytes().last().unwrap();
    let value = ALPHABET.iter().position(|&c| c == last).unwrap();
    assert_eq!(
        value & ((1 << unused_bits) - 1),
        0,
        "the input is canonical"
    );
    (1..(1usize << unused_bits))
        .map(|low| {
            let mut s = encoded[..encoded.len() - 1].to_owned();
            s.push(ALPHABET[value | low] as char);
            s
        })
        .collect()
}

/// Hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
