//! Known-answer vectors, frozen. They were computed once, independently of this crate, with
//! Python's standard library (`hmac`, `hashlib`, `base64`, `json.dumps(sort_keys=True,
//! separators=(',', ':'))`); see `crates/tokens/VECTORS.md`. A change of any format fails here.

mod common;

use common::hex;
use serde_json::json;
use tenancy_tokens::{api_token, invite, jwt, Reason};

/// The key of every vector: the 32 ASCII bytes `pg_tenancy test key 0123456789ab`.
const KEY: &[u8] = b"pg_tenancy test key 0123456789ab";

const API_TOKEN: &str = "tnc_AAECAwQFBgcICQoLDA0ODyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4_";
const API_TOKEN_SHA256: &str = "980795a20b396f9da51801ef8059bac9945fa85fcc535cc3fc6d8905fb8274cf";

const INVITATION: &str =
    "AQABAgMEBQYHCAkKCwwNDg8ABgokGB5AAAlrMS0yMDI0X2EI6N8nMJ8Lk3VSJcNvFuJG5YwD1ylYrBdksWiYbc86MA";

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImtpZC0xIn0.\
eyJleHAiOjIwMDAwMDAwMDAsImlhdCI6MTcwMDAwMDAwMCwibmJmIjoxNzAwMDAwMDAwLCJzY29wZSI6Im9yZGVyczpyZWFkIGludmVudG9yeTp3cml0ZSIsInN1YiI6IjhkM2MxYTUyLTRiN2UtNGYwYS05YzJkLTVlNmY3YThiOWMwZCIsInRpZCI6IjJmMWUwZDNjLTViNGEtNDk3OC04ZTZmLTBhMWIyYzNkNGU1ZiJ9.\
cd17Qmtlp0VucwhZnbAjB-eTMtZXcdpab4ldHb_SRZg";

/// Header `{"typ":"JWT","alg":"HS256","kid":"kid-1"}` (another order), payload
/// `{"tid":"2f1e0d3c-5b4a-4978-8e6f-0a1b2c3d4e5f","exp":2000000000,"iss":"example-app"}` (an
/// unknown claim): as another JWT library would mint it.
const JWT_FOREIGN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiIsImtpZCI6ImtpZC0xIn0.\
eyJ0aWQiOiIyZjFlMGQzYy01YjRhLTQ5NzgtOGU2Zi0wYTFiMmMzZDRlNWYiLCJleHAiOjIwMDAwMDAwMDAsImlzcyI6ImV4YW1wbGUtYXBwIn0.\
Def9y5JSYZeChL6NKdpOX5EnHO5twr9jMq0EEohEpP0";

const TID: &str = "2f1e0d3c-5b4a-4978-8e6f-0a1b2c3d4e5f";
const SUB: &str = "8d3c1a52-4b7e-4f0a-9c2d-5e6f7a8b9c0d";

fn seq<const N: usize>(start: u8) -> [u8; N] {
    std::array::from_fn(|i| start + i as u8)
}

#[test]
fn api_token_vector() {
    // id = 00 01 .. 0f, secret = 20 21 .. 3f.
    assert_eq!(api_token::format(&seq(0x00), &seq(0x20)), API_TOKEN);
    assert_eq!(api_token::parse(API_TOKEN), Ok(seq(0x00)));
    assert_eq!(hex(&api_token::hash(API_TOKEN)), API_TOKEN_SHA256);
}

#[test]
fn invitation_vector() {
    // id = 00 01 .. 0f, issued at 2023-11-14T22:13:20Z (1_700_000_000_000_000 µs), kid
    // "k1-2024_a".
    let inv = invite::Invitation {
        id: seq(0x00),
        issued_at_us: 1_700_000_000_000_000,
        kid: "k1-2024_a".into(),
    };
    assert_eq!(invite::sign(&inv, KEY), INVITATION);
    assert_eq!(invite::parse(INVITATION), Ok(inv.clone()));
    assert_eq!(
        invite::verify(INVITATION, |kid| (kid == "k1-2024_a").then(|| KEY.to_vec())),
        Ok(inv)
    );
}

#[test]
fn jwt_vector() {
    let claims = json!({
        "tid": TID,
        "sub": SUB,
        "exp": 2_000_000_000,
        "nbf": 1_700_000_000,
        "iat": 1_700_000_000,
        "scope": "orders:read inventory:write",
    });
    assert_eq!(jwt::sign(&claims, "kid-1", KEY), JWT);
    let key = |kid: &str| (kid == "kid-1").then(|| KEY.to_vec());
    let expected = jwt::Claims {
        tid: TID.into(),
        sub: Some(SUB.into()),
        exp: 2_000_000_000,
        nbf: Some(1_700_000_000),
        iat: Some(1_700_000_000),
        scope: Some(vec!["orders:read".into(), "inventory:write".into()]),
        kid: "kid-1".into(),
    };
    // Valid from nbf (2023-11-14T22:13:20Z) until just before exp (2033-05-18T03:33:20Z).
    assert_eq!(
        jwt::verify(JWT, 1_700_000_000_000_000, key),
        Ok(expected.clone())
    );
    assert_eq!(jwt::verify(JWT, 1_999_999_999_999_999, key), Ok(expected));
    assert_eq!(
        jwt::verify(JWT, 1_699_999_999_999_999, key),
        Err(Reason::NotYetValid)
    );
    assert_eq!(
        jwt::verify(JWT, 2_000_000_000_000_000, key),
        Err(Reason::Expired)
    );
}

#[test]
fn jwt_foreign_vector() {
    let key = |kid: &str| (kid == "kid-1").then(|| KEY.to_vec());
    let c = jwt::verify(JWT_FOREIGN, 1_700_000_000_000_000, key).unwrap();
    assert_eq!(
        c,
        jwt::Claims {
            tid: TID.into(),
            sub: None,
            exp: 2_000_000_000,
            nbf: None,
            iat: None,
            scope: None,
            kid: "kid-1".into()
        }
    );
}
