//! Strict reading of a JSON object for JWT headers and claims.
//!
//! serde_json keeps the last of duplicate keys when it fills a map; a token whose meaning
//! depends on which duplicate a reader picks is refused instead. Duplicate keys are detected
//! at every depth (also inside claims this crate otherwise ignores). Only the top-level values
//! are kept, reduced to what the checks need.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value, reduced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Val {
    Str(String),
    /// An integer that fits in an i64.
    Int(i64),
    /// A number that is not an integer or does not fit in an i64.
    NonInt,
    /// null, a boolean, an array or an object.
    Other,
}

/// A top-level JSON object without duplicate keys, its values reduced.
#[derive(Debug)]
pub(crate) struct Object(Vec<(String, Val)>);

impl Object {
    pub(crate) fn get(&self, key: &str) -> Option<&Val> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }
}

/// Parses `bytes` as one JSON object (surrounding JSON whitespace allowed, nothing else
/// trailing), refusing invalid UTF-8, duplicate keys at any depth, and nesting deeper than
/// serde_json's recursion limit (128).
pub(crate) fn parse_object(bytes: &[u8]) -> Option<Object> {
    serde_json::from_slice(bytes).ok()
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Val, E> {
        Ok(Val::Other)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val, E> {
        Ok(Val::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val, E> {
        Ok(i64::try_from(v).map_or(Val::NonInt, Val::Int))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Val, E> {
        Ok(Val::NonInt)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Val, E> {
        Ok(Val::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Val, E> {
        Ok(Val::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Other)
    }

    fn visit_none<E: de::Error>(self) -> Result<Val, E> {
        Ok(Val::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        while seq.next_element::<Val>()?.is_some() {}
        Ok(Val::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value::<Val>()?;
        }
        Ok(Val::Other)
    }
}

impl<'de> Deserialize<'de> for Val {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Object;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
        let mut seen = BTreeSet::new();
        let mut fields = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value::<Val>()?;
            fields.push((key, value));
        }
        Ok(Object(fields))
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> Option<Vec<String>> {
        parse_object(s.as_bytes()).map(|o| o.keys().map(str::to_owned).collect())
    }

    #[test]
    fn objects_only() {
        assert_eq!(
            keys(r#"{"a":1,"b":"x"}"#),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(keys(" {} \n"), Some(vec![]));
        for bad in [
            "",
            "[]",
            "1",
            "\"a\"",
            "null",
            "{",
            "{}x",
            "{}{}",
            "{\"a\":1,}",
            "\u{feff}{}",
        ] {
            assert!(keys(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn duplicates_refused_at_every_depth() {
        for bad in [
            r#"{"a":1,"a":1}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"x":{"b":1,"b":2}}"#,
            r#"{"x":[{"b":1,"b":2}]}"#,
            r#"{"x":[[{"y":{"c":null,"c":null}}]]}"#,
        ] {
            assert!(keys(bad).is_none(), "{bad}");
        }
        assert!(keys(r#"{"x":{"b":1},"y":{"b":1}}"#).is_some());
    }

    #[test]
    fn numbers() {
        let o = parse_object(
            br#"{"a":1,"b":-1,"c":9223372036854775807,"d":9223372036854775808,"e":1.0,"f":1e3,"g":-9223372036854775809,"h":99999999999999999999999}"#,
        )
        .unwrap();
        assert_eq!(o.get("a"), Some(&Val::Int(1)));
        assert_eq!(o.get("b"), Some(&Val::Int(-1)));
        assert_eq!(o.get("c"), Some(&Val::Int(i64::MAX)));
        for k in ["d", "e", "f", "g", "h"] {
            assert_eq!(o.get(k), Some(&Val::NonInt), "{k}");
        }
    }

    #[test]
    fn deep_nesting_refused_without_overflow() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(2000), "]".repeat(2000));
        assert!(keys(&deep).is_none());
    }
}
