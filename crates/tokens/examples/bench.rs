//! Verification speed, single thread: `cargo run --release -p tenancy_tokens --example bench [N]`.
//!
//! Numbers for the closing note and the benchmark issue; nothing here is asserted.

use std::hint::black_box;
use std::time::Instant;

use serde_json::json;
use tenancy_tokens::{api_token, invite, jwt};

const KEY: &[u8] = b"pg_tenancy bench key 0123456789ab";
const NOW: i64 = 1_700_000_000_000_000;

fn rate(name: &str, n: usize, mut f: impl FnMut(usize) -> bool) {
    // Warm up, then time.
    for i in 0..n / 10 {
        assert!(f(i));
    }
    let start = Instant::now();
    for i in 0..n {
        assert!(black_box(f(i)));
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<32} {:>12.0} /s   ({:.2} µs each, {n} runs)",
        n as f64 / secs,
        secs * 1e6 / n as f64
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300_000);

    let api: Vec<String> = (0..256u32)
        .map(|i| {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_be_bytes());
            api_token::format(&id, &[i as u8; 32])
        })
        .collect();
    rate("api_token parse + hash", n, |i| {
        let t = black_box(&api[i % api.len()]);
        let id = api_token::parse(t);
        let h = api_token::hash(t);
        id.is_ok() && black_box(h).len() == 32
    });

    let invites: Vec<String> = (0..=255u8)
        .map(|i| {
            let inv = invite::Invitation {
                id: [i; 16],
                issued_at_us: NOW,
                kid: "AbCdEfGhIjKl".into(),
            };
            invite::sign(&inv, KEY)
        })
        .collect();
    rate("invite verify", n, |i| {
        invite::verify(black_box(&invites[i % invites.len()]), |_| {
            Some(KEY.to_vec())
        })
        .is_ok()
    });

    let jwts: Vec<String> = (0..256i64)
        .map(|i| {
            jwt::sign(
                &json!({"tid": "2f1e0d3c-5b4a-4978-8e6f-0a1b2c3d4e5f", "sub": "8d3c1a52-4b7e-4f0a-9c2d-5e6f7a8b9c0d",
                        "exp": 2_000_000_000 + i, "iat": 1_700_000_000, "scope": "orders:read inventory:write"}),
                "AbCdEfGhIjKl",
                KEY,
            )
        })
        .collect();
    rate("jwt verify (tid, sub, exp, iat, scope)", n, |i| {
        jwt::verify(black_box(&jwts[i % jwts.len()]), NOW, |_| {
            Some(KEY.to_vec())
        })
        .is_ok()
    });

    let garbage = "A".repeat(5000);
    rate("refusal of 5000-byte input (jwt)", n, |_| {
        jwt::verify(black_box(&garbage), NOW, |_| None).is_err()
    });
}
