//! The values a context takes: the context of a transaction (which tenant, who acts, how it was
//! entered) with its text form in `tenancy.context`, and a context a Citus coordinator handed
//! over (see `cluster.rs`, which seals and opens it).

use uuid::Uuid;

/// How the context was entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    SetTenant,
    ApiToken,
    Jwt,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::SetTenant => "set_tenant",
            Source::ApiToken => "api_token",
            Source::Jwt => "jwt",
        }
    }

    fn parse(s: &str) -> Option<Source> {
        match s {
            "set_tenant" => Some(Source::SetTenant),
            "api_token" => Some(Source::ApiToken),
            "jwt" => Some(Source::Jwt),
            _ => None,
        }
    }
}

/// A tenant context: the tenant, and who acts in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    pub tenant: Uuid,
    /// The acting user (`current_user_id()`); `None` for API tokens and tenant-only contexts.
    pub user: Option<Uuid>,
    /// The API token that authenticated, if any.
    pub token: Option<Uuid>,
    /// The user whose membership bounds the permissions: the acting user, or a token's creator.
    pub actor: Option<Uuid>,
    pub source: Source,
    /// Scopes that narrow the actor's permissions (tokens, JWTs with `scope`); `None` means
    /// the actor's permissions are not narrowed.
    pub scopes: Option<Vec<String>>,
    /// A JWT's signing key and expiry (Unix seconds): the context lasts only while both hold.
    pub kid: Option<String>,
    pub exp: Option<i64>,
}

impl Context {
    /// `t=<uuid>;u=<uuid>;k=<uuid>;a=<uuid>;s=<source>;j=<kid>;x=<exp>;p=<scope> <scope>`
    /// (all but t and s optional).
    pub fn encode(&self) -> String {
        fn push_uuid(out: &mut String, key: &str, u: Uuid) {
            let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
            out.push_str(key);
            out.push_str(u.hyphenated().encode_lower(&mut buf));
        }
        let mut out = String::with_capacity(160);
        push_uuid(&mut out, "t=", self.tenant);
        if let Some(u) = self.user {
            push_uuid(&mut out, ";u=", u);
        }
        if let Some(k) = self.token {
            push_uuid(&mut out, ";k=", k);
        }
        if let Some(a) = self.actor {
            push_uuid(&mut out, ";a=", a);
        }
        out.push_str(";s=");
        out.push_str(self.source.as_str());
        if let Some(kid) = &self.kid {
            out.push_str(";j=");
            out.push_str(kid);
        }
        if let Some(exp) = self.exp {
            out.push_str(";x=");
            out.push_str(&exp.to_string());
        }
        if let Some(scopes) = &self.scopes {
            out.push_str(";p=");
            for (i, scope) in scopes.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(scope);
            }
        }
        out
    }

    /// Whether `decode(encode())` gives this context back: every scope is a non-empty word
    /// without a separator, the key id is one `tenancy.signing_keys` allows, and a key id and
    /// an expiry come together, in a JWT's context only. (The unit tests hold it to the round
    /// trip.)
    pub fn representable(&self) -> bool {
        let scopes_ok = self.scopes.as_ref().is_none_or(|scopes| {
            scopes
                .iter()
                .all(|s| !s.is_empty() && !s.contains([' ', ';', '\n', '\0']))
        });
        let jwt_ok = match (&self.kid, self.exp) {
            (Some(kid), Some(_)) => self.source == Source::Jwt && is_kid(kid),
            (None, None) => self.source != Source::Jwt,
            _ => false,
        };
        scopes_ok && jwt_ok
    }

    /// The inverse of `encode`; anything malformed decodes to no context (fail closed).
    pub fn decode(raw: &str) -> Option<Context> {
        let (mut tenant, mut user, mut token, mut actor) = (None, None, None, None);
        let (mut source, mut scopes, mut kid, mut exp) = (None, None, None, None);
        for field in raw.split(';') {
            let (key, value) = field.split_once('=')?;
            match key {
                "t" if tenant.is_none() => tenant = Some(Uuid::try_parse(value).ok()?),
                "u" if user.is_none() => user = Some(Uuid::try_parse(value).ok()?),
                "k" if token.is_none() => token = Some(Uuid::try_parse(value).ok()?),
                "a" if actor.is_none() => actor = Some(Uuid::try_parse(value).ok()?),
                "s" if source.is_none() => source = Some(Source::parse(value)?),
                "j" if kid.is_none() && is_kid(value) => kid = Some(value.to_owned()),
                "x" if exp.is_none() => exp = Some(value.parse().ok()?),
                "p" if scopes.is_none() && !value.contains('\n') => {
                    scopes = Some(
                        value
                            .split(' ')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    )
                }
                _ => return None,
            }
        }
        // A signing key and an expiry belong to a JWT's context, which always has both.
        let source = source?;
        let jwt_fields = match (&kid, exp) {
            (Some(_), Some(_)) => true,
            (None, None) => false,
            _ => return None,
        };
        if jwt_fields != (source == Source::Jwt) {
            return None;
        }
        Some(Context {
            tenant: tenant?,
            user,
            token,
            actor,
            source,
            scopes,
            kid,
            exp,
        })
    }
}

/// A signing key id as `tenancy.signing_keys` allows it: `[A-Za-z0-9_-]{1,64}`.
fn is_kid(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A context handed over by a Citus coordinator, as its signed value carries it: the context,
/// its actor's standing as the coordinator saw it (a worker has no membership rows), and what
/// binds it (the distributed transaction, the role, an expiry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    pub ctx: Context,
    pub actor: Option<GrantedActor>,
    /// The distributed transaction it was made for: (initiator node group, number, timestamp).
    pub txn: (i32, u64, i64),
    /// The role the coordinator's connections run as.
    pub role: String,
    /// When it stops being valid (PostgreSQL microseconds).
    pub not_after: i64,
    /// When it was made (PostgreSQL microseconds).
    pub made_at: i64,
}

/// An actor's standing in the tenant as the coordinator decided it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GrantedActor {
    pub role: Option<String>,
    pub rank: Option<i32>,
    pub grants: Vec<String>,
    pub platform_admin: bool,
}

impl Remote {
    /// The payload of a signed value: the context, a newline, then the binding and the actor.
    pub fn encode(&self) -> String {
        let remote = self;
        let (initiator, number, timestamp) = remote.txn;
        let mut out = format!(
            "{}\no={};b={initiator}:{number}:{timestamp};m={};x={}",
            remote.ctx.encode(),
            hex(remote.role.as_bytes()),
            remote.made_at,
            remote.not_after,
        );
        if let Some(a) = &remote.actor {
            if let Some(role) = &a.role {
                out.push_str(&format!(";r={role}"));
            }
            if let Some(rank) = a.rank {
                out.push_str(&format!(";n={rank}"));
            }
            out.push_str(&format!(";A={}", u8::from(a.platform_admin)));
            out.push_str(";g=");
            out.push_str(&a.grants.join(" "));
        }
        out
    }

    /// The inverse of `encode`; anything malformed decodes to nothing.
    pub fn decode(payload: &str) -> Option<Remote> {
        let (ctx, rest) = payload.split_once('\n')?;
        let ctx = Context::decode(ctx)?;
        let (mut role, mut txn, mut made_at, mut not_after) = (None, None, None, None);
        let mut actor: Option<GrantedActor> = None;
        for field in rest.split(';') {
            let (key, value) = field.split_once('=')?;
            match key {
                "o" if role.is_none() => role = Some(String::from_utf8(unhex(value)?).ok()?),
                "b" if txn.is_none() => {
                    let mut parts = value.split(':');
                    let t = (
                        parts.next()?.parse().ok()?,
                        parts.next()?.parse().ok()?,
                        parts.next()?.parse().ok()?,
                    );
                    if parts.next().is_some() {
                        return None;
                    }
                    txn = Some(t);
                }
                "m" if made_at.is_none() => made_at = Some(value.parse().ok()?),
                "x" if not_after.is_none() => not_after = Some(value.parse().ok()?),
                "r" => actor.get_or_insert_with(Default::default).role = Some(value.to_owned()),
                "n" => actor.get_or_insert_with(Default::default).rank = Some(value.parse().ok()?),
                "A" => actor.get_or_insert_with(Default::default).platform_admin = value == "1",
                "g" => {
                    actor.get_or_insert_with(Default::default).grants = value
                        .split(' ')
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect()
                }
                _ => return None,
            }
        }
        Some(Remote {
            ctx,
            actor,
            txn: txn?,
            role: role?,
            not_after: not_after?,
            made_at: made_at?,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Context {
        Context {
            tenant: Uuid::from_u128(1),
            user: Some(Uuid::from_u128(2)),
            token: None,
            actor: Some(Uuid::from_u128(2)),
            source: Source::SetTenant,
            scopes: None,
            kid: None,
            exp: None,
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut c = sample();
        assert_eq!(Context::decode(&c.encode()), Some(c.clone()));
        c.token = Some(Uuid::from_u128(3));
        c.actor = Some(Uuid::from_u128(4));
        c.user = None;
        c.source = Source::ApiToken;
        c.scopes = Some(vec!["orders:read".into(), "inventory:write".into()]);
        assert_eq!(Context::decode(&c.encode()), Some(c.clone()));
        c.scopes = Some(vec![]);
        assert_eq!(Context::decode(&c.encode()), Some(c.clone()));
        c.source = Source::Jwt;
        c.kid = Some("k-1_A".into());
        c.exp = Some(1_900_000_000);
        assert_eq!(Context::decode(&c.encode()), Some(c));
    }

    #[test]
    fn representable_is_the_round_trip() {
        let mut cases = vec![sample()];
        let mut c = sample();
        c.source = Source::ApiToken;
        for scopes in [
            vec![],
            vec!["orders:read".to_string()],
            vec!["a b".to_string()],
            vec!["".to_string()],
            vec!["x;y".to_string()],
            vec!["x\ny".to_string()],
            vec!["x=y".to_string()],
        ] {
            c.scopes = Some(scopes);
            cases.push(c.clone());
        }
        let mut j = sample();
        j.source = Source::Jwt;
        for (kid, exp) in [
            (Some("k-1_A"), Some(5)),
            (Some("bad kid"), Some(5)),
            (Some("k1"), None),
            (None, Some(5)),
            (None, None),
        ] {
            j.kid = kid.map(str::to_owned);
            j.exp = exp;
            cases.push(j.clone());
            let mut other = j.clone();
            other.source = Source::SetTenant;
            cases.push(other);
        }
        for c in cases {
            assert_eq!(
                c.representable(),
                Context::decode(&c.encode()).as_ref() == Some(&c),
                "{c:?}"
            );
        }
    }

    #[test]
    fn malformed_values_decode_to_nothing() {
        for raw in [
            "",
            "t=not-a-uuid;s=set_tenant",
            "t=00000000-0000-0000-0000-000000000001",
            "s=set_tenant",
            "t=00000000-0000-0000-0000-000000000001;s=root",
            "t=00000000-0000-0000-0000-000000000001;s=set_tenant;x=1",
            "t=00000000-0000-0000-0000-000000000001;t=00000000-0000-0000-0000-000000000002;s=jwt",
            "t=00000000-0000-0000-0000-000000000001;s=jwt;j=bad kid",
            "t=00000000-0000-0000-0000-000000000001;s=jwt;x=soon",
            "t=00000000-0000-0000-0000-000000000001;s=jwt;j=k1",
            "t=00000000-0000-0000-0000-000000000001;s=api_token;j=k1;x=1",
            "garbage",
        ] {
            assert_eq!(Context::decode(raw), None, "{raw}");
        }
    }

    #[test]
    fn payload_round_trip() {
        let remote = Remote {
            ctx: sample(),
            actor: Some(GrantedActor {
                role: Some("staff".into()),
                rank: Some(40),
                grants: vec!["orders:*".into(), "products:read".into()],
                platform_admin: false,
            }),
            txn: (0, 42, 123_456),
            role: "app;role=\"x\"".into(),
            made_at: 5,
            not_after: 60_000_005,
        };
        assert_eq!(Remote::decode(&remote.encode()), Some(remote.clone()));
        let mut plain = remote;
        plain.actor = None;
        assert_eq!(Remote::decode(&plain.encode()), Some(plain));
        for bad in [
            "",
            "t=1",
            "garbage\no=00",
            "t=00000000-0000-0000-0000-000000000001;s=jwt\n",
        ] {
            assert_eq!(Remote::decode(bad), None, "{bad}");
        }
    }
}
