//! Duplicate records: CloudTrail delivers some events more than once (the same
//! `eventID` in two files). A record whose key (a keyed hash of `eventID` and
//! `recipientAccountId`, computed by the worker) was seen within the window is dropped
//! and counted as `records_deduplicated`.
//!
//! Memory is bounded twice: keys older than `window` behind the newest event time are
//! forgotten, and at most `max_entries` keys are kept (the oldest go first, counted as
//! `dedup_evicted`). A repeat that arrives after its key was forgotten is kept, so the
//! bound can only let a duplicate through, never drop a distinct record.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

/// The dedup window.
#[derive(Debug)]
pub struct Dedup {
    window: i64,
    max_entries: usize,
    seen: FxHashMap<u64, i64>,
    order: VecDeque<(u64, i64)>,
    newest: i64,
    /// Keys forgotten because of `max_entries`.
    pub evicted: u64,
}

impl Dedup {
    /// A window of `window` microseconds holding at most `max_entries` keys.
    pub fn new(window: i64, max_entries: usize) -> Self {
        Dedup {
            window,
            max_entries: max_entries.max(1),
            seen: FxHashMap::default(),
            order: VecDeque::new(),
            newest: i64::MIN,
            evicted: 0,
        }
    }

    /// Whether `key` (seen at event time `time`) repeats a key in the window; records
    /// it if not.
    pub fn is_repeat(&mut self, key: u64, time: i64) -> bool {
        self.newest = self.newest.max(time);
        let horizon = self.newest.saturating_sub(self.window);
        // One probe: most keys are new.
        match self.seen.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                if *e.get() >= horizon {
                    return true;
                }
                e.insert(time);
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(time);
            }
        }
        self.order.push_back((key, time));
        while let Some(&(k, t)) = self.order.front() {
            let full = self.order.len() > self.max_entries;
            if !full && t >= horizon {
                break;
            }
            self.order.pop_front();
            // The key may have been seen again later: only forget this sighting.
            if self.seen.get(&k) == Some(&t) {
                self.seen.remove(&k);
                if full {
                    self.evicted += 1;
                }
            }
        }
        false
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    #[test]
    fn repeats_within_the_window_are_dropped() {
        let mut d = Dedup::new(15 * MIN, 100);
        assert!(!d.is_repeat(1, 0));
        assert!(!d.is_repeat(2, MIN));
        assert!(d.is_repeat(1, 2 * MIN));
        // 1 was first seen at 0; at 16 min it is outside the 15 min window.
        assert!(!d.is_repeat(3, 16 * MIN));
        assert!(!d.is_repeat(1, 16 * MIN));
        assert!(d.is_repeat(1, 17 * MIN));
    }

    #[test]
    fn the_size_bound_forgets_the_oldest() {
        let mut d = Dedup::new(i64::MAX / 4, 3);
        for k in 0..5 {
            assert!(!d.is_repeat(k, k as i64));
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.evicted, 2);
        assert!(!d.is_repeat(0, 10), "forgotten key is kept, not dropped");
        assert!(d.is_repeat(4, 11));
    }
}
