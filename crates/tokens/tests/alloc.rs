//! Memory: oversized input allocates nothing, and the worst input under the cap allocates a
//! bounded amount. One test in this binary, so that no other thread allocates meanwhile.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{raw_jwt, KEY};
use tenancy_tokens::{api_token, b64url_encode, invite, jwt, MAX_TOKEN_LEN};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak bytes allocated above the current level while `f` runs.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst) - base
}

fn every_parser(s: &str) {
    let _ = api_token::parse(s);
    let _ = invite::parse(s);
    let _ = invite::verify(s, |_| Some(KEY.to_vec()));
    let _ = jwt::verify(s, 0, |_| Some(KEY.to_vec()));
}

#[test]
fn allocation_is_bounded() {
    // Oversized: nothing at all.
    for s in [
        "A".repeat(1 << 20),
        format!("tnc_{}", "A".repeat(1 << 20)),
        "a.b.c".repeat(1 << 18),
    ] {
        assert_eq!(peak_during(|| every_parser(&s)), 0);
    }

    // Worst cases under the cap: JSON built to allocate (many keys, deep nesting, many scopes,
    // long strings), each correctly signed so that the payload is parsed too.
    let many_keys: String = {
        let mut p = String::from(r#"{"tid":"t","exp":1"#);
        let mut i = 0;
        while p.len() < 2900 {
            p.push_str(&format!(",\"{i}\":0"));
            i += 1;
        }
        p + "}"
    };
    let deep = format!(
        r#"{{"tid":"t","exp":1,"x":{}{}}}"#,
        "[".repeat(120),
        "]".repeat(120)
    );
    let scopes = format!(
        r#"{{"tid":"t","exp":4000000000,"scope":"{}a"}}"#,
        "a ".repeat(1400)
    );
    let long_str = format!(r#"{{"tid":"{}","exp":4000000000}}"#, "t".repeat(2900));
    let nested_objects = format!(
        r#"{{"tid":"t","exp":1,"x":{}{}}}"#,
        r#"{"a":"#.repeat(100),
        "}".repeat(100)
    );
    let header = r#"{"alg":"HS256","kid":"kid-1"}"#;
    let mut worst = 0;
    for p in [&many_keys, &deep, &scopes, &long_str, &nested_objects] {
        let t = raw_jwt(header, p, KEY);
        assert!(t.len() <= MAX_TOKEN_LEN, "{}", t.len());
        let peak = peak_during(|| every_parser(&t));
        println!("payload of {} bytes: peak {peak} bytes", p.len());
        worst = worst.max(peak);
        // The same JSON in the header.
        let t = raw_jwt(p, "{}", KEY);
        if t.len() <= MAX_TOKEN_LEN {
            worst = worst.max(peak_during(|| every_parser(&t)));
        }
    }
    let at_cap = b64url_encode(&[0u8; 3072]);
    worst = worst.max(peak_during(|| every_parser(&at_cap)));
    println!("worst peak under the cap: {worst} bytes");
    assert!(worst <= 32 * MAX_TOKEN_LEN, "{worst}");
}
