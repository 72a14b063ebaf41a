//! A map of bounded size for the caches: two generations, the older one dropped when the newer
//! fills up (an approximation of LRU without per-entry bookkeeping). Hashed with foldhash,
//! seeded per process: several times cheaper than SipHash on uuid keys, and what the caches
//! store is never chosen by an attacker anyway (unknown keys are not stored).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use foldhash::fast::RandomState;

/// A map of bounded size that keeps recently used entries: two generations, the older one
/// dropped when the newer fills up (an approximation of LRU without per-entry bookkeeping).
pub struct Bounded<K, V> {
    young: HashMap<K, V, RandomState>,
    old: HashMap<K, V, RandomState>,
    half: usize,
}

impl<K: Hash + Eq, V: Clone> Bounded<K, V> {
    pub fn new(capacity: usize) -> Self {
        Bounded {
            young: HashMap::default(),
            old: HashMap::default(),
            half: (capacity / 2).max(1),
        }
    }

    pub fn get<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(v) = self.young.get(key) {
            return Some(v.clone());
        }
        let (key, value) = self.old.remove_entry(key)?;
        self.insert(key, value.clone());
        Some(value)
    }

    pub fn insert(&mut self, key: K, value: V) {
        if self.young.len() >= self.half && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, value);
    }

    pub fn clear(&mut self) {
        self.young = HashMap::default();
        self.old = HashMap::default();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Bounded;

    #[test]
    fn bounded_map_keeps_recent_entries_within_capacity() {
        let mut m: Bounded<u32, u32> = Bounded::new(4);
        for i in 0..10 {
            m.insert(i, i * 10);
            assert!(m.len() <= 4, "len {} after {i}", m.len());
        }
        assert_eq!(m.get(&9), Some(90));
        assert_eq!(m.get(&0), None);
        // A hit in the older generation survives the next rotation.
        m.insert(100, 1);
        assert_eq!(m.get(&9), Some(90));
        m.insert(101, 2);
        m.insert(102, 3);
        assert_eq!(m.get(&9), Some(90));
        m.clear();
        assert_eq!(m.len(), 0);
        assert_eq!(m.get(&9), None);
    }
}
